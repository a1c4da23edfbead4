"""The ceiling server of bench/ingest_http.py: what it writes and what it refuses.

Its rate is only a fair bound for ``uchast serve`` if it writes the same entry for the same ballot
(the database then does the same work) and really checks the one signature.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from bench.ingest_ceiling import create_ceiling_app
from ledger.entry import entry_object
from ledger.keys import SignerKey, sign_envelope
from ledger.store import open_store
from tests.api.conftest import Setup
from tests.factories import ELECTION, ballot_envelope, voter_token

ROUTE = f"/v1/elections/{ELECTION}/ballots"


async def ceiling_client(
    aiohttp_client: Callable[[Any], Awaitable[TestClient[Any, Any]]],
    pg_url: str,
    service: Setup,
) -> TestClient[Any, Any]:
    app = create_ceiling_app(pg_url, ELECTION, service.keys.site.verifier, service.keys.log)
    return await aiohttp_client(app)


async def test_ceiling_writes_the_entry_uchast_writes(
    aiohttp_client: Callable[[Any], Awaitable[TestClient[Any, Any]]],
    pg_url: str,
    service: Setup,
) -> None:
    """The same ballot becomes the same entry (envelope, tags, type) in both servers' logs."""
    envelope = ballot_envelope(service.keys.site, voter_token(7), ["L07", "S12"])
    ours = await service.client.post(ROUTE, json=envelope)
    assert ours.status == 201, await ours.text()
    ceiling = await ceiling_client(aiohttp_client, pg_url, service)
    answer = await ceiling.post(ROUTE, json=envelope)
    assert answer.status == 201
    receipt = await answer.json()
    assert receipt["position"] == 0
    assert receipt["receipt"] == (await ours.json())["receipt"]

    stores = [open_store(service.url), open_store(pg_url)]
    written = []
    for store, position in zip(stores, [(await ours.json())["position"], 0], strict=True):
        await store.open()
        try:
            [entry] = await store.read(ELECTION, position, position + 1)
        finally:
            await store.close()
        written.append(entry)
    theirs, bare = (entry_object(e.data) for e in written)
    assert bare["tags"] == theirs["tags"]
    assert bare["envelope"] == theirs["envelope"]
    assert bare["type"] == theirs["type"] == "ballot"
    assert written[1].tags == written[0].tags


async def test_ceiling_refuses_a_forged_signature(
    aiohttp_client: Callable[[Any], Awaitable[TestClient[Any, Any]]],
    pg_url: str,
    service: Setup,
) -> None:
    """A ballot signed by another key, or with its payload changed, is refused (403) and not
    written; the honest ones take consecutive positions under a signed checkpoint."""
    ceiling = await ceiling_client(aiohttp_client, pg_url, service)
    forged = ballot_envelope(SignerKey.generate("site.e-dem"), voter_token(1), ["L07"])
    tampered = ballot_envelope(service.keys.site, voter_token(2), ["L07"])
    tampered["payload"]["projects"] = ["L01"]
    for envelope in (forged, tampered):
        answer = await ceiling.post(ROUTE, json=envelope)
        assert answer.status == 403
    assert (await ceiling.post(ROUTE, data=b"{")).status == 400
    positions = []
    for n in range(3):
        payload = ballot_envelope(service.keys.site, voter_token(10 + n), ["S12"])["payload"]
        answer = await ceiling.post(ROUTE, json=sign_envelope(payload, service.keys.site))
        assert answer.status == 201
        positions.append((await answer.json())["position"])
    assert positions == [0, 1, 2]
    store = open_store(pg_url)
    await store.open()
    try:
        assert await store.size(ELECTION) == 3
        checkpoint = await store.latest_checkpoint(ELECTION)
        assert checkpoint is not None and checkpoint.size == 3
    finally:
        await store.close()
