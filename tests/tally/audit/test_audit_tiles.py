"""The auditor reads a tiled log (C2SP tlog-tiles) and nothing else: from the server's log/
prefix or from a directory written by `uchast export tiles`, with the verdict of the file."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st

from api.app import create_app
from api.cli import main
from api.service import ServiceConfig
from ledger.store import open_store
from ledger.tiles import Tile as ServerTile
from ledger.tiles import export_tiles
from ledger.tiles import tiles_for_size as server_tiles_for_size
from tally.audit import AuditReport, audit
from tally.audit.crypto import NoteError, VerifierKey
from tally.audit.sources import LogTiles, open_source
from tally.audit.tiles import (
    Tile,
    TileFormatError,
    TileMissingError,
    TileReader,
    is_tiles_location,
    split_bundle,
    tiles_for_size,
)
from tests.factories import ELECTION
from tests.tally.election_log import AuditKeys, election_log, export, standard_log

ServerFactory = Callable[..., Awaitable[TestServer]]
LOG = f"/v1/elections/{ELECTION}/log/"


async def many_log(url: str, keys: AuditKeys) -> None:
    """The standard log and 280 more ballots: two entry bundles and a level-1 tile."""
    async with election_log(url, keys) as log:
        await standard_log(log)
        for start in range(200, 480, 70):
            await asyncio.gather(*(log.ballot(n, ["L01"]) for n in range(start, start + 70)))


async def exported(url: str, out: Path) -> Path:
    store = open_store(url)
    await store.open()
    try:
        await export_tiles(store, ELECTION, out)
    finally:
        await store.close()
    return out


def run(source: str, keys: AuditKeys, **options: Any) -> AuditReport:
    return audit(source, keys.log.verifier.vkey, keys.admin.verifier.vkey, workers=0, **options)


async def test_an_audit_from_tiles_reads_only_tiles_and_agrees_with_the_file(
    aiohttp_server: ServerFactory, sqlite_url: str, tmp_path: Path
) -> None:
    """From the server's log/ prefix and from an exported directory: every check passes, with
    the figures of the exported log file; the server was asked for the checkpoint and tiles
    only (no /entries, no proofs, no results)."""
    keys = AuditKeys()
    await many_log(sqlite_url, keys)
    app = create_app(ServiceConfig(sqlite_url, keys.log))
    asked: list[str] = []

    async def record(request: web.Request, _: web.StreamResponse) -> None:
        asked.append(request.path)

    app.on_response_prepare.append(record)
    server = await aiohttp_server(app)
    url = str(server.make_url(LOG))

    assert is_tiles_location(url) and is_tiles_location(url.rstrip("/"))
    assert isinstance(open_source(url), LogTiles)
    from_server = await asyncio.to_thread(run, url, keys)
    assert from_server.ok, from_server.summary()
    assert from_server.entries > 300 and from_server.election == ELECTION
    assert not from_server.results_compared
    assert asked and all(
        path == f"{LOG}checkpoint" or path.startswith(f"{LOG}tile/") for path in asked
    ), sorted(set(asked))
    assert f"{LOG}tile/entries/001.p/{from_server.entries - 256}" in asked
    assert f"{LOG}tile/1/000.p/1" in asked  # the hash tiles are checked too

    directory = await exported(sqlite_url, tmp_path / "tiles")
    assert is_tiles_location(str(directory))
    from_directory = run(str(directory), keys)
    assert from_directory.ok, from_directory.summary()

    path = tmp_path / "log.jsonl"
    await export(sqlite_url, path)
    from_file = run(str(path), keys)
    for report in (from_server, from_directory):
        assert (report.entries, report.root, report.totals, report.winners) == (
            from_file.entries,
            from_file.root,
            from_file.totals,
            from_file.winners,
        )


async def test_the_command_audits_a_tiles_directory(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`uchast audit DIR --log-vkey V --admin-vkey A` exits 0 on an exported tree."""
    keys = AuditKeys()
    async with election_log(sqlite_url, keys) as log:
        await standard_log(log)
    directory = await exported(sqlite_url, tmp_path / "tiles")
    argv = [
        "audit",
        str(directory),
        "--log-vkey",
        keys.log.verifier.vkey,
        "--admin-vkey",
        keys.admin.verifier.vkey,
        "--workers",
        "0",
    ]
    assert await asyncio.to_thread(main, argv) == 0, capsys.readouterr()


