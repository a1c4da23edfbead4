"""Every limit of every ballot kind (DESIGN.md §3b), online and on paper, held over a voter's
counted ballots together; wrong fields; a second ranking; groups; double entry; lookups."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.votes.factories import CLERK_OLENA, CLERK_PETRO, DURING, SUPERVISOR, Log, token, void
from votes.election import Election, parse_election_toml
from votes.errors import (
    BadPayloadError,
    CostLimitExceededError,
    CostTooLowError,
    EmptyBallotError,
    GroupLimitExceededError,
    LimitExceededError,
    PointsLimitExceededError,
    ProjectPointsExceededError,
    ProjectRepeatedError,
    RankingExistsError,
    TooFewPicksError,
    TooFewPointsError,
    UnknownProjectError,
    VoteRefusedError,
    WrongBallotFieldError,
)
from votes.rules import Outcome, decide_lookup, voter_state

KINDS = """
id = "kinds-2026"
title = { uk = "Види", en = "Kinds" }
timezone = "Europe/Kyiv"
voting_opens = 2018-10-01T00:00:00
voting_closes = 2018-10-10T23:59:59
paper_deadline = 2018-10-12T18:00:00
rule = { method = "greedy" }

[[polling_points]]
id = "city-council"
title = { uk = "Рада", en = "Council" }

[[categories]]
id = "appr"
title = { uk = "А", en = "A" }
budget = "1 000.00"
max_cost = "1 000.00"
min_picks = 1
max_picks = 2

[[categories]]
id = "knap"
title = { uk = "К", en = "K" }
ballot = "knapsack"
budget = "100.00"
max_cost = "100.00"
min_total_cost = "30.00"

[[categories]]
id = "cumu"
title = { uk = "Б", en = "C" }
ballot = "cumulative"
budget = "100.00"
max_cost = "100.00"
max_points = 3
max_total_points = 5
min_total_points = 2

[[categories]]
id = "rank"
title = { uk = "Р", en = "R" }
ballot = "ordinal"
budget = "100.00"
max_cost = "100.00"
min_picks = 2
max_picks = 3

[[categories]]
id = "north"
title = { uk = "Пн", en = "N" }
budget = "100.00"
max_cost = "100.00"
max_picks = 3

[[categories]]
id = "south"
title = { uk = "Пд", en = "S" }
budget = "100.00"
max_cost = "100.00"
max_picks = 3

