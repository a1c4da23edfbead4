"""The embedded default store: one SQLite file, WAL journal, fully synchronous commits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from ledger.errors import SchemaMissingError, StoreUnavailableError
from ledger.merkle import NodeId
from ledger.store import (
    SavedProjection,
    SequencingTransaction,
    Store,
    StoredCheckpoint,
    StoredEntry,
)

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
    id TEXT PRIMARY KEY,
    size INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
    log TEXT NOT NULL,
    position INTEGER NOT NULL,
    type TEXT NOT NULL,
    tags TEXT NOT NULL,
    data BLOB NOT NULL,
    leaf_hash BLOB NOT NULL,
    PRIMARY KEY (log, position)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_type ON entries (log, type, position);
CREATE TABLE IF NOT EXISTS entry_tags (
    log TEXT NOT NULL,
    tag TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (log, tag, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS nodes (
    log TEXT NOT NULL,
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (log, level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    log TEXT NOT NULL,
    size INTEGER NOT NULL,
    note TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (log, size)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cosigned_checkpoints (
    log TEXT NOT NULL,
    size INTEGER NOT NULL,
    note TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (log, size)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS projections (
    log TEXT NOT NULL,
    name TEXT NOT NULL,
    position INTEGER NOT NULL,
    state BLOB NOT NULL,
    saved_at REAL NOT NULL,
    PRIMARY KEY (log, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS projection_counts (
    log TEXT NOT NULL,
    name TEXT NOT NULL,
    counter TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (log, name, counter)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS projection_items (
    log TEXT NOT NULL,
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (log, name, key)
) WITHOUT ROWID;
"""

_ENTRY_COLUMNS = "position, type, tags, data, leaf_hash"


def _entry(row: tuple[Any, ...]) -> StoredEntry:
    return StoredEntry(
        position=row[0], type=row[1], tags=tuple(json.loads(row[2])), data=row[3], leaf_hash=row[4]
    )


def _path_from_url(url: str) -> str:
    if not url.startswith("sqlite:///"):
        raise ValueError(f"SQLite URL must look like sqlite:///PATH, got {url!r}")
    path = url[len("sqlite:///") :]
    if not path:
        raise ValueError("SQLite URL names no file: use sqlite:///PATH")
    return path


_SCHEMA_TABLES = {
    line.split()[5] for line in SCHEMA.splitlines() if line.startswith("CREATE TABLE")
}


def _create_private(path: str) -> None:
    """Create the database file owner-only (0600) if it is not there yet. It holds every ballot;
    SQLite gives the -wal and -shm files the database file's mode, so they follow."""
    if path == ":memory:":
        return
    # An existing database keeps the mode its operator gave it; any other failure (a read-only
    # directory, a full disk) is SQLite's to report when it opens the file.
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60.0)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: every commit is fsynced before the call returns, so "accepted" means on disk.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=60000")
    return conn


