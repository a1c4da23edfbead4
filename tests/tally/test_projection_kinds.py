"""The tally of cumulative and ordinal ballots: votes and scores per project, the same on the
fast path (bytes) and the straightforward one (``json.loads``), through voids, snapshots and an
older snapshot format."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.projection import Tally, voter_name
from tests.tally.test_projection_fast import entry, run, run_many, state
from tests.votes.factories import token, zhytomyr
from votes.election import Election

RANK_TOP = 3  # max_picks of the ordinal category: the first ranked scores 3, then 2, 1
LARGE = [f"L0{i}" for i in range(1, 6)]
SMALL = [f"S0{i}" for i in range(1, 6)]


def kinds_election(*, double_entry: bool = False, ordinal: bool = True) -> Election:
    """The example election with a cumulative category (large) and an ordinal one (small)."""
    base = zhytomyr()
    large, small = base.categories
    categories = (
        dataclasses.replace(
            large, ballot="cumulative", max_picks=40, max_points=3, max_total_points=7
        ),
        dataclasses.replace(small, ballot="ordinal", max_picks=RANK_TOP) if ordinal else small,
    )
    return dataclasses.replace(base, categories=categories, double_entry=double_entry)


def ballot(n: int, voter: int, points: dict[str, int], ranking: list[str]) -> dict[str, Any]:
    """A ballot payload with points, a ranking, or both."""
    payload: dict[str, Any] = {
        "type": "ballot",
        "election": "zhytomyr-2018",
        "voter": token(voter),
        "cast_at": "2018-10-03T10:15:00+03:00",
        "nonce": f"n{n}",
    }
    if points:
        payload["points"] = points
    if ranking:
        payload["ranking"] = ranking
    return payload


def void(n: int, target: int) -> bytes:
    """A supervisor's void of the entry at ``target``."""
    payload = {
        "type": "void",
        "election": "zhytomyr-2018",
        "entry": target,
        "reason": "x",
        "nonce": f"n{n}",
    }
    return entry(payload, key="supervisor.main+44444444")


def tallies(election: Election, entries: list[bytes]) -> Tally:
    """The entries through the fast tally (one by one and in a batch) and the straightforward
    one: all three the same; the fast one returned."""
    fast, many, slow = Tally(election), Tally(election), Tally(election, fast=False)
    for tally, feed in ((fast, run), (many, run_many), (slow, run)):
        assert asyncio.run(feed(tally, entries)) is None
    assert state(fast) == state(many) == state(slow)
    return fast


def test_scores_by_kind() -> None:
    """Points add up on a cumulative category; a ranking scores 3, 2, 1 by position; votes
    count the voters who chose each project."""
    entries = [
        entry(ballot(0, 1, {"L01": 3, "L02": 1}, ["S02", "S01"])),
        entry(ballot(1, 2, {"L01": 2}, ["S01", "S03", "S02"])),
        entry(ballot(2, 3, {}, ["S03"])),
    ]
    tally = tallies(kinds_election(), entries)
    # Canonical point and ranking ballots take the fast path.
    assert all(Tally(kinds_election())._apply_fast(data) for data in entries)
    assert +tally.votes == Counter({"L01": 2, "L02": 1, "S01": 2, "S02": 2, "S03": 2})
    assert +tally.scores == Counter({"L01": 5, "L02": 1, "S01": 5, "S02": 4, "S03": 5})


def test_approval_scores_are_votes() -> None:
    """On approval ballots a project's score is its number of votes."""
    payload = ballot(0, 1, {}, [])
    payload["projects"] = ["L01", "S02"]
    tally = tallies(zhytomyr(), [entry(payload)])
    assert tally.scores == tally.votes == Counter({"L01": 1, "S02": 1})


def test_repeated_point_keys_read_as_json_does() -> None:
    """An object with a repeated key (not canonical, but it matches the fast path's shape) is
    read as json.loads reads it: the last value counts."""
    data = entry(ballot(0, 1, {"L01": 2}, []))
    doubled = data.replace(b'"points":{"L01":2}', b'"points":{"L01":2,"L01":3}')
    assert json.loads(doubled)["envelope"]["payload"]["points"] == {"L01": 3}
    tally = tallies(kinds_election(), [doubled])
    assert +tally.scores == Counter({"L01": 3})
    assert +tally.votes == Counter({"L01": 1})


