"""Threat: a CDN or nginx cache in front of the tiles keeps a "no such tile" answer. A 404 is
cacheable by default (RFC 9111 §4.2.2), so a mirror that asked for the next tile a moment early
would be told it does not exist long after the log has grown past it. Every refusal the service
gives says `Cache-Control: no-store`; the tile is served once the checkpoint covers it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from api.app import create_app
from api.service import ServiceConfig
from tests.factories import ELECTION, Keys, opened_ledger
from tests.ledger.conformance import cast

ClientFactory = Callable[[Any], Awaitable[TestClient[Any, Any]]]
BASE = f"/v1/elections/{ELECTION}/log"


async def test_a_tile_asked_for_too_early_is_not_cached_as_missing(
    aiohttp_client: ClientFactory, sqlite_url: str
) -> None:
    """The full first tile is 404 no-store while the log is short, and 200 immutable once 256
    entries are checkpointed; a malformed tile path and an unknown election are no-store too."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys) as ledger:
        client = await aiohttp_client(create_app(ServiceConfig(sqlite_url, keys.log)))
        early = await client.get(f"{BASE}/tile/0/000")
        assert early.status == 404 and (await early.json())["code"] == "no-tile"
        assert early.headers["Cache-Control"] == "no-store"

        for n in range(256):
            await cast(ledger, keys, n)
        await ledger.sequencer.flush_checkpoint()
        later = await client.get(f"{BASE}/tile/0/000")
        assert later.status == 200, await later.text()
        assert "immutable" in later.headers["Cache-Control"]

    bad = await client.get(f"{BASE}/tile/0/0001")
    assert bad.status == 404 and bad.headers["Cache-Control"] == "no-store"
    unknown = await client.get("/v1/elections/no-such-election/log/tile/0/000")
    assert unknown.status == 404 and unknown.headers["Cache-Control"] == "no-store"
