"""Group commit: concurrent appends to one log are sequenced in batches, one transaction each.

Every append carries a DCB condition ("fail if entries matching this query exist at or after
position P"). Inside the batch's transaction, which holds the log's exclusive lock, each request's
condition is checked in arrival order against the committed log *and* against the requests of the
same batch accepted before it. A refused request does not fail the others. Positions are assigned
under the lock, so they are gapless and in commit order; the Merkle tree nodes and (by default) a
signed checkpoint are written in the same transaction, so tree, checkpoint and entries always agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from eventsourcing.dcb.api import DCBAppendCondition

from ledger import merkle
from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.errors import ConditionFailedError, LedgerError
from ledger.keys import SignerKey
from ledger.store import (
    SequencingTransaction,
    Store,
    StoredCheckpoint,
    StoredEntry,
    item_matches,
)


@dataclass(frozen=True, slots=True)
class Draft:
    """An entry before it has a position: ``encode(recorded_at)`` gives its leaf bytes."""

    type: str
    tags: tuple[str, ...]
    encode: Callable[[str], bytes]


class Gatekeeper(Protocol):
    """Log-level rules checked under the sequencing lock (keys, roles, log state)."""

    async def catch_up(self, tx: SequencingTransaction, size: int) -> None:
        """Learn entries committed by other processes, up to ``size``."""

    def admit(self, token: object, position: int) -> None:
        """Raise a :class:`LedgerError` to refuse the request; may stage state changes."""

    def commit(self, size: int) -> None:
        """The batch committed: make staged changes permanent."""

    def abort(self) -> None:
        """The batch failed: drop staged changes."""


@dataclass(eq=False, slots=True)
class _Request:
    drafts: Sequence[Draft]
    condition: DCBAppendCondition | None
    token: object
    future: asyncio.Future[list[StoredEntry]]
    error: LedgerError | None = None
    entries: list[StoredEntry] = field(default_factory=list)


def utc_timestamp(now: float) -> str:
    """RFC 3339 UTC with microseconds, the form of every ``recorded_at``."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class BatchStats:
    """Counters the metrics endpoint and the benchmarks read."""

    batches: int = 0
    entries: int = 0
    refused: int = 0
    last_batch_size: int = 0


