"""The live tally agrees with the rules' own definition of what counts, and rebuilding it from
position 0 gives exactly the incremental result."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.projection import SavePoint, Tally, voter_name
from tests.votes.factories import (
    CLERK_OLENA,
    CLERK_PETRO,
    Log,
    ballot,
    paper_ballot,
    spoiled_ballot,
    token,
    void,
    zhytomyr_with,
)
from votes.election import Election
from votes.errors import VoteRefusedError
from votes.rules import voter_state

PROJECTS = ["L01", "L02", "L03", "S01", "S02", "S03"]

operation = st.one_of(
    st.tuples(
        st.just("online"),
        st.integers(0, 4),
        st.lists(st.sampled_from(PROJECTS), min_size=1, max_size=3, unique=True),
    ),
    st.tuples(
        st.just("paper"),
        st.integers(0, 4),
        st.lists(st.sampled_from(PROJECTS), min_size=1, max_size=3, unique=True),
        st.sampled_from([CLERK_OLENA, CLERK_PETRO]),
    ),
    st.tuples(st.just("void"), st.integers(1, 40)),
    st.tuples(st.just("spoiled"), st.integers(0, 4)),
)


def build(double_entry: bool, operations: list[tuple[Any, ...]]) -> Log:
    log = Log(zhytomyr_with(double_entry=double_entry))
    for op in operations:
        try:
            if op[0] == "online":
                log.submit_ballot(ballot(token(op[1]), op[2]))
            elif op[0] == "paper":
                log.submit_ballot(paper_ballot(token(op[1]), op[2]), key=op[3])
            elif op[0] == "void":
                log.submit_void(void(op[1]))
            else:
                log.submit_spoiled(spoiled_ballot(voter=token(op[1])))
        except VoteRefusedError:
            pass
    return log


def entry_bytes(log: Log, position: int) -> bytes:
    entry, tags = log.entries[position]
    obj = {
        "envelope": {"payload": entry.payload, "key": entry.key, "sig": ""},
        "recorded_at": "2018-10-03T07:15:00.000000Z",
        "tags": list(tags),
        "type": entry.type,
    }
    return json.dumps(obj).encode()


async def replay(log: Log, tally: Tally) -> None:
    async def fetch(position: int) -> dict[str, Any]:
        return dict(json.loads(entry_bytes(log, position)))

    for position in range(tally.position, len(log.entries)):
        await tally.apply(position, entry_bytes(log, position), fetch)


@settings(max_examples=150, deadline=None)
@given(st.booleans(), st.lists(operation, max_size=40), st.integers(0, 40))
def test_tally_equals_the_rules_recount(
    double_entry: bool, operations: list[tuple[Any, ...]], cut: int
) -> None:
    """Per-project totals and turnout equal a recount by votes.rules.voter_state, whether the
    tally followed the log in two steps or was rebuilt from position 0 in one."""
    log = build(double_entry, operations)
    election = log.election
    incremental = Tally(election)
    partial = Log(election, entries=log.entries[: max(1, min(cut, len(log.entries)))])
    asyncio.run(replay(partial, incremental))
    asyncio.run(replay(log, incremental))
    rebuilt = Tally(election)
    asyncio.run(replay(log, rebuilt))

    expected: Counter[str] = Counter()
    voters = 0
    for n in range(5):
        state = voter_state(election, log.history_of(token(n)), token(n))
        for counted in state.ballots:
            expected.update(counted.projects)
        voters += bool(state.ballots)
    for tally in (incremental, rebuilt):
        assert +tally.votes == +expected
        assert tally.voters == voters
    assert incremental.by_channel == rebuilt.by_channel
    assert incremental.by_day == rebuilt.by_day
    assert incremental.spoiled == rebuilt.spoiled


def views(tally: Tally) -> dict[str, Any]:
    """Everything a tally shows, for comparing two of them; the voters per channel, kept as
    ballots are applied, must also be what counting every voter's channels gives."""
    recounted = Counter(c for channels in tally.voter_channels.values() for c in channels)
    assert tally.voters_by_channel() == {"online": recounted["online"], "paper": recounted["paper"]}
    return {
        "position": tally.position,
        "entries": tally.entries,
        "votes": +tally.votes,
        "by_channel": +tally.by_channel,
        "by_day": +tally.by_day,
        "by_point": +tally.by_point,
        "ballots": +tally.ballots,
        "voter_ballots": tally.voter_ballots,
        "voter_channels": tally.voter_channels,
        "voters_by_channel": tally.voters_by_channel(),
        "spoiled": tally.spoiled,
        "voided": tally.voided,
    }


