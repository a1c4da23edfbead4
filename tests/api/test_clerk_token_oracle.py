"""Threat: a clerk key as an identity-to-vote oracle.

With a voter token the public log shows that person's picks at once, so a clerk key that turns
identity numbers into tokens at machine speed, unseen, at any time, or after its revocation, is
a de-anonymiser. A lookup is therefore a signed ``voter-lookup`` entry of the log (who, where,
when, which token; never the number), refused outside the paper window, for a replayed nonce,
for a voter who can add nothing more, after the key's revocation as the log itself says, and
beyond a human's pace.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from api.service import ServiceConfig
from ledger.casting import Casting
from ledger.keys import SignerKey, sign_envelope
from ledger.store import open_store
from tally.export import results_from_log, voter_histories
from tests.api.conftest import VOTER_KEY, VOTING_DAY
from tests.api.servers import UNLIMITED_CLERK, serving
from tests.factories import ELECTION, Keys, ballot_envelope, opened_ledger, revoke_envelope
from votes.tokens import voter_token

BASE = f"/v1/elections/{ELECTION}"
KYIV = ZoneInfo("Europe/Kyiv")
# The clerk's own limit is what is under test: the general per-role limiter is lifted.
NO_ROLE_LIMIT = (("clerk", 0.0),)


def lookup(clerk: SignerKey, number: str, **extra: Any) -> dict[str, Any]:
    payload = {
        "type": "voter-lookup",
        "election": ELECTION,
        "polling_point": "city-council",
        "nonce": str(uuid.uuid4()),
        **extra,
    }
    return {"envelope": sign_envelope(payload, clerk), "identity": number}


async def client_for(
    aiohttp_client: Any, url: str, keys: Keys, **config: Any
) -> TestClient[Any, Any]:
    async with opened_ledger(url, keys):
        pass
    settings: dict[str, Any] = {"role_rate_limits": NO_ROLE_LIMIT, "clock": lambda: VOTING_DAY}
    settings.update(config)
    service = ServiceConfig(url, keys.log, voter_key=VOTER_KEY, **settings)
    client: TestClient[Any, Any] = await aiohttp_client(create_app(service))
    return client


async def ask(client: TestClient[Any, Any], body: dict[str, Any]) -> tuple[int, Any, Any]:
    async with client.post(f"{BASE}/voter-tokens", json=body) as response:
        return response.status, await response.json(), response.headers


def identity(n: int) -> str:
    return f"{3_000_000_000 + n:010d}"


async def test_a_clerk_key_cannot_get_tokens_at_scale(aiohttp_client: Any, sqlite_url: str) -> None:
    """300 lookups in a loop: at most the burst is answered, every other one is 429
    rate-limited with a Retry-After."""
    keys = Keys()
    client = await client_for(aiohttp_client, sqlite_url, keys)
    answered, limited = 0, 0
    for n in range(300):
        status, body, headers = await ask(client, lookup(keys.clerk, identity(n)))
        if status == 201:
            answered += 1
            assert body["voter"] == voter_token(VOTER_KEY, ELECTION, identity(n))
            assert headers["Cache-Control"] == "no-store"
        else:
            assert (status, body["code"]) == (429, "rate-limited"), body
            assert float(headers["Retry-After"]) > 0
            limited += 1
    assert 1 <= answered <= 5, answered
    assert limited == 300 - answered


async def test_b_every_answered_lookup_is_a_log_entry_without_the_number(
    aiohttp_client: Any, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Each answered lookup is an entry signed by the clerk's key, tagged with its point and
    the token; no entry, database file or log line holds the identity number."""
    keys = Keys()
    client = await client_for(aiohttp_client, sqlite_url, keys)
    numbers = [identity(n) for n in range(4)]
    caplog.set_level(logging.DEBUG)
    positions = []
    for number in numbers:
        status, body, _ = await ask(client, lookup(keys.clerk, number))
        assert status == 201, body
        assert body["voter"] == voter_token(VOTER_KEY, ELECTION, number)
        assert body["receipt"]
        positions.append(body["lookup"])
    async with client.get(f"{BASE}/log/entries") as response:
        lines = (await response.text()).splitlines()
    by_position = {(row := json.loads(line))["index"]: row["entry"] for line in lines}
    for position, number in zip(positions, numbers, strict=True):
        entry = by_position[position]
        assert entry["type"] == "voter-lookup"
        assert entry["envelope"]["key"] == keys.clerk.verifier.key_id
        token = voter_token(VOTER_KEY, ELECTION, number)
        assert f"lookup:{token}" in entry["tags"] and "point:city-council" in entry["tags"]
        assert f"voter:{token}" not in entry["tags"]
        assert number not in json.dumps(entry)
        assert "identity" not in entry["envelope"]["payload"]
    async with client.get(f"{BASE}/results") as response:  # a lookup is never a vote
        results = await response.json()
    assert results["log"]["size"] > max(positions)
    assert results["turnout"]["voters"] == 0 and results["turnout"]["spoiled"] == 0
    store = open_store(sqlite_url)
    await store.open()
    try:  # the exports replay the log: lookups are no voter's history and no ballot
        assert (await results_from_log(store, ELECTION))["turnout"]["voters"] == 0
        assert await voter_histories(store, ELECTION, await store.size(ELECTION)) == {}
    finally:
        await store.close()
    async with client.get("/metrics") as response:
        metrics = await response.text()
    wanted = f'uchast_voter_lookups_total{{election="{ELECTION}",polling_point="city-council"}} 4.0'
    assert wanted in metrics
    db = Path(sqlite_url.removeprefix("sqlite:///"))
    stored = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    assert b"voter-lookup" in stored
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for number in numbers:
        assert number.encode() not in stored and number not in logged


