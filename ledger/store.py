"""The store interface: what the sequencer and the readers need from a database.

A store is dumb persistence for many logs (one per election). All logic that must behave the same
on every database (conditions, Merkle hashing, checkpoints, keys) lives above it, in
:mod:`ledger.sequencer` and :mod:`ledger.log`; each store only translates it to SQL.
Positions are 0-based leaf indexes; a log of ``size`` entries holds positions ``0 .. size-1``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.dcb.api import DCBQuery, DCBQueryItem

from ledger.merkle import NodeId


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One log entry as stored: its leaf bytes (the canonical JSON of the entry object)."""

    position: int
    type: str
    tags: tuple[str, ...]
    data: bytes
    leaf_hash: bytes


@dataclass(frozen=True, slots=True)
class SavedProjection:
    """A projection's view as last saved: the state after applying entries ``0 .. position-1``.

    The store keeps the state as opaque bytes; what they mean is the projection's business
    (:mod:`tally.projection`). State and position are one row, written by one statement, so a
    reader never sees one without the other. ``items`` (read only when asked for) are the row's
    keyed integers, each as of the last save that wrote it: a projection saves only the items
    that changed since its previous save, with the row, in one transaction, and reads them back
    with the row from one snapshot of the database.
    """

    position: int
    state: bytes
    saved_at: float
    items: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A signed checkpoint note of the log at ``size``."""

    size: int
    note: str
    created_at: float


def item_matches(item: DCBQueryItem, entry_type: str, entry_tags: Sequence[str]) -> bool:
    """DCB matching: the type is one of the item's types (or it names none) and the entry
    carries every tag of the item."""
    if item.types and entry_type not in item.types:
        return False
    return all(tag in entry_tags for tag in item.tags)


def query_matches(query: DCBQuery, entry_type: str, entry_tags: Sequence[str]) -> bool:
    """A query with no items matches every entry; otherwise any item must match."""
    if not query.items:
        return True
    return any(item_matches(item, entry_type, entry_tags) for item in query.items)


class SequencingTransaction(ABC):
    """One write transaction holding the log's exclusive sequencing lock.

    Opened by :meth:`Store.sequencing`; committed when the context exits normally, rolled back
    on an exception. ``size`` is the log size under the lock and cannot change until commit.
    """

    size: int

    @abstractmethod
    async def nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        """Tree node hashes (level 0 = leaf hashes) by id; missing ids are absent."""

    @abstractmethod
    async def read(self, start: int, end: int, types: Sequence[str]) -> list[StoredEntry]:
        """Entries in ``[start, end)`` whose type is one of ``types``."""

    @abstractmethod
    async def tagged(self, tags: Sequence[str], start: int) -> list[StoredEntry]:
        """Entries at ``start`` or later that carry at least one of ``tags``."""

    @abstractmethod
    async def type_exists(self, types: Sequence[str], start: int) -> bool:
        """Whether an entry at ``start`` or later has one of ``types`` (any type if empty)."""

    @abstractmethod
    async def write(
        self,
        entries: Sequence[StoredEntry],
        nodes: Sequence[tuple[NodeId, bytes]],
        checkpoint: StoredCheckpoint | None,
    ) -> None:
        """Insert entries (positions ``size ..`` gapless), new complete tree nodes and optionally
        a checkpoint, and advance the log size. Durable once the transaction commits."""


class Store(ABC):
    """Persistence for logs. Implementations: :mod:`ledger.sqlite`, :mod:`ledger.postgres`."""

    url: str
    # Opened for a server that reads a replica (``serve --read-only``): ``open`` creates nothing
    # and raises :class:`~ledger.errors.SchemaMissingError` when the schema is not there, every
    # connection refuses writes, and ``wait_for_growth`` polls (a hot standby takes no LISTEN).
    read_only: bool = False

    @abstractmethod
    async def open(self) -> None:
        """Connect and create the schema if absent (read-only: check it is there)."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""

    @abstractmethod
    async def create_log(self, log_id: str) -> None:
        """Make sure the log exists (idempotent)."""

    @abstractmethod
    async def log_ids(self) -> list[str]:
        """Every log in this store."""

    @abstractmethod
    def sequencing(self, log_id: str) -> AbstractAsyncContextManager[SequencingTransaction]:
        """Open a write transaction under the log's lock, exclusive across processes."""

    @abstractmethod
    async def size(self, log_id: str) -> int:
        """The committed size of the log."""

    @abstractmethod
    async def read(self, log_id: str, start: int, end: int) -> list[StoredEntry]:
        """Entries in ``[start, end)``, in order."""

    @abstractmethod
    def stream(
        self, log_id: str, start: int, end: int | None = None, chunk: int = 2000
    ) -> AsyncIterator[StoredEntry]:
        """Entries from ``start`` to ``end`` (or the committed end) without loading them all."""

    @abstractmethod
    async def typed(
        self, log_id: str, types: Sequence[str], start: int, end: int
    ) -> list[StoredEntry]:
        """Committed entries in ``[start, end)`` whose type is one of ``types``, in order,
        found through the type index (a log of millions with a handful of key entries must
        not be read whole to find them)."""

    @abstractmethod
    def stream_data(
        self, log_id: str, start: int, end: int | None = None, chunk: int = 5000
    ) -> AsyncIterator[list[bytes]]:
        """The stored bytes of entries ``start .. end-1`` (``end``: the committed size when
        called), a list of up to ``chunk`` consecutive entries at a time: what a projection
        rebuild reads, without the rest of each row."""

    @abstractmethod
    async def load_projection(
        self, log_id: str, name: str, *, with_items: bool = False
    ) -> SavedProjection | None:
        """The saved view of projection ``name`` of the log, if any; ``with_items``: with all
        its items, read in the same transaction as the row (one snapshot of the database), so
        they are those of the row's save and of the saves before it, never of a later one."""

    @abstractmethod
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
        """Save a projection's view at ``position`` unless one at the same or a later position
        is saved already (another process may follow the same log), and add ``add_counts`` to
        the projection's counters (see :meth:`projection_counts`), in one transaction. True if
        the view was written. The view and its position are one row: they commit together or
        not at all. With ``state`` None only the counters are added.

        ``items`` are set (inserted or overwritten, by key) in the same transaction, and only
        when the row is written: a save refused for its position writes none of them. With
        ``replace_items`` the row's stored items are deleted first (when the row is written),
        for a projection whose ``items`` are all of its items."""

    @abstractmethod
    async def projection_counts(self, log_id: str, name: str) -> dict[str, int]:
        """The counters that :meth:`save_projection` added to, by name (absent: never added).

        Counters are for what several processes count and none may overwrite: each process
        adds what it counted since its last save."""

    @abstractmethod
    async def tagged(self, log_id: str, tags: Sequence[str], start: int = 0) -> list[StoredEntry]:
        """Committed entries at ``start`` or later carrying at least one of ``tags``."""

    @abstractmethod
    async def tagged_with_head(
        self, log_id: str, tags: Sequence[str]
    ) -> tuple[list[StoredEntry], int]:
        """Entries carrying any of ``tags`` and the log size, from one consistent snapshot."""

    @abstractmethod
    async def nodes(self, log_id: str, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        """Committed tree node hashes by id (level 0 = leaf hashes), in one query."""

    @abstractmethod
    async def node_range(self, log_id: str, level: int, start: int, end: int) -> list[bytes]:
        """Committed hashes of the nodes ``(level, start) .. (level, end - 1)`` in order (level 0:
        leaf hashes), in one query: a C2SP hash tile. Nodes not stored are absent."""

    @abstractmethod
    async def latest_checkpoint(self, log_id: str) -> StoredCheckpoint | None:
        """The checkpoint of the largest size, if any."""

    @abstractmethod
    async def checkpoint(self, log_id: str, size: int) -> StoredCheckpoint | None:
        """The checkpoint issued at exactly ``size``, if any."""

    @abstractmethod
    async def checkpoints(
        self, log_id: str, min_size: int = 0, limit: int = 1000
    ) -> list[StoredCheckpoint]:
        """Kept checkpoints of size ``min_size`` or more, smallest first, at most ``limit``."""

    @abstractmethod
    async def save_cosigned_checkpoint(self, log_id: str, size: int, note: str) -> None:
        """Keep ``note``, the log's checkpoint at ``size`` with the witnesses' cosignature lines
        that met the policy's quorum (``serve --witness-policy``); a later note at the same size
        (more cosignatures) replaces the earlier one."""

    @abstractmethod
    async def latest_cosigned_checkpoint(self, log_id: str) -> StoredCheckpoint | None:
        """The cosigned checkpoint of the largest size, if any: what the log has published."""

    @abstractmethod
    async def wait_for_growth(self, log_id: str, known_size: int, timeout: float) -> int:
        """Return the log size once it exceeds ``known_size``, or after ``timeout`` seconds."""

    async def wait_durable(self) -> None:
        """Return once everything committed so far is as durable as a new commit would be: a
        commit that failed as far as its writer knows may still have committed locally, and be
        read back before it reached a synchronous standby; whoever answers from such a read (a
        replay) waits here first. A store without replicas has nothing to wait for."""
        return None

    async def replica_status(self) -> dict[str, Any] | None:
        """What a read-only server reports of its database in /readyz (PostgreSQL: whether it
        is a standby in recovery and how old its last replayed commit is); None if nothing."""
        return None


# The stores by URL scheme, as "module:Class": imported only when a URL asks for one, so this
# interface imports no store (each store imports it) and SQLite needs no asyncpg.
STORES = {
    "sqlite": "ledger.sqlite:SQLiteStore",
    "postgresql": "ledger.postgres:PostgresStore",
    "postgres": "ledger.postgres:PostgresStore",
}


def open_store(url: str, *, read_only: bool = False) -> Store:
    """Pick the store for a ``--db`` URL: ``sqlite:///PATH`` or ``postgresql://...``;
    ``read_only`` for a server that reads a replica (:attr:`Store.read_only`)."""
    scheme, separator, _ = url.partition("://")
    if not separator or scheme not in STORES:
        raise ValueError(
            f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://..."
        )
    module, _, name = STORES[scheme].partition(":")
    store: Callable[..., Store] = getattr(importlib.import_module(module), name)
    return store(url, read_only=read_only)
