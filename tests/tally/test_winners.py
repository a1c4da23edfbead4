"""Winner rules: greedy by score and the Method of Equal Shares, by hand and against pabutools."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tally.winners import (
    Allocation,
    Candidate,
    TallyInputError,
    Tie,
    equal_shares,
    greedy,
    lottery_ticket,
)
from tests.tally.oracle import TIE_BREAKS, Election


def c(pid: str, cost: int, votes: int, score: int | None = None) -> Candidate:
    """A candidate, briefly."""
    return Candidate(id=pid, cost=cost, votes=votes, score=score)


# --- greedy, by hand -----------------------------------------------------------------------------


def test_skip_takes_the_next_project_that_fits() -> None:
    """With skipping, a project that does not fit is passed over for a cheaper one below it."""
    result = greedy([c("A", 60, 10), c("B", 50, 9), c("C", 40, 8)], 100)
    assert result.funded == ("A", "C")
    assert (result.spent, result.left) == (100, 0)
    assert result.reserve == ("B",)
    assert result.skipped == ("B",)


def test_no_skip_stops_at_the_first_project_that_does_not_fit() -> None:
    """Greedy-no-skip funds nothing after the first project that does not fit."""
    result = greedy([c("A", 60, 10), c("B", 50, 9), c("C", 40, 8)], 100, skip=False)
    assert result.funded == ("A",)
    assert result.left == 40
    assert result.reserve == ("B", "C")
    # C would have fitted: it is in the reserve, not among the projects that did not fit.
    assert result.skipped == ("B",)


def test_funding_order_is_the_ranking() -> None:
    """Funded projects come in rank order, whatever the input order."""
    result = greedy([c("low", 1, 1), c("top", 1, 30), c("mid", 1, 20)], 10)
    assert result.funded == ("top", "mid", "low")
    assert result.order == ("top", "mid", "low")


def test_threshold_excludes_projects_below_it() -> None:
    """Projects with fewer votes than the threshold are not funded even when money is left."""
    result = greedy([c("A", 10, 50), c("B", 10, 49), c("C", 10, 80)], 1000, min_votes=50)
    assert result.funded == ("C", "A")
    assert result.below_threshold == ("B",)
    assert result.reserve == ()
    assert result.left == 980
    assert result.order == ("C", "A", "B")


def test_reserve_list_is_in_rank_order() -> None:
    """Eligible projects that were not funded form the reserve, best ranked first."""
    candidates = [c("A", 90, 100), c("B", 50, 90), c("C", 70, 80), c("D", 20, 5), c("E", 5, 1)]
    result = greedy(candidates, 100, min_votes=2)
    assert result.funded == ("A",)
    assert result.reserve == ("B", "C", "D")
    assert result.skipped == ("B", "C", "D")
    assert result.below_threshold == ("E",)


def test_tie_break_cost_ascending() -> None:
    """On equal votes the cheaper project ranks first by default."""
    result = greedy([c("dear", 70, 5), c("cheap", 40, 5)], 100)
    assert result.funded == ("cheap",)
    assert result.ties == (Tie(("cheap", "dear"), 5, "cost-ascending", True),)


def test_tie_break_cost_descending() -> None:
    """With cost-descending the dearer of two tied projects ranks first."""
    result = greedy([c("dear", 70, 5), c("cheap", 40, 5)], 100, tie_break=["cost-descending"])
    assert result.funded == ("dear",)
    assert result.ties[0].projects == ("dear", "cheap")
    assert result.ties[0].resolved_by == "cost-descending"


def _expected_lottery(seed: str, ids: Sequence[str]) -> list[str]:
    return sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())


def test_tie_break_lottery_is_the_published_sha256_draw() -> None:
    """The lottery orders tied projects by SHA-256 of 'seed:id', smallest first."""
    ids = [f"P{n}" for n in range(6)]
    for seed in ("", "root:4f1c", "zhytomyr-2018"):
        result = greedy([c(i, 1, 7) for i in ids], 3, tie_break=["lottery"], seed=seed)
        expected = _expected_lottery(seed, ids)
        assert list(result.order) == expected
        assert result.funded == tuple(expected[:3])
        assert result.ties[0].resolved_by == "lottery"
    assert lottery_ticket("s", "P1") == hashlib.sha256(b"s:P1").hexdigest()


def test_default_tie_break_falls_to_the_lottery_on_equal_costs() -> None:
    """Cost first, then the lottery only among projects of equal cost."""
    seed = "x"
    first, second = _expected_lottery(seed, ["Q", "R"])
    result = greedy([c("Q", 10, 3), c("R", 10, 3), c("S", 5, 3)], 100, seed=seed)
    assert result.order == ("S", first, second)
    assert result.ties[0].resolved_by == "cost-ascending+lottery"


def test_tie_break_falls_back_to_id() -> None:
    """When every criterion agrees, the id decides, so the ranking is total."""
    result = greedy([c("b", 10, 3), c("a", 10, 3)], 100, tie_break=[])
    assert result.order == ("a", "b")
    assert result.ties[0].resolved_by == "id"
    result = greedy([c("b", 10, 3), c("a", 10, 3)], 100, tie_break=["cost-ascending"])
    assert result.ties[0].resolved_by == "id"


def test_tie_that_changed_the_outcome_is_flagged() -> None:
    """Two tied projects of which only one fits: the tie decided which one is funded."""
    result = greedy([c("top", 50, 9), c("X", 30, 4), c("Y", 40, 4)], 90)
    assert result.funded == ("top", "X")
    assert result.ties == (Tie(("X", "Y"), 4, "cost-ascending", True),)


def test_tie_that_did_not_matter_is_reported_unchanged() -> None:
    """Tied projects that all fit together, or none of which fits, are reported as harmless."""
    both_fit = greedy([c("X", 30, 4), c("Y", 40, 4)], 70)
    assert both_fit.ties == (Tie(("X", "Y"), 4, "cost-ascending", False),)
    none_fits = greedy([c("top", 90, 9), c("X", 30, 4), c("Y", 40, 4)], 100)
    assert none_fits.ties == (Tie(("X", "Y"), 4, "cost-ascending", False),)
    only_one_fits = greedy([c("X", 30, 4), c("Y", 400, 4)], 100)
    assert only_one_fits.ties[0].changed_outcome is False


def test_tie_under_no_skip_where_a_misfit_first_would_stop_everything() -> None:
    """Without skipping, a tied project that does not fit, taken first, would fund nothing."""
    result = greedy([c("X", 30, 4), c("Y", 400, 4)], 100, skip=False)
    assert result.funded == ("X",)
    assert result.ties[0].changed_outcome is True
    after_stop = greedy([c("big", 500, 9), c("X", 30, 4), c("Y", 40, 4)], 100, skip=False)
    assert after_stop.funded == ()
    assert after_stop.ties[0].changed_outcome is False


def test_ties_below_the_threshold_are_not_reported() -> None:
    """Only projects that passed the threshold can be in a reported tie."""
    result = greedy([c("X", 30, 4), c("Y", 40, 4)], 10, min_votes=5)
    assert result.ties == ()


ZHYTOMYR_BUDGET = 1_521_910_073  # 15 219 100.73 UAH


def test_exact_kopecks_zhytomyr_total() -> None:
    """The Zhytomyr-like total is spent to the kopeck; one kopeck more does not fit."""
    large = 149_999_999
    rest = ZHYTOMYR_BUDGET - large
    result = greedy([c("L01", large, 900), c("rest", rest, 800)], ZHYTOMYR_BUDGET)
    assert result.funded == ("L01", "rest")
    assert (result.spent, result.left) == (ZHYTOMYR_BUDGET, 0)
    over = greedy([c("L01", large, 900), c("rest", rest + 1, 800)], ZHYTOMYR_BUDGET)
    assert over.funded == ("L01",)
    assert over.left == rest
    assert over.skipped == ("rest",)


def test_no_projects() -> None:
    """An empty ballot funds nothing and keeps the whole budget."""
    assert greedy([], 100) == Allocation((), (), (), (), 0, 100, 100, (), ())


@pytest.mark.parametrize(
    ("candidates", "budget", "options"),
    [
        ([c("A", 1, 1), c("A", 2, 2)], 10, {}),
        ([c("A", -1, 1)], 10, {}),
        ([c("A", 1, -1)], 10, {}),
        ([Candidate("A", 1.5, 1)], 10, {}),  # type: ignore[arg-type]
        ([c("A", 1, 1)], -1, {}),
        ([c("A", 1, 1)], 10.0, {}),
        ([c("A", 1, 1)], 10, {"tie_break": ["coin-toss"]}),
        ([c("A", 1, 1)], 10, {"tie_break": "lottery"}),
    ],
)
def test_inconsistent_input_is_refused(
    candidates: list[Candidate], budget: int, options: dict[str, object]
) -> None:
    """Duplicate ids, negative or fractional money and unknown tie-breaks raise TallyInputError."""
    with pytest.raises(TallyInputError):
        greedy(candidates, budget, **options)  # type: ignore[arg-type]


# --- greedy, properties and the pabutools oracle -------------------------------------------------

IDS = ["a", "b", "c", "d", "e", "f", "g"]


@st.composite
def elections(
    draw: st.DrawFn, *, cumulative: bool = False, max_projects: int = 6
) -> tuple[list[Candidate], int, list[list[str]] | list[dict[str, int]]]:
    """A small election with real ballots: candidates (votes and score counted), budget,
    ballots (approvals, or with ``cumulative`` points, 0 allowed as in Pabulib files)."""
    ids = draw(st.lists(st.sampled_from(IDS), min_size=1, max_size=max_projects, unique=True))
    # Few distinct costs and votes make ties common.
    costs = {i: draw(st.sampled_from([0, 5, 10, 20, 25, 40, 60])) for i in ids}
    budget = draw(st.integers(0, 150))
    votes = dict.fromkeys(ids, 0)
    scores = dict.fromkeys(ids, 0)
    ballots: list[list[str]] | list[dict[str, int]]
    if cumulative:
        ballots = draw(
            st.lists(st.dictionaries(st.sampled_from(ids), st.integers(0, 3)), max_size=8)
        )
        for weights in ballots:
            for i, n in weights.items():
                votes[i] += n > 0
                scores[i] += n
    else:
        ballots = draw(st.lists(st.lists(st.sampled_from(ids), unique=True), max_size=8))
        for chosen in ballots:
            for i in chosen:
                votes[i] += 1
                scores[i] += 1
    return [c(i, costs[i], votes[i], scores[i]) for i in ids], budget, ballots


@st.composite
def ordinal_elections(
    draw: st.DrawFn, *, max_projects: int = 6
) -> tuple[list[Candidate], int, list[list[str]], int]:
    """A small election of rankings of at most k projects (scored k, k-1, ...): candidates
    (votes and positional scores counted), budget, rankings, k."""
    ids = draw(st.lists(st.sampled_from(IDS), min_size=1, max_size=max_projects, unique=True))
    costs = {i: draw(st.sampled_from([0, 5, 10, 20, 25, 40, 60])) for i in ids}
    budget = draw(st.integers(0, 150))
    top = draw(st.integers(1, len(ids)))
    rankings = draw(st.lists(st.lists(st.sampled_from(ids), unique=True, max_size=top), max_size=8))
    votes = dict.fromkeys(ids, 0)
    scores = dict.fromkeys(ids, 0)
    for ranking in rankings:
        for position, i in enumerate(ranking):
            votes[i] += 1
            scores[i] += top - position
    return [c(i, costs[i], votes[i], scores[i]) for i in ids], budget, rankings, top


def positional(ranking: Sequence[str], top: int) -> dict[str, int]:
    """A ranking's positional scores, as the tally gives them to the winner rules."""
    return {pid: top - position for position, pid in enumerate(ranking)}


