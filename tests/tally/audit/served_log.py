"""A real `uchast serve` process over a test election, for the auditor's and the monitor's
tests against saved checkpoints: ballots cast over HTTP, the checkpoint fetched as a client saves
it, and the exported log."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from ledger.keys import sign_envelope
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


async def prepared(url: str, keys: Keys, keydir: Path) -> None:
    """The election defined with its keys, the log key and voter key saved for `serve`."""
    async with opened_ledger(url, keys):
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
