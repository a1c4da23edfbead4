"""Ballots, paper ballots, spoiled ballots and voids through HTTP, with the votes rules."""

from __future__ import annotations

import uuid
from typing import Any

from ledger.casting import Casting
from ledger.keys import SignerKey, sign_envelope
from tests.api.conftest import VOTER_KEY, Setup
from tests.factories import ELECTION, ballot_envelope, revoke_envelope, voter_token
from votes.tokens import voter_token as hmac_token

BASE = f"/v1/elections/{ELECTION}"


def paper(clerk: SignerKey, voter: str, projects: list[str], **extra: Any) -> dict[str, Any]:
    payload = {
        "type": "paper-ballot",
        "election": ELECTION,
        "voter": voter,
        "projects": projects,
        "polling_point": "city-council",
        "cast_at": "2018-10-05T11:00:00+03:00",
        "nonce": str(uuid.uuid4()),
        **extra,
    }
    return sign_envelope(payload, clerk)


async def post(setup: Setup, path: str, body: object) -> tuple[int, dict[str, Any]]:
    response = await setup.client.post(f"{BASE}/{path}", json=body)
    return response.status, await response.json(content_type=None)


async def log_size(setup: Setup) -> int:
    response = await setup.client.get(f"{BASE}/log/checkpoint")
    return int((await response.text()).split("\n")[1])


async def test_online_ballot_gets_a_receipt_and_a_retry_gets_the_same(service: Setup) -> None:
    """An accepted ballot answers 201 with a receipt; the same envelope again answers 200 with
    the same receipt and writes nothing."""
    envelope = ballot_envelope(service.keys.site, voter_token(1), ["L01", "S02"])
    status, first = await post(service, "ballots", envelope)
    assert status == 201 and first["replay"] is False
    assert len(first["receipt"]) == 11 and first["position"] == 4
    size = await log_size(service)
    status, again = await post(service, "ballots", envelope)
    assert status == 200 and again["replay"] is True
    assert again["receipt"] == first["receipt"] and again["position"] == first["position"]
    assert await log_size(service) == size


async def test_each_refusal_has_its_code_and_writes_nothing(service: Setup) -> None:
    """Refusals are problem+json with a stable code and Ukrainian and English messages."""
    site, keys = service.keys.site, service.keys
    voter = voter_token(2)
    assert (await post(service, "ballots", ballot_envelope(site, voter, ["L01", "L02"])))[0] == 201
    reused = ballot_envelope(site, voter, ["S01"])
    first = ballot_envelope(site, voter_token(3), ["S01"])
    reused["payload"]["nonce"] = first["payload"]["nonce"]
    reused = sign_envelope(reused["payload"], site)
    assert (await post(service, "ballots", first))[0] == 201
    late = ballot_envelope(site, voter_token(4), ["L01"])
    late["payload"]["cast_at"] = "2018-10-11T10:00:00+03:00"
    forged = ballot_envelope(site, voter_token(5), ["L01"])
    forged["payload"]["projects"] = ["L09"]
    cases = [
        (ballot_envelope(site, voter, ["L03"]), 409, "limit-exceeded"),
        (ballot_envelope(site, voter, ["L01"]), 409, "project-repeated"),
        (ballot_envelope(site, voter_token(6), ["L01", "L01"]), 409, "project-repeated"),
        (ballot_envelope(site, voter_token(6), ["X99"]), 422, "unknown-project"),
        (sign_envelope(late["payload"], site), 403, "outside-window"),
        (reused, 409, "nonce-reused"),
        (forged, 401, "bad-signature"),
        (ballot_envelope(SignerKey.generate("site.other"), voter, ["S09"]), 401, "unknown-key"),
        (ballot_envelope(keys.clerk, voter_token(7), ["S09"]), 403, "role-forbidden"),
    ]
    size = await log_size(service)
    for body, status, code in cases:
        got_status, problem = await post(service, "ballots", body)
        assert (got_status, problem["code"]) == (status, code), problem
        assert problem["message_uk"] and problem["message_en"]
    assert await log_size(service) == size


