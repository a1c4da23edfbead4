"""pabutools as an independent oracle: the same elections, run through its rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pabutools.election import (
    AdditiveSatisfaction,
    ApprovalBallot,
    ApprovalProfile,
    Cost_Sat,
    CumulativeBallot,
    CumulativeProfile,
    Instance,
    Project,
)
from pabutools.rules import (
    completion_by_rule_combination,
    greedy_utilitarian_welfare,
    method_of_equal_shares,
)
from pabutools.tiebreaking import (
    lexico_tie_breaking,
    max_cost_tie_breaking,
    min_cost_tie_breaking,
)

from tally.winners import Candidate

# Our tie-break sequences and the pabutools rules that order ties the same way (both end by id).
TIE_BREAKS: dict[tuple[str, ...], Any] = {
    (): lexico_tie_breaking,
    ("cost-ascending",): min_cost_tie_breaking,
    ("cost-descending",): max_cost_tie_breaking,
}


def _points_cost(
    instance: Instance, profile: Any, ballot: Any, project: Project, precomputed: dict[str, Any]
) -> int:
    return int(ballot.get(project, 0)) * int(project.cost)


class PointsCostSat(AdditiveSatisfaction):  # type: ignore[misc]
    """Cost satisfaction weighted by points: Cost_Sat generalised to cumulative ballots."""

    def __init__(self, instance: Instance, profile: Any, ballot: Any) -> None:
        AdditiveSatisfaction.__init__(self, instance, profile, ballot, _points_cost)


class Election:
    """One election in pabutools' terms."""

    def __init__(
        self,
        candidates: Sequence[Candidate],
        budget: int,
        ballots: Sequence[Sequence[str]] | Sequence[Mapping[str, int]] = (),
    ) -> None:
        self.instance = Instance(budget_limit=budget)
        projects = {c.id: Project(c.id, c.cost) for c in candidates}
        self.instance.update(projects.values())
        if ballots and isinstance(ballots[0], Mapping):
            self.profile: Any = CumulativeProfile(
                [CumulativeBallot({projects[p]: n for p, n in b.items()}) for b in ballots]  # type: ignore[union-attr]
            )
            self.sat: Any = PointsCostSat
        else:
            self.profile = ApprovalProfile(
                [ApprovalBallot(projects[p] for p in b) for b in ballots]
            )
            self.sat = Cost_Sat

    def greedy(self, tie_break: tuple[str, ...] = ()) -> frozenset[str]:
        """pabutools' greedy welfare rule with cost satisfaction: by approvals, skipping."""
        outcome = greedy_utilitarian_welfare(
            self.instance, self.profile, sat_class=self.sat, tie_breaking=TIE_BREAKS[tie_break]
        )
        return frozenset(p.name for p in outcome)

    def equal_shares(self, completion: str, increment: int) -> frozenset[str]:
        """pabutools' method_of_equal_shares with cost satisfaction, completed as named."""
        mes: dict[str, Any] = {"sat_class": self.sat}
        if completion in ("add1", "add1-greedy"):
            mes["voter_budget_increment"] = increment
        if completion in ("none", "add1"):
            outcome = method_of_equal_shares(self.instance, self.profile, **mes)
        else:
            outcome = completion_by_rule_combination(
                self.instance,
                self.profile,
                [method_of_equal_shares, greedy_utilitarian_welfare],
                [mes, {"sat_class": self.sat}],
            )
        return frozenset(p.name for p in outcome)

    def greedy_outcomes(self) -> set[frozenset[str]]:
        """Every set pabutools' greedy can fund, over all ways of breaking its ties."""
        outcomes = greedy_utilitarian_welfare(
            self.instance, self.profile, sat_class=self.sat, resoluteness=False
        )
        return {frozenset(p.name for p in o) for o in outcomes}

    def equal_shares_outcomes(self) -> set[frozenset[str]]:
        """Every set pabutools' equal shares (no completion) can fund, over all tie-breaks."""
        outcomes = method_of_equal_shares(
            self.instance, self.profile, sat_class=self.sat, resoluteness=False
        )
        return {frozenset(p.name for p in o) for o in outcomes}