[[category_groups]]
id = "districts"
categories = ["north", "south"]
max_categories = 1
"""
PROJECTS = {
    "A1": ("appr", "10.00"),
    "A2": ("appr", "10.00"),
    "A3": ("appr", "10.00"),
    "K1": ("knap", "50.00"),
    "K2": ("knap", "40.00"),
    "K3": ("knap", "20.00"),
    "K4": ("knap", "25.00"),
    "C1": ("cumu", "10.00"),
    "C2": ("cumu", "10.00"),
    "C3": ("cumu", "10.00"),
    "R1": ("rank", "10.00"),
    "R2": ("rank", "10.00"),
    "R3": ("rank", "10.00"),
    "R4": ("rank", "10.00"),
    "N1": ("north", "10.00"),
    "N2": ("north", "10.00"),
    "S1": ("south", "10.00"),
}


def kinds_election(*, double_entry: bool = False, multiple: bool = True) -> Election:
    """One election with a category of every kind and a group of two districts."""
    text = KINDS.replace(
        'rule = { method = "greedy" }',
        (
            'rule = { method = "greedy" }\n'
            f"double_entry = {str(double_entry).lower()}\n"
            f"multiple_ballots = {str(multiple).lower()}"
        ),
    )
    for pid, (category, cost) in PROJECTS.items():
        text += (
            f'\n[[projects]]\nid = "{pid}"\ntitle = {{ uk = "п", en = "p" }}\n'
            f'category = "{category}"\ncost = "{cost}"\ndistrict = "d"\n'
        )
    return parse_election_toml(text)


def payload(voter: int, *, paper: bool = False, **choices: Any) -> dict[str, Any]:
    """A ballot (or paper ballot) payload with the given choice fields."""
    body: dict[str, Any] = {
        "type": "paper-ballot" if paper else "ballot",
        "election": "kinds-2026",
        "voter": token(voter),
        "cast_at": DURING.isoformat(),
        "nonce": str(uuid.uuid4()),
        **choices,
    }
    if paper:
        body["polling_point"] = "city-council"
    return body


def submit(log: Log, body: dict[str, Any], key: str | None = None) -> Outcome:
    signer = key or (CLERK_OLENA if body["type"] == "paper-ballot" else "site.e-dem+0a1b2c3d")
    return log.submit_ballot(body, key=signer).outcome


def refused(log: Log, body: dict[str, Any], key: str | None = None) -> VoteRefusedError:
    with pytest.raises(VoteRefusedError) as caught:
        submit(log, body, key)
    return caught.value


CHANNELS = pytest.mark.parametrize("paper", [False, True], ids=["online", "paper"])


# -- each limit, alone ---------------------------------------------------------------------------


@CHANNELS
@pytest.mark.parametrize(
    ("choices", "error", "data"),
    [
        ({"projects": ["A1", "A2", "A3"]}, LimitExceededError, {"limit": 2, "adding": 3}),
        ({"projects": ["K1", "K2", "K3"]}, CostLimitExceededError, {"total_cost_kopecks": 11000}),
        ({"projects": ["K3"]}, CostTooLowError, {"min_total_cost_kopecks": 3000}),
        ({"points": {"C1": 4}}, ProjectPointsExceededError, {"project": "C1", "points": 4}),
        ({"points": {"C1": 3, "C2": 3}}, PointsLimitExceededError, {"total": 6, "already": 0}),
        ({"points": {"C1": 1}}, TooFewPointsError, {"minimum": 2, "total": 1}),
        ({"ranking": ["R1"]}, TooFewPicksError, {"minimum": 2, "chosen": 1}),
        ({"ranking": ["R1", "R2", "R3", "R4"]}, LimitExceededError, {"limit": 3}),
        ({"projects": ["N1", "S1"]}, GroupLimitExceededError, {"categories": ["north", "south"]}),
        ({"projects": ["C1"]}, WrongBallotFieldError, {"expected": "points"}),
        ({"points": {"A1": 1}}, WrongBallotFieldError, {"expected": "projects"}),
        ({"projects": ["R1", "R2"]}, WrongBallotFieldError, {"expected": "ranking"}),
        ({"ranking": ["K1", "K2"]}, WrongBallotFieldError, {"ballot": "knapsack"}),
        ({"ranking": ["R1", "R1"]}, ProjectRepeatedError, {"project": "R1"}),
        ({"projects": ["A1", "A1"]}, ProjectRepeatedError, {"project": "A1"}),
        ({"points": {"X9": 1}}, UnknownProjectError, {}),
        ({"projects": [], "points": {}, "ranking": []}, EmptyBallotError, {}),
    ],
)
def test_each_limit_refuses_a_first_ballot(
    paper: bool, choices: dict[str, Any], error: type[VoteRefusedError], data: dict[str, Any]
) -> None:
    """A first ballot breaking one limit is refused with that limit's own code and facts."""
    log = Log(kinds_election())
    caught = refused(log, payload(1, paper=paper, **choices))
    assert type(caught) is error
    assert data.items() <= caught.data.items()
    assert len(log.entries) == 1


@CHANNELS
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("points", {"C1": 0}),
        ("points", {"C1": -1}),
        ("points", {"C1": True}),
        ("points", {"C1": 1.5}),
        ("points", ["C1"]),
        ("ranking", "R1"),
        ("ranking", [1, 2]),
    ],
)
def test_malformed_points_and_rankings(paper: bool, field: str, value: Any) -> None:
    """Points are positive whole numbers by project id; a ranking is a list of project ids."""
    with pytest.raises(BadPayloadError) as caught:
        submit(Log(kinds_election()), payload(1, paper=paper, **{field: value}))
    assert caught.value.field.startswith(field)


def test_a_ballot_without_any_choice_field_names_projects() -> None:
    """As before ballot kinds: the missing field is reported as projects."""
    body = payload(1)
    with pytest.raises(BadPayloadError) as caught:
        submit(Log(kinds_election()), body)
    assert caught.value.field == "projects"


@CHANNELS
def test_every_kind_in_one_ballot(paper: bool) -> None:
    """A ballot within every limit counts, with each project's mark and score."""
    election = kinds_election()
    log = Log(election)
    body = payload(
        1,
        paper=paper,
        projects=["A1", "K1", "N1"],
        points={"C1": 3, "C2": 2},
        ranking=["R3", "R1", "R2"],
    )
    assert submit(log, body) == Outcome.COUNTED
    [ballot] = voter_state(election, log.history_of(token(1))).ballots
    assert ballot.marks == {"A1": 1, "K1": 1, "N1": 1, "C1": 3, "C2": 2, "R3": 1, "R1": 2, "R2": 3}
    assert ballot.scores(election) == {
        "A1": 1,
        "K1": 1,
        "N1": 1,
        "C1": 3,
        "C2": 2,
        "R3": 3,
        "R1": 2,
        "R2": 1,
    }
    assert set(log.entries[-1][1]) >= {f"project:{p}" for p in ballot.projects}


# -- limits over the voter's ballots together ---------------------------------------------------


