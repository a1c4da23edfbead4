"""Threat: a broken server registers a clerk key that names no polling point (such a clerk could
key in paper ballots for every point). The write path refuses it; the auditor flags one that a
server let into the log anyway, and still checks every ballot that key signed."""

from __future__ import annotations

import functools
import uuid
from pathlib import Path

from ledger.keys import SignerKey, sign_envelope
from tally.audit import audit
from tests.factories import ELECTION, voter_token
from tests.tally.election_log import CAST_AT, AuditKeys, election_log, export
from votes.admin import key_registration


async def test_clerk_key_without_a_point_is_flagged(tmp_path: Path, sqlite_url: str) -> None:
    """The registration is a violation at its own position; the key's paper ballot counts."""
    keys = AuditKeys()
    roaming = SignerKey.generate("clerk.roaming.ivan")
    async with election_log(sqlite_url, keys) as log:
        registry = log.ledger.registry
        # What a server without the rule would do: stage the registration as if replaying.
        registry.stage = functools.partial(registry.stage, replaying=True)  # type: ignore[method-assign]
        payload = key_registration(ELECTION, roaming.verifier.vkey, "site")
        payload["role"] = "clerk"  # the builder refuses a clerk without a point
        registered = (await log.casting.submit(sign_envelope(payload, keys.admin))).position
        paper = {
            "type": "paper-ballot",
            "election": ELECTION,
            "voter": voter_token(5),
            "projects": ["L01"],
            "cast_at": CAST_AT,
            "nonce": str(uuid.uuid4()),
            "polling_point": "district-1",
        }
        await log.casting.submit(sign_envelope(paper, roaming))
    path = tmp_path / "log.jsonl"
    await export(sqlite_url, path)
    report = audit(str(path), keys.log.verifier.vkey, keys.admin.verifier.vkey, workers=0)
    assert [(v.entry, v.check) for v in report.violations] == [(registered, "key-registration")]
    assert report.totals.get("L01") == 1
