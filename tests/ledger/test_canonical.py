"""canonical() is byte-for-byte the rfc8785 reference, on its fast path and off it."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.canonical import canonical, reference_canonical

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=600)
@given(json_values)
def test_canonical_equals_the_reference(value: Any) -> None:
    """For any JSON value, canonical() is what the rfc8785 package writes (or both refuse)."""
    try:
        expected = reference_canonical(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):
        with pytest.raises(ValueError):
            canonical(value)
        return
    assert canonical(value) == expected


def test_known_encodings() -> None:
    """Member order by UTF-16 code units, escapes and numbers as RFC 8785 specifies."""
    assert canonical({"b": 1, "a": [True, None, "é\n\u2028"]}) == (
        b'{"a":[true,null,"\xc3\xa9\\n\xe2\x80\xa8"],"b":1}'
    )
    assert canonical({"\U0001f600": 1, "\ufb01": 2}) == reference_canonical(
        {"\U0001f600": 1, "\ufb01": 2}
    )
    assert canonical({"x": 1.0, "y": 1e21}) == b'{"x":1,"y":1e+21}'
    for bad in [{"n": 2**53}, {"f": float("nan")}, {1: "non-string key"}, {"s": "\ud800"}]:
        with pytest.raises(ValueError):
            canonical(bad)
