"""A real `uchast serve` process over a test election, for the auditor's and the monitor's
tests against saved checkpoints: ballots cast over HTTP, the checkpoint fetched as a client saves
it, and the exported log."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from ledger.keys import sign_envelope
from ledger.store import open_store
from ledger.tiles import export_tiles
from tests.api.servers import ROOT, serving
from tests.factories import ELECTION, Keys, opened_ledger, voter_token

VOTER_KEY = bytes(range(32, 64))
BASE = f"/v1/elections/{ELECTION}"
DEFINED = 4  # the election entry and the site, clerk and supervisor keys


def ballot(keys: Keys, n: int) -> dict[str, Any]:
    """Voter ``n``'s online ballot, signed by the site key."""
    payload = {
        "type": "ballot",
        "election": ELECTION,
        "voter": voter_token(n),
        "projects": ["L01"],
        "cast_at": "2018-10-05T10:00:00+03:00",
        "nonce": str(uuid.uuid4()),
    }
    return sign_envelope(payload, keys.site)


async def prepared(
    url: str, keys: Keys, keydir: Path, definition: dict[str, Any] | None = None
) -> None:
    """The election defined with its keys, the log key and voter key saved for `serve`."""
    async with opened_ledger(url, keys, definition=definition):
        pass
    keys.log.save(keydir / "log.key")
    (keydir / "voter.key").write_text(VOTER_KEY.hex())


@contextmanager
def served(url: str, keydir: Path, args: Sequence[str] = ()) -> Iterator[str]:
    """One `uchast serve` process on the database; its base URL."""
    with serving(url, keydir, args=args) as ([base], _):
        yield base


async def cast(base: str, keys: Keys, voters: range) -> None:
    """One ballot per voter, each answered 201."""
    async with aiohttp.ClientSession() as session:
        for n in voters:
            async with session.post(f"{base}{BASE}/ballots", json=ballot(keys, n)) as r:
                assert r.status == 201, await r.text()


async def tiles(url: str, out: Path) -> int:
    """`uchast export tiles` of the election into ``out``; the checkpoint's size."""
    store = open_store(url)
    await store.open()
    try:
        size, _ = await export_tiles(store, ELECTION, out)
    finally:
        await store.close()
    return size


def checkpoint(base: str) -> str:
    """The log's latest signed checkpoint, as a client saves it."""
    with urllib.request.urlopen(f"{base}{BASE}/log/checkpoint", timeout=10) as response:
        text: str = response.read().decode("utf-8")
    return text


def audit_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`uchast audit ARGS` in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "audit", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def vkeys(keys: Keys) -> list[str]:
    """The audit's trust anchors: --log-vkey and --admin-vkey."""
    return ["--log-vkey", keys.log.verifier.vkey, "--admin-vkey", keys.admin.verifier.vkey]


class MonitorProcess:
    """`uchast monitor ARGS` running in a process of its own; its output read line by line."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "monitor", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, start: str, timeout: float = 30) -> str:
        """The first line from now on that starts with ``start`` (others are kept in
        :attr:`seen`); AssertionError if the process ends or time runs out first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line {start!r} in time; saw {self.seen}") from None
            if line is None:
                raise AssertionError(f"the monitor ended before {start!r}; saw {self.seen}")
            self.seen.append(line)
            if line.startswith(start):
                return line

    def stop(self) -> int:
        """SIGTERM, then the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.wait()

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()


def metrics(port: int) -> str:
    """The monitor's /metrics page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text: str = response.read().decode()
    return text
