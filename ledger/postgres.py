"""The production store: PostgreSQL through asyncpg."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from ledger.errors import SchemaMissingError, StoreUnavailableError
from ledger.merkle import NodeId
from ledger.store import (
    SavedProjection,
    SequencingTransaction,
    Store,
    StoredCheckpoint,
    StoredEntry,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS uchast_logs (
    id text PRIMARY KEY,
    size bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS uchast_entries (
    log text NOT NULL,
    position bigint NOT NULL,
    type text NOT NULL,
    tags text[] NOT NULL,
    data bytea NOT NULL,
    leaf_hash bytea NOT NULL,
    PRIMARY KEY (log, position)
);
CREATE INDEX IF NOT EXISTS uchast_entries_by_type ON uchast_entries (log, type, position);
CREATE TABLE IF NOT EXISTS uchast_entry_tags (
    log text NOT NULL,
    tag text NOT NULL,
    position bigint NOT NULL,
    PRIMARY KEY (log, tag, position)
);
CREATE TABLE IF NOT EXISTS uchast_nodes (
    log text NOT NULL,
    level smallint NOT NULL,
    idx bigint NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (log, level, idx)
);
CREATE TABLE IF NOT EXISTS uchast_checkpoints (
    log text NOT NULL,
    size bigint NOT NULL,
    note text NOT NULL,
    created_at double precision NOT NULL,
    PRIMARY KEY (log, size)
);
CREATE TABLE IF NOT EXISTS uchast_cosigned_checkpoints (
    log text NOT NULL,
    size bigint NOT NULL,
    note text NOT NULL,
    created_at double precision NOT NULL,
    PRIMARY KEY (log, size)
);
CREATE TABLE IF NOT EXISTS uchast_projections (
    log text NOT NULL,
    name text NOT NULL,
    position bigint NOT NULL,
    state bytea NOT NULL,
    saved_at double precision NOT NULL,
    PRIMARY KEY (log, name)
);
CREATE TABLE IF NOT EXISTS uchast_projection_counts (
    log text NOT NULL,
    name text NOT NULL,
    counter text NOT NULL,
    count bigint NOT NULL,
    PRIMARY KEY (log, name, counter)
);
CREATE TABLE IF NOT EXISTS uchast_projection_items (
    log text NOT NULL,
    name text NOT NULL,
    key text NOT NULL,
    value bigint NOT NULL,
    PRIMARY KEY (log, name, key)
);
"""

NOTIFY_CHANNEL = "uchast_log"

_SCHEMA_TABLES = tuple(
    line.split()[5] for line in SCHEMA.splitlines() if line.startswith("CREATE TABLE")
)
POLL_INTERVAL = 0.25
"""Seconds between reads of a log's size on a read-only store, which gets no NOTIFY."""
ITEMS_PER_STATEMENT = 50_000

_ENTRY_COLUMNS = "position, type, tags, data, leaf_hash"
_PAGE_SQL = (
    f"SELECT {_ENTRY_COLUMNS} FROM uchast_entries WHERE log=$1 AND position >= $2"
    " AND position < $3 ORDER BY position"
)
_DATA_PAGE_SQL = (
    "SELECT data FROM uchast_entries WHERE log=$1 AND position >= $2 AND position < $3"
    " ORDER BY position"
)

# Failures of a query on an open connection that mean "the database is not there right now",
# not "this query is wrong": the connection broke, the server is shutting down or refusing work
# (57xxx, incl. terminated backends and statement timeouts), out of resources (53xxx), a read-only
# standby after failover, or the network. Nothing was committed; the caller may retry.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    ConnectionError,
    asyncio.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    asyncpg.exceptions.InterfaceError,
    # A connection whose query the server cut off can be left mid-protocol ("cannot switch to
    # state ...; another operation is in progress").
    asyncpg.exceptions.InternalClientError,
    # 40001: on a hot standby, "canceling statement due to conflict with recovery" (replaying
    # the primary's WAL needed what the read held); the read may simply be tried again.
    asyncpg.exceptions.SerializationError,
)