def _reference_fund(order: Sequence[Candidate], budget: int, *, skip: bool) -> frozenset[str]:
    """Fund in the given order, the textbook way."""
    funded: set[str] = set()
    for cand in order:
        if cand.cost <= budget:
            funded.add(cand.id)
            budget -= cand.cost
        elif not skip:
            break
    return frozenset(funded)


@settings(max_examples=300, deadline=None)
@given(
    election=st.one_of(elections(), elections(cumulative=True)),
    skip=st.booleans(),
    min_votes=st.integers(0, 3),
    tie_break=st.sampled_from(
        [(), ("cost-ascending", "lottery"), ("lottery",), ("cost-descending",)]
    ),
)
def test_greedy_invariants(
    election: tuple[list[Candidate], int, list[list[str]]],
    skip: bool,
    min_votes: int,
    tie_break: tuple[str, ...],
) -> None:
    """Money adds up, every project is placed once, and each tie's flag matches brute force."""
    candidates, budget, _ = election
    result = greedy(candidates, budget, skip=skip, min_votes=min_votes, tie_break=tie_break)
    by_id = {x.id: x for x in candidates}
    assert result.spent + result.left == result.budget == budget
    assert result.spent == sum(by_id[i].cost for i in result.funded)
    placed = [*result.funded, *result.reserve, *result.below_threshold]
    assert sorted(placed) == sorted(by_id) == sorted(result.order)
    assert set(result.skipped) <= set(result.reserve)
    assert all(by_id[i].score < min_votes for i in result.below_threshold)
    ranked = [by_id[i] for i in result.order if by_id[i].score >= min_votes]
    assert frozenset(result.funded) == _reference_fund(ranked, budget, skip=skip)
    assert [i for i in result.order if i in result.funded] == list(result.funded)
    order_scores = [by_id[i].score for i in result.order]
    assert order_scores == sorted(order_scores, reverse=True)
    tied_groups = [[x.id for x in g] for _, g in itertools.groupby(ranked, key=lambda x: x.score)]
    assert [t.projects for t in result.ties] == [tuple(g) for g in tied_groups if len(g) > 1]
    base = frozenset(result.funded)
    for tie in result.ties:
        start = ranked.index(by_id[tie.projects[0]])
        others = {
            _reference_fund(
                [*ranked[:start], *(by_id[i] for i in perm), *ranked[start + len(tie.projects) :]],
                budget,
                skip=skip,
            )
            for perm in itertools.permutations(tie.projects)
        }
        assert tie.changed_outcome == (others != {base})
        event(f"tie, skip={skip}, changed_outcome={tie.changed_outcome}")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(election=elections(), tie_break=st.sampled_from(sorted(TIE_BREAKS)))
