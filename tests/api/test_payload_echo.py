"""Finding: a refusal echoed a value from the request's payload back to its sender.

Whatever a request carries, a refusal names the rule and the field, never the value sent: an
echo lets a page that shows errors be made to show attacker-chosen text, and turns every
refusal into a reflector of up to a body's worth (64 KiB) of whatever was sent.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ledger.keys import SignerKey, sign_envelope
from tests.api.conftest import Setup
from tests.factories import ELECTION, ballot_envelope, voter_token

BASE = f"/v1/elections/{ELECTION}"
MARK = "ECHO-7f3a9c"


def signed(setup: Setup, **changes: Any) -> dict[str, Any]:
    envelope = ballot_envelope(setup.keys.site, voter_token(1), ["L01"])
    return sign_envelope({**envelope["payload"], **changes}, setup.keys.site)


def envelope_payload(setup: Setup) -> dict[str, Any]:
    return dict(ballot_envelope(setup.keys.site, voter_token(2), ["L01"])["payload"])


def raw(setup: Setup, case: str) -> bytes:
    """The request body of each case, with MARK where the attacker put it."""
    if case == "duplicate-key":
        return json.dumps(signed(setup))[:-1].encode() + f', "{MARK}": 1, "{MARK}": 2}}'.encode()
    if case == "not-utf8":
        return b'{"payload": "\xff' + MARK.encode() + b'"}'
    bodies: dict[str, Any] = {
        "envelope-field": {**signed(setup), MARK: 1},
        "key-id": {**signed(setup), "key": f"{MARK} junk"},
        "entry-type": signed(setup, type=MARK),
        "election": signed(setup, election=MARK),
        "project": signed(setup, projects=[MARK]),
        "payload-field": signed(setup, **{MARK: 1}),
        "unknown-key": sign_envelope(envelope_payload(setup), SignerKey.generate(f"site.{MARK}")),
    }
    return json.dumps(bodies[case]).encode()


@pytest.mark.parametrize(
    "case",
    [
        "duplicate-key",
        "not-utf8",
        "envelope-field",
        "key-id",
        "entry-type",
        "election",
        "project",
        "payload-field",
        "unknown-key",
    ],
)
async def test_a_refusal_does_not_echo_the_payload(service: Setup, case: str) -> None:
    response = await service.client.post(
        f"{BASE}/ballots", data=raw(service, case), headers={"Content-Type": "application/json"}
    )
    text = await response.text()
    assert 400 <= response.status < 500, text
    assert MARK not in text, text
