"""Group commit: concurrent appends to one log are sequenced in batches, one transaction each.

Every append carries a DCB condition ("fail if entries matching this query exist at or after
position P"). Inside the batch's transaction, which holds the log's exclusive lock, each request's
condition is checked in arrival order against the committed log *and* against the requests of the
same batch accepted before it. A refused request does not fail the others. Positions are assigned
under the lock, so they are gapless and in commit order; the Merkle tree nodes and (by default) a
signed checkpoint are written in the same transaction, so tree, checkpoint and entries always agree.

The sequencer remembers the latest committed entries (:class:`_RecentEntries`) and checks
conditions against them instead of asking the store. While no other process writes the log, it
knows everything committed since its last batch, and on a store that can write "only if the size
is still N" (:class:`SizeGuardedStore`, PostgreSQL) it writes the batch in one statement without
taking the lock first. If another process has written meanwhile, that statement writes nothing;
the batch is then planned again under the lock, after reading the entries the other process
added (one query: they extend the tree's edge, the keys and the remembered entries).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from eventsourcing.dcb.api import DCBAppendCondition

from ledger import merkle
from ledger.checkpoint import (
    Checkpoint,
    CheckpointJournal,
    JournalHead,
    sign_checkpoint,
    verify_checkpoint,
)
from ledger.errors import (
    CheckpointError,
    ConditionFailedError,
    EntryTooLargeError,
    LedgerError,
    LogRolledBackError,
)
from ledger.keys import SignerKey
from ledger.store import (
    SequencingTransaction,
    Store,
    StoredCheckpoint,
    StoredEntry,
    item_matches,
)
from ledger.tiles import MAX_ENTRY_SIZE

_log = logging.getLogger("uchast.ledger.sequencer")


@dataclass(frozen=True, slots=True)
class Draft:
    """An entry before it has a position: ``encode(recorded_at)`` gives its leaf bytes."""

    type: str
    tags: tuple[str, ...]
    encode: Callable[[str], bytes]


class Gatekeeper(Protocol):
    """Log-level rules checked under the sequencing lock (keys, roles, log state)."""

    async def catch_up(
        self, tx: SequencingTransaction, size: int, entries: Sequence[StoredEntry] | None = None
    ) -> None:
        """Learn entries committed by other processes, up to ``size``; ``entries``, if given,
        are all the entries from some position up to ``size``, already read."""

    def admit(self, token: object, position: int) -> None:
        """Raise a :class:`LedgerError` to refuse the request; may stage state changes."""

    def commit(self, size: int) -> None:
        """The batch committed: make staged changes permanent."""

    def abort(self) -> None:
        """The batch failed: drop staged changes."""


@runtime_checkable
class SizeGuardedStore(Protocol):
    """A store that can write a batch without the sequencing lock, guarded by the log's size."""

    async def write_if_size(
        self,
        log_id: str,
        size: int,
        entries: Sequence[StoredEntry],
        nodes: Sequence[tuple[merkle.NodeId, bytes]],
        checkpoint: StoredCheckpoint | None,
    ) -> bool:
        """Commit what :meth:`SequencingTransaction.write` would, atomically, if the committed
        size of the log is still ``size``; otherwise write nothing and return False."""
        ...


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


_SIZING_STAMP = utc_timestamp(0.0)


def check_entry_size(draft: Draft) -> None:
    """Refuse a draft whose entry would not fit a C2SP entry bundle (65,535 bytes at most):
    :class:`EntryTooLargeError`. Every ``recorded_at`` has the same length, so the size is
    final before the entry is sequenced."""
    size = len(draft.encode(_SIZING_STAMP))
    if size > MAX_ENTRY_SIZE:
        raise EntryTooLargeError(size, MAX_ENTRY_SIZE)


