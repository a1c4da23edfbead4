"""Feeding a :class:`~tally.projection.Tally` from a store: a chunk of stored entries at a time.

Both the rebuild from position 0 (:func:`tally.export.replay_tally`) and the service's live
follower (:class:`LogFollower`, run by :mod:`api.service`) read the log with
:meth:`ledger.store.Store.stream_data` and apply it here. The live follower also takes the
batches its own process's sequencer commits straight from memory (``Sequencer.committed``),
and reads from the store only what they do not cover.

A void needs the entry it names; the voids of a chunk are found by the suffix every canonical
void entry ends with (its outer ``type``, the last member in RFC 8785 order) and their
targets read before the chunk is applied, concurrently, so a void costs no round trip of its own.
An entry that only looks like a void, or a void stored in another form, is still handled
correctly: the tally then reads its target when it gets there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from typing import Any

from ledger.entry import entry_object, entry_payload, entry_type_suffix
from ledger.store import Store, StoredEntry
from tally.projection import Tally
from votes.entries import EntryType

_VOID_SUFFIX = entry_type_suffix(EntryType.VOID)


def _void_target(data: bytes) -> int | None:
    try:
        target = entry_payload(data)["entry"]
    except (ValueError, KeyError, TypeError):
        return None  # the tally itself will say what is wrong with it
    return target if isinstance(target, int) and not isinstance(target, bool) else None


async def apply_chunk(
    store: Store, log_id: str, tally: Tally, start: int, chunk: Sequence[bytes]
) -> None:
    """Apply entries ``start .. start + len(chunk) - 1`` of the log to ``tally``."""
    known: dict[int, bytes] = {}
    targets = {
        target
        for data in chunk
        if data.endswith(_VOID_SUFFIX) and (target := _void_target(data)) is not None
    }
    if targets:
        missing = []
        for target in targets:
            if start <= target < start + len(chunk):
                known[target] = chunk[target - start]
            elif 0 <= target < start:
                missing.append(target)

        async def read_one(position: int) -> None:
            found = await store.read(log_id, position, position + 1)
            if found:
                known[position] = found[0].data

        await asyncio.gather(*(read_one(t) for t in missing))

    async def fetch(position: int) -> dict[str, Any]:
        data = known.get(position)
        if data is None:
            [entry] = await store.read(log_id, position, position + 1)
            data = entry.data
        try:
            return entry_object(data)
        except ValueError as exc:
            raise ValueError(f"entry {position} of {log_id!r}: {exc}") from exc

    await tally.apply_data(start, chunk, fetch)


class LogFollower:
    """Keeps ``tally`` at the head of one log.

    :meth:`committed` is the listener for this process's sequencer (``Sequencer.committed``):
    a batch that starts exactly at the tally's position is applied from memory, without a
    query; the entries before a batch that starts further on (written by another process, or
    committed before the listener was added, or dropped from a full queue) are read from the
    store first, and entries the tally already has are skipped, so every entry is applied once
    and the same bytes are applied as a read of the store would give. While this process
    commits nothing for ``idle`` seconds (or at all: ``idle`` 0, a read-only server), the
    follower waits for the log itself to grow (:meth:`~ledger.store.Store.wait_for_growth`),
    which is how it learns other processes' entries when its own process writes none: they
    show up at most ``idle`` seconds later than the wait alone would show them.
    """

    def __init__(
        self, store: Store, log_id: str, tally: Tally, *, idle: float = 0.0, keep: int = 64
    ) -> None:
        self.store = store
        self.log_id = log_id
        self.tally = tally
        self.idle = idle
        # At most ``keep`` batches wait here; an older one is dropped, then read from the store.
        self._batches: deque[Sequence[StoredEntry]] = deque(maxlen=keep)
        self._arrived = asyncio.Event()
        self.from_memory = 0  # entries applied from committed batches
        self.from_store = 0  # entries read from the store

    def committed(self, entries: Sequence[StoredEntry]) -> None:
        """A batch of this process committed: ``entries`` in position order, no gap."""
        self._batches.append(entries)
        self._arrived.set()

    async def step(self, timeout: float) -> bool:
        """Apply what has committed since the last step, waiting for something to if nothing
        has (up to ``idle`` for a batch of this process, then up to ``timeout`` for the log to
        grow). True if the tally moved."""
        before = self.tally.position
        self._arrived.clear()
        if self.idle > 0 and not self._batches:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), self.idle)
        if not self._batches:
            size = await self.store.wait_for_growth(self.log_id, self.tally.position, timeout)
            await self._apply_committed()  # one of ours may have come meanwhile
            if size > self.tally.position:
                await self._read_to(size)
        await self._apply_committed()
        return self.tally.position != before

    async def _apply_committed(self) -> None:
        while self._batches:
            entries = self._batches[0]
            start = entries[0].position
            if start > self.tally.position:
                await self._read_to(start)
            ahead = self.tally.position - start  # entries of the batch the tally has
            # (negative only if the store lacks entries before the batch: then it is left to
            # the store as well)
            if 0 <= ahead < len(entries):
                chunk = [entry.data for entry in entries[ahead:]]
                await apply_chunk(self.store, self.log_id, self.tally, start + ahead, chunk)
                self.from_memory += len(chunk)
            if self._batches and self._batches[0] is entries:  # else dropped meanwhile
                self._batches.popleft()

    async def _read_to(self, size: int) -> None:
        """Apply the stored entries from the tally's position up to ``size``."""
        position = self.tally.position
        async for chunk in self.store.stream_data(self.log_id, position, size):
            await apply_chunk(self.store, self.log_id, self.tally, position, chunk)
            position += len(chunk)
            self.from_store += len(chunk)