async def test_c_a_replayed_lookup_is_refused(aiohttp_client: Any, sqlite_url: str) -> None:
    """The identity beside the envelope is not signed: a replay of an answered envelope with
    another number (or the same) is refused nonce-reused, never answered again."""
    keys = Keys()
    client = await client_for(aiohttp_client, sqlite_url, keys)
    first = lookup(keys.clerk, identity(1))
    assert (await ask(client, first))[0] == 201
    for number in (identity(2), identity(1)):
        status, problem, _ = await ask(client, {**first, "identity": number})
        assert (status, problem["code"]) == (409, "nonce-reused"), problem
        assert "voter" not in problem


@pytest.mark.parametrize(
    ("now", "code"),
    [
        (datetime(2018, 9, 30, 23, 0, tzinfo=KYIV), "outside-window"),
        (datetime(2018, 10, 12, 0, 30, tzinfo=KYIV), "paper-deadline-passed"),
    ],
)
async def test_d_lookups_outside_the_paper_window_are_refused(
    aiohttp_client: Any, sqlite_url: str, now: datetime, code: str
) -> None:
    """Before voting opens and after the paper deadline, by the server's clock, no token."""
    keys = Keys()
    client = await client_for(aiohttp_client, sqlite_url, keys, clock=lambda: now)
    status, problem, _ = await ask(client, lookup(keys.clerk, identity(1)))
    assert (status, problem["code"]) == (403, code), problem
    assert "voter" not in problem


async def test_d_a_voter_who_can_add_nothing_gets_no_token(
    aiohttp_client: Any, sqlite_url: str
) -> None:
    """The token leaves the server only where a ballot can follow: a voter at every limit is
    refused limit-exceeded instead."""
    keys = Keys()
    client = await client_for(aiohttp_client, sqlite_url, keys)
    token = voter_token(VOTER_KEY, ELECTION, identity(7))
    full = ballot_envelope(keys.site, token, ["L01", "L02", "S01", "S02"])
    async with client.post(f"{BASE}/ballots", json=full) as response:
        assert response.status == 201, await response.text()
    status, problem, _ = await ask(client, lookup(keys.clerk, identity(7)))
    assert (status, problem["code"]) == (409, "limit-exceeded"), problem
    assert token not in json.dumps(problem)


async def test_e_a_revoked_key_is_refused_by_a_process_that_did_not_see_it(
    store_url: str, tmp_path: Path
) -> None:
    """Two server processes on one database; the clerk key is revoked in the log; the second
    process, which has not appended since, still refuses the key a lookup (key-revoked)."""
    keys = Keys()
    async with opened_ledger(store_url, keys):
        pass
    keys.log.save(tmp_path / "log.key")
    (tmp_path / "voter.key").write_text(VOTER_KEY.hex())

    def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            f"{url}{BASE}/voter-tokens",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    with serving(store_url, tmp_path, count=2, args=UNLIMITED_CLERK) as (urls, _):
        first, second = urls
        for url, n in ((first, 1), (second, 2)):
            status, body = post(url, lookup(keys.clerk, identity(n)))
            assert status == 201, body
        async with opened_ledger(store_url, keys) as ledger:  # the revocation, written aside
            await Casting(ledger).submit(revoke_envelope(keys, keys.clerk))
        for url, n in ((second, 3), (first, 4)):
            status, problem = post(url, lookup(keys.clerk, identity(n)))
            assert (status, problem["code"]) == (403, "key-revoked"), problem
            assert "voter" not in problem


@pytest.mark.parametrize(
    "extra",
    [
        {"identity": "3012345678"},
        {"voter": "a" * 64},
        {"note": "x"},
    ],
)
async def test_f_extra_payload_fields_are_refused(
    aiohttp_client: Any, sqlite_url: str, extra: dict[str, Any]
) -> None:
    """The signed payload is exactly type, election, polling_point, nonce: the log must hold
    exactly what was signed, and no number or token may ride in it."""
    keys = Keys()
    client = await client_for(aiohttp_client, sqlite_url, keys)
    status, problem, _ = await ask(client, lookup(keys.clerk, identity(1), **extra))
    assert (status, problem["code"]) == (422, "bad-payload"), problem
    assert "voter" not in problem


async def test_f_the_old_request_with_the_number_inside_is_refused(
    aiohttp_client: Any, sqlite_url: str
) -> None:
    """A payload carrying the number (the former voter-token request) is no lookup."""
    keys = Keys()
    client = await client_for(aiohttp_client, sqlite_url, keys)
    old = {"type": "voter-token", "election": ELECTION, "identity": "3012345678"}
    status, problem, _ = await ask(
        client, sign_envelope({**old, "nonce": str(uuid.uuid4())}, keys.clerk)
    )
    assert status in (400, 422), problem
    assert "voter" not in problem


async def test_only_clerks_look_up(aiohttp_client: Any, sqlite_url: str) -> None:
    """A site or supervisor key is refused a lookup (role-forbidden)."""
    keys = Keys()
    client = await client_for(aiohttp_client, sqlite_url, keys)
    for key in (keys.site, keys.supervisor):
        status, problem, _ = await ask(client, lookup(key, identity(1)))
        assert (status, problem["code"]) == (403, "role-forbidden"), problem
