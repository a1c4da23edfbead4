"""A transparency log witness: C2SP tlog-witness ``add-checkpoint`` and its durable state.

The witness trusts a set of log keys (checkpoint vkeys). For every log origin signed by one of
them it keeps the latest checkpoint it cosigned, and it cosigns a new one only if it is signed by
a trusted key and provably extends that one (RFC 9162 consistency proof). The check and the
update are one compare-and-swap on the stored record, so two requests racing cannot roll the
witness back, and a record once written is never replaced by a smaller or different tree.

State lives in SQLite (``sqlite:///PATH``) or PostgreSQL (``postgresql://...``), one row per
origin: size, root, the cosigned note and when it was written.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import re
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ledger.checkpoint import Checkpoint, parse_note, verify_note
from ledger.cosignature import CosignerKey, cosignature_line
from ledger.errors import CheckpointError, ConsistencyProofError, StoreUnavailableError
from ledger.keys import SignerKey, VerifierKey
from ledger.merkle import HASH_SIZE, verify_consistency

__all__ = [
    "MAX_PROOF_LINES",
    "Witness",
    "WitnessRecord",
    "WitnessRefusal",
    "WitnessState",
    "open_witness_state",
]

MAX_PROOF_LINES = 63
"""The protocol's limit on consistency proof lines in one request."""

T = TypeVar("T")

_OLD = re.compile(r"old (0|[1-9][0-9]{0,19})")


@dataclass(frozen=True, slots=True)
class WitnessRecord:
    """The latest checkpoint the witness cosigned for one origin."""

    origin: str
    size: int
    root: bytes
    note: str


