"""The ledger conformance suite. Every store runs all of it: see test_sqlite.py, test_postgres.py.

A subclass provides the ``url`` fixture; every test opens a fresh ledger on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator
from datetime import datetime

import pytest
from eventsourcing.dcb.api import DCBAppendCondition, DCBQuery, DCBQueryItem
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.canonical import canonical
from ledger.checkpoint import verify_checkpoint
from ledger.entry import entry_object
from ledger.errors import (
    BadSignatureError,
    ConditionFailedError,
    EnvelopeError,
    KeyRevokedError,
    LedgerError,
    LogNotInitialisedError,
    LogStateError,
    ProofError,
    RoleForbiddenError,
    UnknownKeyError,
    WrongLogError,
)
from ledger.keys import SignerKey
from ledger.log import Ledger
from ledger.store import open_store
from tests.factories import (
    ELECTION,
    Keys,
    ballot_envelope,
    election_envelope,
    key_envelope,
    opened_ledger,
    revoke_envelope,
    voter_token,
)
from tests.ledger import tlog_scales_bridge as tlog


def voter_condition(voter: str, after: int) -> DCBAppendCondition:
    return DCBAppendCondition(DCBQuery([DCBQueryItem(tags=[f"voter:{voter}"])]), after=after)


async def cast(ledger: Ledger, keys: Keys, n: int, *, after: int | None = None) -> int:
    """Append a ballot for voter ``n`` under the one-ballot-per-voter condition."""
    voter = voter_token(n)
    size = await ledger.size() if after is None else after
    appended = await ledger.append(
        ballot_envelope(keys.site, voter, ["L01"]),
        tags=[f"voter:{voter}"],
        condition=voter_condition(voter, size),
    )
    return appended.position


class LedgerConformance:
    """Behaviour every store must show, through the signed :class:`Ledger`."""

    @pytest.fixture
    def url(self) -> str:
        raise NotImplementedError

    @pytest.fixture
    def keys(self) -> Keys:
        return Keys()

    # 1. Entries.

    async def test_positions_are_gapless_from_zero(self, url: str, keys: Keys) -> None:
        """Positions are 0-based leaf indexes with no gaps, in order of acceptance."""
        async with opened_ledger(url, keys) as ledger:
            positions = await asyncio.gather(*(cast(ledger, keys, n) for n in range(50)))
            assert sorted(positions) == list(range(4, 54))
            entries = await ledger.entries(0, 54)
            assert [e.position for e in entries] == list(range(54))

    async def test_leaf_is_canonical_json_of_the_entry_object(self, url: str, keys: Keys) -> None:
        """The leaf is RFC 8785 JSON of {envelope as submitted, type, tags, recorded_at (UTC)}."""
        async with opened_ledger(url, keys) as ledger:
            submitted = ballot_envelope(keys.site, voter_token(7), ["L01", "S02"])
            appended = await ledger.append(submitted, tags=["voter:x"])
            [entry] = await ledger.entries(appended.position, appended.position + 1)
            obj = entry_object(entry.data)
            assert obj["envelope"] == submitted
            assert obj["type"] == "ballot"
            assert obj["tags"] == sorted(["voter:x", f"key:{keys.site.verifier.key_id}"])
            recorded = datetime.fromisoformat(obj["recorded_at"])
            offset = recorded.utcoffset()
            assert offset is not None and offset.total_seconds() == 0
            assert entry.data == canonical(obj)
            assert entry.leaf_hash == merkle.leaf_hash(entry.data) == appended.leaf_hash

    async def test_logs_of_two_elections_are_independent(self, url: str, keys: Keys) -> None:
        """Each election has its own log with its own positions and tree."""
        async with opened_ledger(url, keys) as ledger:
            other = Ledger(ledger.store, "other-2019", log_signer=keys.log)
            await other.open()
            try:
                first = await other.append(election_envelope(keys, "other-2019"))
                assert first.position == 0
                assert await ledger.size() == 4
                assert await other.root(1) == merkle.leaf_hash(first.entry.data)
            finally:
                await other.close()

    # 2. Signatures and keys.

    async def test_refusals_write_nothing(self, url: str, keys: Keys) -> None:
        """Bad signature, unknown key, wrong role or election, bad shape: refused, none written."""
        async with opened_ledger(url, keys) as ledger:
            good = ballot_envelope(keys.site, voter_token(1), ["L01"])
            forged = {**good, "payload": {**good["payload"], "projects": ["L02"]}}
            stranger = SignerKey.generate("site.stranger")
            wrong_election = ballot_envelope(keys.site, voter_token(1), ["L01"], "other")
            cases: list[tuple[object, type[LedgerError]]] = [
                (forged, BadSignatureError),
                (ballot_envelope(stranger, voter_token(1), ["L01"]), UnknownKeyError),
                (ballot_envelope(keys.clerk, voter_token(1), ["L01"]), RoleForbiddenError),
                (wrong_election, WrongLogError),
                ({"payload": good["payload"], "key": good["key"]}, EnvelopeError),
                ("not an envelope", EnvelopeError),
                (election_envelope(keys), LogStateError),
                (key_envelope(keys, keys.site, "site"), LogStateError),
                (revoke_envelope(keys, stranger), LogStateError),
            ]
            for submitted, error in cases:
                with pytest.raises(error):
                    await ledger.append(submitted)
            assert await ledger.size() == 4
            assert (await ledger.latest_checkpoint()).size == 4  # type: ignore[union-attr]

    async def test_first_entry_must_define_the_election(self, url: str, keys: Keys) -> None:
        """A log starts with the admin-signed election entry and nothing else."""
        async with opened_ledger(url, keys, register=False) as ledger:
            with pytest.raises((LogNotInitialisedError, UnknownKeyError)):
                await ledger.append(key_envelope(keys, keys.site, "site"))
            impostor = Keys()
            signed_by_other = election_envelope(impostor)
            signed_by_other["payload"]["admin_key"] = keys.admin.verifier.vkey
            with pytest.raises((BadSignatureError, UnknownKeyError, LogStateError)):
                await ledger.append(signed_by_other)
            assert await ledger.size() == 0
            await ledger.append(election_envelope(keys))
            assert await ledger.size() == 1

    async def test_revoked_key_is_refused_from_its_revocation_on(
        self, url: str, keys: Keys
    ) -> None:
        """After the admin revokes a key, its later entries are refused with the position."""
        async with opened_ledger(url, keys) as ledger:
            await cast(ledger, keys, 1)
            revoked = await ledger.append(revoke_envelope(keys, keys.site))
            with pytest.raises(KeyRevokedError) as refused:
                await cast(ledger, keys, 2)
            assert refused.value.at == revoked.position
            with pytest.raises(LogStateError):
                await ledger.append(revoke_envelope(keys, keys.site))

    async def test_a_second_process_sees_keys_registered_by_the_first(
        self, url: str, keys: Keys
    ) -> None:
        """Key registrations and revocations by one writer bind every other writer of the log."""
        async with opened_ledger(url, keys) as first:
            second_store = open_store(url)
            await second_store.open()
            second = Ledger(second_store, ELECTION, log_signer=keys.log)
            await second.open()
            try:
                late = SignerKey.generate("site.late")
                await first.append(key_envelope(keys, late, "site"))
                await second.append(ballot_envelope(late, voter_token(1), ["L01"]))
                await first.append(revoke_envelope(keys, late))
                with pytest.raises(KeyRevokedError):
                    await second.append(ballot_envelope(late, voter_token(2), ["L01"]))
                assert await second.size() == 7
            finally:
                await second.close()
                await second_store.close()

    # 3. Conditional append, batching.

    async def test_condition_fails_when_matching_entries_follow_its_position(
        self, url: str, keys: Keys
    ) -> None:
        """An append fails if an entry matching its query exists at or after its position."""
        async with opened_ledger(url, keys) as ledger:
            seen = await ledger.size()
            await cast(ledger, keys, 1, after=seen)
            with pytest.raises(ConditionFailedError):
                await cast(ledger, keys, 1, after=seen)
            await cast(ledger, keys, 2, after=seen)  # another voter is unaffected
            await cast(ledger, keys, 1)  # a fresh read sees the first ballot and may go on

    async def test_concurrent_appends_share_batches_and_refusals_stay_local(
        self, url: str, keys: Keys
    ) -> None:
        """Concurrent appends commit in few batches; a refused one fails none of the others."""
        async with opened_ledger(url, keys) as ledger:
            seen = await ledger.size()
            stats = ledger.sequencer.stats
            batches_before = stats.batches
            voters = [n // 2 for n in range(200)]  # every voter twice, against the same read
            results = await asyncio.gather(
                *(cast(ledger, keys, n, after=seen) for n in voters), return_exceptions=True
            )
            accepted = [r for r in results if isinstance(r, int)]
            refused = [r for r in results if isinstance(r, ConditionFailedError)]
            assert len(accepted) == 100 and len(refused) == 100
            assert stats.batches - batches_before < 100
            entries = await ledger.entries(seen, seen + 100)
            assert len({e.tags for e in entries}) == 100

    async def test_multi_event_condition_items(self, url: str, keys: Keys) -> None:
        """Conditions with types, several tags and several items follow DCB matching."""
        async with opened_ledger(url, keys) as ledger:
            seen = await ledger.size()
            await ledger.append(
                ballot_envelope(keys.site, voter_token(1), ["L01"]), tags=["a", "b"]
            )
            no_match = DCBQuery(
                [DCBQueryItem(types=["paper-ballot"], tags=["a"]), DCBQueryItem(tags=["a", "c"])]
            )
            await ledger.append(
                ballot_envelope(keys.site, voter_token(2), ["L01"]),
                condition=DCBAppendCondition(no_match, after=seen),
            )
            match = DCBQuery([DCBQueryItem(types=["ballot"], tags=["a", "b"])])
            with pytest.raises(ConditionFailedError):
                await ledger.append(
                    ballot_envelope(keys.site, voter_token(3), ["L01"]),
                    condition=DCBAppendCondition(match, after=seen),
                )
            type_only = DCBQuery([DCBQueryItem(types=["key-revoked"])])
            await ledger.append(
                ballot_envelope(keys.site, voter_token(4), ["L01"]),
                condition=DCBAppendCondition(type_only, after=0),
            )
            with pytest.raises(ConditionFailedError):
                await ledger.append(
                    ballot_envelope(keys.site, voter_token(5), ["L01"]),
                    condition=DCBAppendCondition(DCBQuery(), after=seen),
                )

    # 5. Merkle proofs.

    async def test_roots_and_proofs_match_the_reference_tree(self, url: str, keys: Keys) -> None:
        """Stored-node roots and proofs equal an in-memory RFC 9162 tree's, for every pair."""
        async with opened_ledger(url, keys) as ledger:
            for n in range(30):
                await cast(ledger, keys, n)  # one batch each: many different tree shapes
            await asyncio.gather(*(cast(ledger, keys, 100 + n) for n in range(40)))
            size = await ledger.size()
            tree = merkle.MemoryTree()
            for entry in await ledger.entries(0, size):
                tree.append(entry.data)
            for m in range(1, size + 1):
                root = await ledger.root(m)
                assert root == tree.root(m)
                for i in (0, m // 2, m - 1):
                    proof = await ledger.inclusion_proof(i, m)
                    assert proof == tree.inclusion_proof(i, m)
                    merkle.verify_inclusion(tree.node((0, i)), i, m, proof, root)
                consistency = await ledger.consistency_proof(max(1, m // 3), m)
                old_root = tree.root(max(1, m // 3))
                merkle.verify_consistency(max(1, m // 3), m, old_root, root, consistency)
            with pytest.raises(ProofError):
                await ledger.inclusion_proof(size, size + 1)
            with pytest.raises(ProofError):
                await ledger.consistency_proof(0, size)

    async def test_proofs_verify_with_an_independent_verifier(self, url: str, keys: Keys) -> None:
        """tlog-scales (an independent PyPI implementation) accepts our proofs and roots."""
        async with opened_ledger(url, keys) as ledger:
            await asyncio.gather(*(cast(ledger, keys, n) for n in range(37)))
            size = await ledger.size()
            root = await ledger.root(size)
            entries = await ledger.entries(0, size)
            for index in (0, 5, size - 1):
                proof = await ledger.inclusion_proof(index, size)
                assert tlog.verify_inclusion(entries[index].leaf_hash, index, size, proof, root)
            for old in (1, 4, 17, size):
                proof = await ledger.consistency_proof(old, size)
                old_root = await ledger.root(old)
                assert tlog.verify_consistency(old, size, old_root, root, proof)

    async def test_node_ranges_read_one_level_in_order(self, url: str, keys: Keys) -> None:
        """node_range gives a level's stored hashes in index order (a C2SP hash tile), leaf
        hashes at level 0, and nothing for nodes the tree has not completed."""
        async with opened_ledger(url, keys) as ledger:
            await asyncio.gather(*(cast(ledger, keys, n) for n in range(37)))
            size = await ledger.size()  # 41
            store, log = ledger.store, ledger.log_id
            entries = await ledger.entries(0, size)
            assert await store.node_range(log, 0, 0, size) == [e.leaf_hash for e in entries]
            assert await store.node_range(log, 0, 3, 7) == [e.leaf_hash for e in entries[3:7]]
            assert await store.node_range(log, 0, size - 1, size + 5) == [entries[-1].leaf_hash]
            by_id = await store.nodes(log, [(1, i) for i in range(size // 2)])
            assert await store.node_range(log, 1, 0, size) == [
                by_id[(1, i)] for i in range(size // 2)
            ]
            [top] = (await store.nodes(log, [(5, 0)])).values()
            assert await store.node_range(log, 5, 0, 10) == [top]
            assert await store.node_range(log, 6, 0, 1) == []
            assert await store.node_range(log, 0, size, size + 256) == []

    # 6. Checkpoints.

    async def test_every_batch_leaves_a_signed_checkpoint_of_the_tree(
        self, url: str, keys: Keys
    ) -> None:
        """Checkpoints are C2SP notes signed by the log key, kept, and agree with the tree."""
        async with opened_ledger(url, keys, deployment="vote.zhytomyr.example") as ledger:
            sizes = []
            for n in range(3):
                await cast(ledger, keys, n)
                stored = await ledger.latest_checkpoint()
                assert stored is not None
                checkpoint = verify_checkpoint(
                    stored.note, keys.log.verifier, f"vote.zhytomyr.example/{ELECTION}"
                )
                assert checkpoint.size == await ledger.size()
                assert checkpoint.root == await ledger.root(checkpoint.size)
                assert tlog.verify_checkpoint(stored.note, keys.log.verifier.vkey) == (
                    checkpoint.origin,
                    checkpoint.size,
                    checkpoint.root,
                )
                sizes.append(checkpoint.size)
            kept_sizes = [c.size for c in await ledger.store.checkpoints(ELECTION)]
            assert kept_sizes == sorted(kept_sizes) and set(sizes) <= set(kept_sizes)
            assert [c.size for c in await ledger.store.checkpoints(ELECTION, sizes[1], 1)] == [
                sizes[1]
            ]
            for size in sizes:  # older checkpoints are kept
                kept = await ledger.store.checkpoint(ELECTION, size)
                assert kept is not None
                assert verify_checkpoint(kept.note, keys.log.verifier).size == size

    async def test_checkpoint_interval_batches_checkpoints(self, url: str, keys: Keys) -> None:
        """With an interval, checkpoints come at most that often, and one follows an idle spell."""
        async with opened_ledger(url, keys, checkpoint_interval=0.3) as ledger:
            first = await ledger.latest_checkpoint()
            assert first is not None
            for n in range(5):
                await cast(ledger, keys, n)
            size = await ledger.size()
            latest = await ledger.latest_checkpoint()
            assert latest is not None and latest.size < size
            await asyncio.sleep(0.8)
            latest = await ledger.latest_checkpoint()
            assert latest is not None and latest.size == size
            assert (await ledger.verified_checkpoint()) is not None

    # 8. Reads.

    async def test_reads_by_range_and_stream(self, url: str, keys: Keys) -> None:
        """Ranges and streams return the same entries in order, streaming in chunks."""
        async with opened_ledger(url, keys) as ledger:
            await asyncio.gather(*(cast(ledger, keys, n) for n in range(120)))
            size = await ledger.size()
            listed = await ledger.entries(0, size)
            streamed = [e async for e in ledger.store.stream(ELECTION, 0, None, chunk=7)]
            assert streamed == listed
            assert [e.position for e in await ledger.entries(10, 20)] == list(range(10, 20))
            assert await ledger.entries(size, size + 10) == []

    async def test_typed_reads_find_entries_by_type_within_a_range(
        self, url: str, keys: Keys
    ) -> None:
        """typed() returns exactly the entries of the given types in [start, end), in order."""
        async with opened_ledger(url, keys) as ledger:
            await asyncio.gather(*(cast(ledger, keys, n) for n in range(20)))
            size = await ledger.size()
            listed = await ledger.entries(0, size)
            store = ledger.store
            for types in (["key-registered"], ["ballot", "election"], ["nothing"], []):
                for start, end in ((0, size), (2, 9), (5, 5)):
                    found = await store.typed(ELECTION, types, start, end)
                    assert found == [e for e in listed[start:end] if e.type in types]

    async def test_stream_data_gives_the_stored_bytes_in_chunks(self, url: str, keys: Keys) -> None:
        """stream_data yields each entry's leaf bytes, in order, chunks of at most ``chunk``;
        it stops at ``end`` (default: the committed size when called), and a consumer that
        stops early leaves the store usable."""
        async with opened_ledger(url, keys) as ledger:
            await asyncio.gather(*(cast(ledger, keys, n) for n in range(50)))
            size = await ledger.size()
            listed = [e.data for e in await ledger.entries(0, size)]
            chunks = [c async for c in ledger.store.stream_data(ELECTION, 0, chunk=7)]
            assert [len(c) for c in chunks] == [7] * (size // 7) + [size % 7] * bool(size % 7)
            assert [d for c in chunks for d in c] == listed
            middle = [c async for c in ledger.store.stream_data(ELECTION, 5, 12, chunk=4)]
            assert [d for c in middle for d in c] == listed[5:12]
            assert [c async for c in ledger.store.stream_data(ELECTION, size)] == []
            stream = ledger.store.stream_data(ELECTION, 0, chunk=3)
            assert isinstance(stream, AsyncGenerator)  # a reader stopping early closes it
            assert await anext(stream) == listed[:3]
            await stream.aclose()
            assert await ledger.size() == size

    async def test_projection_saves_only_move_forward(self, url: str, keys: Keys) -> None:
        """A saved view and its position are read back together; a save at the same or an
        earlier position (another process behind this one) is ignored and says so."""
        async with opened_ledger(url, keys) as ledger:
            store = ledger.store
            assert await store.load_projection(ELECTION, "tally") is None
            assert await store.save_projection(ELECTION, "tally", 10, b"ten")
            assert not await store.save_projection(ELECTION, "tally", 10, b"other ten")
            assert not await store.save_projection(ELECTION, "tally", 4, b"four")
            saved = await store.load_projection(ELECTION, "tally")
            assert saved is not None and (saved.position, saved.state) == (10, b"ten")
            assert await store.save_projection(ELECTION, "tally", 11, b"\x00eleven")
            saved = await store.load_projection(ELECTION, "tally")
            assert saved is not None and (saved.position, saved.state) == (11, b"\x00eleven")
            assert await store.load_projection(ELECTION, "other") is None
            assert await store.load_projection("another-election", "tally") is None

    async def test_projection_counters_add_up_across_saves(self, url: str, keys: Keys) -> None:
        """Counters are added to, with or without the view moving, and from several processes'
        saves alike; they are kept per log and projection."""
        async with opened_ledger(url, keys) as ledger:
            store = ledger.store
            assert await store.projection_counts(ELECTION, "tally") == {}
            assert await store.save_projection(ELECTION, "tally", 5, b"five", {"a": 2, "b": 1})
            assert not await store.save_projection(ELECTION, "tally", 5, b"again", {"a": 3})
            other = open_store(url)
            await other.open()
            try:  # another process, behind this one
                assert not await other.save_projection(ELECTION, "tally", 2, b"two", {"c": 4})
                assert await other.projection_counts(ELECTION, "tally") == {"a": 5, "b": 1, "c": 4}
            finally:
                await other.close()
            assert not await store.save_projection(ELECTION, "tally", 9, None, {"a": 1})
            saved = await store.load_projection(ELECTION, "tally")
            assert saved is not None and (saved.position, saved.state) == (5, b"five")
            assert (await store.projection_counts(ELECTION, "tally"))["a"] == 6
            assert not await store.save_projection(ELECTION, "fresh", 0, None, {"x": 1})
            assert await store.load_projection(ELECTION, "fresh") is None
            assert await store.projection_counts(ELECTION, "fresh") == {"x": 1}
            assert await store.projection_counts(ELECTION, "other") == {}
            assert await store.projection_counts("another-election", "tally") == {}

    async def test_projection_items_are_written_with_their_row_only(
        self, url: str, keys: Keys
    ) -> None:
        """Items are set with the row, by key, and only when the row is written: a save at the
        same or an earlier position (another process behind) writes none of them, nor does a
        save of the counters alone. ``replace_items`` drops the stored items first, only when
        the row is written. Items are kept per log and projection and read only when asked."""
        async with opened_ledger(url, keys) as ledger:
            store = ledger.store
            assert await store.save_projection(ELECTION, "tally", 10, b"ten", None, {"a": 1})
            assert await store.save_projection(ELECTION, "other", 3, b"three", None, {"a": 7})
            assert not await store.save_projection(
                ELECTION, "tally", 10, b"10", None, {"a": 9, "c": 9}, replace_items=True
            )
            assert not await store.save_projection(ELECTION, "tally", 4, b"4", None, {"c": 9})
            assert not await store.save_projection(ELECTION, "tally", 12, None, {"n": 1}, {"c": 9})
            saved = await store.load_projection(ELECTION, "tally", with_items=True)
            assert saved is not None and (saved.position, saved.items) == (10, {"a": 1})
            saved = await store.load_projection(ELECTION, "tally")
            assert saved is not None and saved.items == {}
            big = 1 << 40  # a packed count: paper ballots << 32
            assert await store.save_projection(
                ELECTION, "tally", 11, b"11", None, {"a": 0, "b": big}
            )
            saved = await store.load_projection(ELECTION, "tally", with_items=True)
            assert saved is not None and saved.items == {"a": 0, "b": big}
            assert await store.save_projection(
                ELECTION, "tally", 12, b"12", None, {"d": 2}, replace_items=True
            )
            saved = await store.load_projection(ELECTION, "tally", with_items=True)
            assert saved is not None and (saved.position, saved.items) == (12, {"d": 2})
            assert await store.save_projection(ELECTION, "tally", 13, b"13", None, {})
            saved = await store.load_projection(ELECTION, "tally", with_items=True)
            assert saved is not None and (saved.state, saved.items) == (b"13", {"d": 2})
            saved = await store.load_projection(ELECTION, "other", with_items=True)
            assert saved is not None and saved.items == {"a": 7}
            assert await store.load_projection("another-election", "tally", with_items=True) is None

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(
        st.lists(
            st.tuples(
                st.integers(0, 12),  # position
                st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 1 << 40), max_size=4),
                st.booleans(),  # replace_items
            ),
            max_size=12,
        )
    )
    def test_projection_saves_from_several_processes_keep_the_latest_of_each(
        self, url: str, keys: Keys, saves: list[tuple[int, dict[str, int], bool]]
    ) -> None:
        """Whatever order two processes save in, the stored row and items are those of the
        saves that moved the position forward, applied in turn, and the saves that did not
        move it wrote nothing."""
        name = f"tally-{uuid.uuid4().hex}"

        async def run() -> None:
            async with opened_ledger(url, keys) as ledger:
                other = open_store(url)
                await other.open()
                try:
                    position, items = -1, dict[str, int]()
                    for n, (at, changed, replace) in enumerate(saves):
                        store = (ledger.store, other)[n % 2]
                        written = await store.save_projection(
                            ELECTION, name, at, b"%d" % n, None, changed, replace_items=replace
                        )
                        assert written == (at > position)
                        if written:
                            position = at
                            items = {**({} if replace else items), **changed}
                    saved = await other.load_projection(ELECTION, name, with_items=True)
                    if position < 0:
                        assert saved is None
                    else:
                        assert saved is not None
                        assert (saved.position, saved.items) == (position, items)
                finally:
                    await other.close()

        asyncio.run(run())

    async def test_projection_loads_pair_a_row_with_its_own_items(
        self, url: str, keys: Keys
    ) -> None:
        """A load while another process saves reads a row and the items as of that row's save
        (one snapshot of the database), never items a later save wrote."""
        async with opened_ledger(url, keys) as ledger:
            writer = open_store(url)
            await writer.open()
            keys_written = [f"voter-{n}" for n in range(300)]

            async def save_many() -> None:
                for position in range(1, 80):
                    await writer.save_projection(
                        ELECTION, "tally", position, b"%d" % position, None,
                        dict.fromkeys(keys_written, position),
                    )  # fmt: skip

            saving = asyncio.create_task(save_many())
            try:
                loads = 0
                while not saving.done() or loads == 0:
                    saved = await ledger.store.load_projection(ELECTION, "tally", with_items=True)
                    loads += 1
                    if saved is not None:
                        assert set(saved.items.values()) == {saved.position}
                await saving
            finally:
                saving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await saving
                await writer.close()

    async def test_subscription_wakes_on_new_entries(self, url: str, keys: Keys) -> None:
        """A subscriber gets existing entries, then new ones soon after they commit."""
        async with opened_ledger(url, keys) as ledger:
            received: list[int] = []
            done = asyncio.Event()

            async def follow() -> None:
                async for entry in ledger.subscribe(after=2, poll=5.0):
                    received.append(entry.position)
                    if entry.position == 5:
                        done.set()
                        return

            task = asyncio.create_task(follow())
            await asyncio.sleep(0.2)
            assert received == [2, 3]
            await cast(ledger, keys, 1)
            await cast(ledger, keys, 2)
            await asyncio.wait_for(done.wait(), 2.0)
            await task
            assert received == [2, 3, 4, 5]

    # 7. Reopening.

    async def test_log_reopens_and_continues(self, url: str, keys: Keys) -> None:
        """Closing and reopening keeps entries, keys, tree and checkpoints, and appends go on."""
        async with opened_ledger(url, keys) as ledger:
            await asyncio.gather(*(cast(ledger, keys, n) for n in range(10)))
            root = await ledger.root(await ledger.size())
        async with opened_ledger(url, keys) as ledger:
            assert await ledger.root(14) == root
            await cast(ledger, keys, 99)
            checkpoint = await ledger.verified_checkpoint()
            assert checkpoint is not None and checkpoint.size == 15

    # Witness cosignatures (serve --witness-policy).

    async def test_cosigned_checkpoints_keep_the_largest_and_the_latest_note(
        self, url: str
    ) -> None:
        """The largest cosigned size is published; a note saved again at a size replaces it;
        logs are kept apart; the table is there on a database made before it existed."""
        store = open_store(url)
        await store.open()
        try:
            assert await store.latest_cosigned_checkpoint("e1") is None
            await store.save_cosigned_checkpoint("e1", 5, "five\n")
            await store.save_cosigned_checkpoint("e1", 9, "nine\n")
            await store.save_cosigned_checkpoint("e1", 7, "seven\n")
            await store.save_cosigned_checkpoint("e2", 1, "other\n")
            latest = await store.latest_cosigned_checkpoint("e1")
            assert latest is not None and (latest.size, latest.note) == (9, "nine\n")
            await store.save_cosigned_checkpoint("e1", 9, "nine, cosigned by more\n")
            latest = await store.latest_cosigned_checkpoint("e1")
            assert latest is not None and latest.note == "nine, cosigned by more\n"
        finally:
            await store.close()
        reopened = open_store(url)
        await reopened.open()  # CREATE ... IF NOT EXISTS on an existing schema
        try:
            latest = await reopened.latest_cosigned_checkpoint("e2")
            assert latest is not None and latest.note == "other\n"
        finally:
            await reopened.close()
