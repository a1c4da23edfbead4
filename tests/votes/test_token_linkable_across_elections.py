"""Finding: the HMAC input had no election id, so with one voter key a person's 2018 and 2019
tokens were identical and their ballots linkable across elections. The election id is now inside
the HMAC input, and README's worked example is the one computed here."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from votes.tokens import voter_token

README = Path(__file__).resolve().parents[2] / "README.md"
KEY = bytes(range(32))
EXAMPLE_TOKEN = "2c23a8a753385c919d4dd07cd4eb214a6a96130bb3ad55f9aa1972fa1d7e8270"


def test_same_identity_same_key_two_elections_different_tokens() -> None:
    """Even under one shared key, 2018's token of a person is not 2019's."""
    assert voter_token(KEY, "zhytomyr-2018", "3012345678") != voter_token(
        KEY, "zhytomyr-2019", "3012345678"
    )


@given(
    st.from_regex(r"[a-z0-9][a-z0-9-]{1,20}", fullmatch=True),
    st.from_regex(r"[a-z0-9][a-z0-9-]{1,20}", fullmatch=True),
    st.from_regex(r"[0-9]{8,12}", fullmatch=True),
)
def test_tokens_of_different_elections_never_coincide(first: str, second: str, number: str) -> None:
    """Distinct election ids give distinct tokens of one identity number."""
    if first != second:
        assert voter_token(KEY, first, number) != voter_token(KEY, second, number)


def test_the_readme_example() -> None:
    """README's worked example: key 00 01 .. 1f, election zhytomyr-2018, identity "3012 345 678";
    the bytes and the token README gives are the ones computed here."""
    message = b"uchast/voter/v1\nzhytomyr-2018\n3012345678"
    assert hmac.new(KEY, message, hashlib.sha256).hexdigest() == EXAMPLE_TOKEN
    assert voter_token(KEY, "zhytomyr-2018", "3012 345 678") == EXAMPLE_TOKEN
    readme = README.read_text(encoding="utf-8")
    assert KEY.hex() in readme
    assert EXAMPLE_TOKEN in readme
    assert 'b"uchast/voter/v1\\n" + election id + b"\\n" + normalised number' in readme
