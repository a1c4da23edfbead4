"""Feeding a :class:`~tally.projection.Tally` from a store: a chunk of stored entries at a time.

Both the rebuild from position 0 (:func:`tally.export.replay_tally`) and the service's live
follower (:mod:`api.service`) read the log with :meth:`ledger.store.Store.stream_data` and apply
it here. A void needs the entry it names; the voids of a chunk are found by the suffix every
canonical void entry ends with (its outer ``type``, the last member in RFC 8785 order) and their
targets read before the chunk is applied, concurrently, so a void costs no round trip of its own.
An entry that only looks like a void, or a void stored in another form, is still handled
correctly: the tally then reads its target when it gets there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ledger.entry import entry_object, entry_payload, entry_type_suffix
from ledger.store import Store
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
