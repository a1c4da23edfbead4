"""deploy/nginx/nginx.conf with a real nginx: reads go to the read upstream (servers on read
replicas, README "How reads scale"), every write to the primary's servers, whatever its path;
receipts pass through the 1 s cache."""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.request
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.api.servers import free_port
from tests.deploy.tools import nginx_config_here, require_tool


async def backend(name: str) -> tuple[web.AppRunner, int]:
    """A stand-in server that answers every request with its name and the method."""

    async def answer(request: web.Request) -> web.Response:
        return web.Response(text=f"{name} {request.method}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


async def test_reads_go_to_the_read_upstream_and_writes_to_the_primary(tmp_path: Path) -> None:
    binary = require_tool("nginx")
    primary, primary_port = await backend("primary")
    replica, replica_port = await backend("replica")
    port = free_port()
    config = nginx_config_here(
        tmp_path, [primary_port, primary_port], port, read_backends=[replica_port] * 2
    )
    process = subprocess.Popen(
        [binary, "-c", str(config), "-p", str(tmp_path), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "nginx.log").open("wb"),
    )
    front = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                await asyncio.to_thread(urllib.request.urlopen, f"{front}/nginx-healthz", None, 1)
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                await asyncio.sleep(0.05)
        base = f"{front}/v1/elections/kyiv-2026"
        expected = [
            ("GET", f"{base}/results", "replica GET"),
            ("HEAD", f"{base}/results", None),
            ("GET", f"{base}/receipts/ABCDE-12345", "replica GET"),
            ("GET", f"{base}/log/tile/0/000", "replica GET"),
            ("GET", f"{base}/log/entries?start=0&end=1", "replica GET"),
            ("POST", f"{base}/ballots", "primary POST"),
            ("POST", f"{base}/ballot-batches", "primary POST"),
            ("POST", f"{base}/voter-tokens", "primary POST"),
            ("POST", f"{base}/ballots/batch", "primary POST"),  # a write the config never named
            ("DELETE", f"{base}/results", "primary DELETE"),
            ("GET", f"{front}/readyz", "primary GET"),
        ]
        async with aiohttp.ClientSession() as session:
            for method, url, answer in expected:
                async with session.request(method, url, json={} if method == "POST" else None) as r:
                    assert r.status == 200, (method, url, r.status)
                    if answer is not None:
                        assert await r.text() == answer, (method, url)
                    if "/receipts/" in url:
                        assert r.headers["X-Cache"] in ("MISS", "HIT", "UPDATING", "STALE")
    finally:
        process.terminate()
        process.wait(timeout=10)
        await primary.cleanup()
        await replica.cleanup()
