"""deploy/nginx/tiles-static.conf: a real nginx serving `uchast export tiles` output as static
files, with the server's content types and Cache-Control, gzipped bundles, and an audit from it
that passes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ledger.store import open_store
from ledger.tiles import export_tiles
from tally.audit import audit
from tests.api.servers import free_port
from tests.deploy.tools import DEPLOY, require_tool
from tests.factories import ELECTION
from tests.tally.election_log import AuditKeys, election_log, standard_log

IMMUTABLE = "public, max-age=31536000, immutable"


def config_here(tmp: Path, root: Path, port: int) -> Path:
    text = (DEPLOY / "nginx" / "tiles-static.conf").read_text()
    for old, new in [
        ("listen 8090;", f"listen 127.0.0.1:{port};"),
        ("root /srv/tiles;", f"root {root};"),
        ("pid /tmp/nginx-tiles.pid;", f"pid {tmp}/nginx.pid;"),
        (
            "http {",
            f"http {{\n    client_body_temp_path {tmp}/body;\n    proxy_temp_path {tmp}/proxy;",
        ),
    ]:
        assert old in text, old
        text = text.replace(old, new, 1)
    if os.geteuid() == 0:  # workers would run as nobody, who cannot read the test's tmp dir
        text = "user root;\n" + text
    path = tmp / "tiles-static.conf"
    path.write_text(text)
    return path


def fetch(url: str, gzip: bool = False) -> tuple[int, dict[str, str], bytes]:
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), b""


async def test_nginx_serves_an_exported_tree_that_audits(tmp_path: Path, sqlite_url: str) -> None:
    """`nginx -t` passes; the checkpoint is text/plain for 2 s, full tiles immutable, partial ones
    a minute, bundles gzipped on request, nothing else served; `uchast audit` of the nginx URL
    passes with the entries and root of the log."""
    nginx = require_tool("nginx")
    keys = AuditKeys()
    async with election_log(sqlite_url, keys) as election:
        await standard_log(election)
        await asyncio.gather(*(election.ballot(n, ["L01"]) for n in range(200, 460)))
        size = await election.ledger.size()
    root = tmp_path / "srv"
    store = open_store(sqlite_url)
    await store.open()
    try:
        await export_tiles(store, ELECTION, root / ELECTION / "log")
    finally:
        await store.close()

    port = free_port()
    config = config_here(tmp_path, root, port)
    checked = subprocess.run(
        [nginx, "-t", "-c", str(config), "-p", str(tmp_path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    log = open(tmp_path / "nginx.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [nginx, "-c", str(config), "-p", str(tmp_path), "-g", "daemon off;"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/{ELECTION}/log/"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                status, headers, note = fetch(base + "checkpoint")
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "nginx.log").read_text()
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert status == 200 and note == (root / ELECTION / "log" / "checkpoint").read_bytes()
        assert headers["Content-Type"] == "text/plain; charset=utf-8"
        assert headers["Cache-Control"] == "public, max-age=2"

        status, headers, data = fetch(base + "tile/0/000")
        assert status == 200 and len(data) == 256 * 32
        assert headers["Content-Type"] == "application/octet-stream"
        assert headers["Cache-Control"] == IMMUTABLE
        status, headers, _ = fetch(base + f"tile/0/001.p/{size - 256}")
        assert status == 200 and headers["Cache-Control"] == "public, max-age=60"
        status, headers, _ = fetch(base + "tile/entries/000", gzip=True)
        assert status == 200 and headers["Cache-Control"] == IMMUTABLE
        assert headers.get("Content-Encoding") == "gzip"
        assert fetch(base + "tile/0/002")[0] == 404
        assert fetch(f"http://127.0.0.1:{port}/")[0] == 404

        report = await asyncio.to_thread(
            audit, base, keys.log.verifier.vkey, keys.admin.verifier.vkey, workers=0
        )
        assert report.ok, report.summary()
        assert report.entries == size
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.mark.parametrize("name", ["nginx.conf", "tiles-static.conf"])
def test_the_readme_points_at_the_configs(name: str) -> None:
    """README names the static config it documents."""
    assert f"deploy/nginx/{name}" in (DEPLOY.parent / "README.md").read_text()
