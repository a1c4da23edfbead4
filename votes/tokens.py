"""Pseudonymous voter tokens: HMAC-SHA256 under the election's voter key.

The online voting site and uchast share the voter key. The site computes the token from the
identity number it verified (BankID, e-signature); uchast computes it from the number a clerk
types at a polling point. Both normalise the number first, so the same person gets the same token
on both channels, and a raw identity number never reaches the log.

Normalisation: drop whitespace and dashes; what is left must be 8 to 12 ASCII digits (the
Ukrainian taxpayer number RNOKPP has 10; the range leaves room for other document numbers).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import NewType

from votes.errors import BadIdentityError

__all__ = ["VoterToken", "is_voter_token", "normalise_identity", "voter_token"]

VoterToken = NewType("VoterToken", str)
"""64 lowercase hex digits: HMAC-SHA256(voter key, normalised identity number)."""

_IGNORED = re.compile(r"[\s\-\u2010\u2011\u2012\u2013\u2014\u2212]+")
_IDENTITY = re.compile(r"[0-9]{8,12}", re.ASCII)
_TOKEN = re.compile(r"[0-9a-f]{64}", re.ASCII)


def normalise_identity(raw: str) -> str:
    """The identity number ``raw`` with spaces and dashes removed.

    Raises :class:`BadIdentityError` (which never contains the number) unless 8–12 digits remain.
    """
    if not isinstance(raw, str):
        raise BadIdentityError()
    digits = _IGNORED.sub("", raw)
    if _IDENTITY.fullmatch(digits) is None:
        raise BadIdentityError()
    return digits


def voter_token(voter_key: bytes, identity: str) -> VoterToken:
    """The voter token of ``identity``: HMAC-SHA256 over the normalised number, as hex.

    ``voter_key`` is the election's secret voter key (32 random bytes recommended); an empty key
    is a configuration mistake and raises ``ValueError``.
    """
    if not voter_key:
        raise ValueError("the voter key is empty")
    number = normalise_identity(identity)
    return VoterToken(hmac.new(voter_key, number.encode("ascii"), hashlib.sha256).hexdigest())


def is_voter_token(value: object) -> bool:
    """Whether ``value`` is a voter token: a string of exactly 64 lowercase hex digits."""
    return isinstance(value, str) and _TOKEN.fullmatch(value) is not None
