"""Threat: a flood of writes under one key's name, forged or real, or under invented key names."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from api.ratelimit import RateLimiter, envelope_key
from ledger.casting import Casting
from ledger.keys import SignerKey, sign_envelope
from tests.api.servers import serving
from tests.factories import ELECTION, Keys, ballot_envelope, key_envelope, opened_ledger
from tests.factories import voter_token as token


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    """A key gets its burst at once, then one request per 1/rate seconds; waits say how long."""
    clock = FakeClock()
    limiter = RateLimiter(2.0, burst=3.0, clock=clock)
    assert [limiter.take("e", "k", "site") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("e", "k", "site") == 0.5
    clock.now += 0.5
    assert limiter.take("e", "k", "site") == 0.0
    assert limiter.take("e", "k", "site") == 0.5
    assert limiter.take("e", "other", "site") == 0.0, "each key has its own bucket"
    assert limiter.take("f", "k", "site") == 0.0, "and each election"
    clock.now += 60
    assert [limiter.take("e", "k", "site") for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]


def test_role_rates_and_the_off_switch() -> None:
    """A role's own rate overrides the default; rate 0 means no limit at all."""
    clock = FakeClock()
    limiter = RateLimiter(1.0, role_rates={"site": 100.0}, clock=clock)
    assert sum(limiter.take("e", "site.a", "site") == 0.0 for _ in range(150)) == 100
    assert sum(limiter.take("e", "clerk.b", "clerk") == 0.0 for _ in range(5)) == 1
    assert not RateLimiter(0.0).enabled
    unlimited = RateLimiter(0.0, role_rates={"clerk": 1.0}, clock=clock)
    assert unlimited.enabled
    assert all(unlimited.take("e", "site.a", "site") == 0.0 for _ in range(1000))


def test_the_key_is_read_without_trusting_the_body() -> None:
    """The bucket key comes from the envelope's top-level "key" string, whatever else the body
    holds; bodies without one (or not JSON, or absurdly nested) yield None, never an error."""
    assert envelope_key(b'{"payload": {"key": "x"}, "key": "site.a+01234567"}') == (
        "site.a+01234567"
    )
    for body in (b"", b"\xff", b"[1]", b'{"key": 7}', b'{"payload": {"key": "x"}}', b"[" * 10**5):
        assert envelope_key(body) is None


async def test_forged_flood_under_a_real_keys_name_is_charged_to_its_sender(
    pg_url: str, tmp_path: Path
) -> None:
    """`serve --rate-limit 5 --rate-burst 5`: 60 forged ballots named as the site key reach the
    signature check (401) and are charged to the sender's address, not to the site's key, so the
    real site is served at once; a clerk's key is untouched; invented key names are charged to
    the address too and leave no bucket of their own; nothing forged is written."""

    keys = Keys()
    clerk = SignerKey.generate("clerk.city-council.ira")
    async with opened_ledger(pg_url, keys) as ledger:
        await Casting(ledger).submit(
            key_envelope(keys, clerk, "clerk", polling_point="city-council")
        )
        size_before = await ledger.size()
    keys.log.save(tmp_path / "log.key")
    (tmp_path / "voter.key").write_text(bytes(range(32)).hex())
    forger = SignerKey.generate("site.e-dem")

    def forged(n: int) -> dict[str, Any]:
        envelope = ballot_envelope(forger, token(n), ["L01"])
        return {**envelope, "key": keys.site.verifier.key_id}

    args = ["--rate-limit", "5", "--rate-burst", "5"]
    with serving(pg_url, tmp_path, args=args) as (urls, _):
        base = f"{urls[0]}/v1/elections/{ELECTION}"
        async with aiohttp.ClientSession() as session:

            async def post(path: str, body: Any) -> tuple[int, dict[str, Any], str | None]:
                async with session.post(f"{base}/{path}", json=body) as response:
                    problem = await response.json(content_type=None)
                    return response.status, problem, response.headers.get("Retry-After")

            flood = await asyncio.gather(*(post("ballots", forged(n)) for n in range(60)))
            assert [status for status, _, _ in flood] == [401] * 60
            assert {problem["code"] for _, problem, _ in flood} == {"bad-signature"}
            # The real site, right now, is served: the forgeries spent none of its budget.
            real = ballot_envelope(keys.site, token(1000), ["L02"])
            status, receipt, _ = await post("ballots", real)
            assert status == 201, receipt
            paper = {
                "type": "paper-ballot",
                "election": ELECTION,
                "voter": token(1001),
                "projects": ["S01"],
                "polling_point": "city-council",
                "cast_at": "2018-10-05T11:00:00+03:00",
                "nonce": str(uuid.uuid4()),
            }
            assert (await post("paper-ballots", sign_envelope(paper, clerk)))[0] == 201
            # Invented names are refused as unknown, charged to the address, not to a bucket.
            invented = [
                {**ballot_envelope(forger, token(n), ["L01"]), "key": f"site.x{n}+0000abcd"}
                for n in range(30)
            ]
            codes = [
                problem["code"]
                for _, problem, _ in await asyncio.gather(
                    *(post("ballots", body) for body in invented)
                )
            ]
            assert codes == ["unknown-key"] * 30
    async with opened_ledger(pg_url, keys) as ledger:
        assert await ledger.size() == size_before + 2, "only the clerk's and the site's ballots"
