"""The administrator's payloads: an election's definition and its keys, as signed into the log.

One builder per payload, so that ``uchast init``, ``keys add``, the demo and ``import-pabulib``
write exactly the same shapes (which the auditor reads back).
"""

from __future__ import annotations

import hashlib
from typing import Any

from votes.election import Election, election_to_dict
from votes.entries import EntryType


def voter_key_id(voter_key: bytes) -> str:
    """A public fingerprint of the voter key, so a site can tell it holds the right one."""
    return hashlib.sha256(b"uchast/voter-key\n" + voter_key).hexdigest()[:16]


def election_payload(election: Election, admin_vkey: str, voter_key: bytes) -> dict[str, Any]:
    """The election's first entry: its definition, naming the admin key that signs it."""
    return {
        "type": EntryType.ELECTION.value,
        "election": election.id,
        "admin_key": admin_vkey,
        "voter_key_id": voter_key_id(voter_key),
        "definition": election_to_dict(election),
    }


def key_registration(
    election: str, vkey: str, role: str, polling_point: str | None = None
) -> dict[str, Any]:
    """Register a site, clerk (bound to its polling point) or supervisor key."""
    if role == "clerk" and not polling_point:
        raise ValueError("a clerk key must name its polling point")
    payload: dict[str, Any] = {
        "type": EntryType.KEY_REGISTERED.value,
        "election": election,
        "vkey": vkey,
        "role": role,
    }
    if polling_point:
        payload["polling_point"] = polling_point
    return payload


def amendment_payload(election: Election) -> dict[str, Any]:
    """Replace the election's definition (refused once voting has opened)."""
    return {
        "type": EntryType.ELECTION_AMENDED.value,
        "election": election.id,
        "definition": election_to_dict(election),
    }


def key_revocation(election: str, key_id: str, reason: str) -> dict[str, Any]:
    """Retire the key ``key_id`` (``name+hex8``) from the entry's log position on."""
    return {
        "type": EntryType.KEY_REVOKED.value,
        "election": election,
        "key": key_id,
        "reason": reason,
    }
