"""Threat: a tiled log copy (a mirror, a CDN, a bucket) altered after export. The audit of the
tiles fails and says where: a changed entry, a bundle too long or missing, a hash tile that is
not the entries' tree, a checkpoint not signed by the log."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ledger.checkpoint import sign_note
from ledger.keys import SignerKey
from ledger.store import open_store
from ledger.tiles import export_tiles
from tally.audit import AuditReport, audit
from tests.factories import ELECTION
from tests.tally.election_log import AuditKeys, election_log, standard_log


@pytest.fixture
async def tiles(sqlite_url: str, tmp_path: Path) -> tuple[Path, AuditKeys]:
    keys = AuditKeys()
    async with election_log(sqlite_url, keys) as log:
        await standard_log(log)
    store = open_store(sqlite_url)
    await store.open()
    try:
        await export_tiles(store, ELECTION, tmp_path / "tiles")
    finally:
        await store.close()
    return tmp_path / "tiles", keys


def bundle_path(root: Path) -> Path:
    """The one entry bundle of the standard log (fewer than 256 entries)."""
    [path] = _files(root / "tile/entries")
    return path


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def run(root: Path, keys: AuditKeys) -> AuditReport:
    return audit(str(root), keys.log.verifier.vkey, keys.admin.verifier.vkey, workers=0)


def checks(report: AuditReport) -> set[str]:
    return {v.check for v in report.violations}


async def test_a_changed_entry_is_found(tiles: tuple[Path, AuditKeys]) -> None:
    """One project id changed inside a bundle: its signature and the signed root disagree."""
    root, keys = tiles
    path = bundle_path(root)
    data = path.read_bytes()
    assert data.count(b'"L02"') >= 1
    path.write_bytes(data.replace(b'"L02"', b'"L03"', 1))
    report = run(root, keys)
    assert not report.ok
    assert {"root", "signature"} <= checks(report), report.summary()


async def test_an_entry_appended_to_a_bundle_is_found(tiles: tuple[Path, AuditKeys]) -> None:
    """A bundle holding one entry more than its path says is refused by its form."""
    root, keys = tiles
    path = bundle_path(root)
    path.write_bytes(path.read_bytes() + b"\x00\x02{}")
    report = run(root, keys)
    assert not report.ok and "entry-bundle" in checks(report), report.summary()


async def test_a_missing_bundle_is_found(tiles: tuple[Path, AuditKeys]) -> None:
    """A bundle the checkpoint needs is gone: the audit cannot read the log (exit 2)."""
    root, keys = tiles
    bundle_path(root).unlink()
    report = run(root, keys)
    assert not report.ok and "source" in checks(report), report.summary()


async def test_a_hash_tile_not_of_the_entries_is_found(tiles: tuple[Path, AuditKeys]) -> None:
    """A level-0 tile with one hash replaced: the entries are right, the tiles a client proves
    inclusion with are not, and the audit names the tile."""
    root, keys = tiles
    [path] = _files(root / "tile/0")
    data = bytearray(path.read_bytes())
    data[40] ^= 1
    path.write_bytes(bytes(data))
    report = run(root, keys)
    assert not report.ok
    assert checks(report) == {"hash-tile"}, report.summary()
    [violation] = report.violations
    assert violation.step == 4 and "hash 1 " in violation.found


async def test_a_checkpoint_not_signed_by_the_log_is_refused(
    tiles: tuple[Path, AuditKeys],
) -> None:
    """A checkpoint re-signed by another key does not verify under --log-vkey."""
    root, keys = tiles
    note = (root / "checkpoint").read_text()
    text = note[: note.index("\n\n") + 1]
    impostor = SignerKey.generate(keys.log.verifier.name)
    (root / "checkpoint").write_text(sign_note(text, [impostor]))
    report = run(root, keys)
    assert not report.ok and "checkpoint-signature" in checks(report), report.summary()


async def test_a_hash_tile_not_of_the_entries_is_found_over_http(
    tiles: tuple[Path, AuditKeys], aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    """The same from a static HTTP host, where hash tiles are fetched ahead in parallel."""
    root, keys = tiles
    [path] = _files(root / "tile/0")
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))

    async def static(request: web.Request) -> web.Response:
        file = root / request.match_info["path"]
        if not file.is_file():
            raise web.HTTPNotFound()
        return web.Response(body=file.read_bytes())

    app = web.Application()
    app.router.add_get("/mirror/log/{path:.+}", static)
    server = await aiohttp_server(app)
    url = str(server.make_url("/mirror/log/"))
    report = await asyncio.to_thread(
        audit, url, keys.log.verifier.vkey, keys.admin.verifier.vkey, workers=0
    )
    assert checks(report) == {"hash-tile"}, report.summary()
    [violation] = report.violations
    assert f"hash {len(data) // 32 - 1} " in violation.found
