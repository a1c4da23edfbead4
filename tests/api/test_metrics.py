"""GET /metrics: ballots by channel and outcome, refusals by problem code, sequencer batches, log,
checkpoint and projection gauges, database pool use; one registry per app."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.metrics import Metrics
from api.service import ServiceConfig
from ledger.keys import sign_envelope
from tests.api.conftest import VOTER_KEY, VOTING_DAY, Setup
from tests.factories import ELECTION, Keys, ballot_envelope, opened_ledger, voter_token

BASE = f"/v1/elections/{ELECTION}"


async def scrape(
    client: TestClient[Any, Any],
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def paper(setup: Setup, voter: str, projects: list[str]) -> dict[str, Any]:
    payload = {
        "type": "paper-ballot",
        "election": ELECTION,
        "voter": voter,
        "projects": projects,
        "polling_point": "city-council",
        "cast_at": "2018-10-05T11:00:00+03:00",
        "nonce": str(uuid.uuid4()),
    }
    return sign_envelope(payload, setup.keys.clerk)


async def test_ballots_are_counted_by_channel_and_refusals_by_problem_code(service: Setup) -> None:
    """Online and paper ballots count as accepted, replayed or refused under the problem's code."""
    client, site = service.client, service.keys.site
    online = ballot_envelope(site, voter_token(1), ["L01", "L02"])
    assert (await client.post(f"{BASE}/ballots", json=online)).status == 201
    assert (await client.post(f"{BASE}/ballots", json=online)).status == 200
    unknown = ballot_envelope(site, voter_token(2), ["L99"])
    assert (await client.post(f"{BASE}/ballots", json=unknown)).status == 422
    forged = {**ballot_envelope(site, voter_token(3), ["S01"]), "sig": online["sig"]}
    assert (await client.post(f"{BASE}/ballots", json=forged)).status == 401
    assert (
        await client.post(f"{BASE}/paper-ballots", json=paper(service, voter_token(4), ["S01"]))
    ).status == 201
    over = paper(service, voter_token(1), ["L03"])
    assert (await client.post(f"{BASE}/paper-ballots", json=over)).status == 409

    samples = await scrape(client)
    assert value(samples, "uchast_ballots_accepted_total", channel="online") == 1
    assert value(samples, "uchast_ballots_accepted_total", channel="paper") == 1
    assert value(samples, "uchast_ballots_replayed_total", channel="online") == 1
    assert value(samples, "uchast_ballots_replayed_total", channel="paper") == 0
    refused = {
        (dict(labels)["channel"], dict(labels)["code"]): v
        for (name, labels), v in samples.items()
        if name == "uchast_ballots_refused_total"
    }
    assert refused == {
        ("online", "unknown-project"): 1,
        ("online", "bad-signature"): 1,
        ("paper", "limit-exceeded"): 1,
    }
    # Request to receipt, for the two that appended and the one replayed.
    assert value(samples, "uchast_append_latency_seconds_count", endpoint="ballots") == 2
    assert value(samples, "uchast_append_latency_seconds_count", endpoint="paper-ballots") == 1
    route = "/v1/elections/{election}/ballots"
    assert (
        value(samples, "uchast_http_responses_total", route=route, method="POST", status="201") == 1
    )


async def test_log_checkpoint_projection_batches_and_pool(service: Setup) -> None:
    """Gauges read at scrape time agree with the log; batches come from the sequencer."""
    client = service.client
    for n in range(3):
        envelope = ballot_envelope(service.keys.site, voter_token(10 + n), ["S02"])
        assert (await client.post(f"{BASE}/ballots", json=envelope)).status == 201
    results = await (await client.get(f"{BASE}/results")).json()
    size = results["log"]["size"]
    assert size == 7  # the election, three keys, three ballots

    samples = await scrape(client)
    assert value(samples, "uchast_store_up") == 1
    assert value(samples, "uchast_log_size", election=ELECTION) == size
    assert value(samples, "uchast_checkpoint_size", election=ELECTION) == size
    assert 0 <= value(samples, "uchast_checkpoint_age_seconds", election=ELECTION) < 60
    assert value(samples, "uchast_projection_lag_entries", election=ELECTION) == 0
    assert value(samples, "uchast_batch_size_sum", election=ELECTION) == 3
    assert 1 <= value(samples, "uchast_batch_size_count", election=ELECTION) <= 3
    assert value(samples, "uchast_batch_duration_seconds_count", election=ELECTION) >= 1
    # SQLite: one writer connection, reported as 1 open, 0 idle.
    assert value(samples, "uchast_db_pool_size") == 1
    assert value(samples, "uchast_db_pool_idle") == 0


def test_two_apps_keep_their_own_registries() -> None:
    """Metrics of two apps in one process neither collide nor mix."""
    first, second = Metrics(), Metrics()
    first.accepted.labels("online").inc()
    assert (
        first.registry.get_sample_value("uchast_ballots_accepted_total", {"channel": "online"}) == 1
    )
    assert (
        second.registry.get_sample_value("uchast_ballots_accepted_total", {"channel": "online"})
        == 0
    )


async def test_postgres_pool_use(
    aiohttp_client: Callable[[Any], Awaitable[TestClient[Any, Any]]], pg_url: str
) -> None:
    """On PostgreSQL the pool gauges are the asyncpg pool's own counts."""
    keys = Keys()
    async with opened_ledger(pg_url, keys):
        pass
    config = ServiceConfig(pg_url, keys.log, voter_key=VOTER_KEY, clock=lambda: VOTING_DAY)
    client = await aiohttp_client(create_app(config))
    envelope = ballot_envelope(keys.site, voter_token(1), ["L01"])
    assert (await client.post(f"{BASE}/ballots", json=envelope)).status == 201
    samples = await scrape(client)
    assert value(samples, "uchast_db_pool_max_size") == 10
    assert 1 <= value(samples, "uchast_db_pool_size") <= 10
    assert 0 <= value(samples, "uchast_db_pool_idle") <= value(samples, "uchast_db_pool_size")
    assert value(samples, "uchast_log_size", election=ELECTION) == 5
