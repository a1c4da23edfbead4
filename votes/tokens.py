"""Pseudonymous voter tokens: HMAC-SHA256 under the election's own voter key.

The online voting site and uchast share the voter key. The site computes the token from the
identity number it verified (BankID, e-signature); uchast computes it from the number a clerk
types at a polling point. Both normalise the number first, so the same person gets the same token
on both channels, and a raw identity number never reaches the log.

The election id is inside the HMAC input, so one person's tokens in two elections differ even if a
voter key were ever shared between them:

    HMAC-SHA256(voter key, b"uchast/voter/v1\n" + election id + b"\n" + normalised number)

(ASCII, no trailing newline; the election id's grammar has no newline, so the split is unique).

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
"""64 lowercase hex digits: HMAC-SHA256(voter key, domain, election id, normalised number)."""

_IGNORED = re.compile(r"[\s\-\u2010\u2011\u2012\u2013\u2014\u2212]+")
_IDENTITY = re.compile(r"[0-9]{8,12}", re.ASCII)
_TOKEN = re.compile(r"[0-9a-f]{64}", re.ASCII)
# The grammar of votes.election's ids: no newline, so the HMAC input splits one way only.
_ELECTION_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,62}", re.ASCII)
_DOMAIN = b"uchast/voter/v1\n"


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


def voter_token(voter_key: bytes, election: str, identity: str) -> VoterToken:
    """The voter token of ``identity`` in ``election``, as hex: HMAC-SHA256 under ``voter_key``
    over ``b"uchast/voter/v1\\n" + election + b"\\n" + normalised number``.

    ``voter_key`` is the election's secret voter key (32 random bytes recommended); an empty key
    or an ``election`` that is not an election id is a configuration mistake and raises
    ``ValueError``.
    """
    if not voter_key:
        raise ValueError("the voter key is empty")
    if not isinstance(election, str) or _ELECTION_ID.fullmatch(election) is None:
        raise ValueError("the voter token needs an election id (2-63 of a-z, 0-9, '-')")
    number = normalise_identity(identity)
    message = _DOMAIN + election.encode("ascii") + b"\n" + number.encode("ascii")
    return VoterToken(hmac.new(voter_key, message, hashlib.sha256).hexdigest())


def is_voter_token(value: object) -> bool:
    """Whether ``value`` is a voter token: a string of exactly 64 lowercase hex digits."""
    return isinstance(value, str) and _TOKEN.fullmatch(value) is not None
