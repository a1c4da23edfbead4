"""Attack: heavy reads anyone may send, each costing the server far more than the request.

Found: ``/log/entries`` served up to 100,000 entries per request; under equal shares every
``GET /results`` read every voter's ballots from the log again; ``/results?refresh=1`` made each
open results page send two requests every millisecond.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

import api.result_routes
import tally.export
from api import log_routes
from api.app import create_app
from api.pages import ASSETS
from api.service import ServiceConfig
from tests.api.conftest import VOTER_KEY, VOTING_DAY, Setup
from tests.factories import (
    ELECTION,
    Keys,
    ballot_envelope,
    example_definition,
    opened_ledger,
    voter_token,
)

Client = Callable[[Any], Awaitable[TestClient[Any, Any]]]
BASE = f"/v1/elections/{ELECTION}"


async def entry_indexes(setup: Setup, **params: int) -> list[int]:
    response = await setup.client.get(f"{BASE}/log/entries", params=params)
    assert response.status == 200
    return [json.loads(line)["index"] for line in (await response.text()).splitlines()]


async def test_a_page_of_entries_is_capped(service: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """At most MAX_ENTRIES_PER_REQUEST (1,000) entries per request: a larger range is clipped
    to its first page, and the reader goes on from the last index it got."""
    assert log_routes.MAX_ENTRIES_PER_REQUEST <= 1000
    for n in range(4):
        body = ballot_envelope(service.keys.site, voter_token(n), ["L01"])
        assert (await service.client.post(f"{BASE}/ballots", json=body)).status == 201
    monkeypatch.setattr(log_routes, "MAX_ENTRIES_PER_REQUEST", 3)
    assert await entry_indexes(service, start=0, end=100_000) == [0, 1, 2]
    assert await entry_indexes(service, start=3) == [3, 4, 5]
    assert await entry_indexes(service, start=6, end=8) == [6, 7]
    assert await entry_indexes(service, start=8, end=100) == []


async def test_equal_shares_results_read_the_ballots_once_per_log_size(
    aiohttp_client: Client, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty GET /results on an unchanged log read the voters' ballots once; a new ballot makes
    the next GET read them again (and count it)."""
    definition = example_definition()
    definition["rule"]["method"] = "equal-shares"
    keys = Keys()
    async with opened_ledger(sqlite_url, keys, definition=definition):
        pass
    config = ServiceConfig(sqlite_url, keys.log, voter_key=VOTER_KEY, clock=lambda: VOTING_DAY)
    client = await aiohttp_client(create_app(config))
    for n in range(3):
        body = ballot_envelope(keys.site, voter_token(n), ["L01", "L02"])
        assert (await client.post(f"{BASE}/ballots", json=body)).status == 201
    reads = 0
    histories = tally.export.voter_histories

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return await histories(*args, **kwargs)

    monkeypatch.setattr(api.result_routes, "voter_histories", counting)
    documents = [await (await client.get(f"{BASE}/results")).json() for _ in range(20)]
    assert reads == 1
    assert all(d["categories"] == documents[0]["categories"] for d in documents)
    body = ballot_envelope(keys.site, voter_token(9), ["L03"])
    assert (await client.post(f"{BASE}/ballots", json=body)).status == 201
    after = await (await client.get(f"{BASE}/results")).json()
    assert reads == 2
    assert after["log"]["size"] == documents[0]["log"]["size"] + 1


@pytest.mark.skipif(shutil.which("node") is None, reason="node is missing")
def test_the_results_page_refreshes_no_faster_than_every_two_seconds() -> None:
    """``?refresh=N`` (milliseconds) is honoured down to a floor of 2,000 ms; nonsense falls
    back to the default 5,000 ms."""
    script = f"""
    import {{ refreshInterval }} from "{(ASSETS / "refresh.js").as_uri()}";
    console.log(JSON.stringify(["?refresh=1", "?refresh=0", "?refresh=-5", "?refresh=abc",
      "", "?refresh=2500", "?refresh=60000"].map(refreshInterval)));
    """
    out = subprocess.run(
        ["node", "--input-type=module", "-e", script], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == [2000, 5000, 5000, 5000, 5000, 2500, 60000]
    assert "refreshInterval(location.search)" in (ASSETS / "results.js").read_text()


async def test_the_auditor_pages_through_a_capped_log(
    aiohttp_server: Any, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The auditor's URL source asks for the whole log and goes on from where each clipped page
    ended: with pages of 7 entries it still reads every entry and passes."""
    from tests.tally.audit.test_audit_live_server import audit_url, serve
    from tests.tally.election_log import AuditKeys, election_log, standard_log

    keys = AuditKeys()
    async with election_log(sqlite_url, keys) as log:
        await standard_log(log)
        size = await log.ledger.size()
    monkeypatch.setattr(log_routes, "MAX_ENTRIES_PER_REQUEST", 7)
    url = await serve(aiohttp_server, sqlite_url, keys)
    report = await audit_url(url, keys, election=ELECTION)
    assert report.ok, report.summary()
    assert report.entries == size > 7
