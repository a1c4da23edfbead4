"""Results of cumulative, ordinal and knapsack categories: per project votes and score as the
rules count them, winners by score (greedy) and by equal shares with the kind's satisfaction,
each against pabutools; the CSV carries the score."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
from collections import Counter
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally.projection import Tally
from tally.results import results_csv, results_document
from tally.winners import Candidate
from tests.tally.oracle import Election as Oracle
from tests.tally.test_projection import replay
from tests.votes.factories import CLERK_OLENA, Log, ballot, token, void, zhytomyr
from votes.election import AllocationMethod, AllocationRule, Election
from votes.errors import VoteRefusedError
from votes.rules import voter_state

RANK_TOP = 3
LARGE = [f"L0{i}" for i in range(1, 6)]
SMALL = [f"S0{i}" for i in range(1, 6)]
VOTERS = 8


def kinds_election(method: str, *, large: str = "cumulative", min_votes: int = 0) -> Election:
    """The example election with the large category cumulative (or knapsack) and the small one
    ordinal, each budget about two of the first five projects' costs (so choices matter)."""
    base = zhytomyr()
    first, second = base.categories
    cost = {p.id: p.cost for p in base.projects}
    large_budget = cost["L01"] + cost["L03"]
    limits: dict[str, Any] = {"ballot": large, "budget": large_budget, "max_picks": 40}
    if large == "cumulative":
        limits |= {"max_points": 3, "max_total_points": 5}
    else:
        limits |= {"max_total_cost": large_budget}
    ordinal: dict[str, Any] = {"ballot": "ordinal", "budget": cost["S01"] + cost["S02"]}
    categories = (
        dataclasses.replace(first, **limits),
        dataclasses.replace(second, max_picks=RANK_TOP, **ordinal),
    )
    rule = AllocationRule(cast("AllocationMethod", method), min_votes=min_votes)
    return dataclasses.replace(base, categories=categories, rule=rule)


def payload(
    voter: int, large: str, chosen: list[str], points: list[int], ranking: list[str]
) -> Any:
    """A ballot choosing ``chosen`` large projects (with ``points`` when cumulative) and ranking
    small ones; None if it chooses nothing."""
    body = ballot(token(voter), [])
    del body["projects"]
    if chosen and large == "cumulative":
        body["points"] = dict(zip(chosen, points, strict=False))
    elif chosen:
        body["projects"] = chosen
    if ranking:
        body["ranking"] = ranking
    return body if len(body) > 5 else None


choices = st.tuples(
    st.integers(0, VOTERS - 1),
    st.lists(st.sampled_from(LARGE), unique=True, max_size=3),
    st.lists(st.integers(1, 3), min_size=3, max_size=3),
    st.lists(st.sampled_from(SMALL), unique=True, max_size=RANK_TOP),
    st.booleans(),
)
operations = st.lists(st.one_of(choices, choices, st.tuples(st.integers(1, 20))), max_size=16)


def counted(
    method: str, large: str, ops: list[tuple[Any, ...]], min_votes: int = 0
) -> tuple[Log, dict[str, Any]]:
    """The ballots through the rules into a log, the log through the tally into results (with
    each voter's counted choices, as the service reads them for equal shares)."""
    log = Log(kinds_election(method, large=large, min_votes=min_votes))
    for op in ops:
        try:
            if len(op) == 1:
                log.submit_void(void(op[0]))
                continue
            voter, chosen, points, ranking, paper = op
            body = payload(voter, large, chosen, points, ranking)
            if body is None:
                continue
            if paper:
                body = {**body, "type": "paper-ballot", "polling_point": "city-council"}
                log.submit_ballot(body, key=CLERK_OLENA)
            else:
                log.submit_ballot(body)
        except VoteRefusedError:
            pass
    election = log.election
    tally = Tally(election)
    asyncio.run(replay(log, tally))
    approvals = []
    for n in range(VOTERS):
        state = voter_state(election, log.history_of(token(n)), token(n))
        if state.ballots:
            mine: Counter[str] = Counter()
            for b in state.ballots:
                mine.update(b.scores(election))
            approvals.append(dict(mine))
    return log, results_document(tally, len(log.entries), b"\0" * 32, approvals)