@dataclass(slots=True)
class BatchStats:
    """Counters of this sequencer's work, read by the benchmarks and tests (the metrics endpoint
    counts through ``on_batch`` instead)."""

    batches: int = 0
    entries: int = 0
    guarded: int = 0  # batches written without the lock, guarded by the log's size
    moved: int = 0  # guarded writes that found the log moved by another writer (nothing written)


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
        entry_types: Sequence[str] = (),
        journal: CheckpointJournal | None = None,
    ) -> None:
        """``entry_types``: every type of entry the log may hold, if known; then what other
        processes append is learnt from their entries themselves (one query).

        ``journal``: the checkpoints this key already published, kept outside the database.
        Before signing, the log must extend the largest of them (else :class:`LogRolledBackError`
        refuses the batch); each new checkpoint is recorded there before it is acknowledged."""
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
        self._recent = _RecentEntries()
        self._entry_types = list(entry_types)
        self._guarded = store if isinstance(store, SizeGuardedStore) else None
        self._alone = False
        self._last_checkpoint_size = -1
        self._last_checkpoint_at = 0.0
        self._journal = journal if signer is not None else None
        self._extends: JournalHead | None = None  # journal head the log was last seen to extend
        self.rolled_back: LogRolledBackError | None = None  # why writes are refused, if they are
        self.stats = BatchStats()
        # Called with each batch's entries, in position order, once the batch has committed
        # (durable, before its requests are answered); a listener must not raise.
        self.committed: list[Callable[[Sequence[StoredEntry]], None]] = []

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
            tags = draft.tags
            if "" in tags or "\x1f".join(tags).count("\x1f") != max(0, len(tags) - 1):
                raise ValueError(f"tags must be non-empty and free of U+001F: {tags!r}")
            check_entry_size(draft)
        if self._task is None:
            raise LedgerError("the log is not open for writing")
        future: asyncio.Future[list[StoredEntry]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Request(drafts, condition, token, future))
        return await future

    async def check_journal(self) -> None:
        """Raise :class:`LogRolledBackError` now if the log does not extend the journal."""
        if self._journal is not None:
            async with self.store.sequencing(self.log_id) as tx:
                if self._size != tx.size:
                    self._extends = None
                    await self._catch_up(tx, tx.size)
                await self._check_journal(tx, tx.size)

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
        size = self._size
        if (
            batch
            and size is not None
            and self._alone
            and self._guarded is not None
            and self._recent.covers(r.condition for r in batch)
            and self._journal_seen()
        ):
            plan = self._plan(batch, size, [self._recent.conflict(r.condition) for r in batch])
            if await self._guarded.write_if_size(
                self.log_id, size, plan.entries, plan.nodes, plan.checkpoint
            ):
                self.stats.guarded += 1
                await self._record(plan)
                self._committed(batch, plan, started)
                return
            self.stats.moved += 1
            # Another process wrote since our last batch: nothing was written. What we know
            # still holds as of our last batch; plan again under the lock, after catching up.
            self._alone = False
            if self._gatekeeper is not None:
                self._gatekeeper.abort()
            for request in batch:
                request.error = None
                request.entries = []
        async with self.store.sequencing(self.log_id) as tx:
            size = tx.size
            # Guarded writes pay off while this process is the only writer; with another one
            # writing in turn, they would mostly be refused and cost a round trip each.
            self._alone = self._size == size
            if self._size != size:
                self._extends = None  # the log changed under us: check it again
                await self._catch_up(tx, size)
            await self._check_journal(tx, size)
            if force_checkpoint and self._signer is None:
                return
            if force_checkpoint and size == self._last_checkpoint_size:
                if await self._adopt_latest(size):
                    return
                self._last_checkpoint_size = -1  # the stored one is unusable: sign it afresh
            if self._recent.covers(r.condition for r in batch):
                conflicts = [self._recent.conflict(r.condition) for r in batch]
            else:
                conflicts = await _committed_conflicts(tx, batch)
            plan = self._plan(batch, size, conflicts, force_checkpoint=force_checkpoint)
            await tx.write(plan.entries, plan.nodes, plan.checkpoint)
        await self._record(plan)
        self._committed(batch, plan, started)

    def _journal_seen(self) -> bool:
        """Whether the journal's head is still the one the log was checked against."""
        if self._journal is None:
            return True
        head = self._journal.head(self.origin)
        return head is None or head == self._extends

    async def _check_journal(self, tx: SequencingTransaction, size: int) -> None:
        """Refuse to go on from a log that does not extend the largest checkpoint this key
        published: shorter than it, or with another root at its size (a rollback, or a fork
        written into the database). Checked under the lock, against the tree as stored."""
        if self._journal is None:
            return
        head = self._journal.head(self.origin)
        if head is None or head == self._extends:
            return
        if size < head.size:
            self.rolled_back = LogRolledBackError(self.log_id, head.size, size, "shorter")
            raise self.rolled_back
        if head.size == size:
            root = merkle.fold(self._frontier)
        elif head.size == 0:
            root = merkle.EMPTY_ROOT
        else:
            ids = merkle.frontier_ids(head.size)
            nodes = await tx.nodes(ids)
            root = merkle.fold([nodes[i] for i in ids]) if all(i in nodes for i in ids) else b""
        if head.forked or root != head.root:
            self.rolled_back = LogRolledBackError(self.log_id, head.size, size, "different-history")
            raise self.rolled_back
        self._extends = head
        self.rolled_back = None

    async def _adopt_latest(self, size: int) -> bool:
        """At start, the latest stored checkpoint (of ``size``, this log's current size) may be
        missing from the journal: signed before there was one, or by a process that died before
        recording it. Record it if it verifies and matches the tree; False if it does not."""
        if self._journal is None or self._signer is None:
            return True
        head = self._journal.head(self.origin)
        if head is not None and head.size >= size:
            return True
        stored = await self.store.latest_checkpoint(self.log_id)
        if stored is None or stored.size != size:
            return False
        try:
            checkpoint = verify_checkpoint(stored.note, self._signer.verifier, self.origin)
        except CheckpointError:
            return False
        if checkpoint.root != merkle.fold(self._frontier):
            return False
        # Trust on first use: loud, since a journal moved aside by the operator lands here too.
        _log.warning(
            "checkpoint journal %s had %s of %s: it starts from the database's checkpoint of %d",
            self._journal.path,
            f"no checkpoint beyond {head.size}" if head is not None else "no checkpoint",
            self.origin,
            size,
        )
        await asyncio.to_thread(self._journal.record, self.origin, stored.note, checkpoint)
        self._extends = self._journal.head(self.origin)
        return True

    async def _record(self, plan: _Plan) -> None:
        """Put the batch's checkpoint in the journal before anyone is answered."""
        if self._journal is None or plan.checkpoint is None:
            return
        checkpoint = Checkpoint(self.origin, plan.size, merkle.fold(plan.frontier))
        await asyncio.to_thread(self._journal.record, self.origin, plan.checkpoint.note, checkpoint)
        self._extends = self._journal.head(self.origin)

    async def _catch_up(self, tx: SequencingTransaction, size: int) -> None:
        """Bring the tree's edge, the gatekeeper and the recent entries to ``size``, which
        other processes have written to: from the entries they added, read in one query, when
        we know the log up to where they began; else from the stored frontier."""
        known = self._size
        delta = None
        if (
            known is not None
            and self._entry_types
            and self._recent.size == known < size <= known + self._recent.limit
        ):
            delta = await tx.read(known, size, self._entry_types)
            if [e.position for e in delta] != list(range(known, size)):
                delta = None  # an entry of a type we do not know: take the long way
        if delta is not None and known is not None:
            self._frontier, _ = merkle.append(self._frontier, known, [e.leaf_hash for e in delta])
            if self._gatekeeper is not None:
                await self._gatekeeper.catch_up(tx, size, delta)
            by_tag: dict[str, list[StoredEntry]] = defaultdict(list)
            for entry in delta:
                for tag in entry.tags:
                    by_tag[tag].append(entry)
            self._recent.add(_Plan(delta, by_tag, self._frontier, [], size, None))
        else:
            ids = merkle.frontier_ids(size)
            edge = await tx.nodes(ids)
            self._frontier = [edge[i] for i in ids]
            if self._gatekeeper is not None:
                await self._gatekeeper.catch_up(tx, size)
            self._recent.reset(size)
        self._size = size

    def _plan(
        self,
        batch: list[_Request],
        size: int,
        conflicts: list[bool],
        *,
        force_checkpoint: bool = False,
    ) -> _Plan:
        """Positions, leaves, tree nodes and checkpoint of the batch appended at ``size``;
        ``conflicts[i]``: committed entries match request i's condition."""
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
        frontier, nodes = merkle.append(self._frontier, size, [e.leaf_hash for e in new_entries])
        new_size = size + len(new_entries)
        checkpoint = None
        if self._signer is not None and new_size != self._last_checkpoint_size:
            due = now - self._last_checkpoint_at >= self._checkpoint_interval
            if due or force_checkpoint:
                body = Checkpoint(self.origin, new_size, merkle.fold(frontier))
                checkpoint = StoredCheckpoint(new_size, sign_checkpoint(body, self._signer), now)
        return _Plan(new_entries, by_tag, frontier, nodes, new_size, checkpoint)

    def _committed(self, batch: list[_Request], plan: _Plan, started: float) -> None:
        self._size = plan.size
        self._frontier = plan.frontier
        self._recent.add(plan)
        if self._gatekeeper is not None:
            self._gatekeeper.commit(plan.size)
        if plan.checkpoint is not None:
            self._last_checkpoint_size = plan.checkpoint.size
            self._last_checkpoint_at = plan.checkpoint.created_at
        if batch:
            self.stats.batches += 1
            self.stats.entries += len(plan.entries)
        if self._on_batch is not None and batch:
            self._on_batch(len(batch), time.monotonic() - started)
        if plan.entries:
            for listener in self.committed:
                listener(plan.entries)