class _Connection:
    """A connection confined to one thread; every call runs in that thread."""

    def __init__(self, path: str, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._path = path
        self.conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        self.conn = await self.run(lambda: _connect(self._path))

    async def run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailableError(f"SQLite: {exc}") from exc

    def c(self) -> sqlite3.Connection:
        assert self.conn is not None, "store is not open"
        return self.conn

    async def close(self) -> None:
        if self.conn is not None:
            await self.run(self.c().close)
            self.conn = None
        self._executor.shutdown(wait=True)


def _nodes(conn: sqlite3.Connection, log_id: str, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
    found: dict[NodeId, bytes] = {}
    for level, idx in ids:
        if level == 0:
            row = conn.execute(
                "SELECT leaf_hash FROM entries WHERE log=? AND position=?", (log_id, idx)
            ).fetchone()
        else:
            row = conn.execute(
                "SELECT hash FROM nodes WHERE log=? AND level=? AND idx=?", (log_id, level, idx)
            ).fetchone()
        if row is not None:
            found[(level, idx)] = row[0]
    return found


def _tagged(
    conn: sqlite3.Connection, log_id: str, tags: Sequence[str], start: int
) -> list[StoredEntry]:
    if not tags:
        return []
    marks = ",".join("?" * len(tags))
    rows = conn.execute(
        f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE log=? AND position IN "
        f"(SELECT position FROM entry_tags WHERE log=? AND tag IN ({marks}) AND position>=?) "
        "ORDER BY position",
        (log_id, log_id, *tags, start),
    ).fetchall()
    return [_entry(r) for r in rows]


class _SQLiteTransaction(SequencingTransaction):
    def __init__(self, conn: _Connection, log_id: str, size: int) -> None:
        self._conn = conn
        self._log = log_id
        self.size = size

    async def nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        return await self._conn.run(lambda: _nodes(self._conn.c(), self._log, ids))

    async def read(self, start: int, end: int, types: Sequence[str]) -> list[StoredEntry]:
        marks = ",".join("?" * len(types))

        def run() -> list[StoredEntry]:
            rows = self._conn.c().execute(
                f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE log=? AND type IN ({marks}) "
                "AND position>=? AND position<? ORDER BY position",
                (self._log, *types, start, end),
            )
            return [_entry(r) for r in rows]

        return await self._conn.run(run) if types else []

    async def tagged(self, tags: Sequence[str], start: int) -> list[StoredEntry]:
        return await self._conn.run(lambda: _tagged(self._conn.c(), self._log, tags, start))

    async def type_exists(self, types: Sequence[str], start: int) -> bool:
        if not types:
            return self.size > start
        marks = ",".join("?" * len(types))
        row = await self._conn.run(
            lambda: (
                self._conn.c()
                .execute(
                    f"SELECT 1 FROM entries WHERE log=? AND type IN ({marks})"
                    " AND position>=? LIMIT 1",
                    (self._log, *types, start),
                )
                .fetchone()
            )
        )
        return row is not None

    async def write(
        self,
        entries: Sequence[StoredEntry],
        nodes: Sequence[tuple[NodeId, bytes]],
        checkpoint: StoredCheckpoint | None,
    ) -> None:
        log_id = self._log

        def run() -> None:
            conn = self._conn.c()
            conn.executemany(
                "INSERT INTO entries (log, position, type, tags, data, leaf_hash) "
                "VALUES (?,?,?,?,?,?)",
                [
                    (log_id, e.position, e.type, json.dumps(e.tags), e.data, e.leaf_hash)
                    for e in entries
                ],
            )
            conn.executemany(
                "INSERT INTO entry_tags (log, tag, position) VALUES (?,?,?)",
                [(log_id, tag, e.position) for e in entries for tag in set(e.tags)],
            )
            conn.executemany(
                "INSERT INTO nodes (log, level, idx, hash) VALUES (?,?,?,?)",
                [(log_id, level, idx, h) for (level, idx), h in nodes],
            )
            if entries:
                conn.execute(
                    "UPDATE logs SET size=? WHERE id=?", (entries[-1].position + 1, log_id)
                )
            if checkpoint is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO checkpoints (log, size, note, created_at) "
                    "VALUES (?,?,?,?)",
                    (log_id, checkpoint.size, checkpoint.note, checkpoint.created_at),
                )

        await self._conn.run(run)
        if entries:
            self.size = entries[-1].position + 1


class SQLiteStore(Store):
    """Logs in one SQLite file. Safe for several processes: ``BEGIN IMMEDIATE`` serialises
    writers across processes, WAL lets readers go on meanwhile."""

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        self.url = url
        self.read_only = read_only
        self.path = _path_from_url(url)
        self._writer = _Connection(self.path, "uchast-sqlite-writer")
        self._reader = _Connection(self.path, "uchast-sqlite-reader")
        self._write_lock = asyncio.Lock()

    async def open(self) -> None:
        parent = Path(self.path).parent
        if not parent.exists():
            raise StoreUnavailableError(f"SQLite: directory {parent} does not exist")
        if self.read_only:
            await self._open_read_only()
            return
        _create_private(self.path)
        await self._writer.open()
        await self._writer.run(lambda: self._writer.c().executescript(SCHEMA))
        await self._reader.open()

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()

    async def _open_read_only(self) -> None:
        """One connection, ``query_only`` (every write fails: StoreUnavailableError), for
        reads and writes both, on a file that holds the schema (SchemaMissingError if not)."""
        tables: set[str] = set()
        if Path(self.path).is_file():
            self._writer = self._reader
            await self._reader.open()

            def schema() -> list[Any]:
                conn = self._reader.c()
                conn.execute("PRAGMA query_only=ON")
                return conn.execute("SELECT name FROM sqlite_master").fetchall()

            tables = {row[0] for row in await self._reader.run(schema)}
        if not tables >= _SCHEMA_TABLES:  # the caller closes, as after any failed open
            raise SchemaMissingError(
                f"SQLite: {self.path} has no uchast schema (a read-only server creates"
                " nothing): run uchast serve or uchast init on it first"
            )

    async def create_log(self, log_id: str) -> None:
        await self._writer.run(
            lambda: self._writer.c().execute(
                "INSERT OR IGNORE INTO logs (id, size) VALUES (?, 0)", (log_id,)
            )
        )

    async def log_ids(self) -> list[str]:
        rows = await self._reader.run(
            lambda: self._reader.c().execute("SELECT id FROM logs ORDER BY id").fetchall()
        )
        return [r[0] for r in rows]

    @asynccontextmanager
    async def sequencing(self, log_id: str) -> AsyncIterator[SequencingTransaction]:
        async with self._write_lock:
            conn = self._writer

            def begin() -> int:
                c = conn.c()
                c.execute("BEGIN IMMEDIATE")
                row = c.execute("SELECT size FROM logs WHERE id=?", (log_id,)).fetchone()
                if row is None:
                    c.execute("ROLLBACK")
                    raise KeyError(log_id)
                return int(row[0])

            size = await conn.run(begin)
            tx = _SQLiteTransaction(conn, log_id, size)
            try:
                yield tx
            except BaseException:
                await conn.run(lambda: conn.c().execute("ROLLBACK"))
                raise
            await conn.run(lambda: conn.c().execute("COMMIT"))

    async def size(self, log_id: str) -> int:
        row = await self._reader.run(
            lambda: (
                self._reader.c().execute("SELECT size FROM logs WHERE id=?", (log_id,)).fetchone()
            )
        )
        if row is None:
            raise KeyError(log_id)
        return int(row[0])

    async def read(self, log_id: str, start: int, end: int) -> list[StoredEntry]:
        def run() -> list[StoredEntry]:
            rows = self._reader.c().execute(
                f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE log=? AND position>=? "
                "AND position<? ORDER BY position",
                (log_id, start, end),
            )
            return [_entry(r) for r in rows]

        return await self._reader.run(run)

    async def stream(
        self, log_id: str, start: int, end: int | None = None, chunk: int = 2000
    ) -> AsyncIterator[StoredEntry]:
        stop = await self.size(log_id) if end is None else end
        position = start
        while position < stop:
            batch = await self.read(log_id, position, min(position + chunk, stop))
            if not batch:
                return
            for entry in batch:
                yield entry
            position = batch[-1].position + 1

    async def typed(
        self, log_id: str, types: Sequence[str], start: int, end: int
    ) -> list[StoredEntry]:
        marks = ",".join("?" * len(types))

        def run() -> list[StoredEntry]:
            rows = self._reader.c().execute(
                f"SELECT {_ENTRY_COLUMNS} FROM entries INDEXED BY entries_by_type"
                f" WHERE log=? AND type IN ({marks}) AND position>=? AND position<?"
                " ORDER BY position",
                (log_id, *types, start, end),
            )
            return [_entry(r) for r in rows]

        return await self._reader.run(run) if types else []

    async def stream_data(
        self, log_id: str, start: int, end: int | None = None, chunk: int = 5000
    ) -> AsyncIterator[list[bytes]]:
        stop = await self.size(log_id) if end is None else end
        position = start
        while position < stop:
            upto = min(position + chunk, stop)

            def run(first: int = position, last: int = upto) -> list[bytes]:
                rows = (
                    self._reader.c()
                    .execute(
                        "SELECT data FROM entries WHERE log=? AND position >= ? AND position < ?"
                        " ORDER BY position",
                        (log_id, first, last),
                    )
                    .fetchall()
                )
                return [row[0] for row in rows]

            batch = await self._reader.run(run)
            if not batch:
                return
            yield batch
            position += len(batch)

    async def load_projection(
        self, log_id: str, name: str, *, with_items: bool = False
    ) -> SavedProjection | None:
        def run() -> SavedProjection | None:
            c = self._reader.c()
            c.execute("BEGIN")  # one read transaction: the row and its items of one snapshot
            try:
                row = c.execute(
                    "SELECT position, state, saved_at FROM projections WHERE log=? AND name=?",
                    (log_id, name),
                ).fetchone()
                if row is None:
                    return None
                items: dict[str, int] = {}
                if with_items:
                    items = dict(
                        c.execute(
                            "SELECT key, value FROM projection_items WHERE log=? AND name=?",
                            (log_id, name),
                        ).fetchall()
                    )
                return SavedProjection(int(row[0]), bytes(row[1]), row[2], items)
            finally:
                c.execute("COMMIT")

        return await self._reader.run(run)

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
        def run() -> bool:
            c = self._writer.c()
            c.execute("BEGIN IMMEDIATE")
            try:
                written = state is not None and (
                    c.execute(
                        "INSERT INTO projections (log, name, position, state, saved_at)"
                        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (log, name) DO UPDATE SET"
                        " position = excluded.position, state = excluded.state, saved_at ="
                        " excluded.saved_at WHERE projections.position < excluded.position",
                        (log_id, name, position, state, time.time()),
                    ).rowcount
                    == 1
                )
                if written and replace_items:
                    c.execute("DELETE FROM projection_items WHERE log=? AND name=?", (log_id, name))
                if written and items:
                    c.executemany(
                        "INSERT INTO projection_items (log, name, key, value) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT (log, name, key) DO UPDATE SET value = excluded.value",
                        [(log_id, name, key, value) for key, value in items.items()],
                    )
                c.executemany(
                    "INSERT INTO projection_counts (log, name, counter, count) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (log, name, counter) DO UPDATE"
                    " SET count = projection_counts.count + excluded.count",
                    [(log_id, name, counter, n) for counter, n in (add_counts or {}).items()],
                )
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")
            return written

        async with self._write_lock:  # never inside a sequencing transaction of this process
            return await self._writer.run(run)

    async def projection_counts(self, log_id: str, name: str) -> dict[str, int]:
        rows = await self._reader.run(
            lambda: (
                self._reader.c()
                .execute(
                    "SELECT counter, count FROM projection_counts WHERE log=? AND name=?",
                    (log_id, name),
                )
                .fetchall()
            )
        )
        return {row[0]: int(row[1]) for row in rows}

    async def tagged(self, log_id: str, tags: Sequence[str], start: int = 0) -> list[StoredEntry]:
        return await self._reader.run(lambda: _tagged(self._reader.c(), log_id, tags, start))

    async def tagged_with_head(
        self, log_id: str, tags: Sequence[str]
    ) -> tuple[list[StoredEntry], int]:
        def run() -> tuple[list[StoredEntry], int]:
            c = self._reader.c()
            c.execute("BEGIN")
            try:
                row = c.execute("SELECT size FROM logs WHERE id=?", (log_id,)).fetchone()
                if row is None:
                    raise KeyError(log_id)
                return _tagged(c, log_id, tags, 0), int(row[0])
            finally:
                c.execute("COMMIT")

        return await self._reader.run(run)

    async def nodes(self, log_id: str, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        def run() -> dict[NodeId, bytes]:
            c = self._reader.c()
            # One read transaction, so every node comes from the same snapshot.
            c.execute("BEGIN")
            try:
                return _nodes(c, log_id, ids)
            finally:
                c.execute("COMMIT")

        return await self._reader.run(run)

    async def node_range(self, log_id: str, level: int, start: int, end: int) -> list[bytes]:
        if level == 0:
            sql = (
                "SELECT leaf_hash FROM entries WHERE log=? AND position>=? AND position<? "
                "ORDER BY position"
            )
            params: tuple[object, ...] = (log_id, start, end)
        else:
            sql = "SELECT hash FROM nodes WHERE log=? AND level=? AND idx>=? AND idx<? ORDER BY idx"
            params = (log_id, level, start, end)
        rows = await self._reader.run(lambda: self._reader.c().execute(sql, params).fetchall())
        return [r[0] for r in rows]

    async def latest_checkpoint(self, log_id: str) -> StoredCheckpoint | None:
        row = await self._reader.run(
            lambda: (
                self._reader.c()
                .execute(
                    "SELECT size, note, created_at FROM checkpoints WHERE log=? "
                    "ORDER BY size DESC LIMIT 1",
                    (log_id,),
                )
                .fetchone()
            )
        )
        return None if row is None else StoredCheckpoint(row[0], row[1], row[2])

    async def save_cosigned_checkpoint(self, log_id: str, size: int, note: str) -> None:
        now = time.time()

        def run() -> None:
            self._writer.c().execute(
                "INSERT INTO cosigned_checkpoints (log, size, note, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (log, size)"
                " DO UPDATE SET note=excluded.note, created_at=excluded.created_at",
                (log_id, size, note, now),
            )

        async with self._write_lock:
            await self._writer.run(run)

    async def latest_cosigned_checkpoint(self, log_id: str) -> StoredCheckpoint | None:
        row = await self._reader.run(
            lambda: (
                self._reader.c()
                .execute(
                    "SELECT size, note, created_at FROM cosigned_checkpoints WHERE log=? "
                    "ORDER BY size DESC LIMIT 1",
                    (log_id,),
                )
                .fetchone()
            )
        )
        return None if row is None else StoredCheckpoint(row[0], row[1], row[2])

    async def checkpoint(self, log_id: str, size: int) -> StoredCheckpoint | None:
        row = await self._reader.run(
            lambda: (
                self._reader.c()
                .execute(
                    "SELECT size, note, created_at FROM checkpoints WHERE log=? AND size=?",
                    (log_id, size),
                )
                .fetchone()
            )
        )
        return None if row is None else StoredCheckpoint(row[0], row[1], row[2])

    async def checkpoints(
        self, log_id: str, min_size: int = 0, limit: int = 1000
    ) -> list[StoredCheckpoint]:
        rows = await self._reader.run(
            lambda: (
                self._reader.c()
                .execute(
                    "SELECT size, note, created_at FROM checkpoints WHERE log=? AND size>=? "
                    "ORDER BY size LIMIT ?",
                    (log_id, min_size, limit),
                )
                .fetchall()
            )
        )
        return [StoredCheckpoint(r[0], r[1], r[2]) for r in rows]

    async def wait_for_growth(self, log_id: str, known_size: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            size = await self.size(log_id)
            if size > known_size or time.monotonic() >= deadline:
                return size
            await asyncio.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