class Sequencer:
    """The single writer of one log in this process (other processes may run their own)."""

    def __init__(
        self,
        store: Store,
        log_id: str,
        *,
        origin: str,
        signer: SignerKey | None = None,
        gatekeeper: Gatekeeper | None = None,
        max_batch: int = 512,
        checkpoint_interval: float = 0.0,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self.store = store
        self.log_id = log_id
        self.origin = origin
        self._signer = signer
        self._gatekeeper = gatekeeper
        self._max_batch = max_batch
        self._checkpoint_interval = checkpoint_interval
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        # Cache of the tree's right edge, valid while nobody else has written since.
        self._size: int | None = None
        self._frontier: list[bytes] = []
        self._last_checkpoint_size = -1
        self._last_checkpoint_at = 0.0
        self.stats = BatchStats()

    async def start(self) -> None:
        if self._task is None:
            latest = await self.store.latest_checkpoint(self.log_id)
            if latest is not None:
                self._last_checkpoint_size = latest.size
                self._last_checkpoint_at = latest.created_at
            self._task = asyncio.create_task(self._run(), name=f"sequencer:{self.log_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():
            request = self._queue.get_nowait()
            if not request.future.done():
                request.future.set_exception(LedgerError("the log is shutting down"))

    async def append(
        self,
        drafts: Sequence[Draft],
        condition: DCBAppendCondition | None = None,
        token: object = None,
    ) -> list[StoredEntry]:
        """Append ``drafts`` atomically if ``condition`` holds; return them with positions.

        Returns only after the batch holding them has committed.
        """
        if not drafts:
            raise ValueError("an append needs at least one entry")
        for draft in drafts:
            if any(not tag or "\x1f" in tag for tag in draft.tags):
                raise ValueError(f"tags must be non-empty and free of U+001F: {draft.tags!r}")
        if self._task is None:
            raise LedgerError("the log is not open for writing")
        future: asyncio.Future[list[StoredEntry]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Request(drafts, condition, token, future))
        return await future

    async def flush_checkpoint(self) -> None:
        """Issue a checkpoint of the current size now, if the latest one is older."""
        await self._write_batch([], force_checkpoint=True)

    async def _run(self) -> None:
        interval = self._checkpoint_interval or None
        while True:
            try:
                first = await asyncio.wait_for(self._queue.get(), interval)
            except TimeoutError:
                with contextlib.suppress(LedgerError):
                    await self._write_batch([], force_checkpoint=True)
                continue
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write_batch(batch)
            except asyncio.CancelledError:
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(LedgerError("the log is shutting down"))
                raise
            except Exception as exc:  # the store failed: nothing of this batch is committed
                self._size = None
                if self._gatekeeper is not None:
                    self._gatekeeper.abort()
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(exc)
                continue
            for request in batch:
                if request.future.done():
                    continue
                if request.error is not None:
                    request.future.set_exception(request.error)
                else:
                    request.future.set_result(request.entries)

    async def _write_batch(self, batch: list[_Request], *, force_checkpoint: bool = False) -> None:
        started = time.monotonic()
        async with self.store.sequencing(self.log_id) as tx:
            size = tx.size
            if self._size != size:
                ids = merkle.frontier_ids(size)
                edge = await tx.nodes(ids)
                self._frontier = [edge[i] for i in ids]
                if self._gatekeeper is not None:
                    await self._gatekeeper.catch_up(tx, size)
                self._size = size
            if force_checkpoint and (size == self._last_checkpoint_size or self._signer is None):
                return
            conflicts = await _committed_conflicts(tx, batch)
            now = time.time()
            recorded_at = utc_timestamp(now)
            new_entries: list[StoredEntry] = []
            by_tag: dict[str, list[StoredEntry]] = defaultdict(list)
            for request, conflict in zip(batch, conflicts, strict=True):
                position = size + len(new_entries)
                if conflict or _batch_conflict(request.condition, new_entries, by_tag):
                    after = request.condition.after if request.condition else None
                    request.error = ConditionFailedError(after)
                    continue
                if self._gatekeeper is not None:
                    try:
                        self._gatekeeper.admit(request.token, position)
                    except LedgerError as exc:
                        request.error = exc
                        continue
                for offset, draft in enumerate(request.drafts):
                    data = draft.encode(recorded_at)
                    entry = StoredEntry(
                        position + offset, draft.type, draft.tags, data, merkle.leaf_hash(data)
                    )
                    request.entries.append(entry)
                    new_entries.append(entry)
                    for tag in entry.tags:
                        by_tag[tag].append(entry)
            frontier, nodes = merkle.append(
                self._frontier, size, [e.leaf_hash for e in new_entries]
            )
            new_size = size + len(new_entries)
            checkpoint = None
            if self._signer is not None and new_size != self._last_checkpoint_size:
                due = now - self._last_checkpoint_at >= self._checkpoint_interval
                if due or force_checkpoint:
                    body = Checkpoint(self.origin, new_size, merkle.fold(frontier))
                    checkpoint = StoredCheckpoint(
                        new_size, sign_checkpoint(body, self._signer), now
                    )
            await tx.write(new_entries, nodes, checkpoint)
        # Committed.
        self._size = new_size
        self._frontier = frontier
        if self._gatekeeper is not None:
            self._gatekeeper.commit(new_size)
        if checkpoint is not None:
            self._last_checkpoint_size = checkpoint.size
            self._last_checkpoint_at = checkpoint.created_at
        if batch:
            self.stats.batches += 1
            self.stats.entries += len(new_entries)
            self.stats.refused += sum(1 for r in batch if r.error is not None)
            self.stats.last_batch_size = len(batch)
        if self._on_batch is not None and batch:
            self._on_batch(len(batch), time.monotonic() - started)


async def _committed_conflicts(tx: SequencingTransaction, batch: list[_Request]) -> list[bool]:
    """For each request, whether committed entries match its condition (few queries per batch)."""
    size = tx.size
    conflicts = [False] * len(batch)
    tags: set[str] = set()
    earliest = size
    for request in batch:
        condition = request.condition
        if condition is None:
            continue
        after = condition.after or 0
        if after >= size:
            continue
        for item in condition.fail_if_events_match.items:
            if item.tags:
                tags.add(item.tags[0])
                earliest = min(earliest, after)
    candidates: dict[str, list[StoredEntry]] = defaultdict(list)
    if tags:
        for entry in await tx.tagged(sorted(tags), earliest):
            for tag in entry.tags:
                candidates[tag].append(entry)
    type_checks: dict[tuple[tuple[str, ...], int], bool] = {}
    for i, request in enumerate(batch):
        condition = request.condition
        if condition is None:
            continue
        after = condition.after or 0
        if after >= size:
            continue
        items = condition.fail_if_events_match.items
        if not items:
            conflicts[i] = True
            continue
        for item in items:
            if item.tags:
                hit = any(
                    e.position >= after and item_matches(item, e.type, e.tags)
                    for e in candidates.get(item.tags[0], ())
                )
            else:
                key = (tuple(item.types), after)
                if key not in type_checks:
                    type_checks[key] = await tx.type_exists(item.types, after)
                hit = type_checks[key]
            if hit:
                conflicts[i] = True
                break
    return conflicts


def _batch_conflict(
    condition: DCBAppendCondition | None,
    accepted: list[StoredEntry],
    by_tag: dict[str, list[StoredEntry]],
) -> bool:
    """Whether entries accepted earlier in this batch match the condition."""
    if condition is None or not accepted:
        return False
    after = condition.after or 0
    if accepted[-1].position < after:
        return False
    items = condition.fail_if_events_match.items
    if not items:
        return True
    for item in items:
        pool = by_tag.get(item.tags[0], []) if item.tags else accepted
        if any(e.position >= after and item_matches(item, e.type, e.tags) for e in pool):
            return True
    return False
