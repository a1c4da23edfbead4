"""Receipt codes are stable, well-formed and forgiving of hand-copying."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from votes.receipts import normalise_receipt_code, receipt_code


@given(st.binary(min_size=64, max_size=64))
def test_codes_are_well_formed_and_round_trip(signature: bytes) -> None:
    """Every code has the XXXXX-XXXXX form and normalises to itself, in any case."""
    code = receipt_code(signature)
    assert len(code) == 11 and code[5] == "-"
    assert normalise_receipt_code(code) == code
    assert normalise_receipt_code(code.lower().replace("-", " ")) == code


def test_lookalikes_and_garbage() -> None:
    """O/I/L typed for 0/1 are accepted; wrong lengths and symbols are not codes."""
    assert normalise_receipt_code("O1ILO-23456") == "01110-23456"
    for bad in ["", "ABCD-EFGH", "ABCDE-FGHJK1", "ABCDE-FGH!K"]:
        assert normalise_receipt_code(bad) is None


def test_distinct_signatures_give_distinct_codes() -> None:
    """10 000 different signatures give 10 000 different codes (50 bits each)."""
    codes = {receipt_code(i.to_bytes(64, "big")) for i in range(10_000)}
    assert len(codes) == 10_000