def _split_url(url: str) -> tuple[list[str], dict[str, str]]:
    """One URL per host of ``url`` (``postgresql://user@h1:p1,h2:p2/db?...``: libpq's multi-host
    form), in order, without our own options; and those options (``connect_timeout``,
    ``command_timeout``), which asyncpg would send to the server as settings."""
    scheme, _, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    options: dict[str, str] = {}
    kept = []
    for pair in query.split("&") if query else []:
        name, _, value = pair.partition("=")
        if name in _OWN_OPTIONS:
            options[name] = value
        else:
            kept.append(pair)
    suffix = f"{slash}{path}" + (f"?{'&'.join(kept)}" if kept else "")
    userinfo, at, hosts = netloc.rpartition("@")
    return [f"{scheme}://{userinfo}{at}{host}{suffix}" for host in hosts.split(",")], options


_OWN_OPTIONS = ("connect_timeout", "command_timeout")


def _entry(row: Any) -> StoredEntry:
    return StoredEntry(
        position=row[0],
        type=row[1],
        tags=tuple(row[2]),
        data=bytes(row[3]),
        leaf_hash=bytes(row[4]),
    )


# One index range per type (OFFSET 0 keeps the planner from scanning the log by position).
_TYPED_SQL = f"""
SELECT e.* FROM unnest($2::text[]) AS want(type)
 CROSS JOIN LATERAL (
    SELECT {_ENTRY_COLUMNS} FROM uchast_entries
     WHERE log = $1 AND type = want.type AND position >= $3 AND position < $4 OFFSET 0) e
 ORDER BY e.position
"""

_NODES_SQL = """
SELECT 0::smallint, position, leaf_hash FROM uchast_entries
 WHERE log = $1 AND position = ANY($2::bigint[])
UNION ALL
SELECT n.* FROM unnest($3::smallint[], $4::bigint[]) AS want(level, idx)
 CROSS JOIN LATERAL (
    SELECT level, idx, hash FROM uchast_nodes
     WHERE log = $1 AND level = want.level AND idx = want.idx OFFSET 0) n
"""


