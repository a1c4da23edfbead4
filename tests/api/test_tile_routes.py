"""The log serves C2SP tlog-tiles: hash tiles and entry bundles within its signed checkpoint."""

from __future__ import annotations

import asyncio
import gzip
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.service import ServiceConfig
from ledger import merkle
from ledger.checkpoint import verify_checkpoint
from tests.factories import ELECTION, Keys, opened_ledger
from tests.ledger.conformance import cast

ClientFactory = Callable[[Any], Awaitable[TestClient[Any, Any]]]
ServerFactory = Callable[..., Awaitable[TestServer]]
BASE = f"/v1/elections/{ELECTION}/log"
IMMUTABLE = "public, max-age=31536000, immutable"


def split_bundle(bundle: bytes) -> list[bytes]:
    entries, at = [], 0
    while at < len(bundle):
        (length,) = struct.unpack_from(">H", bundle, at)
        entries.append(bundle[at + 2 : at + 2 + length])
        at += 2 + length
    return entries


async def test_tiles_and_bundles_agree_with_the_checkpoint(
    aiohttp_client: ClientFactory, store_url: str
) -> None:
    """A full and a partial level-0 tile, their bundles and the level-1 tile rebuild the signed
    root; full tiles are cached for a year, partial ones and the checkpoint briefly."""
    keys = Keys()
    async with opened_ledger(store_url, keys) as ledger:
        for start in range(0, 270, 90):
            await asyncio.gather(*(cast(ledger, keys, n) for n in range(start, start + 90)))
        entries = await ledger.entries(0, await ledger.size())
    client = await aiohttp_client(create_app(ServiceConfig(store_url, keys.log)))

    response = await client.get(f"{BASE}/checkpoint")
    assert response.headers["Cache-Control"] == "public, max-age=2"
    checkpoint = verify_checkpoint(await response.text(), keys.log.verifier, ledger.origin)
    size = checkpoint.size
    assert size == len(entries) == 274

    full = await client.get(f"{BASE}/tile/0/000")
    assert full.status == 200 and full.content_type == "application/octet-stream"
    assert full.headers["Cache-Control"] == IMMUTABLE
    partial = await client.get(f"{BASE}/tile/0/001.p/{size - 256}")
    assert partial.headers["Cache-Control"] == "public, max-age=60"
    level0 = await full.read() + await partial.read()
    assert level0 == b"".join(e.leaf_hash for e in entries)

    bundles = await client.get(f"{BASE}/tile/entries/000")
    assert bundles.headers["Cache-Control"] == IMMUTABLE
    assert bundles.content_type == "application/octet-stream"
    rest = await client.get(f"{BASE}/tile/entries/001.p/{size - 256}")
    leaves = split_bundle(await bundles.read()) + split_bundle(await rest.read())
    assert leaves == [e.data for e in entries]

    level1 = await (await client.get(f"{BASE}/tile/1/000.p/1")).read()
    assert level1 == merkle.root_of(leaves[:256])
    assert merkle.fold([level1, merkle.root_of(leaves[256:])]) == checkpoint.root

    # A partial tile of an earlier size is a prefix of the full one.
    older = await client.get(f"{BASE}/tile/0/000.p/13")
    assert older.status == 200 and await older.read() == level0[: 13 * 32]


async def test_tiles_beyond_the_checkpoint_or_misnamed_are_not_found(
    aiohttp_client: ClientFactory, sqlite_url: str
) -> None:
    """A tile past the checkpoint's size, a non-canonical path or an unknown election: 404."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys) as ledger:
        await cast(ledger, keys, 0)
        size = await ledger.size()  # 5
    client = await aiohttp_client(create_app(ServiceConfig(sqlite_url, keys.log)))
    assert (await client.get(f"{BASE}/tile/0/000.p/{size}")).status == 200
    cases = [
        (f"{BASE}/tile/0/000.p/{size + 1}", "no-tile"),
        (f"{BASE}/tile/entries/000.p/{size + 1}", "no-tile"),
        (f"{BASE}/tile/0/000", "no-tile"),
        (f"{BASE}/tile/1/000.p/1", "no-tile"),
        (f"{BASE}/tile/0/x000/000.p/1", "no-tile"),
        (f"{BASE}/tile/0/0.p/1", "no-tile"),
        (f"{BASE}/tile/64/000", "no-tile"),
        (f"{BASE}/tile/entries/000.p/01", "no-tile"),
        (f"{BASE}/tile/8/0/000.p/1", "no-tile"),
        ("/v1/elections/nope/log/tile/0/000.p/1", "unknown-election"),
        ("/v1/elections/nope/log/tile/entries/000.p/1", "unknown-election"),
    ]
    for path, code in cases:
        response = await client.get(path)
        assert response.status == 404, path
        assert response.content_type == "application/problem+json"
        assert (await response.json())["code"] == code, path


async def test_entry_bundles_are_gzipped_when_asked(
    aiohttp_server: ServerFactory, sqlite_url: str
) -> None:
    """With Accept-Encoding gzip a bundle comes compressed (Vary: Accept-Encoding), and
    decompresses to the bytes served without it; hash tiles are never compressed."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys) as ledger:
        await asyncio.gather(*(cast(ledger, keys, n) for n in range(40)))
        size = await ledger.size()
    server = await aiohttp_server(create_app(ServiceConfig(sqlite_url, keys.log)))
    url = str(server.make_url(f"{BASE}/tile/entries/000.p/{size}"))
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.get(url, headers={"Accept-Encoding": "gzip"}) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert response.headers["Vary"] == "Accept-Encoding"
            packed = await response.read()
        async with session.get(url, headers={"Accept-Encoding": "identity"}) as response:
            assert "Content-Encoding" not in response.headers
            plain = await response.read()
        tile = str(server.make_url(f"{BASE}/tile/0/000.p/{size}"))
        async with session.get(tile, headers={"Accept-Encoding": "gzip"}) as response:
            assert "Content-Encoding" not in response.headers
            assert len(await response.read()) == 32 * size
    assert gzip.decompress(packed) == plain and len(packed) < len(plain) // 2


async def test_entries_not_yet_checkpointed_are_in_no_tile(
    aiohttp_client: ClientFactory, sqlite_url: str
) -> None:
    """Entries committed after the latest signed checkpoint (checkpoints every hour here) are
    served in no tile or bundle until a checkpoint covers them: every tile agrees with one."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys):
        pass
    client = await aiohttp_client(create_app(ServiceConfig(sqlite_url, keys.log)))
    checkpoint = await (await client.get(f"{BASE}/checkpoint")).text()
    signed = int(checkpoint.split("\n")[1])
    async with opened_ledger(sqlite_url, keys, checkpoint_interval=3600) as ledger:
        for n in range(3):
            await cast(ledger, keys, n)
        size = await ledger.size()
        latest = await ledger.latest_checkpoint()
        assert latest is not None and latest.size == signed < size
        for path in (f"tile/0/000.p/{size}", f"tile/entries/000.p/{size}"):
            response = await client.get(f"{BASE}/{path}")
            assert response.status == 404, path
            assert (await response.json())["code"] == "no-tile"
        assert (await client.get(f"{BASE}/tile/entries/000.p/{signed}")).status == 200
        await ledger.sequencer.flush_checkpoint()
    assert (await client.get(f"{BASE}/tile/entries/000.p/{size}")).status == 200
