"""Mirrors tally/winners.py, tally/results.py; tests/tally/audit/test_differential.py proves it.

Step 6: totals and winners recomputed from the replayed log, and compared with the results
the server published.

Each project has ``votes`` (the counted ballots choosing it: one per voter, as the rules allow a
voter to choose a project once) and a ``score``, the sum of what each counted ballot gives it:
1 on approval and knapsack ballots, its points on cumulative ones, ``max_picks - rank + 1`` on
ordinal ones (the auditor's ``ballot_scores`` in tally/audit/ballots.py).

Winners mirror ``tally/winners.py`` (read there, re-implemented here), per category of the
election's ``rule``:

- ``greedy``: projects ranked by score (descending), ties broken by the rule's ``tie_break``
  criteria in order and finally by id; projects scoring less than ``min_votes`` are not
  eligible; funded in rank order while the money lasts, a project that does not fit is skipped;
- ``greedy-no-skip``: the same, but funding stops at the first project that does not fit;
- ``equal-shares``: the Method of Equal Shares with exact fractions, each voter's share the
  category budget over its voters (those with a counted project in it), a voter's utility from
  a project its cost (approval, knapsack) or the score the voter gave it (cumulative, ordinal);
  then completed greedily: the money left funds the remaining eligible projects by score,
  skipping what does not fit (as the service publishes it; pabutools' "add one" completion
  takes minutes on a city-sized election).

Tie-break criteria: ``cost-ascending``, ``cost-descending``, ``lottery`` (the smaller
``SHA-256(f"{seed}:{project_id}")`` hex digest first).
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import chain
from typing import Any

from tally.audit.ballots import Definition
from tally.audit.errors import Violation

__all__ = ["SCORED_KINDS", "Ballot", "Recount", "compare_results", "recount"]

Ballot = tuple[str, ...] | Mapping[str, int]
"""A counted ballot as the recount takes it: its projects (each scoring 1), or what it adds to
each of its projects' score (``BallotRules.counted_scores``)."""

SCORED_KINDS = ("cumulative", "ordinal")
"""The kinds whose score is not the vote count; equal shares gives their voters the score."""


@dataclass(frozen=True, slots=True)
class _Candidate:
    id: str
    cost: int
    votes: int
    score: int


def lottery_ticket(seed: str, project_id: str) -> str:
    """The published lottery key of a project; the smaller ticket wins a ``lottery`` tie."""
    return hashlib.sha256(f"{seed}:{project_id}".encode()).hexdigest()


def _sort_key(tie_break: Sequence[str], seed: str) -> Callable[[_Candidate], tuple[Any, ...]]:
    def key(c: _Candidate) -> tuple[Any, ...]:
        parts: list[Any] = [-c.score]
        for criterion in tie_break:
            if criterion == "cost-ascending":
                parts.append(c.cost)
            elif criterion == "cost-descending":
                parts.append(-c.cost)
            else:
                parts.append(lottery_ticket(seed, c.id))
        parts.append(c.id)
        return tuple(parts)

    return key


def _tie_key(tie_break: Sequence[str], seed: str) -> Callable[[_Candidate], tuple[Any, ...]]:
    rank = _sort_key(tie_break, seed)
    return lambda c: rank(c)[1:]


def greedy(
    candidates: Sequence[_Candidate],
    budget: int,
    *,
    skip: bool,
    min_votes: int,
    tie_break: Sequence[str],
    seed: str,
) -> list[str]:
    """Fund by score, best first, while the money lasts (see the module docstring)."""
    ranked = sorted(candidates, key=_sort_key(tie_break, seed))
    funded: list[str] = []
    left = budget
    for c in ranked:
        if c.score < min_votes:
            break
        if c.cost <= left:
            funded.append(c.id)
            left -= c.cost
        elif not skip:
            break
    return funded


