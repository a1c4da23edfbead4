"""The live tally's follower (tally.feed.LogFollower): the batches its own process commits are
applied from memory, everything else is read from the store, and the tally is the one a replay
of the store gives, whoever wrote what and whenever the follower looked (on both stores)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tally.export import replay_tally
from tally.feed import LogFollower, apply_chunk
from tally.projection import Tally
from tests.factories import ELECTION
from tests.tally.election_log import AuditKeys, ElectionLog, election_log
from tests.tally.test_projection import views
from votes.errors import DomainError

PICKS = [["L01", "S01"], ["L02", "L03"], ["S02"], ["L01", "L02", "S03"], ["L03"], ["S01", "S03"]]


@asynccontextmanager
async def following(log: ElectionLog, *, keep: int = 64) -> AsyncIterator[LogFollower]:
    """A follower of ``log`` from position 0, listening to its ledger's sequencer."""
    follower = LogFollower(
        log.ledger.store, ELECTION, Tally(await log.casting.election()), idle=0.02, keep=keep
    )
    log.ledger.sequencer.committed.append(follower.committed)
    try:
        yield follower
    finally:
        log.ledger.sequencer.committed.remove(follower.committed)


async def caught_up(follower: LogFollower) -> Tally:
    size = await follower.store.size(ELECTION)
    while follower.tally.position < size:
        await follower.step(0.05)
    return follower.tally


async def assert_as_replayed(follower: LogFollower, *, stepping: bool = True) -> None:
    """Once caught up (by stepping it here, or else by waiting for its own task), the tally
    is the one a replay of the store gives."""
    if stepping:
        tally = await caught_up(follower)
    else:
        size = await follower.store.size(ELECTION)
        while follower.tally.position < size:
            await asyncio.sleep(0.01)
        tally = follower.tally
    replayed, size, _ = await replay_tally(follower.store, ELECTION)
    assert tally.position == size
    assert views(tally) == views(replayed)
    assert tally.snapshot() == replayed.snapshot()


async def test_a_gap_before_a_batch_is_read_from_the_store(store_url: str) -> None:
    """What was committed before the follower listened, and what another process writes, is
    read from the store; this process's batches come from memory; each entry is applied once."""
    keys = AuditKeys()
    async with election_log(store_url, keys) as ours, election_log(store_url, keys) as other:
        await ours.ballot(1, ["L01"])
        async with following(ours) as follower:
            before = await ours.ledger.size()
            await ours.ballot(2, ["L02"])
            assert await follower.step(1.0)
            assert (follower.from_store, follower.from_memory) == (before, 1)

            await other.ballot(3, ["S01"])
            await other.ballot(4, ["S02"])
            await ours.ballot(5, ["S03"])
            assert await follower.step(1.0)
            assert (follower.from_store, follower.from_memory) == (before + 2, 2)

            # Only another process writes: after `idle` the follower waits on the log itself.
            await other.paper(6, ["L03"])
            assert await follower.step(1.0)
            assert (follower.from_store, follower.from_memory) == (before + 3, 2)
            assert not await follower.step(0.01)  # nothing new: the tally stays where it is
            await assert_as_replayed(follower)


async def test_batches_beyond_what_it_keeps_and_behind_the_tally(store_url: str) -> None:
    """Batches dropped from a full queue are read from the store; a batch the tally already
    has in part (it read on in the store first) is applied from where the tally stands."""
    keys = AuditKeys()
    async with election_log(store_url, keys) as ours, following(ours, keep=1) as follower:
        await caught_up(follower)
        start = follower.tally.position
        for n in range(3):  # three batches, of which the queue keeps the last
            await ours.ballot(n, PICKS[n])
        assert await follower.step(1.0)
        assert (follower.from_memory, follower.tally.position) == (1, start + 3)
        from_store = follower.from_store

        batches: list[list[int]] = []
        ours.ledger.sequencer.committed.append(lambda b: batches.append([e.position for e in b]))
        await asyncio.gather(ours.ballot(10, ["L01"]), ours.ballot(11, ["L02"]))
        assert batches == [[start + 3, start + 4]]
        # The first of the two reaches the tally from the store before the follower steps.
        async for chunk in follower.store.stream_data(ELECTION, start + 3, start + 4):
            await apply_chunk(follower.store, ELECTION, follower.tally, start + 3, chunk)
        assert await follower.step(1.0)
        assert (follower.from_memory, follower.from_store) == (2, from_store)
        await assert_as_replayed(follower)


@asynccontextmanager
async def running(follower: LogFollower) -> AsyncIterator[None]:
    """The follower stepping in a task of its own, as the service runs it."""

    async def run() -> None:
        while True:
            await follower.step(0.05)

    task = asyncio.create_task(run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("seed", range(4))
async def test_interleaved_writers_give_the_tally_a_replay_gives(store_url: str, seed: int) -> None:
    """Two processes write ballots, paper ballots, spoiled ballots and voids (of their own
    entries and each other's) in random order and random concurrent groups, while the
    follower of one of them runs as the service runs it (with a queue of 2 batches for odd
    seeds, so that some are dropped): its tally equals a replay of the store, snapshot bytes
    included, with entries taken from both memory and the store."""
    rng = random.Random(seed)
    keys = AuditKeys()
    written: list[int] = []

    async def write(log: ElectionLog) -> None:
        kind, voter = rng.random(), rng.randrange(40)
        try:
            if kind < 0.55:
                written.append(await log.ballot(voter, rng.choice(PICKS)))
            elif kind < 0.75:
                written.append(await log.paper(voter + 100, rng.choice(PICKS)))
            elif kind < 0.85:
                await log.spoiled()
            elif written:
                await log.void(rng.choice(written))
        except DomainError:
            pass  # refused by the rules (a voter over the limit, a void voided)

    async with (
        election_log(store_url, keys) as ours,
        election_log(store_url, keys) as other,
        following(ours, keep=2 if seed % 2 else 64) as follower,
        running(follower),
    ):
        for _ in range(30):
            group = [rng.choice([ours, other]) for _ in range(rng.choice([1, 1, 3, 6]))]
            await asyncio.gather(*(write(log) for log in group))
            if rng.random() < 0.3:
                await asyncio.sleep(rng.choice([0.0, 0.01, 0.05]))
        await assert_as_replayed(follower, stepping=False)
    assert follower.from_memory > 0 and follower.from_store > 0
    assert follower.tally.voided > 0