def test_greedy_funds_what_pabutools_greedy_funds(
    election: tuple[list[Candidate], int, list[list[str]]], tie_break: tuple[str, ...]
) -> None:
    """Same set as pabutools' greedy_utilitarian_welfare with Cost_Sat and the same tie-break."""
    candidates, budget, ballots = election
    ours = greedy(candidates, budget, tie_break=tie_break)
    assert frozenset(ours.funded) == Election(candidates, budget, ballots).greedy(tie_break)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(election=elections(cumulative=True), tie_break=st.sampled_from(sorted(TIE_BREAKS)))
def test_greedy_by_points_funds_what_pabutools_greedy_funds(
    election: tuple[list[Candidate], int, list[dict[str, int]]], tie_break: tuple[str, ...]
) -> None:
    """Cumulative ballots: greedy by the sum of points, as pabutools' greedy welfare rule."""
    candidates, budget, ballots = election
    ours = greedy(candidates, budget, tie_break=tie_break)
    assert frozenset(ours.funded) == Election(candidates, budget, ballots).greedy(tie_break)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(election=ordinal_elections(), tie_break=st.sampled_from(sorted(TIE_BREAKS)))
def test_greedy_by_positional_score_funds_what_pabutools_greedy_funds(
    election: tuple[list[Candidate], int, list[list[str]], int], tie_break: tuple[str, ...]
) -> None:
    """Rankings: greedy by positional score, as pabutools' greedy welfare rule on an ordinal
    profile with positional scores k, k-1, ..."""
    candidates, budget, rankings, top = election
    ours = greedy(candidates, budget, tie_break=tie_break)
    oracle = Election(candidates, budget, rankings, top=top)
    assert frozenset(ours.funded) == oracle.greedy(tie_break)


