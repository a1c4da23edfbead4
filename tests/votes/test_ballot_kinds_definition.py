"""Ballot kinds and category groups in the election definition (DESIGN.md §3b): the TOML keys,
their defaults, refusals naming the key, the JSON round trip, and wider project ids."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.votes.factories import example_document, zhytomyr
from votes.election import (
    Category,
    CategoryGroup,
    election_from_dict,
    election_to_dict,
    parse_election_toml,
)
from votes.errors import ElectionDefinitionError

HEAD = """
id = "kinds"
title = { uk = "Види", en = "Kinds" }
timezone = "Europe/Kyiv"
voting_opens = 2018-10-01T00:00:00
voting_closes = 2018-10-10T23:59:59
paper_deadline = 2018-10-12T18:00:00
rule = { method = "greedy" }
"""

PROJECTS = """
[[projects]]
id = "BAD/0018"
title = { uk = "Сквер", en = "Square" }
category = "c"
cost = "40 000.00"
district = "Babie Doły"

[[projects]]
id = "P2"
title = { uk = "Парк", en = "Park" }
category = "c"
cost = "60 000.00"
district = "centre"

[[projects]]
id = "P3"
title = { uk = "Лава", en = "Bench" }
category = "c"
cost = "10 000.00"
district = "centre"
"""


def category(body: str) -> str:
    """A one-category election whose category has ``body`` (TOML lines) after id and title."""
    return (
        HEAD
        + '\n[[categories]]\nid = "c"\ntitle = { uk = "К", en = "C" }\n'
        + 'budget = "100 000.00"\nmax_cost = "100 000.00"\n'
        + body
        + PROJECTS
    )


def only(text: str) -> Category:
    """The single category of the election ``text``."""
    return parse_election_toml(text).categories[0]


def refused(text: str) -> ElectionDefinitionError:
    """The definition error reading ``text`` raises."""
    with pytest.raises(ElectionDefinitionError) as caught:
        parse_election_toml(text)
    return caught.value


def test_a_category_without_a_kind_is_approval_as_before() -> None:
    """Existing files read as approval with no minimum, no kind limits and no groups."""
    c = only(category("max_picks = 2\n"))
    assert (c.ballot, c.min_picks, c.max_picks) == ("approval", 0, 2)
    assert c.max_total_cost is None and c.min_total_cost == 0
    assert (c.max_points, c.max_total_points, c.min_total_points) == (None, None, 0)
    assert zhytomyr().category_groups == ()


def test_old_signed_dicts_read_and_write_unchanged() -> None:
    """An approval election's dict has no new keys, so logs signed before kinds stay equal."""
    data = election_to_dict(zhytomyr())
    assert set(data["categories"][0]) == {
        "id",
        "title",
        "max_picks",
        "budget_kopecks",
        "max_cost_kopecks",
    }
    assert "category_groups" not in data
    assert election_to_dict(election_from_dict(data)) == data


def test_knapsack_defaults_to_the_budget_and_every_project() -> None:
    """A knapsack cap defaults to the category budget, max_picks to the number of projects."""
    c = only(category('ballot = "knapsack"\n'))
    assert (c.ballot, c.max_total_cost, c.min_total_cost, c.max_picks) == (
        "knapsack",
        10_000_000,
        0,
        3,
    )


def test_knapsack_limits_in_uah_and_kopecks() -> None:
    """max_total_cost and min_total_cost take UAH text or integer kopecks, like budget."""
    c = only(
        category(
            'ballot = "knapsack"\nmax_total_cost = "70 000.00"\n'
            "min_total_cost_kopecks = 1000000\nmin_picks = 1\nmax_picks = 2\n"
        )
    )
    assert (c.max_total_cost, c.min_total_cost, c.min_picks, c.max_picks) == (
        7_000_000,
        1_000_000,
        1,
        2,
    )


def test_cumulative_limits() -> None:
    """Toulouse's rule: at most 3 points per project and 7 in all."""
    c = only(category('ballot = "cumulative"\nmax_points = 3\nmax_total_points = 7\n'))
    assert (c.ballot, c.max_points, c.max_total_points, c.min_total_points, c.max_picks) == (
        "cumulative",
        3,
        7,
        0,
        3,
    )
    d = only(category('ballot = "cumulative"\nmax_total_points = 5\nmin_total_points = 5\n'))
    assert (d.max_points, d.min_total_points) == (5, 5)


