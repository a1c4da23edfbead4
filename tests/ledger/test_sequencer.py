"""The sequencer's committed-batch listeners (``Sequencer.committed``, which the live tally
follows): each committed batch's entries, exactly as stored, in position order, before any of
its appends returns; nothing of a refused request (on both stores)."""

from __future__ import annotations

import asyncio

import pytest

from ledger.errors import ConditionFailedError
from ledger.store import StoredEntry
from tests.factories import Keys, opened_ledger
from tests.ledger.conformance import cast


async def test_listeners_get_each_committed_batch_as_stored(store_url: str) -> None:
    keys = Keys()
    async with opened_ledger(store_url, keys) as ledger:
        batches: list[list[StoredEntry]] = []
        ledger.sequencer.committed.append(lambda entries: batches.append(list(entries)))

        async def one(n: int, after: int) -> int:
            position = await cast(ledger, keys, n, after=after)
            assert position in {e.position for batch in batches for e in batch}  # heard first
            return position

        head = await ledger.size()
        await one(0, head)
        # One batch of three; the second ballot for voter 1 is refused and adds nothing.
        head = await ledger.size()
        outcomes = await asyncio.gather(
            one(1, head), one(2, head), one(1, head), return_exceptions=True
        )
        assert isinstance(outcomes[2], ConditionFailedError)
        with pytest.raises(ConditionFailedError):
            await cast(ledger, keys, 2, after=head)

        assert [len(b) for b in batches] == [1, 2]
        listened = [entry for batch in batches for entry in batch]
        stored = await ledger.entries(listened[0].position, await ledger.size())
        assert listened == stored
