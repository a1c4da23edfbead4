"""An independent client reads our tiles: Go's golang.org/x/mod/sumdb/tlog (the Go checksum
database's tile code; Debian golang-golang-x-mod-dev) verifies the checkpoint, authenticates the
hash tiles against it, and proves records and trees from them; its proofs must be the ones the
API serves, and the entries of our bundles must hash to its records (tests/api/go/tileread).

Without `go` (or the package) the test is skipped, except under CI=true, where it fails."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from api.app import create_app
from api.service import ServiceConfig
from ledger import merkle
from ledger.store import StoredEntry, open_store
from tests.factories import ELECTION, Keys, opened_ledger
from tests.ledger.conformance import cast

ServerFactory = Callable[..., Awaitable[TestServer]]
PROGRAM = Path(__file__).resolve().parent / "go" / "tileread" / "main.go"
GOPATH = "/usr/share/gocode"


def _missing(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(
            f"{why}: CI must run the Go tile client (apt-get install golang-go "
            "golang-golang-x-mod-dev)"
        )
    pytest.skip(why)


@pytest.fixture(scope="module")
def tileread(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go client, built once (GOPATH mode, Debian's golang.org/x/mod)."""
    go = shutil.which("go")
    if go is None:
        _missing("no go command")
    assert go is not None
    if not Path(GOPATH, "src/golang.org/x/mod/sumdb/tlog/tlog.go").exists():
        _missing(f"golang.org/x/mod is not under {GOPATH}")
    work = tmp_path_factory.mktemp("go")
    binary = work / "tileread"
    env = {
        **os.environ,
        "GOPATH": GOPATH,
        "GO111MODULE": "off",
        "GOCACHE": str(work / "cache"),
        "GOFLAGS": "",
    }
    built = subprocess.run(
        [go, "build", "-o", str(binary), str(PROGRAM)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    return binary


async def grow(url: str, size: int) -> None:
    """Bring the test election's log to ``size`` entries with small raw entries, written
    through the store as the sequencer writes (a ballot each would take minutes)."""
    store = open_store(url)
    await store.open()
    try:
        start = await store.size(ELECTION)
        known = await store.node_range(ELECTION, 0, 0, start)
        frontier, _ = merkle.append([], 0, known)
        for first in range(start, size, 10_000):
            data = [b'{"n":%d}' % i for i in range(first, min(first + 10_000, size))]
            batch = [
                StoredEntry(first + k, "test", (), d, merkle.leaf_hash(d))
                for k, d in enumerate(data)
            ]
            frontier, nodes = merkle.append(frontier, first, [e.leaf_hash for e in batch])
            async with store.sequencing(ELECTION) as tx:
                await tx.write(batch, nodes, None)
    finally:
        await store.close()


async def read_with_go(binary: Path, prefix: str, vkey: str, sample: int) -> str:
    process = await asyncio.create_subprocess_exec(
        str(binary),
        "-log",
        prefix,
        "-vkey",
        vkey,
        "-sample",
        str(sample),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    text = out.decode()
    assert process.returncode == 0, text
    return text


async def test_go_tlog_proves_every_record_and_tree_as_the_api_does(
    tileread: Path, aiohttp_server: ServerFactory, sqlite_url: str
) -> None:
    """A log of 604 ballots and keys (two full tiles, a partial one, a level-1 tile): for every
    index, Go's proof from our tiles is the API's inclusion proof and checks against the entry
    from our bundle; for every older size, its tree proof is the API's consistency proof."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys) as ledger:
        for start in range(0, 600, 150):
            await asyncio.gather(*(cast(ledger, keys, n) for n in range(start, start + 150)))
    server = await aiohttp_server(create_app(ServiceConfig(sqlite_url, keys.log)))
    prefix = str(server.make_url(f"/v1/elections/{ELECTION}/log/"))
    out = await read_with_go(tileread, prefix, keys.log.verifier.vkey, 0)
    assert out.startswith("ok 604 604 604 "), out


async def test_go_tlog_reads_three_levels_of_tiles(
    tileread: Path, aiohttp_server: ServerFactory, sqlite_url: str
) -> None:
    """70,000 entries (level-2 tiles, partial tiles at every level): the tree hash, and sampled
    record and tree proofs, agree with the API's."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys):
        pass  # the election and its keys: entries 0-3
    await grow(sqlite_url, 70_000)
    server = await aiohttp_server(create_app(ServiceConfig(sqlite_url, keys.log)))
    prefix = str(server.make_url(f"/v1/elections/{ELECTION}/log/"))
    out = await read_with_go(tileread, prefix, keys.log.verifier.vkey, 200)
    assert out.startswith("ok 70000 "), out


def test_go_refuses_a_checkpoint_of_another_key(tileread: Path, tmp_path: Path) -> None:
    """The Go client does check: a checkpoint it cannot verify is refused (exit 1)."""

    async def run() -> str:
        url = f"sqlite:///{tmp_path / 'u.db'}"
        keys = Keys()
        async with opened_ledger(url, keys):
            pass
        server = TestServer(create_app(ServiceConfig(url, keys.log)))
        await server.start_server()
        try:
            prefix = str(server.make_url(f"/v1/elections/{ELECTION}/log/"))
            process = await asyncio.create_subprocess_exec(
                str(tileread),
                "-log",
                prefix,
                "-vkey",
                Keys().log.verifier.vkey,
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await process.communicate()
            assert process.returncode == 1
            return out.decode()
        finally:
            await server.close()

    assert "checkpoint" in asyncio.run(run())