def test_ordinal_needs_max_picks() -> None:
    """Kraków's rule: exactly three ranked projects."""
    c = only(category('ballot = "ordinal"\nmin_picks = 3\nmax_picks = 3\n'))
    assert (c.ballot, c.min_picks, c.max_picks) == ("ordinal", 3, 3)
    assert refused(category('ballot = "ordinal"\n')).field == "categories[0].max_picks"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('ballot = "ranked"\nmax_picks = 1\n', "categories[0].ballot"),
        ("max_picks = 2\nmax_points = 3\n", "categories[0].max_points"),
        ('ballot = "knapsack"\nmax_total_points = 3\n', "categories[0].max_total_points"),
        (
            'ballot = "cumulative"\nmax_total_points = 3\nmax_total_cost = "1.00"\n',
            "categories[0].max_total_cost",
        ),
        (
            'ballot = "ordinal"\nmax_picks = 2\nmin_total_cost_kopecks = 1\n',
            "categories[0].min_total_cost_kopecks",
        ),
        ("max_picks = 2\nmin_picks = 3\n", "categories[0].min_picks"),
        ('ballot = "knapsack"\nmin_picks = 4\n', "categories[0].min_picks"),
        ('ballot = "knapsack"\nmax_total_cost = "0.00"\n', "categories[0].max_total_cost"),
        ('ballot = "knapsack"\nmax_total_cost = 100\n', "categories[0].max_total_cost"),
        (
            'ballot = "knapsack"\nmax_total_cost = "10.00"\nmin_total_cost = "11.00"\n',
            "categories[0].min_total_cost",
        ),
        ('ballot = "cumulative"\n', "categories[0].max_total_points"),
        ('ballot = "cumulative"\nmax_total_points = 0\n', "categories[0].max_total_points"),
        (
            'ballot = "cumulative"\nmax_total_points = 3\nmax_points = 0\n',
            "categories[0].max_points",
        ),
        (
            'ballot = "cumulative"\nmax_total_points = 3\nmin_total_points = 4\n',
            "categories[0].min_total_points",
        ),
    ],
)
def test_kind_limits_are_refused_naming_the_key(body: str, field: str) -> None:
    """A key of another kind, or an impossible limit, is refused naming the key."""
    assert refused(category(body)).field == field


def test_a_foreign_key_says_which_kind_it_belongs_to() -> None:
    """The refusal tells the author which kind the key is for."""
    error = refused(category("max_picks = 2\nmax_points = 3\n"))
    assert "cumulative" in error.message and "'approval'" in error.message


GROUPS = """
[[categories]]
id = "north"
title = { uk = "Північ", en = "North" }
max_picks = 2
budget = "100.00"
max_cost = "100.00"

[[categories]]
id = "south"
title = { uk = "Південь", en = "South" }
max_picks = 2
budget = "100.00"
max_cost = "100.00"

[[projects]]
id = "N1"
title = { uk = "Н", en = "N" }
category = "north"
cost = "10.00"
district = "north"

[[projects]]
id = "S1"
title = { uk = "П", en = "S" }
category = "south"
cost = "10.00"
district = "south"
"""


def test_category_groups() -> None:
    """[[category_groups]] reads into Election.category_groups and round-trips."""
    election = parse_election_toml(
        HEAD
        + GROUPS
        + '[[category_groups]]\nid = "districts"\ncategories = ["north", "south"]\n'
        + "max_categories = 1\n"
    )
    assert election.category_groups == (CategoryGroup("districts", ("north", "south"), 1),)
    assert election.groups_of("south") == election.category_groups
    data = json.loads(json.dumps(election_to_dict(election)))
    assert data["category_groups"] == [
        {"id": "districts", "categories": ["north", "south"], "max_categories": 1}
    ]
    assert election_from_dict(data) == election


@pytest.mark.parametrize(
    ("group", "field"),
    [
        (
            'id = "g"\ncategories = ["north", "west"]\nmax_categories = 1\n',
            "category_groups[0].categories[1]",
        ),
        (
            'id = "g"\ncategories = ["north", "north"]\nmax_categories = 1\n',
            "category_groups[0].categories[1]",
        ),
        ('id = "g"\ncategories = []\nmax_categories = 1\n', "category_groups[0].categories"),
        (
            'id = "g"\ncategories = ["north"]\nmax_categories = 0\n',
            "category_groups[0].max_categories",
        ),
        ('id = "g"\ncategories = ["north"]\n', "category_groups[0].max_categories"),
        (
            'id = "g"\ncategories = ["north"]\nmax_categories = 1\nmax = 2\n',
            "category_groups[0].max",
        ),
    ],
)
def test_bad_groups_are_refused_naming_the_field(group: str, field: str) -> None:
    """A group naming an unknown or repeated category, or without a limit, is refused."""
    assert refused(HEAD + GROUPS + "[[category_groups]]\n" + group).field == field