@pytest.mark.parametrize("channels", [(False, False), (False, True), (True, False), (True, True)])
def test_limits_hold_across_ballots_and_channels(channels: tuple[bool, bool]) -> None:
    """A second ballot, online or paper, is checked with the first one's choices."""
    first, second = channels
    log = Log(kinds_election())
    submit(log, payload(1, paper=first, projects=["K1"], points={"C1": 2}, ranking=["R1", "R2"]))
    cost = refused(log, payload(1, paper=second, projects=["K2", "K3"]))
    assert isinstance(cost, CostLimitExceededError) and cost.total_cost_kopecks == 11000
    points = refused(log, payload(1, paper=second, points={"C2": 3, "C3": 1}))
    assert isinstance(points, PointsLimitExceededError) and (points.already, points.total) == (2, 6)
    again = refused(log, payload(1, paper=second, points={"C1": 1}))
    assert isinstance(again, ProjectRepeatedError)
    ranking = refused(log, payload(1, paper=second, ranking=["R3", "R4"]))
    assert isinstance(ranking, RankingExistsError) and ranking.category == "rank"
    # What still fits is taken: 50 + 40 = 90 <= 100, and 2 + 3 = 5 points.
    assert submit(log, payload(1, paper=second, projects=["K2"], points={"C2": 3})) in (
        Outcome.COUNTED,
    )


def test_minimums_count_what_the_voter_already_has() -> None:
    """A later ballot meets a minimum with the earlier ballots' choices."""
    log = Log(kinds_election())
    submit(log, payload(1, projects=["K1"], points={"C1": 2}))
    # K3 alone costs 20.00 (< 30.00), but with K1 the voter's picks cost 70.00.
    assert submit(log, payload(1, projects=["K3"])) == Outcome.COUNTED
    # One point alone is under the minimum of 2, but the voter already gave 2.
    assert submit(log, payload(1, points={"C2": 1})) == Outcome.COUNTED


def test_groups_count_categories_across_ballots() -> None:
    """A voter in the north cannot join the south with a later ballot; more north is fine."""
    log = Log(kinds_election())
    submit(log, payload(1, projects=["N1"]))
    caught = refused(log, payload(1, projects=["S1"]))
    assert isinstance(caught, GroupLimitExceededError)
    assert (caught.group, caught.limit, caught.categories) == ("districts", 1, ("north", "south"))
    assert submit(log, payload(1, projects=["N2"])) == Outcome.COUNTED
    assert submit(log, payload(2, projects=["S1"])) == Outcome.COUNTED


def test_a_voided_ranking_can_be_replaced() -> None:
    """Rankings do not combine; the supervisor voids the first, then a second one counts."""
    log = Log(kinds_election())
    submit(log, payload(1, ranking=["R1", "R2"]))
    first = log.last.position
    assert isinstance(refused(log, payload(1, ranking=["R3", "R4"])), RankingExistsError)
    log.submit_void(void(first) | {"election": "kinds-2026"}, key=SUPERVISOR)
    assert submit(log, payload(1, ranking=["R3", "R4", "R1"])) == Outcome.COUNTED


# -- double entry --------------------------------------------------------------------------------


def test_double_entry_compares_points_and_ranking_order() -> None:
    """Two keyings agree only with the same points and the ranking in the same order."""
    election = kinds_election(double_entry=True)
    log = Log(election)
    choices: dict[str, Any] = {"points": {"C1": 2, "C2": 1}, "ranking": ["R1", "R2"]}
    assert submit(log, payload(1, paper=True, **choices), CLERK_OLENA) == (
        Outcome.AWAITING_SECOND_KEYING
    )
    same = {"points": {"C2": 1, "C1": 2}, "ranking": ["R1", "R2"]}
    assert submit(log, payload(1, paper=True, **same), CLERK_PETRO) == Outcome.CONFIRMED
    [ballot] = voter_state(election, log.history_of(token(1))).ballots
    assert ballot.marks == {"C1": 2, "C2": 1, "R1": 1, "R2": 2}

    submit(log, payload(2, paper=True, ranking=["R1", "R2"]), CLERK_OLENA)
    swapped = submit(log, payload(2, paper=True, ranking=["R2", "R1"]), CLERK_PETRO)
    assert swapped == Outcome.DISPUTED
    submit(log, payload(3, paper=True, points={"C1": 2}), CLERK_OLENA)
    assert submit(log, payload(3, paper=True, points={"C1": 3}), CLERK_PETRO) == Outcome.DISPUTED


def test_a_pending_keying_holds_its_points_and_ranking() -> None:
    """Choices waiting for a second keying count against the voter's limits."""
    log = Log(kinds_election(double_entry=True))
    submit(log, payload(1, paper=True, points={"C1": 3}, ranking=["R1", "R2"]), CLERK_OLENA)
    online = refused(log, payload(1, points={"C2": 3}))
    assert isinstance(online, PointsLimitExceededError) and online.already == 3
    assert isinstance(refused(log, payload(1, ranking=["R3", "R4"])), RankingExistsError)


