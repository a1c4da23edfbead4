"""The log endpoints serve what an outside verifier needs, in the contract's formats."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from api.app import create_app
from api.service import ServiceConfig
from ledger import merkle
from ledger.canonical import canonical
from ledger.checkpoint import verify_checkpoint
from tests.factories import ELECTION, Keys, opened_ledger
from tests.ledger import tlog_scales_bridge as tlog
from tests.ledger.conformance import cast

ClientFactory = Callable[[Any], Awaitable[TestClient[Any, Any]]]


async def test_checkpoint_entries_and_proofs_verify_independently(
    aiohttp_client: ClientFactory, sqlite_url: str
) -> None:
    """Entries hash to leaves, proofs verify against the signed checkpoint, per the contract."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys) as ledger:
        for n in range(9):
            await cast(ledger, keys, n)
    client = await aiohttp_client(create_app(ServiceConfig(sqlite_url, keys.log)))
    base = f"/v1/elections/{ELECTION}/log"

    response = await client.get(f"{base}/checkpoint")
    assert response.status == 200 and response.content_type == "text/plain"
    note = await response.text()
    checkpoint = verify_checkpoint(note, keys.log.verifier, f"uchast.local/{ELECTION}")
    assert tlog.verify_checkpoint(note, keys.log.verifier.vkey)[1] == checkpoint.size == 13

    response = await client.get(f"{base}/entries", params={"start": "0", "end": "13"})
    lines = [json.loads(line) for line in (await response.text()).splitlines()]
    assert [line["index"] for line in lines] == list(range(13))
    leaves = [merkle.leaf_hash(canonical(line["entry"])) for line in lines]
    assert merkle.root_of([canonical(line["entry"]) for line in lines]) == checkpoint.root

    for index in (0, 6, 12):
        response = await client.get(
            f"{base}/proof/inclusion", params={"index": str(index), "size": "13"}
        )
        body = await response.json()
        hashes = [base64.b64decode(h) for h in body["hashes"]]
        merkle.verify_inclusion(leaves[index], index, 13, hashes, checkpoint.root)

    response = await client.get(f"{base}/proof/consistency", params={"old": "5", "new": "13"})
    hashes = [base64.b64decode(h) for h in (await response.json())["hashes"]]
    old_root = merkle.root_of([canonical(line["entry"]) for line in lines[:5]])
    merkle.verify_consistency(5, 13, old_root, checkpoint.root, hashes)


async def test_bad_requests_are_problems(aiohttp_client: ClientFactory, sqlite_url: str) -> None:
    """Unknown elections, bad parameters and impossible proofs answer problem+json with a code."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys):
        pass
    client = await aiohttp_client(create_app(ServiceConfig(sqlite_url, keys.log)))
    cases = [
        ("/v1/elections/nope/log/checkpoint", 404, "unknown-election"),
        (f"/v1/elections/{ELECTION}/log/proof/inclusion?index=x", 400, "bad-parameter"),
        (f"/v1/elections/{ELECTION}/log/proof/inclusion?index=9&size=4", 400, "bad-proof"),
        (f"/v1/elections/{ELECTION}/log/proof/consistency?old=0&new=4", 400, "bad-proof"),
        ("/nowhere", 404, "not-found"),
    ]
    for path, status, code in cases:
        response = await client.get(path)
        assert response.status == status, path
        assert response.content_type == "application/problem+json"
        body = await response.json()
        assert body["code"] == code and body["status"] == status
        assert body["message_uk"] and body["message_en"]
