"""Results: totals and winners per category, stamped with the log size and root they came from.

Each project carries ``votes`` (voters who chose it) and ``score`` (DESIGN.md §3b: the votes on
approval and knapsack ballots, the sum of points on cumulative ones, of positional scores k, k-1,
..., 1 on ordinal ones); winners rank by score. The Method of Equal Shares gives each voter, per
funded project, the satisfaction matching the category's kind (:data:`SATISFACTION`).

Mirrored by tally/audit/recount.py; tests/tally/audit/test_differential.py proves they agree.
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from tally.projection import ONLINE, PAPER, Tally
from tally.winners import Allocation, Candidate, equal_shares, greedy
from votes.election import Election

# Equal shares here completes with utilitarian greedy: pabutools' "add one" completion is exact
# but takes minutes on a city-sized election, too slow for live results.
EQUAL_SHARES_COMPLETION = "greedy"

SATISFACTION = {
    "approval": "cost",
    "knapsack": "cost",
    "cumulative": "points",
    "ordinal": "points",
}
"""Equal shares' satisfaction per ballot kind (:func:`tally.winners.equal_shares`): a funded
project's cost for approval and knapsack ballots (pabutools ``Cost_Sat``), the points given to it
for cumulative ballots (``Additive_Cardinal_Sat``) and its positional score k, k-1, ..., 1 for
ordinal ballots (a positional satisfaction with those scores)."""

Choices = Collection[str] | Mapping[str, int]
"""One voter's counted choices, for equal shares: the projects (each scoring 1), or each
project's score from the voter (points, positional score), as :func:`tally.export.approvals_of`
gives them."""


def allocate(
    election: Election,
    category: str,
    votes: Mapping[str, int],
    approvals: Sequence[Choices] | None = None,
    *,
    method: str | None = None,
    scores: Mapping[str, int] | None = None,
) -> Allocation:
    """Winners of one category by the election's rule (or ``method``), by score (``scores``;
    when None, the votes): greedy, skipping or stopping at a project that does not fit, or
    Method of Equal Shares, which needs the counted ballots (``approvals``: each voter's
    counted choices) and uses the satisfaction of the category's kind (:data:`SATISFACTION`)."""
    rule = election.rule
    method = method or rule.method
    scored = votes if scores is None else scores
    candidates = [
        Candidate(p.id, p.cost, votes.get(p.id, 0), scored.get(p.id, 0))
        for p in election.projects
        if p.category == category
    ]
    kind = next(c for c in election.categories if c.id == category)
    budget = kind.budget
    if method == "equal-shares":
        if approvals is None:
            raise ValueError("the equal-shares rule needs the voters' counted ballots")
        in_category = {c.id for c in candidates}
        ballots: list[dict[str, int]] = []
        for choices in approvals:
            if isinstance(choices, Mapping):
                mine = {p: s for p, s in choices.items() if p in in_category}
            else:
                mine = {p: 1 for p in choices if p in in_category}
            if mine:
                ballots.append(mine)
        return equal_shares(
            candidates,
            budget,
            ballots,
            completion=EQUAL_SHARES_COMPLETION,
            min_votes=rule.min_votes,
            tie_break=rule.tie_break,
            seed=rule.seed,
            satisfaction=SATISFACTION[kind.ballot],
        )
    return greedy(
        candidates,
        budget,
        skip=method != "greedy-no-skip",
        min_votes=rule.min_votes,
        tie_break=rule.tie_break,
        seed=rule.seed,
    )


