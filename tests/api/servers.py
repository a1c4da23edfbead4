"""Real `uchast serve` processes for multi-process tests."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from bench.loadgen import free_port as free_port  # the tests' servers take their ports here

ROOT = Path(__file__).resolve().parents[2]


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Return once ``url``/healthz answers; raise if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1).read()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server at {url} did not start") from None
            time.sleep(0.05)


# `serve` limits a clerk key to a human's pace by default (api/ratelimit.py); tests whose clerk
# types as fast as a machine lift it (a rate of 0 is no limit).
UNLIMITED_CLERK = ("--rate-limit-role", "clerk=0")


@contextmanager
def serving(
    db: str,
    keydir: Path,
    *,
    count: int = 1,
    clock: str = "2018-10-05T12:00:00+03:00",
    args: Sequence[str] = (),
) -> Iterator[tuple[list[str], list[subprocess.Popen[bytes]]]]:
    """Start ``count`` server processes on one database (``args`` added to each command line);
    yield their base URLs and processes."""
    ports = [free_port() for _ in range(count)]
    logs = [open(keydir / f"server-{port}.log", "wb") for port in ports]  # noqa: SIM115
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.cli",
                "serve",
                "--db",
                db,
                "--log-key",
                str(keydir / "log.key"),
                "--voter-key",
                str(keydir / "voter.key"),
                "--port",
                str(port),
                "--clock",
                clock,
                *args,
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for port, log in zip(ports, logs, strict=True)
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url, process in zip(urls, processes, strict=True):
            wait_until_up(url, process)
        yield urls, processes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()


async def race_two_servers(
    db: str, keydir: Path, election: str, requests: Sequence[tuple[str, object]]
) -> list[tuple[int, dict[str, Any]]]:
    """Send every (endpoint, body) of ``requests`` at once, alternately to two `uchast serve`
    processes on one database (the clerk's human-pace limit lifted: a race, not a rate); each
    answer's status and JSON body, in order."""
    with serving(db, keydir, count=2, args=UNLIMITED_CLERK) as (urls, _):
        async with aiohttp.ClientSession() as session:

            async def send(n: int) -> tuple[int, dict[str, Any]]:
                path, body = requests[n]
                url = f"{urls[n % 2]}/v1/elections/{election}/{path}"
                async with session.post(url, json=body) as response:
                    return response.status, await response.json(content_type=None)

            return await asyncio.gather(*(send(n) for n in range(len(requests))))