async def _nodes(conn: Any, log_id: str, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
    leaves = [idx for level, idx in ids if level == 0]
    inner = [(level, idx) for level, idx in ids if level > 0]
    rows = await conn.fetch(
        _NODES_SQL,
        log_id,
        leaves,
        [level for level, _ in inner],
        [idx for _, idx in inner],
    )
    return {(r[0], r[1]): bytes(r[2]) for r in rows}


# Driven from the tag index, one index probe per wanted tag and one primary-key probe per matching
# position. LATERAL with OFFSET 0 (a fence against flattening) so that no plan can scan every tag
# of the log and hash-join instead: the planner picks that on young tables whose statistics are
# stale, and its cost grows with the log.
_TAGGED_SQL = f"""
SELECT e.* FROM (
    SELECT DISTINCT t.position FROM unnest($2::text[]) AS want(tag)
     CROSS JOIN LATERAL (
        SELECT position FROM uchast_entry_tags
         WHERE log = $1 AND tag = want.tag AND position >= $3 OFFSET 0) t) p
 CROSS JOIN LATERAL (
    SELECT {_ENTRY_COLUMNS} FROM uchast_entries WHERE log = $1 AND position = p.position) e
 ORDER BY e.position
"""

# One statement, so the head and the entries come from the same snapshot.
_TAGGED_WITH_HEAD_SQL = f"""
SELECT l.size, e.* FROM uchast_logs l
  LEFT JOIN LATERAL (
    SELECT x.* FROM (
        SELECT DISTINCT t.position FROM unnest($2::text[]) AS want(tag)
         CROSS JOIN LATERAL (
            SELECT position FROM uchast_entry_tags
             WHERE log = $1 AND tag = want.tag AND position < l.size OFFSET 0) t) p
     CROSS JOIN LATERAL (
        SELECT {_ENTRY_COLUMNS} FROM uchast_entries WHERE log = $1 AND position = p.position) x
  ) e ON true
 WHERE l.id = $1
 ORDER BY e.position
"""


async def _no_reset(_conn: Any) -> None:
    """Pool connections carry no session state (no LISTEN, no session locks, no SET), so the
    default reset on release (UNLISTEN, RESET ALL, ...) is a wasted round trip per query."""


# Tags never contain it (see ledger.log), so a tag list travels as one string per entry.
_TAG_SEPARATOR = "\x1f"

# A whole batch in one statement, one round trip: entries, their tags, the new tree nodes, the
# checkpoint, the new size, and the notification that wakes subscribers after commit. Everything
# is gated on moving the size from exactly $11: under the sequencing lock that always holds; run on
# its own (PostgresStore.write_if_size) it is what makes the write safe without the lock, as the
# size of a log moves only with its entries.
#
# Few and wide parameters, as asyncpg checks and encodes every element of an array parameter
# (its cost per batch grew with the number of elements): the entries' positions follow from the
# size (they are gapless), their tag rows from their tag strings, the 32-byte hashes travel as one
# string each (entries' leaves, then the nodes'), a node's level and index as one number.
_WRITE_SQL = """
WITH moved AS (
    UPDATE uchast_logs SET size = $7 WHERE id = $1 AND size = $11 RETURNING id
), batch AS (
    SELECT $11 + u.n - 1 AS position, u.type, u.tags, u.data,
           substring($5::bytea FROM (32 * u.n - 31)::int FOR 32) AS leaf_hash
      FROM unnest($2::text[], $3::text[], $4::bytea[]) WITH ORDINALITY AS u(type, tags, data, n)
), new_entries AS (
    INSERT INTO uchast_entries (log, position, type, tags, data, leaf_hash)
    SELECT $1, b.position, b.type,
           CASE WHEN b.tags = '' THEN '{}'::text[] ELSE string_to_array(b.tags, E'\\x1f') END,
           b.data, b.leaf_hash
      FROM batch b
     WHERE EXISTS (SELECT FROM moved)
), new_tags AS (
    INSERT INTO uchast_entry_tags (log, tag, position)
    SELECT DISTINCT $1, t.tag, b.position
      FROM batch b CROSS JOIN LATERAL unnest(string_to_array(b.tags, E'\\x1f')) AS t(tag)
     WHERE b.tags <> '' AND EXISTS (SELECT FROM moved)
), new_nodes AS (
    INSERT INTO uchast_nodes (log, level, idx, hash)
    SELECT $1, (u.id & 63)::smallint, u.id >> 6,
           substring($6::bytea FROM (32 * u.n - 31)::int FOR 32)
      FROM unnest($12::bigint[]) WITH ORDINALITY AS u(id, n)
     WHERE EXISTS (SELECT FROM moved)
), new_checkpoint AS (
    INSERT INTO uchast_checkpoints (log, size, note, created_at)
    SELECT $1, $8, $9, $10 WHERE $8::bigint IS NOT NULL AND EXISTS (SELECT FROM moved)
    ON CONFLICT DO NOTHING
)
SELECT pg_notify('uchast_log', $13) FROM moved
"""

_HASH_SIZE = 32


async def _write(
    conn: Any,
    log_id: str,
    size: int,
    entries: Sequence[StoredEntry],
    nodes: Sequence[tuple[NodeId, bytes]],
    checkpoint: StoredCheckpoint | None,
) -> bool:
    """Run _WRITE_SQL for entries at ``size ..``; whether the size was still ``size``."""
    new_size = size + len(entries)
    if entries and (entries[0].position != size or entries[-1].position != new_size - 1):
        raise ValueError(f"log {log_id}: a batch must hold the positions {size}..{new_size - 1}")
    leaves = b"".join([e.leaf_hash for e in entries])
    hashes = b"".join([h for _, h in nodes])
    if len(leaves) != _HASH_SIZE * len(entries) or len(hashes) != _HASH_SIZE * len(nodes):
        raise ValueError(f"log {log_id}: tree hashes must be {_HASH_SIZE} bytes")
    moved = await conn.fetch(
        _WRITE_SQL,
        log_id,
        [e.type for e in entries],
        [_TAG_SEPARATOR.join(e.tags) for e in entries],
        [e.data for e in entries],
        leaves,
        hashes,
        new_size,
        None if checkpoint is None else checkpoint.size,
        None if checkpoint is None else checkpoint.note,
        None if checkpoint is None else checkpoint.created_at,
        size,
        [idx << 6 | level for (level, idx), _ in nodes],
        f"{new_size} {log_id}",
    )
    return bool(moved)


class _PostgresTransaction(SequencingTransaction):
    def __init__(self, conn: Any, log_id: str, size: int) -> None:
        self._conn = conn
        self._log = log_id
        self.size = size

    async def nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        return await _nodes(self._conn, self._log, ids)

    async def read(self, start: int, end: int, types: Sequence[str]) -> list[StoredEntry]:
        if not types:
            return []
        rows = await self._conn.fetch(
            f"SELECT {_ENTRY_COLUMNS} FROM uchast_entries WHERE log=$1 AND type = ANY($2::text[])"
            " AND position >= $3 AND position < $4 ORDER BY position",
            self._log,
            list(types),
            start,
            end,
        )
        return [_entry(r) for r in rows]

    async def tagged(self, tags: Sequence[str], start: int) -> list[StoredEntry]:
        if not tags:
            return []
        rows = await self._conn.fetch(_TAGGED_SQL, self._log, list(tags), start)
        return [_entry(r) for r in rows]

    async def type_exists(self, types: Sequence[str], start: int) -> bool:
        if not types:
            return self.size > start
        found = await self._conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM uchast_entries WHERE log=$1 AND type = ANY($2::text[])"
            " AND position >= $3)",
            self._log,
            list(types),
            start,
        )
        return bool(found)

    async def write(
        self,
        entries: Sequence[StoredEntry],
        nodes: Sequence[tuple[NodeId, bytes]],
        checkpoint: StoredCheckpoint | None,
    ) -> None:
        if not await _write(self._conn, self._log, self.size, entries, nodes, checkpoint):
            raise RuntimeError(f"log {self._log}: size moved under the sequencing lock")
        self.size = entries[-1].position + 1 if entries else self.size


