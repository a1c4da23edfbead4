"""Threat: a server writes voter lookups the rules refuse (one carrying an identity
number or a token in its payload, one at another clerk's point, a reused nonce). The auditor
accepts a clerk's lookup as the rules make it and reports each smuggled one (step 5); a lookup
never counts as a ballot."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from ledger.keys import sign_envelope
from tests.factories import ELECTION, voter_token
from tests.tally.audit.test_smuggled_ballot import audited, only_rules
from tests.tally.election_log import AuditKeys, election_log


def lookup(**fields: Any) -> dict[str, Any]:
    payload = {
        "type": "voter-lookup",
        "election": ELECTION,
        "polling_point": "council",
        "nonce": str(uuid.uuid4()),
    }
    payload.update(fields)
    return payload


def tags(payload: dict[str, Any], voter: int) -> list[str]:
    return [
        f"nonce:{payload['nonce']}",
        f"point:{payload['polling_point']}",
        f"lookup:{voter_token(voter)}",
    ]


async def test_smuggled_lookups_are_flagged(tmp_path: Path, sqlite_url: str) -> None:
    keys = AuditKeys()
    async with election_log(sqlite_url, keys) as log:
        good = lookup()
        fine = await log.smuggle(good, keys.clerk, tags(good, 1))
        await log.ballot(1, ["L01"])
        numbered = lookup(identity="3012345678")
        number = await log.smuggle(numbered, keys.clerk, tags(numbered, 3))
        tokened = lookup(voter=voter_token(4))
        token = await log.smuggle(tokened, keys.clerk, tags(tokened, 4))
        elsewhere = lookup()
        other_point = await log.smuggle(elsewhere, keys.clerk3, tags(elsewhere, 5))
        again = await log.smuggle(good, keys.clerk, tags(good, 6))
        as_voter = lookup()
        voter_tagged = await log.smuggle(
            as_voter, keys.clerk, [*tags(as_voter, 7), f"voter:{voter_token(7)}"]
        )
    report = await audited(tmp_path, sqlite_url, keys)
    flagged = {entry for entry, _ in only_rules(report)}
    assert fine not in flagged
    assert {number, token, other_point, again, voter_tagged} <= flagged, report.summary()


async def test_lookups_no_paper_ballot_followed_are_counted_per_clerk(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A statistic, not a violation: per clerk key, the lookups that no paper ballot of that
    token followed (a clerk looking people up without entering their ballots shows here)."""
    keys = AuditKeys()
    async with election_log(sqlite_url, keys) as log:
        followed = sign_envelope(lookup(), keys.clerk)  # through the write path, as served
        await log.casting.submit(followed, token=voter_token(1))
        await log.paper(1, ["L01"])
        for voter in (2, 3):
            idle = lookup()
            await log.smuggle(idle, keys.clerk2, tags(idle, voter))
        late = lookup()
        await log.smuggle(late, keys.clerk, tags(late, 4))
        await log.ballot(4, ["L02"])  # online: not a paper ballot the lookup served
    report = await audited(tmp_path, sqlite_url, keys)
    assert report.ok, report.summary()
    assert report.lookups == 4
    assert report.unfollowed_lookups == {keys.clerk2.key_id: 2, keys.clerk.key_id: 1}
    assert any("no paper ballot followed: 2" in line for line in report.summary())
