"""`uchast witness` over HTTP: the tlog-witness statuses and bodies, and its command line."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from api.witness_app import create_witness_app
from ledger.cosignature import CosignerKey, verified_cosignatures
from ledger.keys import SignerKey
from ledger.witness import Witness, open_witness_state
from tests.api.servers import ROOT
from tests.witnessing import ToyLog, body

LOG_KEY = SignerKey.from_seed("log.test", b"l" * 32)
WITNESS_KEY = SignerKey.from_seed("witness.test", b"w" * 32)

Client = TestClient[Any, Any]


async def _client(aiohttp_client: Callable[[Any], Awaitable[Client]], tmp_path: Path) -> Client:
    state = open_witness_state(f"sqlite:///{tmp_path / 'witness.db'}")
    return await aiohttp_client(create_witness_app(Witness(WITNESS_KEY, [LOG_KEY.verifier], state)))


async def test_protocol_answers(
    aiohttp_client: Callable[[Any], Awaitable[Client]], tmp_path: Path
) -> None:
    """200 with a cosignature line, 409 text/x.tlog.size, 403, 422 and 400 as the spec says."""
    client = await _client(aiohttp_client, tmp_path)
    log = ToyLog(LOG_KEY)
    log.grow(5)
    ok = await client.post("/add-checkpoint", data=log.request(0))
    assert ok.status == 200
    line = await ok.text()
    witnesses = {"W": CosignerKey.of(WITNESS_KEY.verifier)}
    assert len(verified_cosignatures(log.note() + line, witnesses)) == 1

    log.grow(7)
    stale = await client.post("/add-checkpoint", data=log.request(0))
    assert stale.status == 409
    assert stale.headers["Content-Type"] == "text/x.tlog.size"
    assert await stale.read() == b"5\n"

    stranger = ToyLog(SignerKey.generate("log.test"))
    stranger.grow(2)
    assert (await client.post("/add-checkpoint", data=stranger.request(0))).status == 403

    bad = body(5, log.tree.consistency_proof(4, 7), log.note())
    assert (await client.post("/add-checkpoint", data=bad)).status == 422
    assert (await client.post("/add-checkpoint", data=b"old x\n\n")).status == 400
    assert (await client.post("/add-checkpoint", data=log.request(5))).status == 200

    metrics = await (await client.get("/metrics")).text()
    assert 'uchast_witness_cosigned_size{origin="test.uchast/e1"} 7' in metrics


def test_print_vkey(tmp_path: Path) -> None:
    """--print-vkey prints the type 0x04 cosigner vkey a policy file names."""
    WITNESS_KEY.save(tmp_path / "w.key")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "api.cli",
            "witness",
            "--key",
            str(tmp_path / "w.key"),
            "--print-vkey",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == CosignerKey.of(WITNESS_KEY.verifier).vkey


def test_no_log_is_one_clear_line(tmp_path: Path) -> None:
    """A witness told to trust no log refuses to start."""
    WITNESS_KEY.save(tmp_path / "w.key")
    run = subprocess.run(
        [sys.executable, "-m", "api.cli", "witness", "--key", str(tmp_path / "w.key")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert (
        run.returncode == 2
        and run.stderr == "uchast: name at least one log to witness: --log VKEY\n"
    )
