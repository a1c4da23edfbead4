"""pabutools as an independent oracle: the same elections, run through its rules.

Satisfactions, per kind of ballot (tally/winners.py ``satisfaction``):

- approval and knapsack ballots: ``Cost_Sat`` (``"cost"``), ``Cardinality_Sat`` (``"points"``);
- cumulative ballots: :class:`PointsCostSat` (``"cost"``), ``Additive_Cardinal_Sat``
  (``"points"``, what results use);
- ordinal ballots (an ``OrdinalProfile``): :func:`positional_sat` with scores k, k-1, ..., 1 by
  position, k = the category's ``max_picks`` (pabutools' own ``Additive_Borda_Sat`` scores
  ``len(ballot) - position - 1`` instead, so the last ranked project gets 0).

Greedy ranks by score whatever the kind: pabutools' ``greedy_utilitarian_welfare`` ranks by
satisfaction per cost, so it is given a satisfaction of score times cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pabutools.election import (
    Additive_Cardinal_Sat,
    AdditiveSatisfaction,
    ApprovalBallot,
    ApprovalProfile,
    Cardinality_Sat,
    Cost_Sat,
    CumulativeBallot,
    CumulativeProfile,
    Instance,
    OrdinalBallot,
    OrdinalProfile,
    PositionalSatisfaction,
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


def positional_sat(top: int, *, times_cost: bool = False) -> Any:
    """A pabutools positional satisfaction: the project ranked i-th (from 0) scores ``top - i``
    (times its cost with ``times_cost``), an unranked one 0; summed over projects."""

    def score(ballot: Any, project: Project) -> Any:
        if project not in ballot:
            return 0
        points = top - ballot.position(project)
        return points * int(project.cost) if times_cost else points

    class PositionalScoreSat(PositionalSatisfaction):  # type: ignore[misc]
        def __init__(self, instance: Instance, profile: Any, ballot: Any) -> None:
            PositionalSatisfaction.__init__(self, instance, profile, ballot, score, sum)

    return PositionalScoreSat


class Election:
    """One election in pabutools' terms.

    ``ballots``: approvals (sequences of ids), cumulative points (mappings) or, with ``top``
    given, rankings (sequences of ids, most preferred first, scored ``top``, ``top - 1``, ...).
    ``satisfaction``: what :meth:`equal_shares` gives a voter per funded project, as
    tally/winners.py names it (the module docstring lists the classes).
    """

    def __init__(
        self,
        candidates: Sequence[Candidate],
        budget: int,
        ballots: Sequence[Sequence[str]] | Sequence[Mapping[str, int]] = (),
        *,
        satisfaction: str = "cost",
        top: int | None = None,
    ) -> None:
        self.instance = Instance(budget_limit=budget)
        projects = {c.id: Project(c.id, c.cost) for c in candidates}
        self.instance.update(projects.values())
        points = satisfaction == "points"
        if ballots and isinstance(ballots[0], Mapping):
            self.profile: Any = CumulativeProfile(
                [CumulativeBallot({projects[p]: n for p, n in b.items()}) for b in ballots]  # type: ignore[union-attr]
            )
            self.sat: Any = PointsCostSat
            self.mes_sat: Any = Additive_Cardinal_Sat if points else PointsCostSat
        elif top is not None:
            self.profile = OrdinalProfile(
                [OrdinalBallot([projects[p] for p in b]) for b in ballots]
            )
            self.sat = positional_sat(top, times_cost=True)
            self.mes_sat = positional_sat(top, times_cost=not points)
        else:
            self.profile = ApprovalProfile(
                [ApprovalBallot(projects[p] for p in b) for b in ballots]
            )
            self.sat = Cost_Sat
            self.mes_sat = Cardinality_Sat if points else Cost_Sat

    def greedy(self, tie_break: tuple[str, ...] = ()) -> frozenset[str]:
        """pabutools' greedy welfare rule with score times cost: by score, skipping."""
        outcome = greedy_utilitarian_welfare(
            self.instance, self.profile, sat_class=self.sat, tie_breaking=TIE_BREAKS[tie_break]
        )
        return frozenset(p.name for p in outcome)

    def equal_shares(self, completion: str, increment: int) -> frozenset[str]:
        """pabutools' method_of_equal_shares with the satisfaction asked for, completed as
        named (the greedy completion by score)."""
        mes: dict[str, Any] = {"sat_class": self.mes_sat}
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
        """Every set pabutools' equal shares (no completion) can fund, over all tie-breaks.

        Cost satisfaction only: with other satisfactions pabutools 1.2.3's irresolute run fails
        at a tie (its deepcopy of MESProject hashes a project before it has a name)."""
        outcomes = method_of_equal_shares(
            self.instance, self.profile, sat_class=self.mes_sat, resoluteness=False
        )
        return {frozenset(p.name for p in o) for o in outcomes}
