"""Attack: unsigned junk naming a clerk's public key id, to spend the clerk's rate budget.

A key id is public (it is in the log). The limiter charged a request to the key its body named
before the signature was checked, so about 150 junk requests a second under a clerk's key id got
4 of 5 of the clerk's genuine requests refused with 429. Unverified requests are now charged to
their sender's address; a key's own budget pays only for requests its signature verified.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from api.app import create_app
from api.ratelimit import RateLimiter
from api.service import ServiceConfig
from ledger.keys import SignerKey, sign_envelope
from tests.api.conftest import VOTER_KEY, VOTING_DAY
from tests.factories import ELECTION, Keys, opened_ledger, voter_token

Client = Callable[[Any], Awaitable[TestClient[Any, Any]]]
BASE = f"/v1/elections/{ELECTION}"


def paper(clerk: SignerKey, n: int) -> dict[str, Any]:
    payload = {
        "type": "paper-ballot",
        "election": ELECTION,
        "voter": voter_token(n),
        "projects": ["S01"],
        "polling_point": "city-council",
        "cast_at": "2018-10-05T11:00:00+03:00",
        "nonce": str(uuid.uuid4()),
    }
    return sign_envelope(payload, clerk)


async def test_junk_under_a_clerks_key_id_does_not_starve_the_clerk(
    aiohttp_client: Client, sqlite_url: str
) -> None:
    """About 150 forged requests a second naming the clerk's key id, for five seconds, while the
    clerk keys in a paper ballot a second at the limit of one a second: every genuine ballot is
    accepted, every forged one refused: for its signature (401), or with 429 just after a genuine
    ballot spent the key's budget (which junk never does)."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys):
        pass
    config = ServiceConfig(
        sqlite_url,
        keys.log,
        voter_key=VOTER_KEY,
        clock=lambda: VOTING_DAY,
        role_rate_limits=(("clerk", 1.0),),
    )
    client = await aiohttp_client(create_app(config))
    forger = SignerKey.generate("clerk.point-1.olena")  # the clerk's name, another secret
    junk_statuses: list[int] = []
    stop = asyncio.Event()

    async def flood() -> None:
        n = 0
        loop = asyncio.get_running_loop()
        start = loop.time()
        while not stop.is_set():
            forged = {**paper(forger, 10_000 + n), "key": keys.clerk.key_id}
            response = await client.post(f"{BASE}/paper-ballots", json=forged)
            junk_statuses.append(response.status)
            n += 1
            await asyncio.sleep(max(0.0, start + n / 150 - loop.time()))

    flooding = asyncio.create_task(flood())
    genuine: list[int] = []
    try:
        for n in range(5):
            await asyncio.sleep(1.05)
            response = await client.post(f"{BASE}/paper-ballots", json=paper(keys.clerk, n))
            genuine.append(response.status)
    finally:
        stop.set()
        await flooding
    assert len(junk_statuses) >= 500, "the flood ran at about 150 requests a second"
    assert genuine == [201] * 5, f"genuine clerk requests answered {genuine}"
    assert set(junk_statuses) <= {401, 429}
    assert 401 in junk_statuses, "junk reached the signature check, charged to its address"


def test_an_address_over_its_unverified_budget_is_refused_without_touching_keys() -> None:
    """Unverified requests spend their address's budget only: past it that address waits, while
    the key its junk named, and every other address, keep their whole budget."""
    now = [100.0]
    limiter = RateLimiter.defaults(unverified=(2.0, 3.0), clock=lambda: now[0])
    for _ in range(3):
        assert limiter.unverified_wait("203.0.113.9") == 0.0
        limiter.charge_unverified("203.0.113.9")
    assert limiter.unverified_wait("203.0.113.9") == 0.5
    assert limiter.unverified_wait("198.51.100.7") == 0.0
    assert limiter.key_wait(ELECTION, "clerk.point-1.olena+01234567", "clerk") == 0.0
    now[0] += 0.5
    assert limiter.unverified_wait("203.0.113.9") == 0.0
