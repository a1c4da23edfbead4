"""Threat: PostgreSQL becomes unreachable under a running server, then comes back.

While it is away every request that needs it answers 503 problem+json with Retry-After (never a
500), /healthz stays up and /metrics says so; when it returns the same app serves again without a
restart, retried ballots are either replays or new entries, and the log has no gap.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from api.service import ServiceConfig
from ledger import merkle
from ledger.entry import entry_payload
from tests.api.conftest import VOTER_KEY, VOTING_DAY
from tests.conftest import PG_ADMIN_URL
from tests.factories import ELECTION, Keys, ballot_envelope, opened_ledger, voter_token

BASE = f"/v1/elections/{ELECTION}"
PROJECTS = [["L01"], ["L02", "S01"], ["S02"], ["L03", "L04", "S03"]]

pytestmark = pytest.mark.postgres


def admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def cut(database: str) -> None:
    """No new connections to the database, and every open one terminated."""
    admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
    admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        f" WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    )


def restore(database: str) -> None:
    admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')


async def test_database_outage_is_503_and_the_service_recovers_without_restart(
    aiohttp_client: Callable[[Any], Awaitable[TestClient[Any, Any]]], pg_url: str
) -> None:
    """503 + Retry-After while the database is away, no 500 ever; afterwards retries and new
    ballots succeed on the same app, each voter is in the log once and positions are gapless."""
    database = pg_url.rsplit("/", 1)[1]
    keys = Keys()
    async with opened_ledger(pg_url, keys):
        pass
    config = ServiceConfig(pg_url, keys.log, voter_key=VOTER_KEY, clock=lambda: VOTING_DAY)
    client = await aiohttp_client(create_app(config))
    envelopes = [
        ballot_envelope(keys.site, voter_token(n), PROJECTS[n % len(PROJECTS)]) for n in range(240)
    ]
    statuses: dict[int, int] = {}

    async def cast(n: int) -> None:
        response = await client.post(f"{BASE}/ballots", json=envelopes[n])
        body = await response.json(content_type=None)
        assert response.status in (200, 201, 503), (response.status, body)
        if response.status == 503:
            assert response.headers["Retry-After"].isdigit()
            assert body["code"] == "store-unavailable"
            assert body["message_uk"] and body["message_en"]
        statuses[n] = response.status

    # Before: the service works.
    await asyncio.gather(*(cast(n) for n in range(20)))
    assert set(statuses.values()) == {201}
    assert (await client.get(f"{BASE}/results")).status == 200

    # The database goes away while eight lanes keep casting: some ballots get in, some are cut
    # off mid-append, the rest are refused.
    queue = list(range(20, 200))
    answered = asyncio.Event()

    async def lane() -> None:
        while queue:
            await cast(queue.pop(0))
            if len(statuses) >= 60:
                answered.set()

    async def cutter() -> None:
        await answered.wait()
        await asyncio.to_thread(cut, database)

    await asyncio.gather(cutter(), *(lane() for _ in range(8)))
    try:
        for n in range(200, 210):
            await cast(n)
            assert statuses[n] == 503
        for path in ("results", "receipts/ABCDE-12345", "log/checkpoint", "log/entries"):
            response = await client.get(f"{BASE}/{path}")
            assert response.status == 503, (path, response.status)
            assert response.headers["Retry-After"].isdigit()
            assert response.content_type == "application/problem+json"
        ready = await client.get("/readyz")
        assert ready.status == 503 and (await ready.json())["reason"] == "database"
        assert (await client.get("/healthz")).status == 200
        metrics = await (await client.get("/metrics")).text()
        assert "uchast_store_up 0.0" in metrics
        assert 'uchast_ballots_refused_total{channel="online",code="store-unavailable"}' in metrics
    finally:
        await asyncio.to_thread(restore, database)

    # Back: the same app serves again. Every ballot that got 503 is retried with the same
    # envelope (as a voting site would); the rest are new.
    async def until_served() -> None:
        while (await client.get("/readyz")).status != 200:
            await asyncio.sleep(0.2)

    await asyncio.wait_for(until_served(), 30)
    retried = [n for n, status in statuses.items() if status == 503]
    assert retried, "the outage refused nothing: it did not happen"
    await asyncio.gather(*(cast(n) for n in retried))
    await asyncio.gather(*(cast(n) for n in range(210, 240)))
    assert set(statuses) == set(range(240)) and set(statuses.values()) <= {200, 201}

    results = await client.get(f"{BASE}/results")
    assert results.status == 200
    document = await results.json()
    assert document["turnout"]["voters"] == 240

    async with opened_ledger(pg_url, keys) as ledger:
        size = await ledger.size()
        entries = [entry async for entry in ledger.stream(0, size)]
        checkpoint = await ledger.verified_checkpoint()
    assert [e.position for e in entries] == list(range(size)), "a gap in the log"
    assert size == 4 + 240
    voters = [entry_payload(e.data)["voter"] for e in entries[4:]]
    assert sorted(voters) == sorted(voter_token(n) for n in range(240)), "lost or doubled"
    assert checkpoint is not None and checkpoint.size == size
    # The stored tree agrees with a recomputation from the raw entries.
    assert base64.b64decode(document["log"]["root"]) == merkle.root_of([e.data for e in entries])
