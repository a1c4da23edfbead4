"""Sealed interim results (``results = "sealed-until-close"``) over real HTTP: before voting
closes the service serves turnout, checkpoints, proofs and receipts but neither entries nor
totals; at the close everything opens, on the service's own clock, without a restart; a clock
set back seals again (the policy is decided at each request, nothing is latched)."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema_rs
import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from api.app import create_app
from api.openapi import DOCUMENT
from api.service import ServiceConfig
from ledger.checkpoint import verify_checkpoint
from ledger.merkle import verify_inclusion
from tests.api.conftest import VOTER_KEY, VOTING_DAY
from tests.api.servers import serving
from tests.factories import (
    ELECTION,
    Keys,
    ballot_envelope,
    example_definition,
    opened_ledger,
    voter_token,
)
from votes.receipts import receipt_code

KYIV = ZoneInfo("Europe/Kyiv")
CLOSES = datetime(2018, 10, 10, 23, 59, 59, tzinfo=KYIV)  # examples/zhytomyr-2018.toml
BALLOTS = [(n, ["L01", "S01"] if n % 3 else ["L02", "S02"]) for n in range(1, 8)]


def sealed_definition() -> dict[str, Any]:
    return {**example_definition(), "results": "sealed-until-close"}


@dataclass
class Clock:
    """The service's clock, moved by the test."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Site:
    base: str
    http: ClientSession
    clock: Clock
    keys: Keys
    receipts: list[str]

    def url(self, path: str) -> str:
        return f"{self.base}/v1/elections/{ELECTION}{path}"

    async def get(self, path: str) -> tuple[int, str, bytes]:
        async with self.http.get(self.url(path)) as response:
            return response.status, response.content_type, await response.read()

    async def json(self, path: str) -> Any:
        status, _, body = await self.get(path)
        assert status == 200, body
        return json.loads(body)


async def open_site(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    url: str,
    definition: dict[str, Any],
) -> AsyncIterator[Site]:
    keys = Keys()
    async with opened_ledger(url, keys, definition=definition):
        pass
    clock = Clock(VOTING_DAY)
    config = ServiceConfig(url, keys.log, voter_key=VOTER_KEY, clock=clock)
    server = await aiohttp_server(create_app(config))
    base = f"http://127.0.0.1:{server.port}"
    async with ClientSession() as http:
        receipts = []
        for n, projects in BALLOTS:
            envelope = ballot_envelope(keys.site, voter_token(n), projects)
            async with http.post(f"{base}/v1/elections/{ELECTION}/ballots", json=envelope) as r:
                assert r.status == 201, await r.text()
                receipts.append((await r.json())["receipt"])
        yield Site(base, http, clock, keys, receipts)


@pytest.fixture
async def sealed(
    aiohttp_server: Callable[..., Awaitable[TestServer]], store_url: str
) -> AsyncIterator[Site]:
    """A real server on either store, a sealed election, 7 online ballots cast while sealed."""
    async for site in open_site(aiohttp_server, store_url, sealed_definition()):
        yield site


def assert_sealed_problem(status: int, body: bytes) -> None:
    """403 ``results-sealed``, naming the close in Kyiv time in both languages."""
    assert status == 403, body
    problem = json.loads(body)
    assert problem["code"] == "results-sealed"
    assert problem["results_open_at"] == CLOSES.isoformat()
    assert problem["timezone"] == "Europe/Kyiv"
    assert "2018-10-10 23:59:59 (Europe/Kyiv)" in problem["message_en"]
    assert "2018-10-10 23:59:59 (Europe/Kyiv)" in problem["message_uk"]
    assert "запечатано" in problem["message_uk"]


async def test_entries_are_refused_while_sealed(sealed: Site) -> None:
    """GET /log/entries, any range, is 403 results-sealed naming the close time."""
    for query in ("", "?start=0&end=1", "?start=5"):
        assert_sealed_problem(*(await sealed.get(f"/log/entries{query}"))[::2])


async def test_results_are_turnout_only_while_sealed(sealed: Site) -> None:
    """/results is the log's size and root and the turnout, nothing per project; the CSV
    (per project only) is refused."""
    document = await sealed.json("/results")
    assert set(document) == {
        "election",
        "title",
        "sealed",
        "results_open_at",
        "timezone",
        "log",
        "turnout",
        "refusals",
    }
    assert document["sealed"] is True
    assert document["results_open_at"] == CLOSES.isoformat()
    assert document["turnout"]["voters"] == len(BALLOTS)
    assert document["turnout"]["ballots"] == {"online": len(BALLOTS), "paper": 0}
    status, _, body = await sealed.get("/results?format=csv")
    assert_sealed_problem(status, body)