# -- lookups -------------------------------------------------------------------------------------


def lookup(log: Log, voter: int) -> None:
    body = {
        "type": "voter-lookup",
        "election": "kinds-2026",
        "polling_point": "city-council",
        "nonce": str(uuid.uuid4()),
    }
    decide_lookup(log.election, body, log.history_of(token(voter)), now=DURING, token=token(voter))


def test_lookup_refused_only_when_every_category_is_closed() -> None:
    """A voter whose every category is used up (picks, cost, points, ranking, group) cannot be
    looked up; while one category is open, the lookup is allowed."""
    log = Log(kinds_election())
    submit(log, payload(1, projects=["A1", "A2", "K1", "K2", "N1"], points={"C1": 3, "C2": 2}))
    lookup(log, 1)  # the ranking is still open
    submit(log, payload(1, ranking=["R1", "R2"]))
    # knap: 90 of 100 spent, the cheapest left costs 20; south is closed by the group; north
    # has room (2 more), so the voter is still open.
    lookup(log, 1)
    submit(log, payload(1, projects=["N2"]))
    with pytest.raises(LimitExceededError):
        lookup(log, 1)


# -- agreement with a simple model ---------------------------------------------------------------


@st.composite
def ballots(draw: st.DrawFn) -> dict[str, Any]:
    """Random choices of every kind, often over some limit."""
    choices: dict[str, Any] = {}
    if draw(st.booleans()):
        choices["projects"] = draw(
            st.lists(
                st.sampled_from(["A1", "A2", "A3", "K1", "K2", "K3", "K4", "N1", "S1"]),
                max_size=4,
                unique=True,
            )
        )
    if draw(st.booleans()):
        choices["points"] = draw(
            st.dictionaries(st.sampled_from(["C1", "C2", "C3"]), st.integers(1, 4), max_size=3)
        )
    if draw(st.booleans()):
        choices["ranking"] = draw(
            st.lists(st.sampled_from(["R1", "R2", "R3", "R4"]), max_size=4, unique=True)
        )
    return choices


def model_refuses(held: dict[str, dict[str, int]], choices: dict[str, Any]) -> bool:
    """Whether the ballot breaks a limit, by the definition in DESIGN.md §3b."""
    new: dict[str, dict[str, int]] = {}
    for p in choices.get("projects", []):
        new.setdefault(PROJECTS[p][0], {})[p] = 1
    for p, n in choices.get("points", {}).items():
        new.setdefault("cumu", {})[p] = n
    for i, p in enumerate(choices.get("ranking", []), start=1):
        new.setdefault("rank", {})[p] = i
    if not new:
        return True
    cost = {p: int(float(c) * 100) for p, (_, c) in PROJECTS.items()}
    for category, chosen in new.items():
        before = held.get(category, {})
        if set(before) & set(chosen) or (category == "rank" and before):
            return True
        both = {**before, **chosen}
        if category == "appr" and not 1 <= len(both) <= 2:
            return True
        if category == "knap" and not 3000 <= sum(cost[p] for p in both) <= 10000:
            return True
        if category == "cumu" and (max(chosen.values()) > 3 or not 2 <= sum(both.values()) <= 5):
            return True
        if category == "rank" and not 2 <= len(both) <= 3:
            return True
        if category in ("north", "south") and len(both) > 3:
            return True
    districts = {c for c in ("north", "south") if held.get(c) or c in new}
    return len(districts) > 1 and bool(districts & set(new))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.booleans(), ballots()), min_size=1, max_size=6))
def test_rules_agree_with_the_model(stream: list[tuple[bool, dict[str, Any]]]) -> None:
    """Whatever ballots a voter casts, online or paper, the rules accept exactly those the
    model accepts, and what counts is the union of the accepted ballots' choices."""
    election = kinds_election()
    log = Log(election)
    held: dict[str, dict[str, int]] = {}
    for paper, choices in stream:
        expected_refusal = model_refuses(held, choices)
        try:
            submit(log, payload(1, paper=paper, **choices))
        except VoteRefusedError:
            assert expected_refusal, choices
            continue
        assert not expected_refusal, choices
        for p in choices.get("projects", []):
            held.setdefault(PROJECTS[p][0], {})[p] = 1
        for p, n in choices.get("points", {}).items():
            held.setdefault("cumu", {})[p] = n
        for i, p in enumerate(choices.get("ranking", []), start=1):
            held.setdefault("rank", {})[p] = i
    state = voter_state(election, log.history_of(token(1)))
    marks = state.counted_marks(election)
    assert {c: m for c, m in marks.items() if m} == held