def test_voiding_takes_the_score_back() -> None:
    """A voided ballot's points and positional scores leave the totals."""
    entries = [
        entry(ballot(0, 1, {"L01": 3}, ["S01", "S02"])),
        entry(ballot(1, 2, {"L01": 1}, [])),
        void(2, 0),
    ]
    tally = tallies(kinds_election(), entries)
    assert +tally.scores == Counter({"L01": 1})
    assert +tally.votes == Counter({"L01": 1})


points = st.dictionaries(st.sampled_from(LARGE), st.integers(1, 3), max_size=3)
rankings = st.lists(st.sampled_from(SMALL), unique=True, max_size=RANK_TOP)
operation = st.one_of(
    st.tuples(
        st.just("ballot"),
        st.integers(0, 5),
        points,
        rankings,
        st.sampled_from(["canonical", "canonical", "spaced", "ascii"]),
        st.sampled_from(["ballot", "paper-ballot"]),
    ),
    st.tuples(st.just("void"), st.integers(0, 20)),
)


@settings(max_examples=200, deadline=None)
@given(st.booleans(), st.lists(operation, max_size=20))
def test_scores_are_the_sum_over_counted_ballots(
    double_entry: bool, operations: list[tuple[Any, ...]]
) -> None:
    """Any mix of point and ranking ballots (canonical or not, online or paper) and voids: the
    fast and straightforward tallies agree, and without double entry every project's votes and
    score are the sum over the ballots not voided."""
    entries: list[bytes] = []
    payloads: dict[int, dict[str, Any]] = {}
    voided: set[int] = set()
    for n, op in enumerate(operations):
        if op[0] == "void":
            target = min(op[1], max(len(entries) - 1, 0))
            entries.append(void(n, target))
            voided.add(target)
            continue
        _, voter, given_points, ranking, style, kind = op
        payload = ballot(n, voter, given_points, ranking)
        payload["type"] = kind
        if kind == "paper-ballot":
            payload["polling_point"] = "city-council"
        payloads[len(entries)] = payload
        key = "clerk.city-council.olena+11111111" if n % 2 else "site.e-dem+0a1b2c3d"
        entries.append(entry(payload, style=style, key=key))
    tally = tallies(kinds_election(double_entry=double_entry), entries)
    if double_entry:
        return
    votes: Counter[str] = Counter()
    scores: Counter[str] = Counter()
    for position, payload in payloads.items():
        if position in voided:
            continue
        for project, n in payload.get("points", {}).items():
            votes[project] += 1
            scores[project] += n
        for rank, project in enumerate(payload.get("ranking", [])):
            votes[project] += 1
            scores[project] += RANK_TOP - rank
    assert +tally.votes == votes
    assert +tally.scores == scores


def test_snapshot_keeps_the_scores() -> None:
    """A restored snapshot has the scores and goes on counting them."""
    election = kinds_election()
    tally = tallies(election, [entry(ballot(0, 1, {"L01": 3}, ["S01"]))])
    restored = Tally.restore(election, tally.snapshot())
    assert restored.scores == tally.scores
    asyncio.run(
        restored.apply(1, entry(ballot(1, 2, {"L01": 2}, [])), lambda _: asyncio.sleep(0, {}))
    )
    assert +restored.scores == Counter({"L01": 5, "S01": 3})


def older_snapshot(tally: Tally) -> bytes:
    """``tally``'s snapshot as format 1 (before ballot kinds) wrote it: no surplus."""
    state = json.loads(tally.snapshot())
    state["format"] = 1
    state["voters"] = {voter_name(voter): n for voter, n in tally._voters.items()}
    del state["surplus"]
    return json.dumps(state).encode()


def test_older_snapshot_restores_where_scores_are_votes() -> None:
    """A format 1 snapshot of an approval election restores, with its scores its votes."""
    election = zhytomyr()
    payload = ballot(0, 1, {}, [])
    payload["projects"] = ["L01"]
    tally = tallies(election, [entry(payload)])
    restored = Tally.restore(election, older_snapshot(tally))
    assert restored.scores == restored.votes == tally.votes


def test_older_snapshot_is_refused_where_scores_are_not_votes() -> None:
    """A format 1 snapshot under a definition with cumulative or ordinal categories is refused
    (the service then rebuilds from the log) rather than read with scores missing."""
    tally = tallies(kinds_election(), [])
    with pytest.raises(ValueError, match="format 1"):
        Tally.restore(kinds_election(), older_snapshot(tally))
