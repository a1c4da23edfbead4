"""Threat: a writer appends on a stale picture of the log, after another process wrote to it.

A sequencer that believes it is the only writer checks conditions against the entries it
remembers and (on PostgreSQL) writes without taking the lock, guarded by the log's size. When
another process has written meanwhile, that guarded write must write nothing, and the batch must
be decided again against the log as it is.
"""

from __future__ import annotations

import random

import pytest
from eventsourcing.dcb.api import DCBAppendCondition, DCBQuery, DCBQueryItem

from ledger import merkle
from ledger.errors import ConditionFailedError, KeyRevokedError
from ledger.keys import SignerKey
from ledger.log import Ledger
from ledger.postgres import PostgresStore
from ledger.sequencer import _Plan, _RecentEntries
from ledger.store import StoredCheckpoint, StoredEntry, open_store, query_matches
from tests.factories import (
    ELECTION,
    Keys,
    ballot_envelope,
    key_envelope,
    opened_ledger,
    revoke_envelope,
    voter_token,
)
from tests.ledger.conformance import cast


async def test_a_condition_sees_what_another_writer_appended_meanwhile(store_url: str) -> None:
    """After batches of its own, a writer still refuses a ballot whose voter another process
    has just cast for; positions stay gapless and tree and checkpoint agree with the entries."""
    keys = Keys()
    async with opened_ledger(store_url, keys) as first:
        other_store = open_store(store_url)
        await other_store.open()
        second = Ledger(other_store, ELECTION, log_signer=keys.log)
        await second.open()
        try:
            for n in range(10):  # one batch each: `first` now takes itself for the only writer
                await cast(first, keys, n, after=await first.size())
            head = await first.size()
            await cast(second, keys, 100, after=head)
            with pytest.raises(ConditionFailedError):
                await cast(first, keys, 100, after=head)
            await cast(first, keys, 101, after=head)  # another voter is unaffected
            await cast(first, keys, 102, after=await first.size())
            await cast(second, keys, 103, after=await second.size())

            stats = first.sequencer.stats
            if isinstance(first.store, PostgresStore):
                assert stats.guarded >= 5 and stats.moved >= 1
            size = await first.size()
            entries = await first.entries(0, size)
            assert [e.position for e in entries] == list(range(size))
            voters = [t for e in entries for t in e.tags if t.startswith("voter:")]
            assert len(voters) == len(set(voters)) == 14
            tree = merkle.MemoryTree()
            for entry in entries:
                tree.append(entry.data)
            assert await first.root(size) == tree.root(size)
            checkpoint = await first.verified_checkpoint()
            assert checkpoint is not None and checkpoint.size == size
        finally:
            await second.close()
            await other_store.close()


async def test_a_revocation_by_another_writer_binds_a_writer_that_caught_up(
    store_url: str,
) -> None:
    """A writer that learns another's entries from the entries themselves (not the stored
    frontier) still learns a key revocation among them, and its tree stays right."""
    keys = Keys()
    async with opened_ledger(store_url, keys) as first:
        other_store = open_store(store_url)
        await other_store.open()
        second = Ledger(other_store, ELECTION, log_signer=keys.log)
        await second.open()
        try:
            late = SignerKey.generate("site.late")
            await second.append(key_envelope(keys, late, "site"))
            for n in range(5):
                await cast(first, keys, n, after=await first.size())
            await first.append(ballot_envelope(late, voter_token(50), ["L01"]))
            await second.append(revoke_envelope(keys, late))
            await cast(second, keys, 60, after=await second.size())
            with pytest.raises(KeyRevokedError):
                await first.append(ballot_envelope(late, voter_token(51), ["L01"]))
            await cast(first, keys, 61, after=await first.size())

            size = await first.size()
            tree = merkle.MemoryTree()
            for stored in await first.entries(0, size):
                tree.append(stored.data)
            assert await first.root(size) == tree.root(size)
            checkpoint = await first.verified_checkpoint()
            assert checkpoint is not None and checkpoint.size == size
        finally:
            await second.close()
            await other_store.close()


def entry(position: int, *tags: str) -> StoredEntry:
    data = b'{"n":%d}' % position
    return StoredEntry(position, "ballot", tags, data, merkle.leaf_hash(data))


async def test_a_guarded_write_on_a_moved_log_writes_nothing(pg_url: str) -> None:
    """PostgreSQL's guarded write commits everything at the expected size, nothing otherwise."""
    store = PostgresStore(pg_url)
    await store.open()
    try:
        await store.create_log("x")
        first = entry(0, "voter:a")
        checkpoint = StoredCheckpoint(1, "note 1", 1.0)
        assert await store.write_if_size("x", 0, [first], [], checkpoint)
        stale = entry(0, "voter:b")
        nodes = [((1, 0), b"\x01" * 32)]
        assert not await store.write_if_size("x", 0, [stale], nodes, StoredCheckpoint(1, "x", 2.0))
        assert not await store.write_if_size("x", 5, [entry(5, "voter:c")], [], None)
        assert await store.size("x") == 1
        assert await store.read("x", 0, 2) == [first]
        assert await store.tagged("x", ["voter:b", "voter:c"]) == []
        assert await store.nodes("x", [(1, 0)]) == {}
        assert await store.checkpoints("x") == [checkpoint]
        assert await store.write_if_size("x", 1, [entry(1, "voter:b")], nodes, None)
        assert await store.size("x") == 2
        assert await store.nodes("x", [(1, 0)]) == dict(nodes)
    finally:
        await store.close()


def test_remembered_entries_decide_conditions_as_the_whole_log_would() -> None:
    """The sequencer's memory of recent entries answers every condition it covers exactly as a
    scan of the whole log does, while it forgets old entries."""
    rng = random.Random(7)
    tags = [f"t{i}" for i in range(12)]
    types = ["ballot", "void"]
    recent = _RecentEntries(limit=16)
    recent.reset(3)
    log: list[StoredEntry] = []
    size = 3
    for _ in range(60):
        batch = []
        for _ in range(rng.randint(0, 6)):
            picked = tuple(sorted(rng.sample(tags, rng.randint(0, 3))))
            batch.append(StoredEntry(size, rng.choice(types), picked, b"", b""))
            size += 1
        by_tag: dict[str, list[StoredEntry]] = {}
        for e in batch:
            for tag in e.tags:
                by_tag.setdefault(tag, []).append(e)
        recent.add(_Plan(batch, by_tag, [], [], size, None))
        log += batch
        assert recent.size == size and recent.start <= max(3, size - 16)
        for _ in range(20):
            items = [
                DCBQueryItem(
                    types=rng.sample(types, rng.randint(0, 1)),
                    tags=rng.sample(tags, rng.randint(0, 2)),
                )
                for _ in range(rng.randint(0, 2))
            ]
            condition = DCBAppendCondition(DCBQuery(items), after=rng.randint(0, size + 1))
            if not recent.covers([condition]):
                assert condition.after is not None and condition.after < recent.start
                continue
            expected = any(
                e.position >= (condition.after or 0)
                and query_matches(condition.fail_if_events_match, e.type, e.tags)
                for e in log
            )
            assert recent.conflict(condition) == expected
    assert recent.start > 3  # it did forget
