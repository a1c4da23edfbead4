"""Winner rules for participatory budgets: greedy by score and the Method of Equal Shares.

Mirrored by tally/audit/recount.py; tests/tally/audit/test_differential.py proves they agree.

Pure functions, standard library only. Money is integer kopecks throughout (the minor unit of
whatever currency the election uses); the Method of Equal Shares divides money between voters, and
those shares are exact ``fractions.Fraction`` values that never leave this module.

Both rules return an :class:`Allocation`, which names every project exactly once across
``funded``, ``reserve`` and ``below_threshold`` and lists every tie the rule had to break.

Projects rank by their ``score`` (DESIGN.md §3b): the number of voters who chose them on approval
and knapsack ballots, the sum of their points on cumulative ballots, the sum of their positional
scores on ordinal ballots. The threshold ``min_votes`` (the election rule's name for it, and
Pabulib's ``min_project_score_threshold``) applies to the score too.

Ties are broken by a configurable sequence of criteria, applied in order, and finally by project id
so that the ranking is always total:

``"cost-ascending"``
    the cheaper project first;
``"cost-descending"``
    the dearer project first;
``"lottery"``
    a published, deterministic lottery: the project whose SHA-256 digest of the UTF-8 string
    ``f"{seed}:{project_id}"`` is smaller (as a 64-digit lowercase hex string, which orders like the
    256-bit number) comes first. Anyone can recompute the draw from the seed. Choose a seed nobody
    knew while the ballots were cast, for example the Merkle root of the closed log.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "COMPLETIONS",
    "DEFAULT_TIE_BREAK",
    "SATISFACTIONS",
    "TIE_BREAKS",
    "Allocation",
    "Candidate",
    "TallyInputError",
    "Tie",
    "equal_shares",
    "greedy",
    "lottery_ticket",
]

TIE_BREAKS = ("cost-ascending", "cost-descending", "lottery")
"""The tie-break criteria a rule accepts, besides the implicit final ``"id"``."""

DEFAULT_TIE_BREAK: tuple[str, ...] = ("cost-ascending", "lottery")
"""Cheaper project first, then the published lottery, then id."""

COMPLETIONS = ("none", "add1", "greedy", "add1-greedy")
"""How :func:`equal_shares` spends money that the pure method leaves over."""

SATISFACTIONS = ("cost", "points")
"""A voter's utility from a funded project in :func:`equal_shares`: ``"cost"``, its cost times the
points the voter gave it (1 for an approval); ``"points"``, the points alone."""


class TallyInputError(ValueError):
    """The candidates, budget, ballots or options given to a winner rule are inconsistent."""


@dataclass(frozen=True, init=False)
class Candidate:
    """A project on the ballot, as the winner rules see it.

    ``cost`` is in kopecks; ``votes`` is the number of voters who chose the project; ``score``
    what the rules rank by: the sum of the points its ballots give it (cumulative points,
    positional scores of a ranking), or, when not given, ``votes`` (approval and knapsack
    ballots, where each choice is worth one).
    """

    id: str
    cost: int
    votes: int
    score: int

    def __init__(self, id: str, cost: int, votes: int, score: int | None = None) -> None:
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "cost", cost)
        object.__setattr__(self, "votes", votes)
        object.__setattr__(self, "score", votes if score is None else score)


@dataclass(frozen=True)
class Tie:
    """Projects that a rule could not tell apart and ordered by its tie-break.

    ``projects`` are in the order the tie-break put them. ``score`` is their common score (for
    :func:`equal_shares`: the score of the project the tie-break picked). ``resolved_by``
    names the criteria that were needed to order them, joined by ``+`` (``"cost-ascending"``,
    ``"lottery"``, ``"cost-ascending+lottery"``, ``"id"``...). ``changed_outcome`` is true when
    taking the tied projects in another order would fund a different set of projects.
    """

    projects: tuple[str, ...]
    score: int
    resolved_by: str
    changed_outcome: bool


@dataclass(frozen=True)
class Allocation:
    """The outcome of a winner rule.

    - ``funded``: funded projects, in the order they were funded.
    - ``reserve``: projects that passed the threshold but were not funded, best ranked first.
    - ``skipped``: the part of ``reserve`` whose cost exceeds the money ``left``: they did not fit.
      (Under greedy with skipping that is the whole reserve; under greedy-no-skip the reserve also
      holds projects that would have fitted but came after the stop; under equal shares it also
      holds projects that lacked support.)
    - ``below_threshold``: projects whose score is below the threshold, best ranked first.
    - ``spent``, ``budget``, ``left``: kopecks, ``spent + left == budget``.
    - ``ties``: every tie among projects that passed the threshold, in the order the rule met
      them (for equal shares: the method's ties on ρ, then the greedy completion's on score).
    - ``order``: every project, in the order the rule used (for greedy: the ranking by score).
    """

    funded: tuple[str, ...]
    reserve: tuple[str, ...]
    skipped: tuple[str, ...]
    below_threshold: tuple[str, ...]
    spent: int
    budget: int
    left: int
    ties: tuple[Tie, ...]
    order: tuple[str, ...]


def lottery_ticket(seed: str, project_id: str) -> str:
    """The published lottery key of a project: lowercase hex SHA-256 of ``f"{seed}:{project_id}"``.

    In a ``"lottery"`` tie-break the smaller ticket wins.
    """
    return hashlib.sha256(f"{seed}:{project_id}".encode()).hexdigest()


# --- ranking -------------------------------------------------------------------------------------

_TieKey = Callable[[Candidate], "int | str"]


def _criteria(tie_break: Sequence[str], seed: str) -> list[tuple[str, _TieKey]]:
    """The named sort keys of the tie-break, ending with the id."""
    if isinstance(tie_break, str):
        raise TallyInputError("tie_break must be a sequence of criteria, not one string")
    named: list[tuple[str, _TieKey]] = []
    for name in tie_break:
        if name == "cost-ascending":
            named.append((name, lambda c: c.cost))
        elif name == "cost-descending":
            named.append((name, lambda c: -c.cost))
        elif name == "lottery":
            named.append((name, lambda c: lottery_ticket(seed, c.id)))
        else:
            raise TallyInputError(
                f"unknown tie-break {name!r}; expected some of {', '.join(TIE_BREAKS)}"
            )
    named.append(("id", lambda c: c.id))
    return named


def _tie_order(
    tied: Iterable[Candidate], criteria: Sequence[tuple[str, _TieKey]]
) -> tuple[list[Candidate], str]:
    """Order candidates that are tied on score; also say which criteria it took to order them."""
    ordered = sorted(tied, key=lambda c: tuple(key(c) for _, key in criteria))
    classes: list[list[Candidate]] = [ordered]
    used: list[str] = []
    for name, key in criteria:
        if all(len(group) == 1 for group in classes):
            break
        split: list[list[Candidate]] = []
        for group in classes:
            split.extend(list(g) for _, g in itertools.groupby(group, key=key))
        if len(split) > len(classes):
            used.append(name)
        classes = split
    return ordered, "+".join(used)


def _rank(
    candidates: Iterable[Candidate], criteria: Sequence[tuple[str, _TieKey]]
) -> list[Candidate]:
    """All candidates by score descending, ties by the criteria."""
    return sorted(candidates, key=lambda c: (-c.score, *(key(c) for _, key in criteria)))


def _check_candidates(candidates: Iterable[Candidate], budget: int) -> list[Candidate]:
    listed = list(candidates)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise TallyInputError(f"budget must be a non-negative integer of kopecks, got {budget!r}")
    seen: set[str] = set()
    for c in listed:
        if c.id in seen:
            raise TallyInputError(f"project {c.id!r} is listed twice")
        seen.add(c.id)
        if isinstance(c.cost, bool) or not isinstance(c.cost, int) or c.cost < 0:
            raise TallyInputError(
                f"project {c.id!r}: cost must be a non-negative integer of kopecks, got {c.cost!r}"
            )
        for name, value in (("votes", c.votes), ("score", c.score)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TallyInputError(
                    f"project {c.id!r}: {name} must be a non-negative integer, got {value!r}"
                )
    return listed


# --- greedy --------------------------------------------------------------------------------------


@dataclass
class _Funding:
    """Greedy funding in progress: what has been funded and the money left."""

    funded: list[str]
    left: int
    ties: list[Tie]


def _fund_in_rank_order(
    ranked: Sequence[Candidate],
    funding: _Funding,
    *,
    skip: bool,
    criteria: Sequence[tuple[str, _TieKey]],
) -> None:
    """Fund ``ranked`` (already ordered, eligible) in order while the money lasts; record ties."""
    stopped = False
    for score, group_iter in itertools.groupby(ranked, key=lambda c: c.score):
        group = list(group_iter)
        if len(group) > 1:
            _, resolved_by = _tie_order(group, criteria)
            funding.ties.append(
                Tie(
                    projects=tuple(c.id for c in group),
                    score=score,
                    resolved_by=resolved_by,
                    changed_outcome=not stopped and _order_matters(group, funding.left, skip=skip),
                )
            )
        for c in group:
            if stopped:
                break
            if c.cost <= funding.left:
                funding.funded.append(c.id)
                funding.left -= c.cost
            elif not skip:
                stopped = True


def _order_matters(group: Sequence[Candidate], money: int, *, skip: bool) -> bool:
    """Whether funding the tied ``group`` from ``money`` in different orders funds different sets.

    With skipping, the projects that fit on their own are the only ones any order can fund; every
    order funds all of them when they fit together, and otherwise each of them is funded by the
    order that starts with it while some other one is left out. Without skipping the same holds,
    except that when nothing fits every order stops at once, and that one project that does not
    fit, taken first, stops everything.
    """
    fitting = [c.cost for c in group if c.cost <= money]
    if skip:
        return sum(fitting) > money
    return bool(fitting) and sum(c.cost for c in group) > money


def greedy(
    candidates: Iterable[Candidate],
    budget: int,
    *,
    skip: bool = True,
    min_votes: int = 0,
    tie_break: Sequence[str] = DEFAULT_TIE_BREAK,
    seed: str = "",
) -> Allocation:
    """Fund projects by score, best first, while the money lasts.

    Projects whose score is below ``min_votes`` are not eligible. The others are ranked by score,
    descending; ties are broken by ``tie_break`` (see the module docstring) and finally by id.
    They are funded in that order; with ``skip`` (the usual rule, Pabulib ``greedy``) a project
    that does not fit in the money left is passed over and the next that fits is taken, without it
    (Pabulib ``greedy-no-skip``) funding stops at the first project that does not fit.
    """
    listed = _check_candidates(candidates, budget)
    criteria = _criteria(tie_break, seed)
    ranked = _rank(listed, criteria)
    eligible = [c for c in ranked if c.score >= min_votes]
    funding = _Funding(funded=[], left=budget, ties=[])
    _fund_in_rank_order(eligible, funding, skip=skip, criteria=criteria)
    return _allocation(ranked, eligible, funding, budget, order=[c.id for c in ranked])


def _allocation(
    ranked: Sequence[Candidate],
    eligible: Sequence[Candidate],
    funding: _Funding,
    budget: int,
    *,
    order: Sequence[str],
) -> Allocation:
    funded = set(funding.funded)
    reserve = [c for c in eligible if c.id not in funded]
    eligible_ids = {c.id for c in eligible}
    return Allocation(
        funded=tuple(funding.funded),
        reserve=tuple(c.id for c in reserve),
        skipped=tuple(c.id for c in reserve if c.cost > funding.left),
        below_threshold=tuple(c.id for c in ranked if c.id not in eligible_ids),
        spent=budget - funding.left,
        budget=budget,
        left=funding.left,
        ties=tuple(funding.ties),
        order=tuple(order),
    )


# --- Method of Equal Shares ----------------------------------------------------------------------


@dataclass
class _Voters:
    """Voters with identical ballots merged: per-group utilities and multiplicity.

    Identical ballots are treated identically by the method (same share, same payments), so
    merging them changes nothing but the running time.
    """

    multiplicity: list[int]
    # project id -> [(voter group, utility of one voter in the group)], utility > 0 only
    supporters: dict[str, list[tuple[int, int]]]
    count: int


def _voters(
    ballots: Sequence[Sequence[str]] | Sequence[Mapping[str, int]],
    candidates: Mapping[str, Candidate],
    satisfaction: str,
) -> _Voters:
    """Each voter's utility from each project: ``points * cost`` (``"cost"``) or ``points``
    (``"points"``), points 1 for an approval."""
    groups: dict[frozenset[tuple[str, int]], int] = {}
    scores = dict.fromkeys(candidates, 0)
    votes = dict.fromkeys(candidates, 0)
    for number, ballot in enumerate(ballots):
        points: dict[str, int] = {}
        if isinstance(ballot, Mapping):
            for pid, p in ballot.items():
                if isinstance(p, bool) or not isinstance(p, int) or p < 0:
                    raise TallyInputError(f"ballot {number}: points for {pid!r} must be >= 0")
                points[pid] = p
        elif isinstance(ballot, str):
            raise TallyInputError(f"ballot {number} is a string, expected a sequence of ids")
        else:
            for pid in ballot:
                if pid in points:
                    raise TallyInputError(f"ballot {number} names {pid!r} twice")
                points[pid] = 1
        for pid, p in points.items():
            if pid not in candidates:
                raise TallyInputError(f"ballot {number} names unknown project {pid!r}")
            scores[pid] += p
            votes[pid] += p > 0
        key = frozenset((pid, p) for pid, p in points.items() if p > 0)
        groups[key] = groups.get(key, 0) + 1
    for pid, counted in scores.items():
        candidate = candidates[pid]
        if counted != candidate.score:
            raise TallyInputError(
                f"project {pid!r} has score {candidate.score} but the ballots give {counted}"
            )
        # A caller that leaves score unset gives point ballots' sum as votes: accept that too.
        if candidate.votes not in (votes[pid], counted):
            raise TallyInputError(
                f"project {pid!r} has {candidate.votes} votes but {votes[pid]} ballots choose it"
            )
    multiplicity: list[int] = []
    supporters: dict[str, list[tuple[int, int]]] = {pid: [] for pid in candidates}
    for index, (key, count) in enumerate(groups.items()):
        multiplicity.append(count)
        for pid, p in sorted(key):
            utility = p * candidates[pid].cost if satisfaction == "cost" else p
            if utility > 0:
                supporters[pid].append((index, utility))
    return _Voters(multiplicity=multiplicity, supporters=supporters, count=len(ballots))


@dataclass
class _MesRun:
    """One run of the method at one per-voter share."""

    funded: list[str]
    # (round, tied candidates in tie-break order, criteria used)
    ties: list[tuple[int, list[Candidate], str]]


def _affordability(
    cost: int, supporters: Sequence[tuple[int, int]], money: Sequence[Fraction], voters: _Voters
) -> Fraction | None:
    """The least ρ with Σ min(money_i, ρ·u_i) = cost over supporters, or None if they cannot pay."""
    # Supporters who cannot pay ρ·u pay all they have; take them by money per utility, least
    # first. Sorting on Fractions dominates the running time, so sort on exact integer keys:
    # two different fractions with denominators below 2**L differ by more than 2**-(2L), hence
    # floor(x * 2**(2L)) keeps every distinct pair apart and every equal pair together.
    shift = 2 * max((money[i].denominator * u).bit_length() for i, u in supporters)

    def key(supporter: tuple[int, int]) -> int:
        i, u = supporter
        return (money[i].numerator << shift) // (money[i].denominator * u)

    # remaining = num / den, kept in lowest terms by hand: Fraction's overhead per step is the
    # other half of the running time.
    num, den = cost, 1
    utility_left = sum(voters.multiplicity[i] * u for i, u in supporters)
    for i, u in sorted(supporters, key=key):
        have = money[i]
        # ρ = remaining / utility_left; can this supporter pay ρ·u?
        if num * u * have.denominator <= have.numerator * den * utility_left:
            return Fraction(num, den * utility_left)
        # No: they pay all they have, which is less than ρ·u, so remaining stays above zero.
        m = voters.multiplicity[i]
        if have:
            num = num * have.denominator - m * have.numerator * den
            den *= have.denominator
            common = math.gcd(num, den)
            num, den = num // common, den // common
        utility_left -= m * u
    return None


def _mes_run(
    available: Sequence[Candidate],
    voters: _Voters,
    share: Fraction,
    criteria: Sequence[tuple[str, _TieKey]],
    forced: tuple[int, str] | None = None,
) -> _MesRun:
    """Run the method with every voter starting at ``share`` kopecks.

    Each round funds the project with the least ρ (each supporter pays ``min(money, ρ·utility)``);
    ties on ρ go by the tie-break criteria. ``forced = (round, id)`` picks ``id`` at that round
    instead, to see whether a tie mattered.
    """
    money = [share] * len(voters.multiplicity)
    lower_bound: dict[str, Fraction] = {
        c.id: Fraction(c.cost, sum(voters.multiplicity[i] * u for i, u in voters.supporters[c.id]))
        for c in available
    }
    by_id = {c.id: c for c in available}
    remaining = set(by_id)
    run = _MesRun(funded=[], ties=[])
    round_number = -1
    while True:
        round_number += 1
        best: Fraction | None = None
        tied: list[Candidate] = []
        # ρ only grows as voters spend, so the last ρ computed is a lower bound: once it exceeds
        # the best found this round, so does every later one.
        for pid in sorted(remaining, key=lambda p: lower_bound[p]):
            if best is not None and lower_bound[pid] > best:
                break
            rho = _affordability(by_id[pid].cost, voters.supporters[pid], money, voters)
            if rho is None:
                remaining.discard(pid)
                continue
            lower_bound[pid] = rho
            if best is None or rho < best:
                best, tied = rho, [by_id[pid]]
            elif rho == best:
                tied.append(by_id[pid])
        if best is None:
            return run
        ordered, resolved_by = _tie_order(tied, criteria)
        if len(ordered) > 1:
            run.ties.append((round_number, ordered, resolved_by))
        chosen = ordered[0]
        if forced is not None and forced[0] == round_number:
            chosen = by_id[forced[1]]
        run.funded.append(chosen.id)
        remaining.discard(chosen.id)
        for i, u in voters.supporters[chosen.id]:
            money[i] -= min(money[i], best * u)


def equal_shares(
    candidates: Iterable[Candidate],
    budget: int,
    approvals: Sequence[Sequence[str]] | Sequence[Mapping[str, int]],
    *,
    completion: str = "add1",
    increment: int = 100,
    min_votes: int = 0,
    tie_break: Sequence[str] = DEFAULT_TIE_BREAK,
    seed: str = "",
    satisfaction: str = "cost",
) -> Allocation:
    """The Method of Equal Shares, computed exactly.

    ``approvals`` holds one entry per ballot (empty ballots included: every voter gets a share):
    a sequence of approved project ids, or a mapping of project id to points (cumulative points,
    or the positional scores of a ranking). A voter's utility from a funded project is, with
    ``satisfaction="cost"``, its cost times the points given to it (1 for an approval):
    pabutools' ``Cost_Sat`` on approval ballots; with ``satisfaction="points"``, the points alone:
    pabutools' ``Additive_Cardinal_Sat`` on cumulative ballots (``Cardinality_Sat`` on approval
    ballots; on a ranking scored k, k-1, ..., 1 it is the positional satisfaction with those
    scores). Every candidate's ``score`` must equal the points the ballots give it (approval: the
    number of ballots naming it) and its ``votes`` the number of ballots giving it points.

    The budget is split equally between the voters. Each round, for each project whose supporters
    can still pay for it, find the least ρ such that supporters paying ``min(money, ρ·utility)``
    cover its cost; fund the project with the least ρ and charge its supporters. Ties on ρ go by
    ``tie_break`` and then by id (``tie_break=()`` is pabutools' default, by id). A project that
    costs nothing gives nobody utility under ``"cost"`` and is left to the completion; under
    ``"points"`` its supporters buy it first, at ρ = 0. Projects whose score is below
    ``min_votes`` take no part. This is pabutools' ``method_of_equal_shares(instance, profile,
    sat_class=...)`` with exact fractions.

    ``completion`` spends what the method leaves:

    - ``"none"``: the method alone;
    - ``"add1"``: pabutools' ``voter_budget_increment``: rerun with each voter's share raised by
      ``increment`` kopecks, until the outcome leaves no money for any further supported project
      (that outcome is kept) or overspends the budget (the previous outcome is kept);
    - ``"greedy"``: then fund the rest by score, as :func:`greedy` with skipping;
    - ``"add1-greedy"``: ``"add1"`` and then ``"greedy"``.

    In ``ties``, ``changed_outcome`` is judged at the share of the run that gave the outcome.

    Cost: every Add1 step is a full run. On Warszawa-Wola 2023 (6,760 ballots, 67 projects) a run
    takes about a second, and Add1 at one-złoty steps about 300 of them (five minutes); a larger
    ``increment`` is proportionally faster but is a different (coarser) rule.
    """
    if completion not in COMPLETIONS:
        raise TallyInputError(
            f"unknown completion {completion!r}; expected one of {', '.join(COMPLETIONS)}"
        )
    if isinstance(increment, bool) or not isinstance(increment, int) or increment <= 0:
        raise TallyInputError(f"increment must be a positive integer of kopecks, got {increment!r}")
    if satisfaction not in SATISFACTIONS:
        raise TallyInputError(
            f"unknown satisfaction {satisfaction!r}; expected one of {', '.join(SATISFACTIONS)}"
        )
    listed = _check_candidates(candidates, budget)
    criteria = _criteria(tie_break, seed)
    by_id = {c.id: c for c in listed}
    voters = _voters(approvals, by_id, satisfaction)
    ranked = _rank(listed, criteria)
    eligible = [c for c in ranked if c.score >= min_votes]
    available = [c for c in eligible if voters.supporters[c.id]]

    def outcome(run: _MesRun) -> _Funding:
        spent = sum(by_id[pid].cost for pid in run.funded)
        funding = _Funding(funded=list(run.funded), left=budget - spent, ties=[])
        if completion in ("greedy", "add1-greedy"):
            done = set(run.funded)
            rest = [c for c in eligible if c.id not in done]
            _fund_in_rank_order(rest, funding, skip=True, criteria=criteria)
        return funding

    if voters.count == 0:
        share, run = Fraction(0), _MesRun(funded=[], ties=[])
    else:
        share = Fraction(budget, voters.count)
        run = _mes_run(available, voters, share, criteria)
        if completion in ("add1", "add1-greedy"):
            share, run = _add_one(available, voters, share, run, budget, increment, criteria)

    funding = outcome(run)
    base = set(funding.funded)
    mes_ties: list[Tie] = []
    for round_number, tied, resolved_by in run.ties:
        changed = any(
            set(outcome(_mes_run(available, voters, share, criteria, (round_number, c.id))).funded)
            != base
            for c in tied[1:]
        )
        mes_ties.append(
            Tie(
                projects=tuple(c.id for c in tied),
                score=tied[0].score,
                resolved_by=resolved_by,
                changed_outcome=changed,
            )
        )
    funding.ties[:0] = mes_ties
    unfunded = [c.id for c in ranked if c.id not in base]
    return _allocation(ranked, eligible, funding, budget, order=[*funding.funded, *unfunded])


def _add_one(
    available: Sequence[Candidate],
    voters: _Voters,
    share: Fraction,
    run: _MesRun,
    budget: int,
    increment: int,
    criteria: Sequence[tuple[str, _TieKey]],
) -> tuple[Fraction, _MesRun]:
    """Raise every voter's share by ``increment`` until the outcome is exhaustive or overspends."""
    costs = {c.id: c.cost for c in available}
    previous: tuple[Fraction, _MesRun] = (share, _MesRun(funded=[], ties=[]))
    while True:
        spent = sum(costs[pid] for pid in run.funded)
        if spent > budget:
            return previous
        funded = set(run.funded)
        if all(pid in funded or spent + cost > budget for pid, cost in costs.items()):
            return share, run
        previous = (share, run)
        share += increment
        run = _mes_run(available, voters, share, criteria)
