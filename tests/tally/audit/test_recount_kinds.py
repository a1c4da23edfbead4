"""The auditor's recount of cumulative, knapsack and ordinal categories agrees with the published
results (votes, scores, winners under every rule), and a published score that is off is named."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally.audit.ballots import parse_definition
from tally.audit.recount import compare_results, recount
from tests.tally.test_results_kinds import VOTERS, counted, operations
from tests.votes.factories import Log, token
from votes.election import election_to_dict
from votes.rules import voter_state

ROOT = b"\1" * 32


def audited(log: Log, document: dict[str, Any]) -> tuple[Any, Any]:
    """The auditor's definition and recount of the log's counted ballots, as the auditor's own
    rules give them: per voter, per counted ballot, what it adds to each project's score."""
    election = log.election
    definition = parse_definition(election_to_dict(election))
    ballots = []
    for n in range(VOTERS):
        state = voter_state(election, log.history_of(token(n)), token(n))
        if state.ballots:
            ballots.append(tuple(b.scores(election) for b in state.ballots))
    return definition, recount(definition, ballots, 0, document["log"]["size"], ROOT)


def publish(document: dict[str, Any]) -> dict[str, Any]:
    """The document as published under the recount's root."""
    published = copy.deepcopy(document)
    published["log"]["root"] = ROOT.hex()
    return published


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["greedy", "greedy-no-skip", "equal-shares"]),
    large=st.sampled_from(["cumulative", "knapsack"]),
    min_votes=st.sampled_from([0, 0, 2, 4]),
    ops=operations,
)
def test_recount_agrees_with_the_results(
    method: str, large: str, min_votes: int, ops: list[tuple[Any, ...]]
) -> None:
    """Votes, scores and each category's funded projects: the recount's are the published."""
    log, document = counted(method, large, ops, min_votes)
    definition, mine = audited(log, document)
    rows = {p["id"]: p for c in document["categories"] for p in c["projects"]}
    assert mine.votes == {p: r["votes"] for p, r in rows.items()}
    assert mine.scores == {p: r["score"] for p, r in rows.items()}
    assert mine.funded == {c["id"]: c["funded"] for c in document["categories"]}
    assert compare_results(publish(document), log.election.id, definition, mine) == []


def test_a_wrong_score_is_named() -> None:
    """A published score that is not the recount's is a violation naming the project; a missing
    score is one too where the score is not the votes."""
    ops: list[tuple[Any, ...]] = [(0, ["L01"], [3, 1, 1], ["S02", "S01"], False)]
    log, document = counted("greedy", "cumulative", ops)
    definition, mine = audited(log, document)
    published = publish(document)
    rows = {p["id"]: p for c in published["categories"] for p in c["projects"]}
    rows["L01"]["score"] = 1
    del rows["S02"]["score"]
    found = compare_results(published, log.election.id, definition, mine)
    assert Counter(v.check for v in found) == Counter({"score:L01": 1, "score:S02": 1})
