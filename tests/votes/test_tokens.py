"""Voter tokens: HMAC-SHA256 of the election id and the normalised identity number; the raw
number never leaks."""

from __future__ import annotations

import hashlib
import hmac
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.messages import render
from votes.errors import BadIdentityError
from votes.tokens import is_voter_token, normalise_identity, voter_token

KEY = bytes(range(32))


ELECTION = "zhytomyr-2018"


def test_token_is_hmac_sha256_of_the_election_and_the_number() -> None:
    """The token equals hmac.new(key, b"uchast/voter/v1\n" + election + b"\n" + number)."""
    message = b"uchast/voter/v1\nzhytomyr-2018\n3012345678"
    expected = hmac.new(KEY, message, hashlib.sha256).hexdigest()
    assert voter_token(KEY, ELECTION, "3012345678") == expected


@pytest.mark.parametrize("election", ["", "z", "Zhytomyr-2018", "a\nb", "-2018", "жит-2018"])
def test_refuses_what_is_not_an_election_id(election: str) -> None:
    """The election id's grammar (no newline) is what keeps the HMAC input unambiguous."""
    with pytest.raises(ValueError, match="election id"):
        voter_token(KEY, election, "3012345678")


@pytest.mark.parametrize(
    "typed",
    [
        "3012345678",
        " 3012345678 ",
        "301 234 5678",
        "30-1234-5678",
        "301234\u20135678",
        "30\t12345678",
    ],
)
def test_formatting_does_not_change_the_token(typed: str) -> None:
    """Differently formatted copies of one identity number give the same token."""
    assert voter_token(KEY, ELECTION, typed) == voter_token(KEY, ELECTION, "3012345678")


def test_different_keys_give_different_tokens() -> None:
    """The token depends on the election's voter key."""
    other = voter_token(b"another key", ELECTION, "3012345678")
    assert voter_token(KEY, ELECTION, "3012345678") != other


def test_empty_key_is_refused() -> None:
    """An empty voter key is a configuration mistake."""
    with pytest.raises(ValueError, match="voter key"):
        voter_token(b"", ELECTION, "3012345678")


@pytest.mark.parametrize("digits", ["12345678", "1234567890", "123456789012"])
def test_accepts_eight_to_twelve_digits(digits: str) -> None:
    """RNOKPP (10 digits) and other 8-12 digit numbers are identity numbers."""
    assert normalise_identity(digits) == digits


@pytest.mark.parametrize(
    "typed",
    ["1234567", "1234567890123", "", "   ", "АБ123456", "12345678x", "١٢٣٤٥٦٧٨٩٠", "1234.5678"],
)
def test_refuses_what_is_not_an_identity_number(typed: str) -> None:
    """Too short, too long, letters, non-ASCII digits and dots are refused."""
    with pytest.raises(BadIdentityError) as caught:
        normalise_identity(typed)
    assert caught.value.code == "bad-identity"


def _everything_said(error: BadIdentityError) -> str:
    rendered = render(error)
    assert rendered is not None
    return " ".join(
        [
            str(error),
            repr(error),
            rendered.en,
            rendered.uk,
            repr(error.args),
            repr(error.data),
            repr(pickle.loads(pickle.dumps(error))),
        ]
    )


@pytest.mark.parametrize("typed", ["3012345678901234", "AB30123456", "3012345", "30123456789 x"])
def test_raw_number_never_in_error(typed: str) -> None:
    """A refused identity number appears in no message, repr, args or data of the error."""
    with pytest.raises(BadIdentityError) as caught:
        voter_token(KEY, ELECTION, typed)
    said = _everything_said(caught.value)
    assert typed.strip() not in said
    assert "3012345" not in said
    assert caught.value.__cause__ is None and caught.value.__context__ is None


@given(st.text(alphabet="0123456789 -AБx", min_size=6, max_size=30))
def test_no_refusal_repeats_the_typed_digits(typed: str) -> None:
    """Whatever is typed, a refusal never contains a run of six of its characters."""
    try:
        normalise_identity(typed)
    except BadIdentityError as error:
        said = _everything_said(error)
        for start in range(len(typed) - 5):
            chunk = typed[start : start + 6]
            if sum(c.isdigit() for c in chunk) >= 4:
                assert chunk not in said


def test_is_voter_token() -> None:
    """Only strings of exactly 64 lowercase hex digits are voter tokens."""
    good = voter_token(KEY, ELECTION, "3012345678")
    assert is_voter_token(good)
    assert not is_voter_token(good.upper())
    assert not is_voter_token(good[:-1])
    assert not is_voter_token(good + "0")
    assert not is_voter_token(good[:-1] + "g")
    assert not is_voter_token(None)
    assert not is_voter_token(int(good, 16))