def rows(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every published project row, by id."""
    return {p["id"]: p for c in document["categories"] for p in c["projects"]}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["greedy", "equal-shares"]),
    large=st.sampled_from(["cumulative", "knapsack"]),
    ops=operations,
)
def test_votes_scores_and_winners_match_the_rules_and_pabutools(
    method: str, large: str, ops: list[tuple[Any, ...]]
) -> None:
    """votes = voters who chose the project, score = the sum of their ballots' scores
    (votes.rules), and each category's winners are what pabutools funds: greedy by score, or
    equal shares with cost satisfaction (knapsack), points (cumulative) or positional scores
    k, k-1, ... (ordinal), completed greedily by score."""
    log, document = counted(method, large, ops)
    election = log.election
    votes: Counter[str] = Counter()
    scores: Counter[str] = Counter()
    ballots: dict[str, list[Any]] = {c.id: [] for c in election.categories}
    for n in range(VOTERS):
        state = voter_state(election, log.history_of(token(n)), token(n))
        marks = state.counted_marks(election)
        for b in state.ballots:
            votes.update(b.projects)
            scores.update(b.scores(election))
        for category in election.categories:
            mine = marks[category.id]
            if not mine:
                continue
            if category.ballot == "ordinal":
                ballots[category.id].append(sorted(mine, key=mine.__getitem__))
            elif category.ballot == "cumulative":
                ballots[category.id].append(dict(mine))
            else:
                ballots[category.id].append(list(mine))
    published = rows(document)
    assert {p: (r["votes"], r["score"]) for p, r in published.items()} == {
        p.id: (votes[p.id], scores[p.id]) for p in election.projects
    }
    for item in document["categories"]:
        category = next(c for c in election.categories if c.id == item["id"])
        assert item["ballot"] == category.ballot
        candidates = [
            Candidate(p.id, p.cost, votes[p.id], scores[p.id])
            for p in election.projects_in(category.id)
        ]
        oracle = Oracle(
            candidates,
            category.budget,
            ballots[category.id],
            satisfaction="cost" if category.ballot == "knapsack" else "points",
            top=RANK_TOP if category.ballot == "ordinal" else None,
        )
        if method == "greedy":
            # The rule breaks ties by cost then lottery; pabutools by cost then id: compare
            # where no tie changed the outcome.
            if not item["ties"]:
                assert frozenset(item["funded"]) == oracle.greedy(("cost-ascending",))
        elif not item["ties"]:
            assert frozenset(item["funded"]) == oracle.equal_shares("greedy", increment=1)
        for tie in item["ties"]:
            assert ("votes" in tie) is (category.ballot == "knapsack")
            assert all(published[p]["score"] == tie["score"] for p in tie["projects"])


def test_ranked_first_outscores_a_broader_project() -> None:
    """Ordinal: three voters ranking S02 first outscore four ranking S01 last (3 x 3 > 4 x 1 +
    0), so greedy by score funds S02 first; votes still count voters."""
    ops: list[tuple[Any, ...]] = [
        (n, [], [1, 1, 1], ["S02", "S03", "S01"] if n < 3 else ["S04", "S05", "S01"], False)
        for n in range(4)
    ]
    ops[3] = (3, [], [1, 1, 1], ["S03", "S04", "S01"], False)
    _, document = counted("greedy", "cumulative", ops)
    published = rows(document)
    assert (published["S02"]["votes"], published["S02"]["score"]) == (3, 9)
    assert (published["S01"]["votes"], published["S01"]["score"]) == (4, 4)
    small = next(c for c in document["categories"] if c["id"] == "small")
    assert small["projects"][0]["id"] == "S02"


def test_threshold_is_on_the_score() -> None:
    """min_votes keeps out a project scoring below it, whatever its number of voters: one
    voter's 3 points pass a threshold of 3 that two voters' single points do not."""
    ops: list[tuple[Any, ...]] = [
        (0, ["L01"], [3, 1, 1], [], False),
        (1, ["L02"], [1, 1, 1], [], False),
        (2, ["L02"], [1, 1, 1], [], False),
    ]
    _, document = counted("greedy", "cumulative", ops, min_votes=3)
    large = next(c for c in document["categories"] if c["id"] == "large")
    assert large["funded"] == ["L01"]
    assert rows(document)["L02"]["votes"] == 2


def test_csv_carries_score_after_votes() -> None:
    """The CSV has a score column beside votes, with the published figures."""
    ops: list[tuple[Any, ...]] = [(0, ["L01", "L02"], [3, 2, 1], ["S02", "S01"], False)]
    _, document = counted("greedy", "cumulative", ops)
    table = list(csv.DictReader(io.StringIO(results_csv(document))))
    header = next(csv.reader(io.StringIO(results_csv(document))))
    assert header[3:5] == ["votes", "score"]
    by_id = {row["project"]: row for row in table}
    assert (by_id["L01"]["votes"], by_id["L01"]["score"]) == ("1", "3")
    assert (by_id["S02"]["votes"], by_id["S02"]["score"]) == ("1", "3")
    assert (by_id["S01"]["votes"], by_id["S01"]["score"]) == ("1", "2")