async def test_revoked_site_key_is_refused(service: Setup) -> None:
    """After its revocation a site key's ballots are refused with key-revoked."""
    status, _ = await post(
        service, "ballots", ballot_envelope(service.keys.site, voter_token(8), ["L01"])
    )
    assert status == 201
    from tests.factories import opened_ledger

    async with opened_ledger(service.url, service.keys) as ledger:
        await Casting(ledger).submit(revoke_envelope(service.keys, service.keys.site))
    status, problem = await post(
        service, "ballots", ballot_envelope(service.keys.site, voter_token(9), ["L01"])
    )
    assert (status, problem["code"]) == (403, "key-revoked")


async def test_paper_and_online_share_the_voters_limits(service: Setup) -> None:
    """A clerk's paper ballot and the site's online ballot count against the same limits."""
    clerk, site = service.keys.clerk, service.keys.site
    lookup = sign_envelope(
        {
            "type": "voter-lookup",
            "election": ELECTION,
            "polling_point": "city-council",
            "nonce": str(uuid.uuid4()),
        },
        clerk,
    )
    request = {"envelope": lookup, "identity": "3012 345 678"}
    status, body = await post(service, "voter-tokens", request)
    assert status == 201
    token = body["voter"]
    assert token == hmac_token(VOTER_KEY, ELECTION, "3012345678")
    assert (await post(service, "ballots", ballot_envelope(site, token, ["L01", "S01"])))[0] == 201
    status, problem = await post(service, "paper-ballots", paper(clerk, token, ["L02", "L03"]))
    assert (status, problem["code"]) == (409, "limit-exceeded")
    status, receipt = await post(service, "paper-ballots", paper(clerk, token, ["L02", "S02"]))
    assert status == 201 and receipt["type"] == "paper-ballot"
    status, problem = await post(service, "ballots", ballot_envelope(site, token, ["S03"]))
    assert (status, problem["code"]) == (409, "limit-exceeded")


async def test_spoiled_ballots_and_voids(service: Setup) -> None:
    """Spoiled ballots are recorded; a void frees the voter's picks; voids of voids, unknown
    entries and second voids are refused."""
    clerk, site, supervisor = service.keys.clerk, service.keys.site, service.keys.supervisor
    spoiled = {
        "type": "spoiled-ballot",
        "election": ELECTION,
        "polling_point": "city-council",
        "reason": "too-many-marks",
        "cast_at": "2018-10-05T11:00:00+03:00",
        "nonce": str(uuid.uuid4()),
    }
    assert (await post(service, "paper-ballots", sign_envelope(spoiled, clerk)))[0] == 201
    voter = voter_token(10)
    _, ballot = await post(service, "ballots", ballot_envelope(site, voter, ["L01", "L02"]))

    def void(entry: int) -> dict[str, Any]:
        payload = {
            "type": "void",
            "election": ELECTION,
            "entry": entry,
            "reason": "entered twice by mistake",
            "nonce": str(uuid.uuid4()),
        }
        return sign_envelope(payload, supervisor)

    status, voided = await post(service, "voids", void(ballot["position"]))
    assert status == 201
    assert (await post(service, "ballots", ballot_envelope(site, voter, ["L03", "L04"])))[0] == 201
    for target in (voided["position"], ballot["position"], 10_000):
        status, problem = await post(service, "voids", void(target))
        assert (status, problem["code"]) == (409, "void-refused"), problem
    status, problem = await post(service, "voids", sign_envelope(void(1)["payload"], clerk))
    assert (status, problem["code"]) == (403, "role-forbidden")


async def test_bad_bodies(service: Setup) -> None:
    """Wrong content type, malformed or duplicate-key JSON and wrong payload types are refused."""
    response = await service.client.post(
        f"{BASE}/ballots", data=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert response.status == 415
    response = await service.client.post(
        f"{BASE}/ballots", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (response.status, (await response.json(content_type=None))["code"]) == (400, "bad-json")
    response = await service.client.post(
        f"{BASE}/ballots", data=b'{"a":1,"a":2}', headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    status, problem = await post(
        service, "paper-ballots", ballot_envelope(service.keys.site, voter_token(1), ["L01"])
    )
    assert (status, problem["code"]) == (422, "wrong-type")
