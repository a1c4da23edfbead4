"""The election definition: the example's facts, validation naming fields, JSON round trip."""

from __future__ import annotations

import dataclasses
import json
import pickle
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.messages import render
from tests.votes.factories import example_document, example_text, zhytomyr
from votes.election import (
    Election,
    check_amendment,
    election_from_dict,
    election_to_dict,
    parse_election_toml,
)
from votes.errors import ElectionDefinitionError, ElectionFrozenError, VoteRefusedError
from votes.money import format_uah

KYIV = ZoneInfo("Europe/Kyiv")


def status(error: VoteRefusedError) -> int:
    """The HTTP status the API answers ``error`` with (its row in api/messages.py)."""
    rendered = render(error)
    assert rendered is not None
    return rendered.status


# -- the example file ---------------------------------------------------------------------------


def test_example_has_the_reports_facts() -> None:
    """80 projects, two categories of 2 picks, 1.5M/0.5M maxima, 15 219 100.73 UAH in total."""
    election = zhytomyr()
    assert election.id == "zhytomyr-2018"
    assert len(election.projects) == 80
    assert [c.id for c in election.categories] == ["large", "small"]
    assert [c.max_picks for c in election.categories] == [2, 2]
    assert election.category("large").max_cost == 150_000_000  # type: ignore[union-attr]
    assert election.category("small").max_cost == 50_000_000  # type: ignore[union-attr]
    assert election.total_budget == 1_521_910_073
    assert format_uah(election.total_budget) == "15 219 100.73"
    assert len(election.polling_points) == 3
    assert election.multiple_ballots is True and election.double_entry is False


def test_example_window_and_rule() -> None:
    """Voting 1-10 October 2018 Kyiv time, paper deadline a day later, greedy with tie-breaks."""
    election = zhytomyr()
    assert election.timezone == "Europe/Kyiv"
    assert election.voting_opens == datetime(2018, 10, 1, 0, 0, tzinfo=KYIV)
    assert election.voting_closes == datetime(2018, 10, 10, 23, 59, 59, tzinfo=KYIV)
    assert election.paper_deadline == election.voting_closes + timedelta(days=1)
    assert election.voting_opens.utcoffset() == timedelta(hours=3)
    assert election.rule.method == "greedy"
    assert election.rule.min_votes == 0
    assert election.rule.tie_break == ("cost-ascending", "lottery")
    assert election.rule.seed


def test_example_projects_fit_their_categories() -> None:
    """Every project is in a known category, costs more than zero and at most the maximum."""
    election = zhytomyr()
    for project in election.projects:
        category = election.category(project.category)
        assert category is not None
        assert 0 < project.cost <= category.max_cost
        assert project.title["uk"] and project.title["en"] and project.district
    assert len({p.id for p in election.projects}) == 80


def test_example_header_says_what_is_invented() -> None:
    """The file's header separates the report's facts from the invented ones."""
    header = example_text().split("\nid = ")[0]
    assert "FROM THE 2018 REPORT" in header
    assert "INVENTED" in header
    for invented in ("split", "project", "cost", "district", "tie-break"):
        assert invented in header


def test_lookups() -> None:
    """project(), category() and polling_point() find by id and answer None otherwise."""
    election = zhytomyr()
    assert election.project("L01") is election.projects[0]
    assert election.project("L99") is None
    assert election.category("small") is election.categories[1]
    assert election.category("medium") is None
    assert election.polling_point("city-council") is not None
    assert election.polling_point("home") is None
    assert len(election.projects_in("large")) + len(election.projects_in("small")) == 80


# -- every validation error names its field -----------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _set(path: list[str | int], value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        target: Any = doc
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return mutate


def _delete(path: list[str | int]) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        target: Any = doc
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]

    return mutate


def _both(*mutations: Mutation) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(doc)

    return mutate


def _only_large(doc: dict[str, Any]) -> None:
    doc["projects"] = [p for p in doc["projects"] if p["category"] == "large"]


