"""Threat: an instance dies behind the load balancer while voting goes on; a single address
floods the write endpoints."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest

from bench.loadgen import Book, cast_now
from ledger.keys import sign_envelope
from tests.api.servers import free_port
from tests.deploy.tools import nginx_config_here, require_tool
from tests.factories import ELECTION
from tests.faults.trial import Trial, run_load, servers, when

pytestmark = pytest.mark.slow

VOTERS = 1200


@contextmanager
def nginx(tmp: Path, backends: list[int]) -> Iterator[str]:
    """deploy/nginx/nginx.conf in front of ``backends``, 127.0.0.1 listed as the voting
    site's address (exempt from the per-address write limit, as RUNBOOK.md says)."""
    binary = require_tool("nginx")
    port = free_port()
    config = nginx_config_here(tmp, backends, port)
    text = config.read_text()
    assert "# 203.0.113.10/32 0;" in text
    config.write_text(text.replace("# 203.0.113.10/32 0;", "127.0.0.1/32 0;"))
    log = open(tmp / "nginx.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [binary, "-c", str(config), "-p", str(tmp), "-g", "daemon off;"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"{url}/nginx-healthz", timeout=1)
                break
            except OSError:
                assert process.poll() is None, (tmp / "nginx.log").read_text()
                assert time.monotonic() < deadline
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


async def test_clients_never_notice_an_instance_killed_behind_nginx(
    pg_url: str, tmp_path: Path
) -> None:
    """Through nginx only, while each of the two instances is SIGKILLed in turn and restarted:
    nginx retries each write on the other instance (safe: a retry by nonce never counts twice),
    so no client sees an error; every acknowledged ballot is in the log once, totals exact,
    audit passing."""
    trial = await Trial.create(pg_url, tmp_path)
    with servers(trial, count=2) as (a, b), nginx(tmp_path, [a.port, b.port]) as front:
        kills: list[int] = []

        async def kill_and_restart(book: Book) -> None:
            for server, threshold in ((a, VOTERS * 3 // 10), (b, VOTERS * 6 // 10)):
                await when(lambda: len(book.acknowledged) >= threshold)  # noqa: B023
                server.kill()
                kills.append(len(book.acknowledged))
                await asyncio.sleep(1.0)
                await asyncio.to_thread(server.start)

        book = await run_load(trial, lambda: [front], trial.electorate(), VOTERS,
                              during=kill_and_restart)  # fmt: skip
        assert len(kills) == 2
        assert not book.transient, f"clients saw errors: {book.transient}"
        await trial.check(book, [a.url, b.url])


async def test_one_address_flooding_writes_gets_problem_429s(pg_url: str, tmp_path: Path) -> None:
    """From an address not listed as the site's, a burst of 200 writes meets nginx's
    per-address limit: the excess is refused 429 as problem+json (code rate-limited) with
    Retry-After, and never reaches an instance."""
    trial = await Trial.create(pg_url, tmp_path)
    with servers(trial, count=2) as (a, b), nginx(tmp_path, [a.port, b.port]) as front:
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=connector) as session:

            async def post(n: int) -> tuple[int, str, str | None]:
                payload = {
                    "type": "ballot",
                    "election": ELECTION,
                    "voter": f"{n:064x}",
                    "projects": ["L01"],
                    "cast_at": cast_now(),
                    "nonce": str(uuid.uuid4()),
                }
                body = sign_envelope(payload, trial.keys.site)
                url = f"{front}/v1/elections/{ELECTION}/ballots"
                async with session.post(url, json=body) as response:
                    return (
                        response.status,
                        await response.text(),
                        response.headers.get("Retry-After"),
                    )

            answers = await asyncio.gather(*(post(n) for n in range(200)))
    limited = [(text, retry) for status, text, retry in answers if status == 429]
    assert 100 < len(limited) < 200, [status for status, _, _ in answers]
    for text, retry in limited:
        problem = json.loads(text)
        assert problem["code"] == "rate-limited" and problem["message_uk"] and retry == "1"
    through = [status for status, _, _ in answers if status != 429]
    assert set(through) == {201}
