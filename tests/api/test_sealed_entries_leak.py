"""Threat: a sealed election's ballots or totals leak before voting closes through some route.

Every GET route the app serves (found in its router, so a route added later is probed too) is
asked with every parameter it could take, while sealed; no answer may carry any ballot's nonce,
voter token or signature (each ballot entry holds all three, so any served entry shows) nor a
total per project. The same probe after the close finds every ballot: it can see a leak."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.api.test_sealed_results import CLOSES, Site, open_site, sealed_definition
from tests.factories import ELECTION

TOTALS = frozenset(
    {
        "votes",
        "votes_online",
        "votes_paper",
        "votes_by_point",
        "votes_by_day",
        "score",
        "funded",
        "spent",
        "reserve",
        "breakdown",
        "equal_shares_annex",
    }
)


@pytest.fixture
async def site(
    aiohttp_server: Callable[..., Awaitable[TestServer]], sqlite_url: str
) -> AsyncIterator[tuple[Site, web.Application]]:
    servers: list[TestServer] = []

    async def keep(app: web.Application) -> TestServer:
        server = await aiohttp_server(app)
        servers.append(server)
        return server

    async for opened in open_site(keep, sqlite_url, sealed_definition()):
        yield opened, servers[0].app


def get_paths(app: web.Application, size: int, code: str) -> Iterator[str]:
    """Each GET route's template filled with every value worth trying (C2SP tile paths, full
    and partial, a real receipt code), with every query parameter any handler reads."""
    values = {
        "election": [ELECTION],
        "code": [code],
        "level": ["0", "1"],
        "index": ["000", f"000.p/{size}", "000.p/1"],
        "name": [],  # static files: the pages' own code, no data
    }
    query = f"start=0&end=1000&index=4&size={size}&old=1&new={size}&min_size=0"
    for route in app.router.routes():
        if route.method != "GET" or route.resource is None:
            continue
        template = route.resource.canonical
        names = re.findall(r"{(\w+)}", template)
        filled = [template]
        for name in names:
            filled = [f.replace(f"{{{name}}}", v) for f in filled for v in values.get(name, ["0"])]
        for path in filled:
            for extra in ("", "&format=csv", "&format=json"):
                yield f"{path}?{query}{extra}"


BASE64_RUN = re.compile(rb"[A-Za-z0-9+/]{24,}={0,2}")


def haystack(body: bytes) -> bytes:
    """The answer, and every long base64 run in it decoded (a proof file carries its entry
    in base64)."""
    decoded = []
    for run in BASE64_RUN.findall(body):
        try:
            decoded.append(base64.b64decode(run + b"=" * (-len(run) % 4)))
        except ValueError:
            continue
    return b"\n".join([body, *decoded])


def totals_in(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = set(TOTALS & set(value))
        for item in value.values():
            found |= totals_in(item)
        return found
    if isinstance(value, list):
        return set().union(*map(totals_in, value)) if value else set()
    return set()


async def probe(site: Site, app: web.Application) -> tuple[dict[str, tuple[bytes, bytes]], int]:
    """Every GET answer by path, as sent and as :func:`haystack`; and how many distinct routes
    answered 200."""
    size = int((await site.get("/log/checkpoint"))[2].split(b"\n")[1])
    answers: dict[str, tuple[bytes, bytes]] = {}
    routes_ok: set[str] = set()
    for path in get_paths(app, size, site.receipts[0]):
        async with site.http.get(site.base + path) as response:
            body = await response.read()
            answers[path] = body, haystack(body)
            if response.status == 200:
                routes_ok.add(path.split("?")[0])
    return answers, len(routes_ok)


async def secrets_of(site: Site) -> list[bytes]:
    """Each ballot's nonce, voter token and signature, read from the entries once open."""
    status, _, lines = await site.get("/log/entries")
    assert status == 200
    secrets = []
    for line in lines.splitlines():
        envelope = json.loads(line)["entry"]["envelope"]
        if envelope["payload"]["type"] == "ballot":
            payload = envelope["payload"]
            secrets += [payload["nonce"].encode(), payload["voter"].encode()]
            secrets.append(envelope["sig"].encode())
    return secrets


async def test_no_route_serves_ballots_or_totals_while_sealed(
    site: tuple[Site, web.Application],
) -> None:
    """While sealed no answer holds a ballot's nonce, token or signature, nor a per-project
    total; after the close the same probe finds every ballot and the totals."""
    opened, app = site
    sealed_answers, sealed_ok = await probe(opened, app)
    opened.clock.now = CLOSES
    open_answers, _ = await probe(opened, app)

    secrets = await secrets_of(opened)
    assert len(secrets) == 3 * len(opened.receipts)
    assert all(any(s in hay for _, hay in open_answers.values()) for s in secrets)
    results = next(
        body
        for path, (body, _) in open_answers.items()
        if path.split("?")[0].endswith("/results") and "format" not in path
    )
    assert "votes" in totals_in(json.loads(results))

    leaks = [
        (path, secret.decode())
        for path, (_, hay) in sealed_answers.items()
        for secret in secrets
        if secret in hay
    ]
    assert leaks == []
    totals = {}
    for path, (body, _) in sealed_answers.items():
        if path.startswith("/openapi.json?"):
            continue  # the schema names the totals' members; it holds no figure
        try:
            found = totals_in(json.loads(body))
        except ValueError:
            found = {name for name in TOTALS if f'"{name}"'.encode() in body}
        if found:
            totals[path] = found
    assert totals == {}
    assert sealed_ok >= 8  # checkpoints, proofs, receipts, tiles, results... still answer