BROKEN: list[tuple[str, Mutation, str]] = [
    ("id", _set(["id"], "Zhytomyr 2018"), "id"),
    ("id missing", _delete(["id"]), "id"),
    ("id one char", _set(["id"], "z"), "id"),
    ("title.en missing", _delete(["title", "en"]), "title.en"),
    ("title language", _set(["title", "English"], "x"), "title.English"),
    ("timezone", _set(["timezone"], "Europe/Atlantis"), "timezone"),
    ("timezone path", _set(["timezone"], "/etc/passwd"), "timezone"),
    ("closes before opens", _set(["voting_closes"], datetime(2018, 9, 1)), "voting_closes"),
    ("deadline before close", _set(["paper_deadline"], datetime(2018, 10, 5)), "paper_deadline"),
    ("date without time", _set(["voting_opens"], date(2018, 10, 1)), "voting_opens"),
    ("date text", _set(["voting_opens"], "2018-10-01"), "voting_opens"),
    ("bad time text", _set(["voting_opens"], "2018-10-01T25:00:00"), "voting_opens"),
    ("skipped local", _set(["voting_opens"], datetime(2018, 3, 25, 3, 30)), "voting_opens"),
    ("ambiguous local", _set(["voting_closes"], datetime(2018, 10, 28, 3, 30)), "voting_closes"),
    ("no categories", _set(["categories"], []), "categories"),
    ("categories not list", _set(["categories"], {"id": "large"}), "categories"),
    ("max_picks 0", _set(["categories", 0, "max_picks"], 0), "categories[0].max_picks"),
    ("max_picks bool", _set(["categories", 1, "max_picks"], True), "categories[1].max_picks"),
    ("budget zero", _set(["categories", 1, "budget"], "0.00"), "categories[1].budget"),
    ("budget int", _set(["categories", 0, "budget"], 10_000_000), "categories[0].budget"),
    ("budget float", _set(["categories", 0, "budget"], 1e7), "categories[0].budget"),
    ("budget 3 decimals", _set(["categories", 0, "budget"], "1.001"), "categories[0].budget"),
    (
        "budget twice",
        _set(["categories", 0, "budget_kopecks"], 100),
        "categories[0].budget",
    ),
    (
        "kopecks not int",
        _both(_delete(["categories", 0, "budget"]), _set(["categories", 0, "budget_kopecks"], "1")),
        "categories[0].budget_kopecks",
    ),
    (
        "max_cost over budget",
        _set(["categories", 1, "max_cost"], "5 000 000"),
        "categories[1].max_cost",
    ),
    ("max_cost missing", _delete(["categories", 1, "max_cost"]), "categories[1].max_cost"),
    ("category id repeated", _set(["categories", 1, "id"], "large"), "categories[1].id"),
    ("category unknown key", _set(["categories", 0, "limit"], 2), "categories[0].limit"),
    ("category without projects", _only_large, "categories[1]"),
    ("cost over maximum", _set(["projects", 12, "cost"], "1 600 000.00"), "projects[12].cost"),
    (
        "cost_kopecks over maximum",
        _both(
            _delete(["projects", 41, "cost"]), _set(["projects", 41, "cost_kopecks"], 50_000_001)
        ),
        "projects[41].cost_kopecks",
    ),
    ("cost zero", _set(["projects", 3, "cost"], "0"), "projects[3].cost"),
    ("cost missing", _delete(["projects", 3, "cost"]), "projects[3].cost"),
    ("unknown category", _set(["projects", 5, "category"], "huge"), "projects[5].category"),
    ("project id repeated", _set(["projects", 7, "id"], "L01"), "projects[7].id"),
    ("project id with space", _set(["projects", 7, "id"], "L 01"), "projects[7].id"),
    ("project id with colon", _set(["projects", 7, "id"], "L:01"), "projects[7].id"),
    ("district empty", _set(["projects", 2, "district"], ""), "projects[2].district"),
    ("project title uk missing", _delete(["projects", 9, "title", "uk"]), "projects[9].title.uk"),
    ("project unknown key", _set(["projects", 2, "costt"], "1.00"), "projects[2].costt"),
    ("project not a table", _set(["projects", 4], "L05"), "projects[4]"),
    (
        "point id repeated",
        _set(["polling_points", 1, "id"], "city-council"),
        "polling_points[1].id",
    ),
    ("point title", _set(["polling_points", 2, "title"], "Rada"), "polling_points[2].title"),
    ("rule missing", _delete(["rule"]), "rule"),
    ("rule method", _set(["rule", "method"], "lottery"), "rule.method"),
    ("min_votes negative", _set(["rule", "min_votes"], -1), "rule.min_votes"),
    ("tie-break unknown", _set(["rule", "tie_break"], ["coin"]), "rule.tie_break[0]"),
    (
        "lottery not last",
        _set(["rule", "tie_break"], ["lottery", "cost-ascending"]),
        "rule.tie_break[1]",
    ),
    (
        "contradictory costs",
        _set(["rule", "tie_break"], ["cost-ascending", "cost-descending"]),
        "rule.tie_break[1]",
    ),
    (
        "tie-break repeated",
        _set(["rule", "tie_break"], ["cost-ascending"] * 2),
        "rule.tie_break[1]",
    ),
    ("lottery without seed", _set(["rule", "seed"], " "), "rule.seed"),
    ("token scheme", _set(["voter_token_scheme"], "sha1"), "voter_token_scheme"),
    ("multiple_ballots text", _set(["multiple_ballots"], "yes"), "multiple_ballots"),
    ("double_entry int", _set(["double_entry"], 1), "double_entry"),
    ("results unknown", _set(["results"], "sealed"), "results"),
    ("results not text", _set(["results"], True), "results"),
    ("total budget differs", _set(["budget"], "15 219 100.00"), "budget"),
    ("unknown top-level key", _set(["colour"], "blue"), "colour"),
]


