"""Receipt codes: short, hand-copyable names for an accepted ballot.

A code is derived from the ballot's signature (unique per ballot, known before the entry has a
position): Crockford base32 of the first 50 bits of SHA-256("uchast/receipt\\n" || signature),
written ``XXXXX-XXXXX``. Crockford's alphabet has no I, L, O or U, so a code read aloud or copied
by hand survives; lookups accept lower case and the look-alikes.

The log finds a ballot by a hash of its code (:func:`receipt_tag`), never the code itself, and a
receipt reports its ballot's :class:`ReceiptStatus`, decided as the results count
(:func:`receipt_status`). Mirrored by tally/audit/receipts.py, which also checks a receipt's
C2SP tlog-proof file offline (``uchast verify-receipt``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from enum import StrEnum

from votes.election import Election
from votes.rules import PriorEntry, voter_state

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LOOKALIKES = str.maketrans({"I": "1", "L": "1", "O": "0", "U": "V"})
_CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$")


def receipt_code(signature: bytes) -> str:
    """The receipt code of the ballot carrying ``signature``."""
    value = int.from_bytes(hashlib.sha256(b"uchast/receipt\n" + signature).digest()[:7]) >> 6
    chars = "".join(_ALPHABET[(value >> shift) & 31] for shift in range(45, -5, -5))
    return f"{chars[:5]}-{chars[5:]}"


def normalise_receipt_code(text: str) -> str | None:
    """The canonical form of a typed code, or None if it cannot be one."""
    compact = re.sub(r"[\s-]", "", text.upper()).translate(_LOOKALIKES)
    code = f"{compact[:5]}-{compact[5:]}"
    return code if _CODE.match(code) else None


RECEIPT_TAG_CONTEXT = b"uchast/receipt-tag\n"
RECEIPT_TAG_HEX = 32
"""Hex digits of the hash a receipt tag keeps: 128 bits, so two codes never share a tag (the
codes themselves, 50 bits, collide long before), at half the bytes of a whole SHA-256 in every
ballot's entry and tag index."""


def receipt_tag(code: str) -> str:
    """The tag that finds a ballot by its receipt ``code`` (canonical form): ``receipt:`` and
    the first :data:`RECEIPT_TAG_HEX` hex digits of SHA-256("uchast/receipt-tag\\n" || code).

    The tags are part of each entry's bytes, so they are public, in every export and every
    Merkle leaf. The log keeps this hash rather than the code so that the code a voter was
    handed appears nowhere in the log's text: a list of codes is not one grep away, and a code
    heard or seen on a slip is not simply searched for in an export. It is no secret, and the
    hash is not meant to make it one: the code is computed from the ballot's signature, which
    the entry publishes, so anyone holding the log can derive every code (and the auditor does,
    to check each tag). Lookups hash the typed code and read by the tag.
    """
    digest = hashlib.sha256(RECEIPT_TAG_CONTEXT + code.encode("ascii")).hexdigest()
    return f"receipt:{digest[:RECEIPT_TAG_HEX]}"


class ReceiptStatus(StrEnum):
    """What a ballot's receipt says about it: exactly what the results count.

    Decided from the voter's history by :func:`votes.rules.voter_state`, the one definition of
    what counts that the live tally (tally/projection.py) applies too, so a ballot counts in the
    results if and only if its receipt says ``counted``.
    """

    COUNTED = "counted"
    """An online ballot, a paper ballot without double entry, or one keying of a confirmed
    pair (both keyings' receipts say so; the paper ballot counts once)."""
    AWAITING_SECOND_KEYING = "awaiting-second-keying"
    """Double entry: a paper keying no second, matching keying by another clerk has followed
    yet. Nothing counts until one does."""
    DISPUTED = "disputed"
    """Double entry: the keyings of this paper ballot differ (or one clerk keyed both); none
    counts until a supervisor voids the wrong one and a matching keying follows."""
    VOIDED = "voided"
    """A supervisor voided this entry: it never counts again."""


def receipt_status(
    election: Election, history: Sequence[PriorEntry], position: int, voter: str
) -> ReceiptStatus:
    """The status of the ballot at ``position``, whose voter is ``voter``; ``history`` holds
    the voter's entries (this one among them) and the voids naming them.

    ValueError if ``history`` does not hold the ballot.
    """
    state = voter_state(election, history, voter)
    if position in state.voided:
        return ReceiptStatus.VOIDED
    if any(position in ballot.entries for ballot in state.ballots):
        return ReceiptStatus.COUNTED
    if state.pending is not None and state.pending.position == position:
        return ReceiptStatus.AWAITING_SECOND_KEYING
    if any(keying.position == position for keying in state.disputed):
        return ReceiptStatus.DISPUTED
    raise ValueError(f"entry {position} is no ballot in the voter's history")
