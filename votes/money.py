"""Money in integer kopecks (1 UAH = 100 kopecks). Never a float, anywhere.

Written amounts are UAH with at most two decimals after a point, the integer part either plain
(``1500000``) or grouped by threes with one separator used consistently (``1 500 000.00``,
``1,500,000.00``; a no-break or narrow no-break space also groups). A trailing ``UAH`` or
``грн`` is allowed. A decimal comma is refused: ``1,50`` could mean either.
"""

from __future__ import annotations

import re
from typing import NewType

__all__ = ["Kopecks", "format_uah", "parse_uah"]

Kopecks = NewType("Kopecks", int)
"""An amount of money in kopecks (hundredths of a hryvnia)."""

_GROUP_SEPARATORS = " \u00a0\u202f,"
_AMOUNT = re.compile(
    r"(?P<int>[0-9]+|[0-9]{1,3}(?:(?P<sep>[ \u00a0\u202f,])[0-9]{3})(?:(?P=sep)[0-9]{3})*)"
    r"(?:\.(?P<frac>[0-9]{1,2}))?",
    re.ASCII,
)
_CURRENCY = re.compile(r"\s*(?:UAH|грн\.?|₴)\s*$", re.IGNORECASE)


def parse_uah(text: str) -> Kopecks:
    """The amount ``text`` (UAH, e.g. ``"15 219 100.73"``) in kopecks.

    Raises ``ValueError`` naming the expected form when ``text`` is not such an amount: a
    negative sign, a third decimal, mixed or misplaced group separators, or anything else.
    """
    if not isinstance(text, str):
        raise ValueError(f"an amount in UAH must be text like '1 500 000.00', not {text!r}")
    stripped = _CURRENCY.sub("", text.strip())
    match = _AMOUNT.fullmatch(stripped)
    if match is None:
        raise ValueError(
            f"{text!r} is not an amount in UAH: write digits grouped by threes with spaces or "
            "commas, and at most two decimals after a point, like '1 500 000.00'"
        )
    whole = match["int"]
    for separator in _GROUP_SEPARATORS:
        whole = whole.replace(separator, "")
    fraction = (match["frac"] or "").ljust(2, "0")
    return Kopecks(int(whole) * 100 + int(fraction))


def format_uah(kopecks: Kopecks | int) -> str:
    """``kopecks`` written as UAH grouped by spaces with two decimals: ``"15 219 100.73"``."""
    sign = "-" if kopecks < 0 else ""
    whole, fraction = divmod(abs(int(kopecks)), 100)
    return f"{sign}{whole:,}.{fraction:02d}".replace(",", " ")