def test_greedy_ranks_by_score_not_by_voters() -> None:
    """A project few voters gave many points beats one many voters gave one point."""
    result = greedy([c("many", 50, 10, 10), c("few", 50, 3, 15)], 50)
    assert result.funded == ("few",)
    assert result.order == ("few", "many")


def test_threshold_applies_to_the_score() -> None:
    """min_votes is a threshold on the score: two voters with 3 points each pass 5."""
    result = greedy([c("pointed", 10, 2, 6), c("broad", 10, 4, 4)], 100, min_votes=5)
    assert result.funded == ("pointed",)
    assert result.below_threshold == ("broad",)


def test_ties_are_on_score() -> None:
    """Projects with the same score tie whatever their number of voters."""
    result = greedy([c("X", 30, 1, 3), c("Y", 40, 3, 3)], 50)
    assert result.ties == (Tie(("X", "Y"), 3, "cost-ascending", True),)
    assert result.funded == ("X",)


# --- equal shares --------------------------------------------------------------------------------


def test_equal_shares_is_proportional_where_greedy_is_not() -> None:
    """Two voters cannot take the whole budget from a third under equal shares."""
    candidates = [c("A1", 40, 2), c("A2", 40, 2), c("A3", 40, 2), c("B", 30, 1)]
    ballots = [["A1", "A2", "A3"], ["A1", "A2", "A3"], ["B"]]
    assert set(greedy(candidates, 120).funded) == {"A1", "A2", "A3"}
    result = equal_shares(candidates, 120, ballots, completion="none", tie_break=[])
    assert result.funded == ("A1", "A2", "B")
    assert (result.spent, result.left) == (110, 10)
    assert result.reserve == ("A3",)
    assert result.skipped == ("A3",)
    # A1, A2, A3 are tied each round; which two are funded depends on it.
    assert [t.projects for t in result.ties] == [("A1", "A2", "A3"), ("A2", "A3")]
    assert all(t.changed_outcome and t.resolved_by == "id" for t in result.ties)


