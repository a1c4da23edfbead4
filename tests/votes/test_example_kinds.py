"""The example election files of every ballot kind (examples/*.toml) read through the same
reader as any election, and say what they show."""

from __future__ import annotations

from pathlib import Path

import pytest

from votes.election import parse_election_toml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_every_example_reads() -> None:
    """Every examples/*.toml is a valid election definition."""
    files = sorted(EXAMPLES.glob("*.toml"))
    assert len(files) >= 4
    for path in files:
        parse_election_toml(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("name", "kinds"),
    [
        ("zhytomyr-2018.toml", {"approval"}),
        ("knapsack-district.toml", {"knapsack"}),
        ("cumulative-city.toml", {"cumulative"}),
        ("ordinal-districts.toml", {"ordinal"}),
    ],
)
def test_example_kinds(name: str, kinds: set[str]) -> None:
    """Each example shows its kind, and its header names the keys it uses."""
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    election = parse_election_toml(text)
    assert {c.ballot for c in election.categories} == kinds
    header = text.split("\nid = ", 1)[0]
    for kind in kinds - {"approval"}:
        assert f'ballot = "{kind}"' in header


def test_the_knapsack_example() -> None:
    """The cap defaults to nothing invented: it is stated, with a minimum."""
    [category] = parse_election_toml(
        (EXAMPLES / "knapsack-district.toml").read_text(encoding="utf-8")
    ).categories
    assert (category.max_total_cost, category.min_total_cost, category.min_picks) == (
        120_000_000,
        10_000_000,
        1,
    )


def test_the_cumulative_example_is_toulouse_shaped() -> None:
    """At most 3 points per project and 7 in all."""
    [category] = parse_election_toml(
        (EXAMPLES / "cumulative-city.toml").read_text(encoding="utf-8")
    ).categories
    assert (category.max_points, category.max_total_points) == (3, 7)


def test_the_ordinal_example_is_krakow_shaped_with_a_group() -> None:
    """Exactly three ranked projects; one district per voter, the city list besides."""
    election = parse_election_toml(
        (EXAMPLES / "ordinal-districts.toml").read_text(encoding="utf-8")
    )
    assert {(c.min_picks, c.max_picks) for c in election.categories} == {(3, 3)}
    [group] = election.category_groups
    assert (group.categories, group.max_categories) == (("north", "south"), 1)
