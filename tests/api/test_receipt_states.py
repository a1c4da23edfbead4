"""A receipt tells the truth about its ballot: each state, and /results agreeing with it.

A ballot counts in /results if and only if its receipt says ``counted``; with double entry a
paper keying waits for its second keying, both keyings of a dispute count for nothing, and after
the wrong keying's void the ballot counts once a matching keying follows (README, "Receipts").
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from api.openapi import DOCUMENT
from api.service import ServiceConfig
from ledger.casting import Casting
from ledger.keys import SignerKey, sign_envelope
from tests.api.conftest import VOTER_KEY, VOTING_DAY, Setup
from tests.api.test_vote_routes import BASE, paper
from tests.factories import (
    ELECTION,
    Keys,
    ballot_envelope,
    example_definition,
    key_envelope,
    opened_ledger,
    voter_token,
)
from votes.receipts import ReceiptStatus


@pytest.fixture
async def double_entry(
    aiohttp_client: Callable[[Any], Awaitable[TestClient[Any, Any]]], sqlite_url: str
) -> AsyncIterator[tuple[Setup, SignerKey]]:
    """The example election with double entry, and a second clerk at the same polling point."""
    keys = Keys()
    clerk2 = SignerKey.generate("clerk.point-1.petro")
    async with opened_ledger(
        sqlite_url, keys, definition=example_definition(double_entry=True)
    ) as ledger:
        await Casting(ledger).submit(
            key_envelope(keys, clerk2, "clerk", polling_point="city-council")
        )
    config = ServiceConfig(sqlite_url, keys.log, voter_key=VOTER_KEY, clock=lambda: VOTING_DAY)
    client = await aiohttp_client(create_app(config))
    yield Setup(client, keys, sqlite_url), clerk2


async def _submit(setup: Setup, path: str, envelope: dict[str, Any]) -> dict[str, Any]:
    response = await setup.client.post(f"{BASE}/{path}", json=envelope)
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def _void(setup: Setup, position: int) -> None:
    payload = {
        "type": "void",
        "election": ELECTION,
        "entry": position,
        "reason": "keyed wrong",
        "nonce": str(uuid.uuid4()),
    }
    await _submit(setup, "voids", sign_envelope(payload, setup.keys.supervisor))


async def _status(setup: Setup, code: str) -> str:
    response = await setup.client.get(f"{BASE}/receipts/{code}")
    assert response.status == 200, await response.text()
    return str((await response.json())["status"])


async def _agree(setup: Setup, receipts: dict[str, tuple[str, tuple[str, ...]]]) -> None:
    """/results counts exactly the ballots whose receipts say counted (each paper ballot once,
    though both its keyings' receipts say so)."""
    counted: set[tuple[str, tuple[str, ...]]] = set()
    for code, ballot in receipts.items():
        if await _status(setup, code) == ReceiptStatus.COUNTED:
            counted.add(ballot)
    expected = Counter(p for _, projects in counted for p in projects)
    document = await (await setup.client.get(f"{BASE}/results")).json()
    votes = {p["id"]: p["votes"] for c in document["categories"] for p in c["projects"]}
    assert {p: n for p, n in votes.items() if n} == dict(expected)
    assert document["turnout"]["voters"] == len({voter for voter, _ in counted})


async def test_each_state_is_named_and_results_agree(
    double_entry: tuple[Setup, SignerKey],
) -> None:
    """A first keying waits for its second, a matching second keying makes both counted, a
    differing one makes both disputed, voids void; /results agrees at every step."""
    setup, clerk2 = double_entry
    clerk, site = setup.keys.clerk, setup.keys.site
    receipts: dict[str, tuple[str, tuple[str, ...]]] = {}

    async def key(signer: SignerKey, n: int, projects: list[str]) -> dict[str, Any]:
        answer = await _submit(setup, "paper-ballots", paper(signer, voter_token(n), projects))
        receipts[answer["receipt"]] = (voter_token(n), tuple(projects))
        return answer

    first = await key(clerk, 1, ["L01"])
    assert await _status(setup, first["receipt"]) == "awaiting-second-keying"
    await _agree(setup, receipts)

    second = await key(clerk2, 1, ["L01"])
    assert await _status(setup, first["receipt"]) == "counted"
    assert await _status(setup, second["receipt"]) == "counted"
    await _agree(setup, receipts)

    one = await key(clerk, 2, ["L02"])
    other = await key(clerk2, 2, ["L03"])
    assert await _status(setup, one["receipt"]) == "disputed"
    assert await _status(setup, other["receipt"]) == "disputed"
    await _agree(setup, receipts)

    online = await _submit(setup, "ballots", ballot_envelope(site, voter_token(3), ["S01"]))
    receipts[online["receipt"]] = (voter_token(3), ("S01",))
    assert await _status(setup, online["receipt"]) == "counted"
    await _agree(setup, receipts)
    await _void(setup, online["position"])
    assert await _status(setup, online["receipt"]) == "voided"
    await _agree(setup, receipts)


async def test_after_a_disputes_void_a_matching_keying_counts(
    double_entry: tuple[Setup, SignerKey],
) -> None:
    """Voiding the wrong keying of a dispute leaves the other waiting for a second keying; a
    matching keying then makes the ballot count (once)."""
    setup, clerk2 = double_entry
    clerk = setup.keys.clerk
    voter = voter_token(7)
    right = await _submit(setup, "paper-ballots", paper(clerk, voter, ["L04", "S02"]))
    wrong = await _submit(setup, "paper-ballots", paper(clerk2, voter, ["L04", "S03"]))
    receipts: dict[str, tuple[str, tuple[str, ...]]] = {
        right["receipt"]: (voter, ("L04", "S02")),
        wrong["receipt"]: (voter, ("L04", "S03")),
    }
    assert [await _status(setup, code) for code in receipts] == ["disputed", "disputed"]
    await _void(setup, wrong["position"])
    assert await _status(setup, wrong["receipt"]) == "voided"
    assert await _status(setup, right["receipt"]) == "awaiting-second-keying"
    await _agree(setup, receipts)
    again = await _submit(setup, "paper-ballots", paper(clerk2, voter, ["L04", "S02"]))
    receipts[again["receipt"]] = (voter, ("L04", "S02"))
    assert await _status(setup, right["receipt"]) == "counted"
    assert await _status(setup, again["receipt"]) == "counted"
    await _agree(setup, receipts)


async def test_without_double_entry_a_paper_ballot_counts_at_once(service: Setup) -> None:
    """Without double entry one keying is the ballot: its receipt says counted."""
    answer = await _submit(
        service, "paper-ballots", paper(service.keys.clerk, voter_token(9), ["L05"])
    )
    assert await _status(service, answer["receipt"]) == "counted"
    await _agree(service, {answer["receipt"]: (voter_token(9), ("L05",))})


def test_openapi_names_every_state() -> None:
    """The OpenAPI enum of a receipt's status is exactly the states the server answers."""
    schema = DOCUMENT["components"]["schemas"]["ReceiptStatus"]
    assert schema["properties"]["status"]["enum"] == [s.value for s in ReceiptStatus]