def test_equal_shares_tie_that_did_not_matter() -> None:
    """Tied projects that are both funded anyway are reported with changed_outcome false."""
    candidates = [c("X", 10, 1), c("Y", 10, 1)]
    result = equal_shares(candidates, 100, [["X"], ["Y"]], completion="none")
    assert set(result.funded) == {"X", "Y"}
    assert len(result.ties) == 1
    assert result.ties[0].changed_outcome is False


def test_equal_shares_add1_spends_what_the_method_left() -> None:
    """Raising the voters' shares funds a project the plain method could not afford."""
    candidates = [c("A", 60, 2), c("B", 50, 1)]
    ballots = [["A"], ["A"], ["B"]]
    plain = equal_shares(candidates, 100, ballots, completion="none", increment=1)
    assert plain.funded == ("A",)
    add1 = equal_shares(candidates, 110, ballots, completion="add1", increment=1)
    assert equal_shares(candidates, 110, ballots, completion="none").funded == ("A",)
    assert set(add1.funded) == {"A", "B"}
    assert add1.left == 0


def test_equal_shares_greedy_completion_funds_by_votes() -> None:
    """What is left after the method goes to the best ranked projects that fit."""
    candidates = [c("A", 60, 2), c("B", 50, 1), c("Z", 30, 0)]
    ballots = [["A"], ["A"], ["B"]]
    result = equal_shares(candidates, 100, ballots, completion="greedy")
    assert result.funded == ("A", "Z")
    assert result.reserve == ("B",)


def test_equal_shares_cumulative_ballots_weigh_points() -> None:
    """Points scale a voter's utility: the method follows the points, not the head count."""
    candidates = [c("A", 50, 9), c("B", 50, 2)]
    ballots = [{"A": 9}, {"B": 1}, {"B": 1}]
    result = equal_shares(candidates, 150, ballots, completion="none")
    # One supporter with 9 points buys A at a lower price per utility than two with one point.
    assert result.funded == ("A", "B")


def test_equal_shares_exact_kopecks() -> None:
    """Thirds of an odd kopeck budget stay exact: the voters' money buys both to the kopeck."""
    candidates = [c("L", 1_000_000_001, 3), c("S", 521_910_072, 3)]
    ballots = [["L", "S"]] * 3
    result = equal_shares(candidates, ZHYTOMYR_BUDGET, ballots, completion="none")
    assert set(result.funded) == {"L", "S"}
    assert result.spent == ZHYTOMYR_BUDGET
    assert result.left == 0


