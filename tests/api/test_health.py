"""/healthz says the process is up; /readyz says it can serve: the database answers and every
election's tally is within the lag bound. The request size limit answers 413 problem+json."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from api.app import create_app
from api.service import ServiceConfig
from tests.api.conftest import VOTER_KEY, VOTING_DAY, Setup
from tests.factories import ELECTION, Keys, opened_ledger

BASE = f"/v1/elections/{ELECTION}"


async def test_healthz_answers_while_the_process_is_up(service: Setup) -> None:
    """Liveness needs nothing but the process."""
    response = await service.client.get("/healthz")
    assert response.status == 200 and await response.json() == {"status": "ok"}


async def test_readyz_waits_for_the_tally_to_catch_up(
    aiohttp_client: Callable[[Any], Awaitable[TestClient[Any, Any]]], sqlite_url: str
) -> None:
    """A fresh server whose tally has not applied the log is 503 not-ready, then 200 once it has."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys):
        pass
    config = ServiceConfig(
        sqlite_url, keys.log, voter_key=VOTER_KEY, clock=lambda: VOTING_DAY, ready_max_lag=2
    )
    client = await aiohttp_client(create_app(config))

    first = await client.get("/readyz")
    assert first.status == 503
    assert first.content_type == "application/problem+json"
    assert first.headers["Retry-After"].isdigit()
    problem = await first.json()
    assert problem["code"] == "not-ready" and problem["reason"] == "projection-lag"
    assert problem["elections"] == {ELECTION: {"size": 4, "lag": 4}}
    assert problem["message_uk"] and problem["message_en"]

    async def ready() -> dict[str, Any]:
        while True:
            response = await client.get("/readyz")
            if response.status == 200:
                body: dict[str, Any] = await response.json()
                return body
            await asyncio.sleep(0.05)

    body = await asyncio.wait_for(ready(), 10)
    assert body == {
        "status": "ready",
        "database": "ok",
        "max_lag": 2,
        "elections": {ELECTION: {"size": 4, "lag": 0}},
    }


async def test_oversized_body_is_413_problem_and_writes_nothing(service: Setup) -> None:
    """A body over 64 KiB, with a length or chunked, is refused 413 too-large as problem+json."""
    client = service.client
    before = await (await client.get(f"{BASE}/log/checkpoint")).text()
    oversized = b'{"payload": "' + b"x" * (64 * 1024) + b'"}'
    response = await client.post(
        f"{BASE}/ballots", data=oversized, headers={"Content-Type": "application/json"}
    )
    assert response.status == 413
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert problem["code"] == "too-large" and problem["status"] == 413
    assert "65536" in problem["message_en"] and problem["message_uk"] == "Тіло запиту завелике."

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(80):
            yield b" " * 1024

    chunked = await client.post(
        f"{BASE}/paper-ballots", data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert chunked.status == 413
    assert (await chunked.json())["code"] == "too-large"

    # Just under the limit is read and judged on its content.
    small = await client.post(
        f"{BASE}/ballots", data=b" " * 1000 + b"{}", headers={"Content-Type": "application/json"}
    )
    assert small.status == 400 and (await small.json())["code"] == "bad-envelope"
    assert await (await client.get(f"{BASE}/log/checkpoint")).text() == before


async def test_wrong_method_is_405_problem_with_allow(service: Setup) -> None:
    """A wrong method gets 405 problem+json and keeps the Allow header."""
    response = await service.client.delete(f"{BASE}/ballots")
    assert response.status == 405
    assert response.content_type == "application/problem+json"
    assert "POST" in response.headers["Allow"]
    assert (await response.json())["code"] == "method-not-allowed"
