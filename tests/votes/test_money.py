"""Money: UAH text to integer kopecks and back, exactly."""

from __future__ import annotations

import builtins

import pytest
from hypothesis import given
from hypothesis import strategies as st

from votes.money import Kopecks, format_uah, parse_uah


@pytest.mark.parametrize(
    ("text", "kopecks"),
    [
        ("1500000", 150_000_000),
        ("1 500 000.00", 150_000_000),
        ("1,500,000.00", 150_000_000),
        ("15219100.73", 1_521_910_073),
        ("15 219 100.73", 1_521_910_073),
        ("0.5", 50),
        ("0.05", 5),
        ("0", 0),
        ("  450 000  ", 45_000_000),
        ("1\u00a0350\u00a0000.10", 135_000_010),
        ("1\u202f350\u202f000", 135_000_000),
        ("500 000.00 UAH", 50_000_000),
        ("500 000 грн", 50_000_000),
    ],
)
def test_parses_written_amounts(text: str, kopecks: int) -> None:
    """Plain, space-grouped and comma-grouped UAH amounts parse to exact kopecks."""
    assert parse_uah(text) == kopecks


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "1.234",
        "1.",
        ".50",
        "-5",
        "+5",
        "1,50",
        "1 500,000",
        "1 5000",
        "15 00 000",
        "1e6",
        "1_500_000",
        "abc",
        "1 500 000.00 EUR",
        "١٢٣",
        "NaN",
    ],
)
def test_refuses_what_is_not_an_amount(text: str) -> None:
    """Third decimals, signs, decimal commas, mixed groups and non-digits are refused."""
    with pytest.raises(ValueError, match="UAH"):
        parse_uah(text)


@pytest.mark.parametrize("value", [1500000.0, 1500000, None])
def test_refuses_non_text(value: object) -> None:
    """Numbers are refused: a float would lose kopecks and an int is ambiguous."""
    with pytest.raises(ValueError):
        parse_uah(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kopecks", "text"),
    [
        (0, "0.00"),
        (5, "0.05"),
        (100, "1.00"),
        (150_000_000, "1 500 000.00"),
        (1_521_910_073, "15 219 100.73"),
        (-1_521_910_073, "-15 219 100.73"),
    ],
)
def test_formats_with_space_groups_and_two_decimals(kopecks: int, text: str) -> None:
    """Kopecks are written as UAH grouped by spaces with exactly two decimals."""
    assert format_uah(Kopecks(kopecks)) == text


def test_never_touches_floats(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing and formatting work with float() unavailable."""

    def no_floats(*args: object) -> float:
        raise AssertionError("float() was called")

    monkeypatch.setattr(builtins, "float", no_floats)
    assert parse_uah("15 219 100.73") == 1_521_910_073
    assert format_uah(Kopecks(1_521_910_073)) == "15 219 100.73"


def test_exact_beyond_float_precision() -> None:
    """Amounts past 2**53 kopecks stay exact (a float would round them)."""
    text = "90 071 992 547 409.93"
    assert parse_uah(text) == 9_007_199_254_740_993
    assert format_uah(parse_uah(text)) == text


@given(st.integers(min_value=0, max_value=10**20))
def test_format_then_parse_round_trips(kopecks: int) -> None:
    """Any non-negative amount survives format_uah then parse_uah."""
    assert parse_uah(format_uah(Kopecks(kopecks))) == kopecks


@given(
    st.integers(min_value=0, max_value=10**15),
    st.sampled_from([" ", ",", "\u00a0", ""]),
    st.sampled_from(["", ".", "2"]),
)
def test_any_grouping_parses_to_the_same_kopecks(kopecks: int, separator: str, cents: str) -> None:
    """The same amount written with any separator, with or without decimals, parses alike."""
    whole, fraction = divmod(kopecks, 100)
    grouped = f"{whole:,}".replace(",", separator)
    if cents == "":
        text, expected = grouped, whole * 100
    elif cents == "." or fraction % 10:
        text, expected = f"{grouped}.{fraction:02d}", kopecks
    else:
        text, expected = f"{grouped}.{fraction // 10}", kopecks
    assert parse_uah(text) == expected