class SavedView:
    """What a store keeps of the tally, as :meth:`ledger.store.Store.save_projection` writes it:
    one row (position, state) and its items, the row and items written together or not at all,
    and only at a later position than the stored one (tests/ledger/conformance.py checks the
    stores do this)."""

    def __init__(self) -> None:
        self.position = -1
        self.state: bytes | None = None
        self.items: dict[str, int] = {}

    def save(self, point: SavePoint) -> bool:
        if point.position <= self.position:
            return False
        if point.replace:
            self.items.clear()
        self.position, self.state = point.position, point.state
        self.items.update(point.items())
        return True

    def restored(self, election: Election) -> Tally:
        """The tally a service starts from (a fresh one when nothing is saved)."""
        if self.state is None:
            return Tally(election)
        return Tally.restore(election, self.state, dict(self.items))


def save(tally: Tally, view: SavedView, *, fails: bool) -> None:
    """Save as api/service.py does: a failed save hands its voters back; a save refused for
    its position too when it had to replace the items."""
    point = tally.save_point()
    if fails or (not view.save(point) and point.replace):
        tally.unsaved(point)


step = st.tuples(
    st.integers(0, 1),  # which of two servers following the log
    st.sampled_from(["apply", "apply", "save", "save", "failed save", "restart"]),
    st.integers(1, 8),  # entries to apply
)


@settings(max_examples=200, deadline=None)
@given(st.booleans(), st.lists(operation, max_size=40), st.lists(step, max_size=25))
def test_incremental_saves_and_restores_give_the_tally_of_the_whole_log(
    double_entry: bool, operations: list[tuple[Any, ...]], steps: list[tuple[int, str, int]]
) -> None:
    """Two servers follow the same log at their own pace and save into one view (only the
    voters changed since their last save, some saves failing, the one behind refused), and
    restart from the saved view at random points. Every restart gives exactly the tally of the
    log up to the saved position, and at the end the saved view and both servers are the tally
    of the whole log applied at once: nothing lost, counted twice or resurrected (voids). The
    channels per voter are those of their counted ballots, as votes.rules says."""
    log = build(double_entry, operations)
    election = log.election
    straight = Tally(election)
    asyncio.run(replay(log, straight))

    view = SavedView()
    servers = [Tally(election), Tally(election)]
    for server, action, n in steps:
        tally = servers[server]
        if action == "apply":
            upto = min(len(log.entries), tally.position + n)
            asyncio.run(replay(Log(election, entries=log.entries[:upto]), tally))
        elif action in ("save", "failed save"):
            save(tally, view, fails=action == "failed save")
        else:
            tally = servers[server] = view.restored(election)
            prefix = Tally(election)
            if tally.position:  # Log() of no entries starts with the election's
                asyncio.run(replay(Log(election, entries=log.entries[: tally.position]), prefix))
            assert views(tally) == views(prefix)
    for tally in servers:
        asyncio.run(replay(log, tally))
        save(tally, view, fails=False)
        assert views(tally) == views(straight)
    restored = view.restored(election)
    assert restored.position == len(log.entries)
    assert views(restored) == views(straight)

    channels = {}
    for n in range(5):
        state = voter_state(election, log.history_of(token(n)), token(n))
        if state.ballots:
            channels[token(n)] = {b.channel for b in state.ballots}
    assert straight.voter_channels == channels


def test_a_voided_voter_is_saved_at_zero_and_not_restored() -> None:
    """A voter whose only ballot is voided after a save is saved with a count of 0, which
    restores as no voter at all."""
    log = Log(zhytomyr_with(double_entry=False))
    log.submit_ballot(ballot(token(1), ["L01"]))
    log.submit_ballot(ballot(token(2), ["L02"]))
    tally, view = Tally(log.election), SavedView()
    asyncio.run(replay(log, tally))
    save(tally, view, fails=False)
    assert view.items == {token(1): 1, token(2): 1}
    log.submit_void(void(len(log.entries) - 2))
    asyncio.run(replay(log, tally))
    point = tally.save_point()
    assert point.items() == {token(1): 0} and not point.replace
    assert view.save(point)
    restored = view.restored(log.election)
    assert restored.voter_ballots == {token(2): 1}
    assert restored.voters == 1 and views(restored) == views(tally)