async def test_the_reader_gives_checkpoint_tiles_and_bundles(
    aiohttp_server: ServerFactory, sqlite_url: str, tmp_path: Path
) -> None:
    """The monitor's API: a verified checkpoint, hash tiles and bundles of any width, the same
    from HTTP and from a directory; a missing tile or a wrong key is an error of its own."""
    keys = AuditKeys()
    await many_log(sqlite_url, keys)
    server = await aiohttp_server(create_app(ServiceConfig(sqlite_url, keys.log)))
    directory = await exported(sqlite_url, tmp_path / "tiles")
    key = VerifierKey.parse(keys.log.verifier.vkey)

    def read(location: str) -> tuple[Any, ...]:
        reader = TileReader(location)
        checkpoint, note = reader.checkpoint(key)
        width = checkpoint.size - 256
        bundles = list(reader.bundles(checkpoint.size))
        assert [tile for tile, _ in bundles] == [Tile(0, 0, entries=True), Tile(0, 1, width, True)]
        assert bundles[1][1] == reader.entry_bundle(1, width)
        if reader.remote:  # a server has the bundles of every earlier size too
            assert reader.entry_bundle(1, 3) == bundles[1][1][:3]
        with pytest.raises(TileMissingError):
            reader.entry_bundle(1)  # the full bundle does not exist yet
        with pytest.raises(NoteError):
            reader.checkpoint(VerifierKey.parse(keys.admin.verifier.vkey))
        return (
            checkpoint,
            note,
            bundles,
            reader.hash_tile(0, 0),
            reader.hash_tile(0, 1, width),
            reader.hash_tile(1, 0, 1),
        )

    over_http = await asyncio.to_thread(read, str(server.make_url(LOG)))
    assert over_http == read(str(directory))
    assert len(over_http[3]) == 256 and all(len(h) == 32 for h in over_http[3])


async def test_gzip_encoded_bundles_are_decoded(
    aiohttp_server: ServerFactory, sqlite_url: str, tmp_path: Path
) -> None:
    """A static host that gzips entry bundles (as the spec recommends) is read the same."""
    keys = AuditKeys()
    async with election_log(sqlite_url, keys) as log:
        await standard_log(log)
    directory = await exported(sqlite_url, tmp_path / "tiles")

    async def static(request: web.Request) -> web.Response:
        file = directory / request.match_info["path"]
        if not file.is_file():
            raise web.HTTPNotFound()
        data = file.read_bytes()
        if "/entries/" in request.path and "gzip" in request.headers.get("Accept-Encoding", ""):
            return web.Response(body=gzip.compress(data), headers={"Content-Encoding": "gzip"})
        return web.Response(body=data)

    app = web.Application()
    app.router.add_get("/mirror/log/{path:.+}", static)
    server = await aiohttp_server(app)
    report = await asyncio.to_thread(run, str(server.make_url("/mirror/log/")), keys)
    assert report.ok, report.summary()
    assert report.election == ELECTION  # from the checkpoint's origin: the path names none


def test_bundles_must_hold_exactly_their_width() -> None:
    """A bundle with an entry too many or too few, or cut short, is refused by its form."""
    assert split_bundle(b"\x00\x01a\x00\x00", 2) == [b"a", b""]
    for data, width in [
        (b"\x00\x01a\x00\x00", 1),
        (b"\x00\x01a", 2),
        (b"\x00\x02a", 1),
        (b"\x00", 1),
    ]:
        with pytest.raises(TileFormatError):
            split_bundle(data, width)


def test_what_the_command_reads_as_tiles(tmp_path: Path) -> None:
    """An http(s) URL ending in /log or /log/, or a directory with a checkpoint file: tiles.
    A server's base or election URL and a log file: not."""
    assert is_tiles_location("https://vote.example/v1/elections/e/log/")
    assert is_tiles_location("http://cdn.example/mirror/log")
    assert not is_tiles_location("https://vote.example")
    assert not is_tiles_location("https://vote.example/v1/elections/e")
    assert not is_tiles_location("https://vote.example/catalog")
    assert not is_tiles_location(str(tmp_path))
    (tmp_path / "checkpoint").write_text("x")
    assert is_tiles_location(str(tmp_path))
    assert not is_tiles_location(str(tmp_path / "checkpoint"))


@given(
    level=st.integers(0, 63),
    index=st.integers(0, 10**18),
    width=st.integers(1, 256),
    entries=st.booleans(),
)
def test_the_auditor_names_tiles_as_the_server_does(
    level: int, index: int, width: int, entries: bool
) -> None:
    """The auditor's own tile paths (it imports nothing of the server) are ledger.tiles'."""
    level = 0 if entries else level
    ours = Tile(level, index, width, entries)
    assert ours.path == ServerTile(level, index, width, entries).path
    assert [t.path for t in tiles_for_size(index % 100_000, entries=entries)] == [
        t.path
        for t in server_tiles_for_size(index % 100_000)
        if t.entries == entries and t.level == 0
    ]
