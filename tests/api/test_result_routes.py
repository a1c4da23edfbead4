"""Results and receipts through HTTP."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
from pathlib import Path
from typing import Any

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


async def test_equal_shares_rule_funds_by_equal_shares(
    aiohttp_client: Any, sqlite_url: str
) -> None:
    """Under the equal-shares rule, live results fund what Method of Equal Shares funds for the
    counted ballots, and the replayed export carries the same document."""
    from api.app import create_app
    from api.service import ServiceConfig
    from tally.export import results_from_log
    from tally.results import EQUAL_SHARES_COMPLETION
    from tally.winners import Candidate, equal_shares
    from tests.api.conftest import VOTER_KEY, VOTING_DAY
    from tests.factories import Keys, example_definition, opened_ledger
    from votes.election import election_from_dict

    definition = example_definition()
    definition["rule"]["method"] = "equal-shares"
    keys = Keys()
    async with opened_ledger(sqlite_url, keys, definition=definition):
        pass
    config = ServiceConfig(sqlite_url, keys.log, voter_key=VOTER_KEY, clock=lambda: VOTING_DAY)
    client = await aiohttp_client(create_app(config))
    ballots = [["L01", "L02"], ["L01", "L02"], ["L03"], ["L04", "S01"], ["L01", "S01"]] * 3
    for n, projects in enumerate(ballots):
        body = ballot_envelope(keys.site, voter_token(n), projects)
        assert (await client.post(f"{BASE}/ballots", json=body)).status == 201
    document = await (await client.get(f"{BASE}/results")).json()
    election = election_from_dict(definition)
    for category in document["categories"]:
        candidates = [
            Candidate(p.id, p.cost, sum(p.id in b for b in ballots))
            for p in election.projects
            if p.category == category["id"]
        ]
        ids = {c.id for c in candidates}
        expected = equal_shares(
            candidates,
            category["budget"],
            [[p for p in b if p in ids] for b in ballots if set(b) & ids],
            completion=EQUAL_SHARES_COMPLETION,
            tie_break=election.rule.tie_break,
            seed=election.rule.seed,
        )
        assert category["funded"] == list(expected.funded)
    from ledger.export import export_log
    from ledger.store import open_store
    from tally.audit import audit

    store = open_store(sqlite_url)
    await store.open()
    try:
        exported = await results_from_log(store, "test-2018")
        log_file = Path(sqlite_url.removeprefix("sqlite:///")).with_suffix(".log")
        with open(log_file, "wb") as out:
            await export_log(store, "test-2018", out)
    finally:
        await store.close()
    assert [c["funded"] for c in exported["categories"]] == [
        c["funded"] for c in document["categories"]
    ]
    # The independent auditor's own equal-shares recount agrees with the published winners.
    report = await asyncio.to_thread(
        audit,
        str(log_file),
        keys.log.verifier.vkey,
        keys.admin.verifier.vkey,
        results=document,
        workers=0,
    )
    assert report.violations == [], report.violations[:3]
    assert report.winners == {c["id"]: c["funded"] for c in document["categories"]}


async def test_refusals_are_counted_by_reason_and_survive_a_restart(
    aiohttp_client: Any, sqlite_url: str
) -> None:
    """Refused ballots show in the results by problem code and channel; the counts are saved
    with the tally and are there after a restart, with later refusals added on top."""
    from api.app import create_app
    from api.service import ServiceConfig
    from tests.api.conftest import VOTER_KEY, VOTING_DAY
    from tests.factories import Keys, opened_ledger

    keys = Keys()
    async with opened_ledger(sqlite_url, keys):
        pass
    config = ServiceConfig(sqlite_url, keys.log, voter_key=VOTER_KEY, clock=lambda: VOTING_DAY)

    client = await aiohttp_client(create_app(config))
    assert (
        await client.post(
            f"{BASE}/ballots", json=ballot_envelope(keys.site, voter_token(1), ["L01", "L02"])
        )
    ).status == 201
    for _ in range(2):  # a third large project: over the limit
        body = ballot_envelope(keys.site, voter_token(1), ["L03"])
        assert (await client.post(f"{BASE}/ballots", json=body)).status == 409
    body = ballot_envelope(keys.site, voter_token(2), ["NOPE"])
    assert (await client.post(f"{BASE}/ballots", json=body)).status == 422
    document = await (await client.get(f"{BASE}/results")).json()
    assert document["refusals"] == {
        "total": 3,
        "by_reason": {"limit-exceeded": 2, "unknown-project": 1},
        "by_channel": {"online": {"limit-exceeded": 2, "unknown-project": 1}},
    }
    await client.close()  # saves the tally and the refusals

    client = await aiohttp_client(create_app(config))
    body = ballot_envelope(keys.site, voter_token(1), ["L04"])
    assert (await client.post(f"{BASE}/ballots", json=body)).status == 409
    document = await (await client.get(f"{BASE}/results")).json()
    assert document["refusals"]["by_reason"] == {"limit-exceeded": 3, "unknown-project": 1}
    assert document["refusals"]["total"] == 4
    await client.close()