class PostgresStore(Store):
    """Logs in PostgreSQL. Writers of one log are serialised by a row lock on its ``uchast_logs``
    row, held until commit, so positions are gapless and in commit order across processes."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        connect_timeout: float = 10.0,
        acquire_timeout: float = 10.0,
        command_timeout: float = 10.0,
        read_only: bool = False,
    ) -> None:
        self.url = url
        self.read_only = read_only
        self._pool: Any = None
        self._min_size = min_size
        self._max_size = max_size
        # The URL may set both, in seconds: ``connect_timeout`` (per host, as in libpq) and
        # ``command_timeout`` (per statement, measured here: a hung server never answers, and
        # its sockets stay open, so only our own clock ends the wait).
        self._hosts, options = _split_url(url)
        self._connect_timeout = float(options.get("connect_timeout", connect_timeout))
        self._command_timeout = float(options.get("command_timeout", command_timeout))
        self._acquire_timeout = acquire_timeout
        self._listener: Any = None
        self._growth: dict[str, asyncio.Event] = {}
        self._listen_lock = asyncio.Lock()

    @property
    def pool(self) -> Any:
        if self._pool is None:
            raise StoreUnavailableError("PostgreSQL store is not open")
        return self._pool

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                min_size=self._min_size,
                max_size=self._max_size,
                reset=_no_reset,
                connect=self._connect,
                command_timeout=self._command_timeout,
            )
        except Exception as exc:  # no connection at all, whatever the server said
            raise StoreUnavailableError(f"PostgreSQL: {exc}") from exc
        if self.read_only:
            await self._check_schema()
            return
        # Two processes starting at once must not race on CREATE TABLE.
        async with self._conn() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(7347202118)")
            await conn.execute(SCHEMA)

    # -- read-only (serve --read-only, on a hot standby): no DDL, no write, no LISTEN --------

    async def _check_schema(self) -> None:
        """Read-only open: every table of SCHEMA must be there (a standby cannot create them,
        and a missing one would fail later, on some request)."""
        try:
            async with self._conn() as conn:
                missing = await conn.fetchval(
                    "SELECT count(*) FROM unnest($1::text[]) AS t(name)"
                    " WHERE to_regclass(t.name) IS NULL",
                    list(_SCHEMA_TABLES),
                )
        except BaseException:
            await self.close()
            raise
        if missing:
            await self.close()
            raise SchemaMissingError(
                "PostgreSQL: this database has no uchast schema (a read-only server creates"
                " nothing): run uchast serve or uchast init against the primary first"
            )

    async def replica_status(self) -> dict[str, Any] | None:
        """Whether the database is a standby in recovery, and the age in seconds of the last
        commit it replayed (None when not a standby, or nothing replayed yet). The age also
        grows while the primary commits nothing: compare log sizes to see entries behind."""
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "SELECT pg_is_in_recovery(),"
                " extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8"
            )
        return {"in_recovery": bool(row[0]), "replay_age_seconds": row[1]}

    async def _poll_growth(self, log_id: str, known_size: int, timeout: float) -> int:
        """wait_for_growth without LISTEN (a standby refuses it): one primary-key read of the
        log's size every POLL_INTERVAL seconds, so at most POLL_INTERVAL behind the standby."""
        deadline = time.monotonic() + timeout
        while True:
            size = await self.size(log_id)
            left = deadline - time.monotonic()
            if size > known_size or left <= 0:
                return size
            await asyncio.sleep(min(POLL_INTERVAL, left))

    # ------------------------------------------------------------------------------------------

    async def _connect(self, *_dsn: Any, **options: Any) -> Any:
        """A connection to the first host of the URL that accepts one and suits it (with
        ``target_session_attrs=read-write``: the primary). The hosts are tried at once, each
        with its own timeout: asyncpg tries them in turn within one timeout, so a hung host
        (it accepts TCP and never answers) would use all of it and hide the new primary."""
        options = {k: v for k, v in options.items() if k != "loop"}
        options["timeout"] = self._connect_timeout
        options.setdefault("command_timeout", self._command_timeout)
        if self.read_only:  # a write by mistake fails in the database, even on a primary
            settings = dict(options.get("server_settings") or {})
            options["server_settings"] = settings | {"default_transaction_read_only": "on"}
        if len(self._hosts) == 1:
            return await asyncpg.connect(self._hosts[0], **options)
        attempts = [asyncio.ensure_future(asyncpg.connect(h, **options)) for h in self._hosts]
        chosen: Any = None
        error: BaseException | None = None
        try:
            for attempt in asyncio.as_completed(attempts):
                try:
                    chosen = await attempt
                    return chosen
                except Exception as exc:  # this host is down, hung or not the primary
                    error = exc
            assert error is not None
            raise error
        finally:
            for attempt in attempts:
                attempt.cancel()
            for attempt in attempts:
                with contextlib.suppress(BaseException):
                    other = await attempt
                    if other is not chosen:
                        other.terminate()

    async def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(*_UNAVAILABLE):
                await self._listener.close()
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def create_log(self, log_id: str) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO uchast_logs (id, size) VALUES ($1, 0) ON CONFLICT DO NOTHING", log_id
            )

    async def log_ids(self) -> list[str]:
        async with self._conn() as conn:
            rows = await conn.fetch("SELECT id FROM uchast_logs ORDER BY id")
        return [r[0] for r in rows]

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Any]:
        """A pooled connection. Every failure to get one (refused, not accepting connections,
        access revoked, database gone, pool exhausted past the acquire timeout) and every
        connection-level failure while using it is a :class:`StoreUnavailableError`."""
        pool = self.pool
        try:
            conn = await pool.acquire(timeout=self._acquire_timeout)
        except Exception as exc:
            raise StoreUnavailableError(f"PostgreSQL: {exc}") from exc
        try:
            yield conn
        except _UNAVAILABLE as exc:
            # Never hand this connection out again: its protocol state may be stuck mid-query.
            with contextlib.suppress(asyncpg.exceptions.InterfaceError):  # already released
                conn.terminate()
            raise StoreUnavailableError(f"PostgreSQL: {exc}") from exc
        finally:
            try:
                await pool.release(conn)  # terminates the connection if it is broken
            except _UNAVAILABLE as exc:
                raise StoreUnavailableError(f"PostgreSQL: {exc}") from exc

    @asynccontextmanager
    async def sequencing(self, log_id: str) -> AsyncIterator[SequencingTransaction]:
        async with self._conn() as conn, conn.transaction():
            # The row lock is what makes positions gapless and in commit order: the next
            # writer of this log cannot read the size until this transaction has committed.
            size = await conn.fetchval(
                "SELECT size FROM uchast_logs WHERE id=$1 FOR UPDATE", log_id
            )
            if size is None:
                raise KeyError(log_id)
            yield _PostgresTransaction(conn, log_id, int(size))

    async def write_if_size(
        self,
        log_id: str,
        size: int,
        entries: Sequence[StoredEntry],
        nodes: Sequence[tuple[NodeId, bytes]],
        checkpoint: StoredCheckpoint | None,
    ) -> bool:
        """Write as :meth:`SequencingTransaction.write` does, without the sequencing lock: one
        statement, committed on its own, that writes everything if the log's committed size is
        still ``size`` and nothing (False) if another writer moved it."""
        async with self._conn() as conn:
            return await _write(conn, log_id, size, entries, nodes, checkpoint)

    async def size(self, log_id: str) -> int:
        async with self._conn() as conn:
            size = await conn.fetchval("SELECT size FROM uchast_logs WHERE id=$1", log_id)
        if size is None:
            raise KeyError(log_id)
        return int(size)

    async def read(self, log_id: str, start: int, end: int) -> list[StoredEntry]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"SELECT {_ENTRY_COLUMNS} FROM uchast_entries WHERE log=$1 AND position >= $2"
                " AND position < $3 ORDER BY position",
                log_id,
                start,
                end,
            )
        return [_entry(r) for r in rows]

    async def stream(
        self, log_id: str, start: int, end: int | None = None, chunk: int = 2000
    ) -> AsyncIterator[StoredEntry]:
        stop = await self.size(log_id) if end is None else end
        # Page by position, each page its own short statement: positions are gapless and never
        # change below the size, so pages need no snapshot. One statement over the whole range
        # (a server-side cursor) may be planned as a sort of all of it, and its first fetch then
        # outlasts command_timeout on a big log (seen at 1.36 million entries).
        async with self._conn() as conn:
            for page in range(start, stop, chunk):
                rows = await conn.fetch(_PAGE_SQL, log_id, page, min(stop, page + chunk))
                for row in rows:
                    yield _entry(row)

    async def typed(
        self, log_id: str, types: Sequence[str], start: int, end: int
    ) -> list[StoredEntry]:
        if not types:
            return []
        async with self._conn() as conn:
            rows = await conn.fetch(_TYPED_SQL, log_id, list(types), start, end)
        return [_entry(r) for r in rows]

    async def stream_data(
        self, log_id: str, start: int, end: int | None = None, chunk: int = 5000
    ) -> AsyncIterator[list[bytes]]:
        stop = await self.size(log_id) if end is None else end
        pages = iter(range(start, stop, chunk))  # by position, as stream() explains

        def fetch(conn: asyncpg.Connection, page: int) -> asyncio.Future[list[asyncpg.Record]]:
            future: asyncio.Future[list[asyncpg.Record]] = asyncio.ensure_future(
                conn.fetch(_DATA_PAGE_SQL, log_id, page, min(stop, page + chunk))
            )
            return future

        async with self._conn() as conn:
            first = next(pages, None)
            if first is None:
                return
            # Ask for the next page before handing this one out: the server reads it while the
            # caller applies this one (on another core), instead of each waiting in turn.
            pending: asyncio.Future[list[asyncpg.Record]] | None = fetch(conn, first)
            try:
                while pending is not None:
                    rows = await pending
                    following = next(pages, None)
                    pending = fetch(conn, following) if following is not None else None
                    await asyncio.sleep(0)  # let it send the request before we go on
                    yield [row[0] for row in rows]
            finally:
                if pending is not None and not pending.done():
                    pending.cancel()
                    with contextlib.suppress(asyncio.CancelledError, *_UNAVAILABLE):
                        await pending

    async def load_projection(
        self, log_id: str, name: str, *, with_items: bool = False
    ) -> SavedProjection | None:
        # REPEATABLE READ: the row and its items from one snapshot, never a later save's items.
        async with (
            self._conn() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            row = await conn.fetchrow(
                "SELECT position, state, saved_at FROM uchast_projections WHERE log=$1 AND name=$2",
                log_id,
                name,
            )
            if row is None:
                return None
            items: dict[str, int] = {}
            if with_items:  # two arrays, not a record per item
                keys, values = await conn.fetchrow(
                    "SELECT coalesce(array_agg(key), '{}'), coalesce(array_agg(value), '{}')"
                    " FROM uchast_projection_items WHERE log=$1 AND name=$2",
                    log_id,
                    name,
                )
                items = dict(zip(keys, values, strict=True))
        return SavedProjection(int(row[0]), bytes(row[1]), row[2], items)

    async def save_projection(
        self,
        log_id: str,
        name: str,
        position: int,
        state: bytes | None,
        add_counts: Mapping[str, int] | None = None,
        items: Mapping[str, int] | None = None,
        *,
        replace_items: bool = False,
    ) -> bool:
        async with self._conn() as conn, conn.transaction():
            written = state is not None and await conn.fetchval(
                "INSERT INTO uchast_projections AS p (log, name, position, state, saved_at)"
                " VALUES ($1, $2, $3, $4, extract(epoch FROM clock_timestamp()))"
                " ON CONFLICT (log, name) DO UPDATE SET position = excluded.position,"
                " state = excluded.state, saved_at = excluded.saved_at"
                " WHERE p.position < excluded.position RETURNING true",
                log_id,
                name,
                position,
                state,
            )
            if written and replace_items:
                await conn.execute(
                    "DELETE FROM uchast_projection_items WHERE log=$1 AND name=$2", log_id, name
                )
            keys, values = (list(items), list(items.values())) if written and items else ([], [])
            # A statement of two array parameters per ITEMS_PER_STATEMENT items: the few seconds'
            # changes in one, all of a rebuilt tally's voters in statements that each finish
            # well within command_timeout.
            for first in range(0, len(keys), ITEMS_PER_STATEMENT):
                await conn.execute(
                    "INSERT INTO uchast_projection_items AS i (log, name, key, value)"
                    " SELECT $1, $2, * FROM unnest($3::text[], $4::bigint[])"
                    " ON CONFLICT (log, name, key) DO UPDATE SET value = excluded.value",
                    log_id,
                    name,
                    keys[first : first + ITEMS_PER_STATEMENT],
                    values[first : first + ITEMS_PER_STATEMENT],
                )
            if add_counts:
                await conn.execute(
                    "INSERT INTO uchast_projection_counts AS c (log, name, counter, count)"
                    " SELECT $1, $2, * FROM unnest($3::text[], $4::bigint[])"
                    " ON CONFLICT (log, name, counter)"
                    " DO UPDATE SET count = c.count + excluded.count",
                    log_id,
                    name,
                    list(add_counts),
                    list(add_counts.values()),
                )
        return bool(written)

    async def projection_counts(self, log_id: str, name: str) -> dict[str, int]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT counter, count FROM uchast_projection_counts WHERE log=$1 AND name=$2",
                log_id,
                name,
            )
        return {row[0]: int(row[1]) for row in rows}

    async def tagged(self, log_id: str, tags: Sequence[str], start: int = 0) -> list[StoredEntry]:
        if not tags:
            return []
        async with self._conn() as conn:
            rows = await conn.fetch(_TAGGED_SQL, log_id, list(tags), start)
        return [_entry(r) for r in rows]

    async def tagged_with_head(
        self, log_id: str, tags: Sequence[str]
    ) -> tuple[list[StoredEntry], int]:
        async with self._conn() as conn:
            rows = await conn.fetch(_TAGGED_WITH_HEAD_SQL, log_id, list(tags))
        if not rows:
            raise KeyError(log_id)
        return [_entry(r[1:]) for r in rows if r[1] is not None], int(rows[0][0])

    async def nodes(self, log_id: str, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        async with self._conn() as conn:
            return await _nodes(conn, log_id, ids)

    async def node_range(self, log_id: str, level: int, start: int, end: int) -> list[bytes]:
        async with self._conn() as conn:
            if level == 0:
                rows = await conn.fetch(
                    "SELECT leaf_hash FROM uchast_entries WHERE log=$1 AND position >= $2"
                    " AND position < $3 ORDER BY position",
                    log_id,
                    start,
                    end,
                )
            else:
                rows = await conn.fetch(
                    "SELECT hash FROM uchast_nodes WHERE log=$1 AND level=$2 AND idx >= $3"
                    " AND idx < $4 ORDER BY idx",
                    log_id,
                    level,
                    start,
                    end,
                )
        return [bytes(r[0]) for r in rows]

    async def latest_checkpoint(self, log_id: str) -> StoredCheckpoint | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "SELECT size, note, created_at FROM uchast_checkpoints WHERE log=$1"
                " ORDER BY size DESC LIMIT 1",
                log_id,
            )
        return None if row is None else StoredCheckpoint(row[0], row[1], row[2])

    async def save_cosigned_checkpoint(self, log_id: str, size: int, note: str) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO uchast_cosigned_checkpoints (log, size, note, created_at)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (log, size)"
                " DO UPDATE SET note=excluded.note, created_at=excluded.created_at",
                log_id,
                size,
                note,
                time.time(),
            )

    async def latest_cosigned_checkpoint(self, log_id: str) -> StoredCheckpoint | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "SELECT size, note, created_at FROM uchast_cosigned_checkpoints WHERE log=$1"
                " ORDER BY size DESC LIMIT 1",
                log_id,
            )
        return None if row is None else StoredCheckpoint(row[0], row[1], row[2])

    async def checkpoint(self, log_id: str, size: int) -> StoredCheckpoint | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "SELECT size, note, created_at FROM uchast_checkpoints WHERE log=$1 AND size=$2",
                log_id,
                size,
            )
        return None if row is None else StoredCheckpoint(row[0], row[1], row[2])

    async def checkpoints(
        self, log_id: str, min_size: int = 0, limit: int = 1000
    ) -> list[StoredCheckpoint]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT size, note, created_at FROM uchast_checkpoints WHERE log=$1 AND size>=$2"
                " ORDER BY size LIMIT $3",
                log_id,
                min_size,
                limit,
            )
        return [StoredCheckpoint(r[0], r[1], r[2]) for r in rows]

    async def _ensure_listener(self) -> None:
        async with self._listen_lock:
            if self._listener is not None and not self._listener.is_closed():
                return
            try:
                self._listener = await self._connect()
                await self._listener.add_listener(NOTIFY_CHANNEL, self._on_notify)
            except Exception as exc:
                self._listener = None
                raise StoreUnavailableError(f"PostgreSQL: {exc}") from exc

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        _size, _, log_id = payload.partition(" ")
        event = self._growth.get(log_id)
        if event is not None:
            event.set()

    async def wait_durable(self) -> None:
        """A transaction that writes WAL (a transactional logical message: no table, any
        user) commits after every commit so far and, with ``synchronous_commit``, waits until
        the synchronous standby has its commit record, so everything before it too. (One that
        only takes an xid writes nothing before its commit record, and PostgreSQL does not make
        it wait.) With no standby it waits until ``command_timeout`` and fails (503), instead
        of acknowledging what only the primary holds."""
        async with self._conn() as conn, conn.transaction():
            await conn.execute("SELECT pg_logical_emit_message(true, 'uchast', 'durable')")

    async def wait_for_growth(self, log_id: str, known_size: int, timeout: float) -> int:
        if self.read_only:
            return await self._poll_growth(log_id, known_size, timeout)
        await self._ensure_listener()
        event = self._growth.setdefault(log_id, asyncio.Event())
        event.clear()
        # Check after subscribing, so a commit between the two cannot be missed.
        size = await self.size(log_id)
        if size > known_size:
            return size
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        return await self.size(log_id)