async def test_checkpoints_proofs_and_receipts_stay_public(sealed: Site) -> None:
    """While sealed: the checkpoint, the list of checkpoints, inclusion and consistency proofs
    are served; a receipt gives its status and a proof that verifies against the signed
    checkpoint, with the entry (the picks) withheld until the close."""
    status, content_type, note = await sealed.get("/log/checkpoint")
    assert status == 200 and content_type == "text/plain"
    checkpoint = verify_checkpoint(note.decode(), sealed.keys.log.verifier)
    listed = await sealed.json("/log/checkpoints")
    assert listed["checkpoints"][-1]["note"] == note.decode()
    await sealed.json(f"/log/proof/consistency?old=1&new={checkpoint.size}")
    await sealed.json(f"/log/proof/inclusion?index=4&size={checkpoint.size}")

    answer = await sealed.json(f"/receipts/{sealed.receipts[0]}")
    assert answer["status"] == "counted"
    assert answer["entry"] is None
    assert answer["sealed_until"] == CLOSES.isoformat()
    proof = answer["proof"]
    root = verify_checkpoint(answer["checkpoint"], sealed.keys.log.verifier).root
    verify_inclusion(
        base64.b64decode(answer["leaf_hash"]),
        proof["index"],
        proof["size"],
        [base64.b64decode(h) for h in proof["hashes"]],
        root,
    )
    assert "L01" not in json.dumps(answer) and "S01" not in json.dumps(answer)


async def test_everything_opens_at_the_close_and_a_clock_set_back_seals_again(
    sealed: Site,
) -> None:
    """The same running service: at voting_closes the entries, totals, CSV and the receipt's
    entry are served; a moment before it, none of them again."""
    sealed.clock.now = CLOSES
    status, _, body = await sealed.get("/log/entries")
    assert status == 200
    lines = [json.loads(line) for line in body.splitlines()]
    assert len(lines) == 4 + len(BALLOTS)  # election, three keys, the ballots
    results = await sealed.json("/results")
    assert results["sealed"] is False
    votes = {p["id"]: p["votes"] for c in results["categories"] for p in c["projects"]}
    assert votes["L01"] == sum(1 for _, picks in BALLOTS if "L01" in picks)
    status, content_type, csv = await sealed.get("/results?format=csv")
    assert status == 200 and content_type == "text/csv" and b"L01" in csv
    answer = await sealed.json(f"/receipts/{sealed.receipts[0]}")
    assert answer["entry"]["envelope"]["payload"]["projects"] == BALLOTS[0][1]
    assert "sealed_until" not in answer
    sig = base64.b64decode(answer["entry"]["envelope"]["sig"])
    assert receipt_code(sig) == sealed.receipts[0]

    sealed.clock.now = CLOSES - timedelta(microseconds=1)
    assert_sealed_problem(*(await sealed.get("/log/entries"))[::2])
    assert (await sealed.json("/results"))["sealed"] is True
    assert (await sealed.json(f"/receipts/{sealed.receipts[0]}"))["entry"] is None


async def test_an_open_election_serves_everything_while_voting(
    aiohttp_server: Callable[..., Awaitable[TestServer]], sqlite_url: str
) -> None:
    """Without the option (the default, ``open``) nothing is withheld during voting."""
    async for site in open_site(aiohttp_server, sqlite_url, example_definition()):
        status, _, body = await site.get("/log/entries")
        assert status == 200 and len(body.splitlines()) == 4 + len(BALLOTS)
        results = await site.json("/results")
        assert results["sealed"] is False and results["categories"]
        assert (await site.json(f"/receipts/{site.receipts[0]}"))["entry"] is not None


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def test_uchast_serve_opens_the_results_by_itself_at_the_close(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A real `uchast serve` whose --clock reaches voting_closes two seconds after it starts:
    entries refused, then served by the same process, no restart."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys, definition=sealed_definition()):
        pass
    keys.log.save(tmp_path / "log.key")
    (tmp_path / "voter.key").write_text(VOTER_KEY.hex())
    start = (CLOSES - timedelta(seconds=2)).isoformat()
    with serving(sqlite_url, tmp_path, clock=start) as ([base], [process]):
        entries = f"{base}/v1/elections/{ELECTION}/log/entries"
        status, body = fetch(entries)
        assert_sealed_problem(status, body)
        deadline = time.monotonic() + 15
        while status == 403 and time.monotonic() < deadline:
            time.sleep(0.1)
            status, body = fetch(entries)
        assert status == 200 and len(body.splitlines()) == 4
        assert process.poll() is None


def schema(name: str) -> jsonschema_rs.Draft202012Validator:
    """The OpenAPI document's component schema ``name``, its references resolved in it."""
    return jsonschema_rs.Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": DOCUMENT["components"]}
    )


async def test_the_answers_are_those_the_openapi_document_describes(sealed: Site) -> None:
    """Sealed results are ``SealedResults`` and not ``Results``, open ones the other way round
    (the response's ``oneOf`` picks exactly one); a sealed receipt is a ``ReceiptStatus``; the
    refusal is a ``Problem``."""
    sealed_results = await sealed.json("/results")
    assert schema("SealedResults").is_valid(sealed_results)
    assert not schema("Results").is_valid(sealed_results)
    receipt = await sealed.json(f"/receipts/{sealed.receipts[0]}")
    assert schema("ReceiptStatus").is_valid(receipt)
    assert schema("Problem").is_valid(json.loads((await sealed.get("/log/entries"))[2]))
    sealed.clock.now = CLOSES
    open_results = await sealed.json("/results")
    assert schema("Results").is_valid(open_results)
    assert not schema("SealedResults").is_valid(open_results)
