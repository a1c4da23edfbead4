"""Threat: hostile or broken writes. Each is refused with its own 4xx problem and writes nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from api.service import ServiceConfig
from ledger.casting import Casting
from ledger.keys import SignerKey, sign_envelope
from ledger.store import open_store
from tests.api.conftest import VOTER_KEY, VOTING_DAY
from tests.factories import (
    ELECTION,
    Keys,
    ballot_envelope,
    key_envelope,
    opened_ledger,
    revoke_envelope,
    voter_token,
)

JSON = "application/json"


@dataclass
class Abuse:
    """One hostile request and the refusal it must get."""

    name: str
    path: str
    body: bytes
    status: int
    code: str
    content_type: str = JSON


def encode(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def paper(clerk: SignerKey, point: str, voter: str) -> dict[str, Any]:
    payload = {
        "type": "paper-ballot",
        "election": ELECTION,
        "voter": voter,
        "projects": ["L01"],
        "polling_point": point,
        "cast_at": "2018-10-05T11:00:00+03:00",
        "nonce": str(uuid.uuid4()),
    }
    return sign_envelope(payload, clerk)


@dataclass
class Scene:
    client: TestClient[Any, Any]
    url: str
    keys: Keys
    point_clerk: SignerKey
    revoked: SignerKey
    first: dict[str, Any]


@pytest.fixture
async def scene(
    aiohttp_client: Callable[[Any], Awaitable[TestClient[Any, Any]]], store_url: str
) -> AsyncIterator[Scene]:
    """The example election on a real store, a clerk of the city council, a revoked site key,
    and one accepted ballot whose nonce the replays reuse."""
    keys = Keys()
    point_clerk = SignerKey.generate("clerk.city-council.oksana")
    revoked = SignerKey.generate("site.old-portal")
    async with opened_ledger(store_url, keys) as ledger:
        await Casting(ledger).submit(
            key_envelope(keys, point_clerk, "clerk", polling_point="city-council")
        )
        await Casting(ledger).submit(key_envelope(keys, revoked, "site"))
        await Casting(ledger).submit(revoke_envelope(keys, revoked))
    config = ServiceConfig(store_url, keys.log, voter_key=VOTER_KEY, clock=lambda: VOTING_DAY)
    client = await aiohttp_client(create_app(config))
    first = ballot_envelope(keys.site, voter_token(1), ["L01", "S01"])
    response = await client.post(f"/v1/elections/{ELECTION}/ballots", json=first)
    assert response.status == 201
    yield Scene(client, store_url, keys, point_clerk, revoked, first)


def abuses(scene: Scene) -> list[Abuse]:
    """The table: every way in which a write must be refused."""
    keys, site = scene.keys, scene.keys.site
    ballots = f"/v1/elections/{ELECTION}/ballots"
    papers = f"/v1/elections/{ELECTION}/paper-ballots"
    good = ballot_envelope(site, voter_token(2), ["L02"])
    unsigned = {k: v for k, v in good.items() if k != "sig"}
    impostor = SignerKey.generate("site.e-dem")  # same name as the real site key, other secret
    wrongly_signed = {**sign_envelope(good["payload"], impostor), "key": site.verifier.key_id}
    tampered = json.loads(json.dumps(good))
    tampered["payload"]["projects"] = ["L03"]
    replayed = sign_envelope(
        {**scene.first["payload"], "voter": voter_token(3), "projects": ["L04"]}, site
    )
    other_election = sign_envelope({**good["payload"], "election": "kyiv-2018"}, site)
    padding = "x" * (64 * 1024)
    oversized = sign_envelope({**good["payload"], "note": padding}, site)
    deep = '{"payload": {"type": "ballot", "x": ' + "[" * 5000 + "]" * 5000 + "}}"
    return [
        Abuse("bare payload, no envelope", ballots, encode(good["payload"]), 400, "bad-envelope"),
        Abuse("envelope without signature", ballots, encode(unsigned), 400, "bad-envelope"),
        Abuse("signed by another key", ballots, encode(wrongly_signed), 401, "bad-signature"),
        Abuse("payload changed after signing", ballots, encode(tampered), 401, "bad-signature"),
        Abuse("old nonce, other payload", ballots, encode(replayed), 409, "nonce-reused"),
        Abuse("over 64 KiB", ballots, encode(oversized), 413, "too-large"),
        Abuse("malformed JSON", ballots, b'{"payload": {"type": "ballot"', 400, "bad-json"),
        Abuse("duplicate JSON keys", ballots, b'{"key": "a", "key": "b"}', 400, "bad-json"),
        Abuse("nested 5000 deep", ballots, deep.encode(), 400, "bad-json"),
        Abuse("not UTF-8", ballots, b'{"key": "\xff\xfe"}', 400, "bad-json"),
        Abuse("form post", ballots, encode(good), 415, "unsupported-media-type", "text/plain"),
        Abuse(
            "urlencoded",
            ballots,
            b"payload=1",
            415,
            "unsupported-media-type",
            "application/x-www-form-urlencoded",
        ),
        Abuse(
            "unknown election",
            "/v1/elections/kyiv-2018/ballots",
            encode(other_election),
            404,
            "unknown-election",
        ),
        Abuse(
            "payload of another election", ballots, encode(other_election), 422, "wrong-election"
        ),
        Abuse(
            "clerk of another polling point",
            papers,
            encode(paper(scene.point_clerk, "bohunskyi-council", voter_token(4))),
            403,
            "wrong-polling-point",
        ),
        Abuse(
            "revoked key",
            ballots,
            encode(ballot_envelope(scene.revoked, voter_token(5), ["L05"])),
            403,
            "key-revoked",
        ),
        Abuse(
            "unregistered key",
            ballots,
            encode(ballot_envelope(SignerKey.generate("site.rogue"), voter_token(6), ["L06"])),
            401,
            "unknown-key",
        ),
        Abuse(
            "clerk posting an online ballot",
            ballots,
            encode(ballot_envelope(keys.clerk, voter_token(7), ["L07"])),
            403,
            "role-forbidden",
        ),
        Abuse("online ballot on the paper endpoint", papers, encode(good), 422, "wrong-type"),
    ]


async def log_state(url: str) -> tuple[int, int]:
    """The log's size and its number of kept checkpoints, read from the store itself."""
    store = open_store(url)
    await store.open()
    try:
        return await store.size(ELECTION), len(await store.checkpoints(ELECTION, 0))
    finally:
        await store.close()


async def test_each_abuse_gets_its_4xx_problem_and_writes_nothing(scene: Scene) -> None:
    """Unsigned, wrongly signed, replayed, oversized, malformed, wrong content type, unknown
    election, another point's clerk, a revoked key (and kin): each is refused with its stable
    code as problem+json, and the log's entries and checkpoints stay exactly as they were."""
    before = await log_state(scene.url)
    table = abuses(scene)
    assert len({case.name for case in table}) == len(table)
    for case in table:
        response = await scene.client.post(
            case.path, data=case.body, headers={"Content-Type": case.content_type}
        )
        problem = await response.json(content_type=None)
        assert (response.status, problem.get("code")) == (case.status, case.code), case.name
        assert response.content_type == "application/problem+json", case.name
        assert problem["status"] == case.status and problem["message_uk"], case.name
        assert await log_state(scene.url) == before, f"{case.name} wrote to the log"
    # The original, resent as it was, is an idempotent retry: its receipt again, nothing written.
    again = await scene.client.post(f"/v1/elections/{ELECTION}/ballots", json=scene.first)
    assert again.status == 200 and (await again.json())["replay"] is True
    assert await log_state(scene.url) == before
