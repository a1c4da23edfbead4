"""Attack: POSTs to invented election names, each leaving a rate-limit bucket behind for good.

The limiter kept a bucket per (election, key) named in the URL and body, real or not: 40,000
POSTs to random election names added 14.5 MB to the server. Buckets are now kept only for keys
registered in an open election, plus one per client address for everything unverified, and
both tables have a fixed cap (the least recently used bucket goes first).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from api.app import create_app
from api.ratelimit import LIMITER, RateLimiter
from api.service import ServiceConfig
from tests.api.conftest import VOTER_KEY, VOTING_DAY
from tests.factories import Keys, ballot_envelope, opened_ledger, voter_token

Client = Callable[[Any], Awaitable[TestClient[Any, Any]]]


async def test_invented_election_names_leave_no_buckets(
    aiohttp_client: Client, sqlite_url: str
) -> None:
    """2,000 POSTs to random election names (and, for good measure, under random key names)
    leave at most the one bucket of the client's address."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys):
        pass
    config = ServiceConfig(
        sqlite_url, keys.log, voter_key=VOTER_KEY, clock=lambda: VOTING_DAY, rate_limit=5.0
    )
    client = await aiohttp_client(create_app(config))
    limiter = client.app[LIMITER]
    for n in range(2000):
        name = uuid.uuid4().hex
        body = {**ballot_envelope(keys.site, voter_token(n), ["L01"]), "key": f"k{n}+00"}
        response = await client.post(f"/v1/elections/{name}/ballots", json=body)
        assert response.status in (404, 429)
    assert len(limiter) <= 1, f"{len(limiter)} buckets after 2,000 invented names"


def test_the_bucket_tables_are_capped() -> None:
    """Past the cap the least recently used bucket is dropped, whatever the traffic."""
    limiter = RateLimiter(1.0, max_buckets=100)
    for n in range(1000):
        limiter.take("e", f"k{n}", "site")
        limiter.charge_unverified(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter) <= 200


async def test_rate_limiting_is_on_by_default(aiohttp_client: Client, sqlite_url: str) -> None:
    """`uchast serve` with no rate flags limits every role: a clerk at human speed (about one
    write a second, a burst of ten), the voting site far higher, supervisors low."""
    config = ServiceConfig(sqlite_url, Keys().log, voter_key=VOTER_KEY, clock=lambda: VOTING_DAY)
    client = await aiohttp_client(create_app(config))
    limiter = client.app[LIMITER]
    assert limiter.enabled
    assert limiter.rate_for("clerk") <= 1.0 and limiter.burst_for("clerk") <= 10
    assert limiter.rate_for("site") >= 1000
    assert limiter.rate_for("supervisor") <= 1.0