def test_project_ids_keep_pabulib_punctuation() -> None:
    """Gdynia's "BAD/0018" stays exactly as in the file."""
    election = parse_election_toml(category("max_picks = 2\n"))
    assert election.project("BAD/0018") is not None


@pytest.mark.parametrize(
    "bad",
    [
        "BAD 0018",
        "L:01",
        "/etc",
        "-1",
        "=1+2",
        "a;b",
        "a,b",
        'a"b',
        "a\nb",
        "a\tb",
        "x" * 65,
        "",
        "ł1",
    ],
)
def test_unsafe_project_ids_are_refused(bad: str) -> None:
    """No whitespace, control characters, CSV separators or quotes; letter or digit first;
    at most 64 ASCII characters."""
    document = example_document()
    document["projects"][0]["id"] = bad
    with pytest.raises(ElectionDefinitionError) as caught:
        election_from_dict(document)
    assert caught.value.field == "projects[0].id"


def test_category_ids_keep_their_narrow_syntax() -> None:
    """Only project ids widen: a category id with '/' is still refused."""
    document = example_document()
    document["categories"][0]["id"] = "a/b"
    with pytest.raises(ElectionDefinitionError) as caught:
        election_from_dict(document)
    assert caught.value.field == "categories[0].id"


@st.composite
def kind_tables(draw: st.DrawFn) -> dict[str, Any]:
    """A category table of any kind, with any of its optional keys."""
    kind = draw(st.sampled_from(["approval", "knapsack", "cumulative", "ordinal"]))
    table: dict[str, Any] = {}
    if kind != "approval" or draw(st.booleans()):
        table["ballot"] = kind
    picks = draw(st.integers(1, 3))
    if kind in ("approval", "ordinal") or draw(st.booleans()):
        table["max_picks"] = picks
    if draw(st.booleans()):
        table["min_picks"] = draw(st.integers(0, picks))
    if kind == "knapsack":
        if draw(st.booleans()):
            table["max_total_cost_kopecks"] = draw(st.integers(10, 10**9))
        if draw(st.booleans()):
            table["min_total_cost_kopecks"] = draw(st.integers(0, 10))
    if kind == "cumulative":
        table["max_total_points"] = total = draw(st.integers(1, 20))
        if draw(st.booleans()):
            table["max_points"] = draw(st.integers(1, 20))
        if draw(st.booleans()):
            table["min_total_points"] = draw(st.integers(0, total))
    return table


@settings(max_examples=100)
@given(st.lists(kind_tables(), min_size=1, max_size=4), st.data())
def test_any_kinds_round_trip(tables: list[dict[str, Any]], data: st.DataObject) -> None:
    """Elections of any kinds and groups survive election_to_dict, JSON, election_from_dict."""
    document = example_document()
    document["categories"] = []
    document["projects"] = []
    document.pop("budget", None)
    ids = [f"c{i}" for i in range(len(tables))]
    for cid, table in zip(ids, tables, strict=True):
        document["categories"].append(
            {
                "id": cid,
                "title": {"uk": "к", "en": "c"},
                "budget_kopecks": 10**9,
                "max_cost_kopecks": 10**6,
                **table,
            }
        )
        for n in range(3):
            document["projects"].append(
                {
                    "id": f"{cid}/P{n}",
                    "title": {"uk": "п", "en": "p"},
                    "category": cid,
                    "cost_kopecks": 1000 * (n + 1),
                    "district": "d",
                }
            )
    if data.draw(st.booleans()):
        members = data.draw(st.lists(st.sampled_from(ids), min_size=1, unique=True))
        document["category_groups"] = [
            {"id": "g", "categories": members, "max_categories": data.draw(st.integers(1, 3))}
        ]
    election = election_from_dict(document)
    again = election_from_dict(json.loads(json.dumps(election_to_dict(election))))
    assert again == election
    assert election_to_dict(again) == election_to_dict(election)
    for c in election.categories:
        assert 0 <= c.min_picks <= c.max_picks <= 3
        assert (c.max_total_cost is not None) == (c.ballot == "knapsack")
        assert (c.max_total_points is not None) == (c.ballot == "cumulative")
