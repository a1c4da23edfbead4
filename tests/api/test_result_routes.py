"""Results and receipts through HTTP."""

from __future__ import annotations

import base64
import csv
import io

from ledger import merkle
from ledger.canonical import canonical
from ledger.checkpoint import verify_checkpoint
from tests.api.conftest import Setup
from tests.api.test_vote_routes import BASE, post
from tests.factories import ballot_envelope, voter_token


async def test_results_count_ballots_and_name_winners(service: Setup) -> None:
    """Totals per project follow the ballots; results carry the log size and root they came
    from; the CSV has the same figures."""
    site = service.keys.site
    picks = [["L01", "S01"], ["L01", "S02"], ["L02"], ["L01", "L02", "S01"]]
    for n, projects in enumerate(picks):
        assert (await post(service, "ballots", ballot_envelope(site, voter_token(n), projects)))[
            0
        ] == 201
    response = await service.client.get(f"{BASE}/results")
    document = await response.json()
    votes = {p["id"]: p["votes"] for c in document["categories"] for p in c["projects"]}
    assert votes["L01"] == 3 and votes["L02"] == 2 and votes["S01"] == 2 and votes["S02"] == 1
    assert sum(votes.values()) == 8
    assert document["turnout"]["voters"] == 4
    assert document["log"]["size"] == 8
    large = next(c for c in document["categories"] if c["id"] == "large")
    assert large["funded"][:2] == ["L01", "L02"]
    assert sum(p["cost"] for p in large["projects"] if p["funded"]) == large["spent"]
    assert large["spent"] <= large["budget"]
    response = await service.client.get(f"{BASE}/results", params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert {r["project"]: int(r["votes"]) for r in rows} == votes


async def test_receipt_proves_inclusion_and_reports_a_void(service: Setup) -> None:
    """A receipt code finds its ballot with a proof that verifies against the signed checkpoint;
    after a void the receipt says so."""
    from ledger.keys import sign_envelope

    status, accepted = await post(
        service, "ballots", ballot_envelope(service.keys.site, voter_token(1), ["L01"])
    )
    assert status == 201
    response = await service.client.get(f"{BASE}/receipts/{accepted['receipt'].lower()}")
    body = await response.json()
    assert body["status"] == "counted" and body["position"] == accepted["position"]
    checkpoint = verify_checkpoint(body["checkpoint"], service.keys.log.verifier)
    leaf = merkle.leaf_hash(canonical(body["entry"]))
    hashes = [base64.b64decode(h) for h in body["proof"]["hashes"]]
    merkle.verify_inclusion(leaf, body["position"], checkpoint.size, hashes, checkpoint.root)

    import uuid

    void = {
        "type": "void",
        "election": "test-2018",
        "entry": accepted["position"],
        "reason": "test",
        "nonce": str(uuid.uuid4()),
    }
    assert (await post(service, "voids", sign_envelope(void, service.keys.supervisor)))[0] == 201
    body = await (await service.client.get(f"{BASE}/receipts/{accepted['receipt']}")).json()
    assert body["status"] == "voided"
    response = await service.client.get(f"{BASE}/receipts/ZZZZZ-ZZZZZ")
    assert response.status == 404