@dataclass(frozen=True, slots=True)
class _Plan:
    """A batch ready to write: its entries, the tree after them, and the checkpoint if due."""

    entries: list[StoredEntry]
    by_tag: dict[str, list[StoredEntry]]  # the entries carrying each tag
    frontier: list[bytes]
    nodes: list[tuple[merkle.NodeId, bytes]]
    size: int
    checkpoint: StoredCheckpoint | None


class _RecentEntries:
    """The latest committed entries, ``start .. size`` with no gap: the batches this process
    wrote and those other processes wrote in between, as the sequencer caught up with them
    (reset whenever it caught up without reading their entries).

    A condition reading from ``start`` or later is decided here exactly as the store would decide
    it, from the batches' own tag indexes (built while planning them). About ``limit`` entries
    are kept, whole batches at a time.
    """

    def __init__(self, limit: int = 1024) -> None:
        self.limit = limit
        self.start = 0
        self.size = 0
        self._batches: deque[_Plan] = deque()

    def reset(self, size: int) -> None:
        self.start = self.size = size
        self._batches.clear()

    def covers(self, conditions: Iterable[DCBAppendCondition | None]) -> bool:
        start = self.start
        return all(c is None or (c.after or 0) >= start for c in conditions)

    def add(self, batch: _Plan) -> None:
        if not batch.entries:
            return
        self._batches.append(batch)
        self.size = batch.size
        while self.size - self.start - len(self._batches[0].entries) >= self.limit:
            self.start += len(self._batches.popleft().entries)

    def conflict(self, condition: DCBAppendCondition | None) -> bool:
        """Whether entries matching ``condition`` were committed after its ``after``; only for a
        condition this window :meth:`covers`."""
        if condition is None:
            return False
        after = condition.after or 0
        if after >= self.size:
            return False
        items = condition.fail_if_events_match.items
        if not items:
            return True
        for batch in reversed(self._batches):
            if batch.size <= after:
                break
            for item in items:
                pool = batch.by_tag.get(item.tags[0], ()) if item.tags else batch.entries
                if any(e.position >= after and item_matches(item, e.type, e.tags) for e in pool):
                    return True
        return False


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