@pytest.mark.parametrize(
    ("candidates", "ballots", "options"),
    [
        ([c("A", 10, 2)], [["A"]], {}),
        ([c("A", 10, 1)], [["B"]], {}),
        ([c("A", 10, 1)], [["A", "A"]], {}),
        ([c("A", 10, 1)], ["A"], {}),
        ([c("A", 10, 1)], [{"A": -1}], {}),
        ([c("A", 10, 1)], [["A"]], {"completion": "add2"}),
        ([c("A", 10, 1)], [["A"]], {"increment": 0}),
    ],
)
def test_equal_shares_refuses_inconsistent_ballots(
    candidates: list[Candidate], ballots: list[list[str]], options: dict[str, object]
) -> None:
    """Votes that disagree with the ballots, unknown or repeated projects, bad options: refused."""
    with pytest.raises(TallyInputError):
        equal_shares(candidates, 100, ballots, **options)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    election=elections(),
    completion=st.sampled_from(["none", "add1", "greedy", "add1-greedy"]),
)
def test_equal_shares_funds_what_pabutools_funds(
    election: tuple[list[Candidate], int, list[list[str]]], completion: str
) -> None:
    """Same set as pabutools' method_of_equal_shares with Cost_Sat, for each completion."""
    candidates, budget, ballots = election
    ours = equal_shares(
        candidates, budget, ballots, completion=completion, increment=1, tie_break=[]
    )
    expected = Election(candidates, budget, ballots).equal_shares(completion, increment=1)
    assert frozenset(ours.funded) == expected
    for tie in ours.ties:
        event(f"tie, changed_outcome={tie.changed_outcome}")
    assert ours.spent + ours.left == budget >= ours.spent


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    election=elections(cumulative=True),
    completion=st.sampled_from(["none", "add1-greedy"]),
)
def test_equal_shares_on_points_funds_what_pabutools_funds(
    election: tuple[list[Candidate], int, list[dict[str, int]]], completion: str
) -> None:
    """Cumulative ballots: same set as pabutools with satisfaction points times cost."""
    candidates, budget, ballots = election
    ours = equal_shares(
        candidates, budget, ballots, completion=completion, increment=1, tie_break=[]
    )
    expected = Election(candidates, budget, ballots).equal_shares(completion, increment=1)
    assert frozenset(ours.funded) == expected


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    election=elections(cumulative=True),
    completion=st.sampled_from(["none", "add1", "greedy", "add1-greedy"]),
)
def test_equal_shares_with_points_satisfaction_funds_what_pabutools_funds(
    election: tuple[list[Candidate], int, list[dict[str, int]]], completion: str
) -> None:
    """Cumulative ballots, satisfaction the points (results' choice): same set as pabutools
    with Additive_Cardinal_Sat, completed by score."""
    candidates, budget, ballots = election
    ours = equal_shares(
        candidates,
        budget,
        ballots,
        completion=completion,
        increment=1,
        tie_break=[],
        satisfaction="points",
    )
    oracle = Election(candidates, budget, ballots, satisfaction="points")
    assert frozenset(ours.funded) == oracle.equal_shares(completion, increment=1)
    assert ours.spent + ours.left == budget >= ours.spent


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    election=ordinal_elections(),
    completion=st.sampled_from(["none", "add1", "greedy", "add1-greedy"]),
)
def test_equal_shares_on_rankings_funds_what_pabutools_funds(
    election: tuple[list[Candidate], int, list[list[str]], int], completion: str
) -> None:
    """Rankings as positional scores, satisfaction the points: same set as pabutools on the
    ordinal profile with the positional satisfaction k, k-1, ..., completed by score."""
    candidates, budget, rankings, top = election
    ours = equal_shares(
        candidates,
        budget,
        [positional(r, top) for r in rankings],
        completion=completion,
        increment=1,
        tie_break=[],
        satisfaction="points",
    )
    oracle = Election(candidates, budget, rankings, satisfaction="points", top=top)
    assert frozenset(ours.funded) == oracle.equal_shares(completion, increment=1)


def test_equal_shares_points_satisfaction_ignores_cost() -> None:
    """Under points satisfaction a point buys as much of a cheap project as of a dear one, so
    the cheap one goes first and leaves too little for the dear; under cost satisfaction a point
    of the dear project is worth its cost, and it goes first."""
    candidates = [c("dear", 95, 2, 2), c("cheap", 10, 1, 1)]
    ballots = [{"dear": 1, "cheap": 1}, {"dear": 1}, {}]
    by_points = equal_shares(candidates, 150, ballots, completion="none", satisfaction="points")
    by_cost = equal_shares(candidates, 150, ballots, completion="none", satisfaction="cost")
    assert by_points.funded == ("cheap",)
    assert by_cost.funded == ("dear",)


def test_equal_shares_refuses_unknown_satisfaction() -> None:
    """Satisfactions other than cost and points are refused."""
    with pytest.raises(TallyInputError):
        equal_shares([c("A", 10, 1)], 100, [["A"]], satisfaction="borda")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(election=elections(max_projects=5), seed=st.text(max_size=4))
def test_any_tie_break_funds_a_set_pabutools_allows(
    election: tuple[list[Candidate], int, list[list[str]]], seed: str
) -> None:
    """With the default tie-break (cost, lottery) each rule funds one of pabutools' tied outcomes.

    And a tie flagged as having changed the outcome implies pabutools sees several outcomes.
    (pabutools explores every tie-break, so the elections are kept small.)
    """
    candidates, budget, ballots = election
    oracle = Election(candidates, budget, ballots)
    for ours, outcomes in (
        (greedy(candidates, budget, seed=seed), oracle.greedy_outcomes()),
        (
            equal_shares(candidates, budget, ballots, completion="none", seed=seed),
            oracle.equal_shares_outcomes(),
        ),
    ):
        assert frozenset(ours.funded) in outcomes
        if any(t.changed_outcome for t in ours.ties):
            assert len(outcomes) > 1
        if len(outcomes) > 1:
            event("several outcomes")