@pytest.mark.parametrize(
    ("mutation", "field"), [(m, f) for _, m, f in BROKEN], ids=[n for n, _, _ in BROKEN]
)
def test_every_error_names_its_field(mutation: Mutation, field: str) -> None:
    """Each broken variant of the example is refused with the offending field's path."""
    document = example_document()
    mutation(document)
    with pytest.raises(ElectionDefinitionError) as caught:
        election_from_dict(document)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert caught.value.code == "bad-election" and status(caught.value) == 422


def test_cost_error_says_both_amounts() -> None:
    """An over-maximum cost is reported in UAH against the category's maximum."""
    document = example_document()
    document["projects"][12]["cost"] = "1 600 000.00"
    with pytest.raises(ElectionDefinitionError) as caught:
        election_from_dict(document)
    assert str(caught.value) == (
        "projects[12].cost: 1 600 000.00 UAH exceeds the category's maximum 1 500 000.00 UAH"
    )


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('max_cost = "1 500 000.00"', "max_cost = 1500000", "categories[0].max_cost"),
        ('max_cost = "1 500 000.00"', "max_cost = 1500000.00", "categories[0].max_cost"),
        ("voting_opens = 2018-10-01T00:00:00", "voting_opens = 2018-10-01", "voting_opens"),
        ('id = "zhytomyr-2018"', 'id = "zhytomyr-2018', "toml"),
    ],
)
def test_toml_text_errors_name_their_field(old: str, new: str, field: str) -> None:
    """Bare TOML numbers for money, TOML dates and syntax errors are refused by field."""
    text = example_text()
    assert old in text
    with pytest.raises(ElectionDefinitionError) as caught:
        parse_election_toml(text.replace(old, new, 1))
    assert caught.value.field == field


def test_money_in_kopecks_is_accepted() -> None:
    """``*_kopecks`` integers are read as kopecks, the same as the UAH text."""
    document = example_document()
    del document["projects"][0]["cost"]
    document["projects"][0]["cost_kopecks"] = 91_607_125
    assert election_from_dict(document).projects[0].cost == 91_607_125


def test_local_datetimes_are_read_in_the_election_timezone() -> None:
    """A naive datetime is local time in the election's zone; an offset one is exact."""
    document = example_document()
    document["voting_opens"] = "2018-09-30T21:00:00+00:00"
    election = election_from_dict(document)
    assert election.voting_opens == datetime(2018, 10, 1, tzinfo=KYIV)
    assert election.voting_opens.tzinfo == KYIV


# -- JSON form ----------------------------------------------------------------------------------


def test_json_form_uses_kopecks_and_utc() -> None:
    """election_to_dict writes integer kopecks and UTC ISO datetimes, and is JSON-able."""
    data = election_to_dict(zhytomyr())
    json.dumps(data)
    assert data["voting_opens"] == "2018-09-30T21:00:00+00:00"
    assert data["voting_closes"] == "2018-10-10T20:59:59+00:00"
    assert data["budget_kopecks"] == 1_521_910_073
    assert data["categories"][0]["max_cost_kopecks"] == 150_000_000
    assert all(isinstance(p["cost_kopecks"], int) for p in data["projects"])


def test_example_round_trips_through_json() -> None:
    """The example survives election_to_dict, JSON text and election_from_dict unchanged."""
    election = zhytomyr()
    again = election_from_dict(json.loads(json.dumps(election_to_dict(election))))
    assert again == election
    assert election_to_dict(again) == election_to_dict(election)


_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,8}", fullmatch=True)
_titles = st.fixed_dictionaries(
    {"uk": st.text(min_size=1, max_size=12).filter(str.strip), "en": st.just("x")},
    optional={"pl": st.text(min_size=1, max_size=5).filter(str.strip)},
)
_zones = st.sampled_from(["Europe/Kyiv", "UTC", "America/New_York", "Asia/Kathmandu"])