def test_a_failed_save_loses_nothing() -> None:
    """The voters of a save that failed are written by the next one, at their counts then,
    with those changed meanwhile."""
    log = Log(zhytomyr_with(double_entry=False))
    log.submit_ballot(ballot(token(1), ["L01"]))
    tally, view = Tally(log.election), SavedView()
    asyncio.run(replay(log, tally))
    save(tally, view, fails=False)
    log.submit_ballot(paper_ballot(token(2), ["S01"]), key=CLERK_OLENA)
    asyncio.run(replay(log, tally))
    failed = tally.save_point()
    assert failed.items() == {token(2): 1 << 32}
    assert tally.unsaved_voters == 0
    tally.unsaved(failed)
    log.submit_ballot(ballot(token(3), ["S02"]))
    asyncio.run(replay(log, tally))
    point = tally.save_point()
    assert point.items() == {token(2): 1 << 32, token(3): 1}
    assert view.save(point)
    assert views(view.restored(log.election)) == views(tally)


def older_format(tally: Tally, version: int = 2) -> bytes:
    """``tally``'s snapshot as format 2 wrote it: the voters inside."""
    state = json.loads(tally.snapshot())
    state["format"] = version
    state["voters"] = {voter_name(voter): n for voter, n in tally._voters.items()}
    return json.dumps(state).encode()


def test_a_format_2_snapshot_restores_and_its_first_save_writes_every_voter() -> None:
    """A snapshot with its voters inside (format 2) restores whatever items are stored (those
    are ignored), and its first save writes every voter and replaces the stored items, which a
    server of the format 2 era may have left behind."""
    log = Log(zhytomyr_with(double_entry=False))
    for n in range(4):
        log.submit_ballot(ballot(token(n), ["L01"]))
    log.submit_void(void(1))  # token(0)'s ballot (position 0 is the election)
    tally = Tally(log.election)
    asyncio.run(replay(log, tally))
    view = SavedView()
    view.position, view.state = tally.position, older_format(tally)
    view.items = {token(0): 1, token(9): 1}  # stale: not of this row
    restored = view.restored(log.election)
    assert views(restored) == views(tally)
    assert restored.unsaved_voters == 3
    log.submit_ballot(ballot(token(4), ["L02"]))
    asyncio.run(replay(log, restored))
    point = restored.save_point()
    assert point.replace and set(point.items()) == {token(n) for n in (1, 2, 3, 4)}
    assert json.loads(point.state)["format"] == 3 and "voters" not in json.loads(point.state)
    assert view.save(point)
    assert view.items == {token(n): 1 for n in (1, 2, 3, 4)}
    again = view.restored(log.election)
    assert views(again) == views(restored)
    assert not again.save_point().replace


def test_voiding_the_online_ballot_leaves_the_voter_on_paper_only() -> None:
    """A voter with an online and a paper ballot whose online ballot is voided is turnout on
    paper only."""
    log = Log(zhytomyr_with(double_entry=False))
    log.submit_ballot(ballot(token(1), ["L01"]))
    log.submit_ballot(paper_ballot(token(1), ["S01"]), key=CLERK_OLENA)
    log.submit_void(void(len(log.entries) - 2))
    tally = Tally(log.election)
    asyncio.run(replay(log, tally))
    assert tally.voters_by_channel() == {"online": 0, "paper": 1}
    assert tally.voter_channels == {token(1): {"paper"}}
    assert +tally.votes == Counter({"S01": 1})


def test_restore_refuses_what_is_not_a_snapshot_of_this_election() -> None:
    election = zhytomyr_with(double_entry=False)
    other = zhytomyr_with(double_entry=False, id="another-election")
    snapshot = Tally(election).snapshot()
    assert Tally.restore(election, snapshot).position == 0
    for bad in (
        b"not json",
        b"[]",
        snapshot.replace(b'"format":3', b'"format":99'),
        snapshot.replace(b'"format":3', b'"format":2'),  # format 2 has its voters inside
        snapshot.replace(b'"surplus":{}', b'"surplus":[]'),
        snapshot.replace(b'"position":0', b'"position":-3'),
        older_format(Tally(election)).replace(b'"voters": {}', b'"voters": 7'),
    ):
        with pytest.raises(ValueError):
            Tally.restore(election, bad)
    with pytest.raises(ValueError):
        Tally.restore(election, snapshot, {token(1): "one"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="another-election"):
        Tally.restore(other, snapshot)