class WitnessRefusal(Exception):
    """A refused add-checkpoint. ``reason``: ``malformed`` (400), ``untrusted`` (403: no
    signature by a trusted log key), ``conflict`` (409: ``size`` is the size the witness holds),
    ``bad-proof`` (422: the consistency proof does not verify)."""

    def __init__(self, reason: str, message: str, size: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.size = size


# --------------------------------------------------------------------------- state


class WitnessState(ABC):
    """Where a witness keeps its records; updates are compare-and-swap."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and create the table if absent."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""

    @abstractmethod
    async def get(self, origin: str) -> WitnessRecord | None:
        """The record of ``origin``, if the witness ever cosigned one of its checkpoints."""

    @abstractmethod
    async def swap(self, old: WitnessRecord | None, new: WitnessRecord) -> bool:
        """Replace ``old`` (None: no record yet) by ``new`` if ``old`` is still what is stored,
        durably; False if another request changed it first."""

    @abstractmethod
    async def records(self) -> list[WitnessRecord]:
        """Every record, by origin."""


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS witness_checkpoints (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
"""


class SQLiteWitnessState(WitnessState):
    """Records in a SQLite file; each swap is one conditional statement, fsynced."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def open(self) -> None:
        if not Path(self.path).parent.exists():
            raise StoreUnavailableError(f"SQLite: directory {Path(self.path).parent} is missing")
        with contextlib.suppress(OSError):  # the state is the witness's memory: owner-only
            Path(self.path).touch(mode=0o600, exist_ok=True)
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SQLITE_SCHEMA)

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _run(self, sql: str, args: tuple[Any, ...], fetch: Callable[[sqlite3.Cursor], T]) -> T:
        assert self._conn is not None, "witness state is not open"
        with self._lock:
            try:
                return fetch(self._conn.execute(sql, args))
            except sqlite3.OperationalError as exc:
                raise StoreUnavailableError(f"SQLite: {exc}") from exc

    async def get(self, origin: str) -> WitnessRecord | None:
        def run() -> WitnessRecord | None:
            row = self._run(
                "SELECT origin, size, root, note FROM witness_checkpoints WHERE origin=?",
                (origin,),
                sqlite3.Cursor.fetchone,
            )
            return None if row is None else WitnessRecord(row[0], row[1], bytes(row[2]), row[3])

        return await asyncio.to_thread(run)

    async def swap(self, old: WitnessRecord | None, new: WitnessRecord) -> bool:
        now = time.time()
        if old is None:
            sql = (
                "INSERT OR IGNORE INTO witness_checkpoints (origin, size, root, note, updated_at)"
                " VALUES (?, ?, ?, ?, ?)"
            )
            args: tuple[Any, ...] = (new.origin, new.size, new.root, new.note, now)
        else:
            sql = (
                "UPDATE witness_checkpoints SET size=?, root=?, note=?, updated_at=?"
                " WHERE origin=? AND size=? AND root=?"
            )
            args = (new.size, new.root, new.note, now, old.origin, old.size, old.root)
        return await asyncio.to_thread(lambda: self._run(sql, args, lambda c: c.rowcount == 1))

    async def records(self) -> list[WitnessRecord]:
        def run() -> list[WitnessRecord]:
            rows = self._run(
                "SELECT origin, size, root, note FROM witness_checkpoints ORDER BY origin",
                (),
                sqlite3.Cursor.fetchall,
            )
            return [WitnessRecord(r[0], r[1], bytes(r[2]), r[3]) for r in rows]

        return await asyncio.to_thread(run)


_PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS uchast_witness_checkpoints (
    origin text PRIMARY KEY,
    size bigint NOT NULL,
    root bytea NOT NULL,
    note text NOT NULL,
    updated_at double precision NOT NULL
);
"""


class PostgresWitnessState(WitnessState):
    """Records in PostgreSQL; each swap is one conditional statement."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: Any = None

    async def open(self) -> None:
        import asyncpg

        try:
            self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=4, timeout=10)
        except Exception as exc:
            raise StoreUnavailableError(f"PostgreSQL: {exc}") from exc
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(7347202119)")
            await conn.execute(_PG_SCHEMA)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _call(self, method: str, sql: str, *args: Any) -> Any:
        import asyncpg

        if self._pool is None:
            raise StoreUnavailableError("PostgreSQL witness state is not open")
        try:
            async with self._pool.acquire(timeout=10) as conn:
                return await getattr(conn, method)(sql, *args)
        except (
            OSError,
            TimeoutError,
            asyncpg.exceptions.PostgresConnectionError,
            asyncpg.exceptions.InterfaceError,
        ) as exc:
            raise StoreUnavailableError(f"PostgreSQL: {exc}") from exc

    async def get(self, origin: str) -> WitnessRecord | None:
        row = await self._call(
            "fetchrow",
            "SELECT origin, size, root, note FROM uchast_witness_checkpoints WHERE origin=$1",
            origin,
        )
        return None if row is None else WitnessRecord(row[0], row[1], bytes(row[2]), row[3])

    async def swap(self, old: WitnessRecord | None, new: WitnessRecord) -> bool:
        now = time.time()
        if old is None:
            status = await self._call(
                "execute",
                "INSERT INTO uchast_witness_checkpoints (origin, size, root, note, updated_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                new.origin,
                new.size,
                new.root,
                new.note,
                now,
            )
            return bool(status == "INSERT 0 1")
        status = await self._call(
            "execute",
            "UPDATE uchast_witness_checkpoints SET size=$1, root=$2, note=$3, updated_at=$4"
            " WHERE origin=$5 AND size=$6 AND root=$7",
            new.size,
            new.root,
            new.note,
            now,
            old.origin,
            old.size,
            old.root,
        )
        return bool(status == "UPDATE 1")

    async def records(self) -> list[WitnessRecord]:
        rows = await self._call(
            "fetch", "SELECT origin, size, root, note FROM uchast_witness_checkpoints ORDER BY 1"
        )
        return [WitnessRecord(r[0], r[1], bytes(r[2]), r[3]) for r in rows]


def open_witness_state(url: str) -> WitnessState:
    """The state for a ``--db`` URL: ``sqlite:///PATH`` or ``postgresql://...``."""
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return SQLiteWitnessState(url[len("sqlite:///") :])
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresWitnessState(url)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://...")


# --------------------------------------------------------------------------- the witness


@dataclass(frozen=True, slots=True)
class _Request:
    old: int
    proof: list[bytes]
    note: str


def _parse_request(body: bytes) -> _Request:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WitnessRefusal("malformed", "request body is not UTF-8") from None
    head, blank, note = text.partition("\n\n")
    if not blank:
        raise WitnessRefusal("malformed", "no blank line between the proof and the checkpoint")
    lines = head.split("\n")
    match = _OLD.fullmatch(lines[0])
    if not match:
        raise WitnessRefusal("malformed", "first line must be 'old <size>' (decimal, no zeros)")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise WitnessRefusal("malformed", f"more than {MAX_PROOF_LINES} proof lines")
    proof = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            proof.append(base64.b64decode(line, validate=True))
        except binascii.Error:
            raise WitnessRefusal("malformed", f"line {number} is not base64") from None
        if len(proof[-1]) != HASH_SIZE:
            raise WitnessRefusal("malformed", f"line {number} is not a {HASH_SIZE}-byte hash")
    return _Request(int(match.group(1)), proof, note)


class Witness:
    """Cosigns checkpoints of the logs whose keys it trusts, never two that disagree."""

    def __init__(
        self,
        signer: SignerKey,
        logs: Sequence[VerifierKey],
        state: WitnessState,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = signer
        self.cosigner = CosignerKey.of(signer.verifier)
        self.logs = tuple(logs)
        self.state = state
        self.clock = clock

    async def add_checkpoint(self, body: bytes) -> str:
        """Check a tlog-witness add-checkpoint request and return the cosignature line, or
        raise :class:`WitnessRefusal` at the first step that fails:

        1. The body is ``old <size>``, at most 63 base64 hashes, a blank line, a note (400).
        2. The note is a well-formed signed note (400).
        3. It carries a valid signature by a trusted log key, and none by a trusted key that
           fails (403).
        4. Its text is a C2SP checkpoint (400) whose size is at least ``old`` (400).
        5. ``old`` is the size of the record the witness holds for the origin, 0 if none (409
           with the held size).
        6. Same size: the roots are equal and the proof empty (409 / 422). From 0: the proof is
           empty (422). Else the proof shows the held tree extends to the new one (422).
        7. The record is swapped for the new checkpoint only if nobody changed it meanwhile
           (else 409 with the size now held), durably, before the cosignature is returned.
        """
        request = _parse_request(body)  # 1
        try:  # 2
            parse_note(request.note)
        except CheckpointError as exc:
            raise WitnessRefusal("malformed", str(exc)) from None
        try:  # 3
            text = verify_note(request.note, self.logs)
        except CheckpointError as exc:
            raise WitnessRefusal("untrusted", str(exc)) from None
        try:  # 4
            checkpoint = Checkpoint.parse(text)
        except CheckpointError as exc:
            raise WitnessRefusal("malformed", str(exc)) from None
        if request.old > checkpoint.size:
            raise WitnessRefusal(
                "malformed", f"old size {request.old} is larger than the checkpoint's"
            )
        held = await self.state.get(checkpoint.origin)  # 5
        held_size = held.size if held else 0
        if request.old != held_size:
            raise WitnessRefusal(
                "conflict", f"the witness holds size {held_size}, not {request.old}", held_size
            )
        self._check_consistency(held, checkpoint, request.proof)  # 6
        record = WitnessRecord(checkpoint.origin, checkpoint.size, checkpoint.root, request.note)
        if not await self.state.swap(held, record):  # 7
            now = await self.state.get(checkpoint.origin)
            size = now.size if now else 0
            raise WitnessRefusal("conflict", f"the witness now holds size {size}", size)
        return cosignature_line(self.signer, text, int(self.clock()))

    @staticmethod
    def _check_consistency(
        held: WitnessRecord | None, checkpoint: Checkpoint, proof: list[bytes]
    ) -> None:
        if held is None or held.size == 0:
            if proof:
                raise WitnessRefusal("bad-proof", "a proof from size 0 must be empty")
            return
        if held.size == checkpoint.size:
            if held.root != checkpoint.root:
                raise WitnessRefusal(
                    "conflict",
                    f"a different root at size {held.size}: the log forked",
                    held.size,
                )
            if proof:
                raise WitnessRefusal("bad-proof", "a proof between equal sizes must be empty")
            return
        try:
            verify_consistency(held.size, checkpoint.size, held.root, checkpoint.root, proof)
        except ConsistencyProofError as exc:
            raise WitnessRefusal("bad-proof", str(exc)) from None