@st.composite
def elections(draw: st.DrawFn) -> Election:
    """Valid elections of every shape the definition allows."""
    zone = draw(_zones)
    opens = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)))
    length = draw(st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=60)))
    grace = draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10)))
    offset = timedelta(hours=draw(st.integers(-12, 14)))
    start = opens.replace(tzinfo=ZoneInfo("UTC")) + offset
    category_ids = draw(st.lists(_ids, min_size=1, max_size=3, unique=True))
    categories: list[dict[str, Any]] = []
    ceilings: dict[str, int] = {}
    for cid in category_ids:
        max_cost = draw(st.integers(1, 10**12))
        ceilings[cid] = max_cost
        category: dict[str, Any] = {
            "id": cid,
            "title": draw(_titles),
            "max_picks": draw(st.integers(1, 5)),
            "budget_kopecks": max_cost + draw(st.integers(0, 10**12)),
        }
        if draw(st.booleans()):
            category["max_cost"] = format_uah(max_cost)
        else:
            category["max_cost_kopecks"] = max_cost
        categories.append(category)
    project_ids = draw(st.lists(_ids, min_size=len(categories), max_size=8, unique=True))
    projects = []
    for i, pid in enumerate(project_ids):
        cid = category_ids[i] if i < len(category_ids) else draw(st.sampled_from(category_ids))
        projects.append(
            {
                "id": pid,
                "title": draw(_titles),
                "category": cid,
                "cost_kopecks": draw(st.integers(1, ceilings[cid])),
                "district": draw(st.sampled_from(["Bohunskyi", "Koroliovskyi", "centre"])),
            }
        )
    points = [
        {"id": pid, "title": draw(_titles)} for pid in draw(st.lists(_ids, max_size=3, unique=True))
    ]
    breaks = draw(
        st.sampled_from([[], ["lottery"], ["cost-ascending"], ["cost-descending", "lottery"]])
    )
    document = {
        "id": draw(st.from_regex(r"[a-z0-9][a-z0-9-]{1,20}", fullmatch=True)),
        "title": draw(_titles),
        "timezone": zone,
        "voting_opens": start.isoformat(),
        "voting_closes": (start + length).isoformat(),
        "paper_deadline": start + length + grace,
        "categories": categories,
        "projects": projects,
        "polling_points": points,
        "rule": {
            "method": draw(st.sampled_from(["greedy", "greedy-no-skip", "equal-shares"])),
            "min_votes": draw(st.integers(0, 100)),
            "tie_break": breaks,
            "seed": draw(st.text(min_size=1, max_size=10).filter(str.strip)),
        },
        "multiple_ballots": draw(st.booleans()),
        "double_entry": draw(st.booleans()),
        "results": draw(st.sampled_from(["open", "sealed-until-close"])),
    }
    return election_from_dict(document)


@settings(max_examples=150)
@given(elections())
def test_any_election_round_trips(election: Election) -> None:
    """For any valid election, election_from_dict(election_to_dict(e)) == e, through JSON."""
    data = json.loads(json.dumps(election_to_dict(election)))
    again = election_from_dict(data)
    assert again == election
    assert election_to_dict(again) == election_to_dict(election)


# -- amendments ---------------------------------------------------------------------------------


def test_amendment_before_voting_is_allowed() -> None:
    """The definition may change until voting opens."""
    election = zhytomyr()
    check_amendment(election, election, now=datetime(2018, 9, 30, 23, 59, tzinfo=KYIV))


def test_amendment_after_opening_is_refused() -> None:
    """Once voting has opened the definition is frozen."""
    election = zhytomyr()
    with pytest.raises(ElectionFrozenError) as caught:
        check_amendment(election, election, now=datetime(2018, 10, 1, tzinfo=KYIV))
    assert caught.value.code == "election-frozen"


def test_amendment_cannot_change_the_id() -> None:
    """An amendment keeps the election's id."""
    document = example_document()
    document["id"] = "zhytomyr-2019"
    with pytest.raises(ElectionDefinitionError) as caught:
        check_amendment(
            zhytomyr(), election_from_dict(document), now=datetime(2018, 9, 1, tzinfo=KYIV)
        )
    assert caught.value.field == "id"


def test_election_pickles_and_replaces() -> None:
    """An election survives pickling (worker processes) and dataclasses.replace keeps lookups."""
    election = zhytomyr()
    again = pickle.loads(pickle.dumps(election))
    assert again == election and again.project("S40") == election.project("S40")
    changed = dataclasses.replace(election, double_entry=True)
    assert changed.double_entry and changed.project("L01") == election.project("L01")