def equal_shares(
    candidates: Sequence[_Candidate],
    budget: int,
    approvals: Sequence[frozenset[tuple[str, int]]],
    *,
    min_votes: int,
    tie_break: Sequence[str],
    seed: str,
    by_score: bool = False,
) -> list[str]:
    """The Method of Equal Shares, greedy completion (module docstring). ``approvals``: each
    voter's (project, score) pairs; a voter's utility from a project is its cost, or with
    ``by_score`` the score the voter gave it."""
    eligible = [c for c in candidates if c.score >= min_votes]
    groups: dict[frozenset[tuple[str, int]], int] = {}
    for ballot in approvals:
        groups[ballot] = groups.get(ballot, 0) + 1
    weight = list(groups.values())
    supporters: dict[str, list[tuple[int, int]]] = {c.id: [] for c in eligible}
    costs = {c.id: c.cost for c in eligible}
    for g, ballot in enumerate(groups):
        for project_id, score in sorted(ballot):
            if project_id in supporters:
                utility = score if by_score else costs[project_id]
                if utility > 0:
                    supporters[project_id].append((g, utility))
    available = [c for c in eligible if supporters[c.id]]
    tie_key = _tie_key(tie_break, seed)

    def run(share: Fraction) -> list[str]:
        money = [share] * len(weight)
        bound = {
            c.id: Fraction(c.cost, sum(weight[g] * u for g, u in supporters[c.id]))
            for c in available
        }
        by_id = {c.id: c for c in available}
        remaining = set(by_id)
        funded: list[str] = []
        while True:
            best: Fraction | None = None
            tied: list[_Candidate] = []
            for pid in sorted(remaining, key=lambda p: bound[p]):
                if best is not None and bound[pid] > best:
                    break
                rho = _rho(by_id[pid].cost, supporters[pid], money, weight)
                if rho is None:
                    remaining.discard(pid)
                    continue
                bound[pid] = rho
                if best is None or rho < best:
                    best, tied = rho, [by_id[pid]]
                elif rho == best:
                    tied.append(by_id[pid])
            if best is None:
                return funded
            chosen = min(tied, key=tie_key)
            funded.append(chosen.id)
            remaining.discard(chosen.id)
            for g, u in supporters[chosen.id]:
                money[g] -= min(money[g], best * u)

    funded = run(Fraction(budget, len(approvals))) if approvals else []
    # Completion as tally/results.py publishes it (EQUAL_SHARES_COMPLETION = "greedy"): the
    # money the method leaves funds the remaining eligible projects by score, skipping what
    # does not fit.
    left = budget - sum(costs[p] for p in funded)
    done = set(funded)
    for candidate in sorted(
        (c for c in eligible if c.id not in done), key=_sort_key(tie_break, seed)
    ):
        if candidate.cost <= left:
            funded.append(candidate.id)
            left -= candidate.cost
    return funded


def _rho(
    cost: int,
    supporters: Sequence[tuple[int, int]],
    money: Sequence[Fraction],
    weight: Sequence[int],
) -> Fraction | None:
    """The least ρ with Σ min(money_i, ρ·u_i) = cost over the supporters; None if they cannot
    pay."""
    if sum(weight[g] * money[g] for g, _ in supporters) < cost:
        return None
    remaining = Fraction(cost)
    utility = sum(weight[g] * u for g, u in supporters)
    for g, u in sorted(supporters, key=lambda s: money[s[0]] / s[1]):
        rho = remaining / utility
        if rho * u <= money[g]:
            return rho
        remaining -= weight[g] * money[g]
        utility -= weight[g] * u
    raise AssertionError("unreachable: the supporters' money covers the cost")


# --------------------------------------------------------------------------- the recount


@dataclass(frozen=True)
class Recount:
    """The count of the log's first ``size`` entries."""

    size: int
    root: bytes
    voters: int
    ballots: int
    spoiled: int
    votes: dict[str, int]
    funded: dict[str, list[str]] = field(default_factory=dict)
    scores: dict[str, int] = field(default_factory=dict)
    """Each project's score; the same as ``votes`` where every ballot counted 1 per project."""


def recount(
    definition: Definition,
    counted: Sequence[Sequence[Ballot]],
    spoiled: int,
    size: int,
    root: bytes,
) -> Recount:
    """Project totals (counted ballots naming each project, and their scores) and each
    category's winners, from each voter's counted ballots (voters without any left out): each
    ballot its projects, or its projects' scores (:data:`Ballot`)."""
    named = Counter(chain.from_iterable(chain.from_iterable(counted)))
    votes = {project_id: named[project_id] for project_id in definition.projects}
    scored: Counter[str] = Counter()
    for ballots_of_voter in counted:
        for ballot in ballots_of_voter:
            scored.update(ballot)  # a mapping adds its scores, a tuple 1 per project
    scores = {project_id: scored[project_id] for project_id in definition.projects}
    voters = len(counted)
    ballots = sum(map(len, counted))
    funded: dict[str, list[str]] = {}
    for category in definition.categories.values():
        candidates = [
            _Candidate(p.id, p.cost, votes[p.id], scores[p.id])
            for p in definition.projects.values()
            if p.category == category.id
        ]
        options: dict[str, Any] = {
            "min_votes": definition.min_votes,
            "tie_break": definition.tie_break,
            "seed": definition.seed,
        }
        if definition.method == "equal-shares":
            in_category = {c.id for c in candidates}
            approvals = [
                frozenset(mine.items())
                for mine in (_voter_scores(v, in_category) for v in counted)
                if mine
            ]
            funded[category.id] = equal_shares(
                candidates,
                category.budget,
                approvals,
                by_score=category.ballot in SCORED_KINDS,
                **options,
            )
        else:
            skip = definition.method == "greedy"
            funded[category.id] = greedy(candidates, category.budget, skip=skip, **options)
    return Recount(size, root, voters, ballots, spoiled, votes, funded, scores)