def results_document(
    tally: Tally, size: int, root: bytes, approvals: Sequence[Choices] | None = None
) -> dict[str, Any]:
    """The published results (DESIGN.md §3): money in kopecks, every figure from ``tally``.

    ``approvals`` (each voter's counted choices) is required when the rule is equal shares; when
    given under a greedy rule, each category also carries what equal shares would fund
    (``equal_shares_annex``), for comparison.
    """
    election = tally.election
    votes = dict(tally.votes)
    scores = dict(tally.scores)
    by_point, by_day = tally.by_point, tally.by_day
    days = sorted({day for _, day in by_day})
    categories = []
    for category in election.categories:
        allocation = allocate(election, category.id, votes, approvals, scores=scores)
        annex = None
        if approvals is not None and election.rule.method != "equal-shares":
            mes = allocate(
                election, category.id, votes, approvals, method="equal-shares", scores=scores
            )
            annex = {"funded": list(mes.funded), "spent": mes.spent}
        # On approval and knapsack ballots a tie's common score is a common vote count too.
        ties_in_votes = category.ballot not in ("cumulative", "ordinal")
        funded = set(allocation.funded)
        rank = {project: i + 1 for i, project in enumerate(allocation.order)}
        projects = [
            {
                "id": p.id,
                "title": p.title,
                "cost": p.cost,
                "district": p.district,
                "votes": votes.get(p.id, 0),
                "score": scores.get(p.id, 0),
                "votes_online": tally.by_channel[(p.id, ONLINE)],
                "votes_paper": tally.by_channel[(p.id, PAPER)],
                "votes_by_point": {
                    point.id: by_point[(p.id, point.id)] for point in election.polling_points
                },
                "votes_by_day": {day: by_day[(p.id, day)] for day in days if by_day[(p.id, day)]},
                "rank": rank.get(p.id),
                "funded": p.id in funded,
            }
            for p in election.projects
            if p.category == category.id
        ]
        projects.sort(key=lambda p: (p["rank"] or 10**9, p["id"]))
        categories.append(
            {
                "id": category.id,
                "title": category.title,
                "ballot": category.ballot,
                "budget": category.budget,
                "max_picks": category.max_picks,
                "spent": allocation.spent,
                "left": allocation.left,
                "funded": list(allocation.funded),
                "reserve": list(allocation.reserve),
                "ties": [
                    {
                        "projects": list(t.projects),
                        "score": t.score,
                        **({"votes": t.score} if ties_in_votes else {}),
                        "resolved_by": t.resolved_by,
                        "changed_outcome": t.changed_outcome,
                    }
                    for t in allocation.ties
                    if t.changed_outcome
                ],
                "projects": projects,
                **({"equal_shares_annex": annex} if annex is not None else {}),
            }
        )
    return {
        "election": election.id,
        "title": election.title,
        "log": {"size": size, "root": base64.b64encode(root).decode()},
        "rule": {
            "method": election.rule.method,
            "min_votes": election.rule.min_votes,
            "tie_break": list(election.rule.tie_break),
            "seed": election.rule.seed,
        },
        "turnout": turnout(tally),
        "categories": categories,
        "breakdown": breakdown(tally, categories),
    }


def turnout(tally: Tally) -> dict[str, Any]:
    """Who took part, by channel, and how many ballots were spoiled or voided: no choice."""
    return {
        "voters": tally.voters,
        "by_channel": tally.voters_by_channel(),
        "ballots": {ONLINE: tally.ballots[ONLINE], PAPER: tally.ballots[PAPER]},
        "spoiled": tally.spoiled,
        "voided": tally.voided,
    }


def sealed_document(tally: Tally, size: int, root: bytes, until: datetime) -> dict[str, Any]:
    """What is published of sealed results (``results = "sealed-until-close"``) before voting
    closes at ``until``: the log's size and root and the turnout; no totals, no winners."""
    election = tally.election
    return {
        "election": election.id,
        "title": election.title,
        "sealed": True,
        "results_open_at": until.isoformat(),
        "timezone": election.timezone,
        "log": {"size": size, "root": base64.b64encode(root).decode()},
        "turnout": turnout(tally),
    }


def breakdown(tally: Tally, categories: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counted votes by district (of the projects), by day (of ``cast_at`` in the election's
    zone) and channel, and by polling point (paper ballots name theirs)."""
    election = tally.election
    funded = {p for c in categories for p in c["funded"]}
    districts: dict[str, dict[str, int]] = {}
    for project in election.projects:
        row = districts.setdefault(project.district, {"projects": 0, "funded": 0, "votes": 0})
        row["projects"] += 1
        row["funded"] += project.id in funded
        row["votes"] += tally.votes.get(project.id, 0)
    days: dict[str, dict[str, int]] = {}
    for (day, channel), count in sorted(tally.by_day_and_channel.items()):
        if not count:  # every ballot of that day and channel voided
            continue
        row = days.setdefault(day, {ONLINE: 0, PAPER: 0, "votes": 0})
        row[channel] += count
        row["votes"] += count
    points = {point.id: 0 for point in election.polling_points}
    for (_, point), count in tally.by_point.items():
        points[point] = points.get(point, 0) + count
    return {
        "by_district": [{"district": d, **row} for d, row in sorted(districts.items())],
        "by_day": [{"day": d, **row} for d, row in sorted(days.items())],
        "by_point": [{"point": p, "votes": n} for p, n in points.items()],
    }


def results_csv(document: dict[str, Any]) -> str:
    """One row per project: category, id, cost (kopecks), votes, score, votes by channel, rank,
    funded."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "category",
            "project",
            "cost_kopecks",
            "votes",
            "score",
            "votes_online",
            "votes_paper",
            "rank",
            "funded",
            "log_size",
            "log_root",
        ]
    )
    for category in document["categories"]:
        for p in category["projects"]:
            writer.writerow(
                [
                    category["id"],
                    p["id"],
                    p["cost"],
                    p["votes"],
                    p["score"],
                    p["votes_online"],
                    p["votes_paper"],
                    p["rank"] or "",
                    int(p["funded"]),
                    document["log"]["size"],
                    document["log"]["root"],
                ]
            )
    return out.getvalue()
