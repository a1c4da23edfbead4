"""POST /v1/elections/{e}/ballot-batches: the voting site forwards ballots in groups, each envelope
cast on its own (its voter's limits, its nonce, its receipt), answered one result per envelope in
order; on real SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from api.service import ServiceConfig
from ledger.casting import MAX_BATCH
from ledger.keys import SignerKey, sign_envelope
from tests.api.conftest import VOTER_KEY, VOTING_DAY, Setup
from tests.factories import ELECTION, Keys, ballot_envelope, opened_ledger, voter_token

BASE = f"/v1/elections/{ELECTION}"
ClientFactory = Callable[[Any], Awaitable[TestClient[Any, Any]]]


async def started(aiohttp_client: ClientFactory, url: str, **options: Any) -> Setup:
    keys = Keys()
    async with opened_ledger(url, keys):
        pass
    config = ServiceConfig(url, keys.log, voter_key=VOTER_KEY, clock=lambda: VOTING_DAY, **options)
    return Setup(await aiohttp_client(create_app(config)), keys, url)


@pytest.fixture
async def service(aiohttp_client: ClientFactory, store_url: str) -> AsyncIterator[Setup]:
    """The default service (rate limits on, at their defaults) on each store in turn."""
    yield await started(aiohttp_client, store_url)


async def batch(setup: Setup, envelopes: object) -> tuple[int, Any]:
    response = await setup.client.post(f"{BASE}/ballot-batches", json={"envelopes": envelopes})
    return response.status, await response.json(content_type=None)


async def log_size(setup: Setup) -> int:
    response = await setup.client.get(f"{BASE}/log/checkpoint")
    return int((await response.text()).split("\n")[1])


def with_nonce(site: SignerKey, envelope: dict[str, Any], nonce: str) -> dict[str, Any]:
    return sign_envelope({**envelope["payload"], "nonce": nonce}, site)


def forged(envelope: dict[str, Any]) -> dict[str, Any]:
    """The envelope with its payload changed after signing."""
    return {**envelope, "payload": {**envelope["payload"], "projects": ["L09"]}}


async def test_mixed_batch_answers_each_envelope_as_it_would_be_answered_alone(
    service: Setup,
) -> None:
    """Good, forged signature, reused nonce, over-limit voter, wrong election, and a retry of an
    earlier ballot: each item gets what POST .../ballots would answer it, in order, and only the
    good one is written."""
    site = service.keys.site
    earlier = ballot_envelope(site, voter_token(1), ["L01", "L02"])
    response = await service.client.post(f"{BASE}/ballots", json=earlier)
    assert response.status == 201
    earlier_receipt = await response.json()
    size = await log_size(service)
    good = ballot_envelope(site, voter_token(2), ["S01"])
    envelopes = [
        good,
        forged(ballot_envelope(site, voter_token(3), ["L01"])),
        with_nonce(
            site, ballot_envelope(site, voter_token(4), ["L01"]), earlier["payload"]["nonce"]
        ),
        ballot_envelope(site, voter_token(1), ["L03"]),  # a third large project for voter 1
        ballot_envelope(site, voter_token(5), ["L01"], election="kyiv-2018"),
        earlier,
    ]
    status, body = await batch(service, envelopes)
    assert status == 200
    results = body["results"]
    assert [(r["status"], r.get("code")) for r in results] == [
        (201, None),
        (401, "bad-signature"),
        (409, "nonce-reused"),
        (409, "limit-exceeded"),
        (422, "wrong-election"),
        (200, None),
    ]
    assert results[0]["position"] == size and results[0]["replay"] is False
    assert len(results[0]["receipt"]) == 11 and results[0]["type"] == "ballot"
    assert {k: results[5][k] for k in earlier_receipt} == {**earlier_receipt, "replay": True}
    for problem in results[1:5]:
        assert problem["type"] == f"urn:uchast:problem:{problem['code']}"
        assert problem["title"] and problem["detail"] and problem["message_uk"]
    # Each problem is the one the single endpoint gives for the same envelope.
    for envelope, item in zip(envelopes[1:5], results[1:5], strict=True):
        alone = await service.client.post(f"{BASE}/ballots", json=envelope)
        assert (alone.status, await alone.json()) == (item["status"], item)
    assert await log_size(service) == size + 1
    # The single endpoint's retry of the good one is a replay of the batch's entry.
    again = await service.client.post(f"{BASE}/ballots", json=good)
    assert again.status == 200 and (await again.json())["position"] == results[0]["position"]


async def test_double_vote_race_within_one_batch(service: Setup) -> None:
    """Three envelopes of one voter, each a large project, in one batch, where the voter may
    pick two: exactly two are written, the third is refused limit-exceeded."""
    site = service.keys.site
    voter = voter_token(10)
    envelopes = [ballot_envelope(site, voter, [p]) for p in ("L01", "L02", "L03")]
    size = await log_size(service)
    status, body = await batch(service, envelopes)
    assert status == 200
    outcomes = Counter((r["status"], r.get("code")) for r in body["results"])
    assert outcomes == Counter({(201, None): 2, (409, "limit-exceeded"): 1})
    assert await log_size(service) == size + 2


async def test_replayed_nonce_within_one_batch(service: Setup) -> None:
    """One envelope twice and another payload under the same nonce, in one batch: one entry,
    the repeat answered as a replay of it with the same receipt, the other refused
    nonce-reused."""
    site = service.keys.site
    first = ballot_envelope(site, voter_token(20), ["S01"])
    other = with_nonce(
        site, ballot_envelope(site, voter_token(21), ["S02"]), first["payload"]["nonce"]
    )
    size = await log_size(service)
    status, body = await batch(service, [first, first, other])
    assert status == 200
    results = body["results"]
    outcomes = Counter((r["status"], r.get("code")) for r in results)
    written = [r for r in results if r["status"] in (200, 201)]
    assert outcomes[(409, "nonce-reused")] >= 1
    assert await log_size(service) == size + 1
    # Whichever of the three came first was written; every accepted answer names that entry.
    assert len({(r["position"], r["receipt"]) for r in written}) == 1
    assert sum(r["status"] == 201 for r in results) == 1


async def test_forged_signature_in_batch_refuses_only_that_item(service: Setup) -> None:
    """A forged envelope between good ones: it alone is refused, the others are written."""
    site = service.keys.site
    envelopes = [
        ballot_envelope(site, voter_token(30), ["L01"]),
        forged(ballot_envelope(site, voter_token(31), ["L02"])),
        ballot_envelope(SignerKey.generate("site.other"), voter_token(32), ["L02"]),
        ballot_envelope(site, voter_token(33), ["S01"]),
    ]
    size = await log_size(service)
    status, body = await batch(service, envelopes)
    assert status == 200
    assert [(r["status"], r.get("code")) for r in body["results"]] == [
        (201, None),
        (401, "bad-signature"),
        (401, "unknown-key"),
        (201, None),
    ]
    assert await log_size(service) == size + 2


async def test_batch_over_the_cap_is_refused_whole(service: Setup) -> None:
    """MAX_BATCH + 1 envelopes: 413 batch-too-large, nothing written."""
    site = service.keys.site
    envelopes = [ballot_envelope(site, voter_token(100 + i), ["S01"]) for i in range(MAX_BATCH + 1)]
    size = await log_size(service)
    status, problem = await batch(service, envelopes)
    assert (status, problem["code"]) == (413, "batch-too-large")
    assert (problem["count"], problem["most"]) == (MAX_BATCH + 1, MAX_BATCH)
    assert await log_size(service) == size
    status, body = await batch(service, envelopes[:MAX_BATCH])
    assert status == 200 and [r["status"] for r in body["results"]] == [201] * MAX_BATCH


async def test_batches_not_of_that_shape_are_refused_whole(service: Setup) -> None:
    """An empty list, no list, extra members, another election, a body past the size limit."""
    site = service.keys.site
    good = ballot_envelope(site, voter_token(40), ["S01"])
    size = await log_size(service)
    body: object
    for body in ({"envelopes": []}, {"envelopes": good}, {"envelopes": [good], "x": 1}, [good]):
        response = await service.client.post(f"{BASE}/ballot-batches", json=body)
        problem = await response.json(content_type=None)
        assert (response.status, problem["code"]) == (400, "bad-batch"), body
        assert response.headers["Cache-Control"] == "no-store"
    response = await service.client.post(
        "/v1/elections/kyiv-2018/ballot-batches", json={"envelopes": [good]}
    )
    assert (response.status, (await response.json())["code"]) == (404, "unknown-election")
    padded = {**good, "payload": {**good["payload"], "pad": "x" * 70_000}}
    status, problem = await batch(service, [padded])
    assert (status, problem["code"]) == (413, "too-large")
    assert await log_size(service) == size


async def test_each_envelope_counts_against_the_site_keys_rate_limit(
    aiohttp_client: ClientFactory, store_url: str
) -> None:
    """Site key at 3 writes in its bucket (no refill to speak of): a batch of 5 writes the first
    3, the other 2 are answered rate-limited with retry_after and not written; a ballot sent
    alone next is refused 429, and the metrics count the batch's items as ballots."""
    setup = await started(
        aiohttp_client, store_url, role_rate_limits=(("site", 0.001),), rate_burst=3.0
    )
    site = setup.keys.site
    envelopes = [ballot_envelope(site, voter_token(50 + i), ["S01"]) for i in range(5)]
    size = await log_size(setup)
    status, body = await batch(setup, envelopes)
    assert status == 200
    results = body["results"]
    assert [r["status"] for r in results] == [201, 201, 201, 429, 429]
    assert all(r["code"] == "rate-limited" and r["retry_after"] >= 1 for r in results[3:])
    assert await log_size(setup) == size + 3
    metrics = await (await setup.client.get("/metrics")).text()
    assert 'uchast_ballots_accepted_total{channel="online"} 3.0' in metrics
    assert 'uchast_ballots_refused_total{channel="online",code="rate-limited"} 2.0' in metrics
    alone = await setup.client.post(f"{BASE}/ballots", json=envelopes[3])
    assert alone.status == 429
