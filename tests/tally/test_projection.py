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

from tally.projection import Tally
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
    """Everything a tally shows, for comparing two of them."""
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


@settings(max_examples=150, deadline=None)
@given(st.booleans(), st.lists(operation, max_size=40), st.data())
def test_a_saved_and_restored_tally_continues_exactly(
    double_entry: bool, operations: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    """Saving the view at any position (several times over) and continuing from the restored
    copy gives exactly the tally that followed the log without stopping: every entry counted
    once. The channels per voter are those of their counted ballots, as votes.rules says."""
    log = build(double_entry, operations)
    election = log.election
    straight = Tally(election)
    asyncio.run(replay(log, straight))

    cuts = sorted(data.draw(st.lists(st.integers(1, len(log.entries)), max_size=3)))
    resumed = Tally(election)
    for cut in [*cuts, len(log.entries)]:
        asyncio.run(replay(Log(election, entries=log.entries[:cut]), resumed))
        resumed = Tally.restore(election, resumed.snapshot())
        assert resumed.position == cut
    assert views(resumed) == views(straight)

    channels = {}
    for n in range(5):
        state = voter_state(election, log.history_of(token(n)), token(n))
        if state.ballots:
            channels[token(n)] = {b.channel for b in state.ballots}
    assert straight.voter_channels == channels


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
        snapshot.replace(b'"format":2', b'"format":99'),
        snapshot.replace(b'"surplus":{}', b'"surplus":[]'),
        snapshot.replace(b'"position":0', b'"position":-3'),
        snapshot.replace(b'"voters":{}', b'"voters":7'),
    ):
        with pytest.raises(ValueError):
            Tally.restore(election, bad)
    with pytest.raises(ValueError, match="another-election"):
        Tally.restore(other, snapshot)