def _voter_scores(ballots: Sequence[Ballot], projects: set[str]) -> dict[str, int]:
    """One voter's score per project of ``projects``, over their counted ballots."""
    mine: dict[str, int] = {}
    for ballot in ballots:
        pairs = ballot.items() if isinstance(ballot, Mapping) else ((p, 1) for p in ballot)
        for project_id, score in pairs:
            if project_id in projects:
                mine[project_id] = mine.get(project_id, 0) + score
    return mine


def compare_results(
    published: Any, election: str, definition: Definition, counted: Recount
) -> list[Violation]:
    """Every difference between the published results and the recount at their log size."""
    found: list[Violation] = []

    def differs(check: str, expected: object, got: object) -> None:
        found.append(Violation(6, check, str(expected), str(got)[:80]))

    if not isinstance(published, dict):
        differs("results", "a JSON object", type(published).__name__)
        return found
    if published.get("election") != election:
        differs("results-election", election, published.get("election"))
    log = published.get("log")
    root = log.get("root") if isinstance(log, dict) else None
    if _root_bytes(root) != counted.root:
        differs("results-root", base64.b64encode(counted.root).decode(), root)
    turnout = published.get("turnout")
    if isinstance(turnout, dict):
        # Optional in the contract; compared when published.
        if "voters" in turnout and turnout["voters"] != counted.voters:
            differs("turnout-voters", counted.voters, turnout["voters"])
        if "spoiled" in turnout and turnout["spoiled"] != counted.spoiled:
            differs("turnout-spoiled", counted.spoiled, turnout["spoiled"])
        ballots = turnout.get("ballots")
        if (
            isinstance(ballots, dict)
            and sum(v for v in ballots.values() if isinstance(v, int)) != counted.ballots
        ):
            differs("turnout-ballots", counted.ballots, ballots)
    categories = published.get("categories")
    if not isinstance(categories, list):
        differs("results-categories", "a list", type(categories).__name__)
        return found
    listed: dict[str, Any] = {}
    for item in categories:
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            listed[item["id"]] = item
    if set(listed) != set(definition.categories) or len(listed) != len(categories):
        differs("results-categories", sorted(definition.categories), sorted(listed))
    for category in definition.categories.values():
        item = listed.get(category.id)
        if item is None:
            continue
        if item.get("budget") != category.budget:
            differs(f"budget:{category.id}", category.budget, item.get("budget"))
        projects = (
            {p.get("id"): p for p in item.get("projects", []) if isinstance(p, dict)}
            if isinstance(item.get("projects"), list)
            else {}
        )
        ours = [p for p in definition.projects.values() if p.category == category.id]
        if set(projects) != {p.id for p in ours}:
            differs(
                f"projects:{category.id}", sorted(p.id for p in ours), sorted(map(str, projects))
            )
        winners = set(counted.funded.get(category.id, []))
        for project in ours:
            row = projects.get(project.id)
            if row is None:
                continue
            if row.get("cost") != project.cost:
                differs(f"cost:{project.id}", project.cost, row.get("cost"))
            if row.get("votes") != counted.votes[project.id]:
                differs(f"votes:{project.id}", counted.votes[project.id], row.get("votes"))
            # Results published before ballot kinds have no score, which is then the votes.
            votes = counted.votes[project.id]
            score = counted.scores.get(project.id, votes)
            must_show = "score" in row or score != votes
            if must_show and row.get("score") != score:
                differs(f"score:{project.id}", score, row.get("score"))
            if row.get("funded") is not (project.id in winners):
                differs(f"funded:{project.id}", project.id in winners, row.get("funded"))
    return found


def _root_bytes(root: object) -> bytes | None:
    """A root as published: base64 (as in checkpoints) or 64 hex digits."""
    if not isinstance(root, str):
        return None
    if len(root) == 64:
        try:
            return bytes.fromhex(root)
        except ValueError:
            pass
    try:
        return base64.b64decode(root, validate=True)
    except ValueError:
        return None
