"""Three real `uchast witness` servers and a policy of 2 of 3: one witness down throughout.

With the other two honest the quorum is met and the served checkpoint carries their two
cosignatures. Then someone holding the log key shows the second witness a fork (a split view):
it refuses the log's real checkpoints from then on, only one witness cosigns, the quorum is not
met, the log keeps serving the last published checkpoint, new receipts say ``cosigned: false``,
and the metrics the alert reads say so.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from api.keys import SERVICE
from api.service import ServiceConfig
from ledger import merkle
from ledger.canonical import canonical
from ledger.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from ledger.cosignature import CosignerKey, verified_cosignatures
from ledger.keys import SignerKey
from ledger.policy import Policy, parse_policy
from tests.api.conftest import VOTER_KEY, VOTING_DAY, Setup
from tests.api.servers import ROOT, free_port, wait_until_up
from tests.api.test_vote_routes import BASE
from tests.factories import Keys, ballot_envelope, opened_ledger, voter_token
from tests.witnessing import body

Client = TestClient[Any, Any]


@contextmanager
def witness_servers(
    tmp_path: Path, log_vkey: str, count: int
) -> Iterator[list[tuple[str, str, subprocess.Popen[bytes]]]]:
    """``count`` witness processes; yields (URL, cosigner vkey, process) for each."""
    found, processes = [], []
    try:
        for i in range(count):
            key = SignerKey.generate(f"witness-{i}.example")
            key.save(tmp_path / f"w{i}.key")
            port = free_port()
            output = open(tmp_path / f"w{i}.log", "wb")  # noqa: SIM115 - closed with the process
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "api.cli", "witness"),
                    *("--key", str(tmp_path / f"w{i}.key")),
                    *("--db", f"sqlite:///{tmp_path / f'w{i}.db'}"),
                    *("--log", log_vkey, "--port", str(port)),
                ],
                cwd=ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
            processes.append(process)
            found.append((f"http://127.0.0.1:{port}", CosignerKey.of(key.verifier).vkey))
        for (url, _), process in zip(found, processes, strict=True):
            wait_until_up(url, process)
        yield [(url, vkey, p) for (url, vkey), p in zip(found, processes, strict=True)]
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture
async def setup(
    aiohttp_client: Callable[[Any], Awaitable[Client]], sqlite_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Client, Keys, Policy, list[str]]]:
    keys = Keys()
    async with opened_ledger(sqlite_url, keys):
        pass
    with witness_servers(tmp_path, keys.log.verifier.vkey, 3) as up:
        up[2][2].terminate()  # W3 is down from the start
        up[2][2].wait(timeout=10)
        lines = [
            f"log {keys.log.verifier.vkey}",
            f"witness W1 {up[0][1]} {up[0][0]}",
            f"witness W2 {up[1][1]} {up[1][0]}",
            f"witness W3 {up[2][1]} {up[2][0]}",
            "group two-of-three 2 W1 W2 W3",
            "quorum two-of-three",
        ]
        policy = parse_policy("\n".join(lines) + "\n")
        config = ServiceConfig(
            sqlite_url,
            keys.log,
            voter_key=VOTER_KEY,
            clock=lambda: VOTING_DAY,
            witness_policy=policy,
        )
        client = await aiohttp_client(create_app(config))
        yield client, keys, policy, [url for url, _, _ in up]


async def cast(client: Client, keys: Keys, n: int) -> dict[str, Any]:
    response = await client.post(
        f"{BASE}/ballots", json=ballot_envelope(keys.site, voter_token(n), ["L01"])
    )
    assert response.status == 201
    document: dict[str, Any] = await response.json()
    return document


async def served(client: Client) -> tuple[int, str]:
    response = await client.get(f"{BASE}/log/checkpoint")
    return response.status, await response.text()


async def wait_for(predicate: Callable[[], Awaitable[bool]], seconds: float = 15) -> None:
    for _ in range(int(seconds * 10)):
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


def receipt_verifies(receipt: dict[str, Any], keys: Keys) -> Checkpoint:
    checkpoint = verify_checkpoint(receipt["checkpoint"], keys.log.verifier)
    leaf = merkle.leaf_hash(canonical(receipt["entry"]))
    hashes = [base64.b64decode(h) for h in receipt["proof"]["hashes"]]
    merkle.verify_inclusion(leaf, receipt["position"], checkpoint.size, hashes, checkpoint.root)
    return checkpoint


async def test_quorum_two_of_three_with_one_down_then_one_forked(
    setup: tuple[Client, Keys, Policy, list[str]],
) -> None:
    """Met with two honest witnesses; not met once one of them was shown a fork."""
    client, keys, policy, urls = setup
    ledger = await client.app[SERVICE].ledger("test-2018")
    first = await cast(client, keys, 1)
    size = await ledger.size()

    async def published_at_size() -> bool:
        status, note = await served(client)
        return status == 200 and note.split("\n")[1] == str(size)

    await wait_for(published_at_size)
    _, note = await served(client)
    cosigned = verified_cosignatures(note, policy.witness_keys())
    assert sorted(c.witness for c in cosigned) == ["W1", "W2"]
    assert policy.satisfied([c.witness for c in cosigned])
    receipt = await (await client.get(f"{BASE}/receipts/{first['receipt']}")).json()
    assert receipt["cosigned"] is True and receipt["checkpoint"] == note
    receipt_verifies(receipt, keys)

    # A split view: the log key signs, for W2 only, a tree that shares the published prefix
    # and then differs. W2 cosigns it: it extends what W2 saw.
    tree = merkle.MemoryTree()
    tree.extend_hashes([e.leaf_hash for e in await ledger.entries(0, size)])
    tree.append(b"an entry nobody else sees")
    fork = sign_checkpoint(Checkpoint(ledger.origin, size + 1, tree.root()), keys.log)
    request = urllib.request.Request(
        f"{urls[1]}/add-checkpoint", data=body(size, tree.consistency_proof(size), fork)
    )
    assert urllib.request.urlopen(request, timeout=5).status == 200

    second = await cast(client, keys, 2)
    third = await cast(client, keys, 3)
    grown = await ledger.size()
    await asyncio.sleep(3)  # three polls: W2 refuses each time, W1 alone is not a quorum
    status, still = await served(client)
    assert status == 200 and still == note  # the last published checkpoint, unchanged

    receipt = await (await client.get(f"{BASE}/receipts/{third['receipt']}")).json()
    assert receipt["cosigned"] is False
    assert receipt_verifies(receipt, keys).size == grown
    assert verified_cosignatures(receipt["checkpoint"], policy.witness_keys()) == []
    old = await (await client.get(f"{BASE}/receipts/{first['receipt']}")).json()
    assert old["cosigned"] is True
    assert second["position"] < third["position"]

    metrics = await (await client.get("/metrics")).text()
    e = 'election="test-2018"'
    assert value(metrics, f"uchast_witness_quorum_met{{{e}}}") == 0
    assert value(metrics, f"uchast_cosigned_checkpoint_size{{{e}}}") == size
    assert value(metrics, f"uchast_witness_quorum_lag_seconds{{{e}}}") > 2
    assert value(metrics, f'uchast_witness_acknowledged_size{{{e},witness="W1"}}') == grown
    assert value(metrics, f'uchast_witness_lag_seconds{{{e},witness="W1"}}') == 0
    assert value(metrics, f'uchast_witness_behind_entries{{{e},witness="W2"}}') > 0
    for witness in ("W2", "W3"):
        assert value(metrics, f'uchast_witness_lag_seconds{{{e},witness="{witness}"}}') > 2
        assert value(metrics, f'uchast_witness_failures_total{{{e},witness="{witness}"}}') >= 2


def value(metrics: str, series: str) -> float:
    """The sample of ``series`` in a Prometheus text exposition."""
    [line] = [line for line in metrics.splitlines() if line.startswith(series + " ")]
    return float(line.split(" ")[-1])


async def test_without_a_policy_receipts_are_not_cosigned(service: Setup) -> None:
    """No policy: /log/checkpoint is the latest signed checkpoint and receipts say false."""
    accepted = await cast(service.client, service.keys, 1)
    receipt = await (await service.client.get(f"{BASE}/receipts/{accepted['receipt']}")).json()
    assert receipt["cosigned"] is False
    status, note = await served(service.client)
    assert status == 200 and note == receipt["checkpoint"]
    assert receipt_verifies(receipt, service.keys).size == int(note.split("\n")[1])


async def test_quorum_none_publishes_every_checkpoint(
    aiohttp_client: Callable[[Any], Awaitable[Client]], sqlite_url: str
) -> None:
    """`quorum none`: each checkpoint is published as it is signed, without cosignatures."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys):
        pass
    config = ServiceConfig(
        sqlite_url,
        keys.log,
        voter_key=VOTER_KEY,
        clock=lambda: VOTING_DAY,
        witness_policy=parse_policy("quorum none\n"),
    )
    client = await aiohttp_client(create_app(config))
    accepted = await cast(client, keys, 1)

    async def cosigned() -> bool:
        response = await client.get(f"{BASE}/receipts/{accepted['receipt']}")
        return bool((await response.json())["cosigned"])

    await wait_for(cosigned)
    status, note = await served(client)
    assert status == 200 and verify_checkpoint(note, keys.log.verifier).size > accepted["position"]


def test_serve_refuses_a_bad_policy_in_one_line(tmp_path: Path) -> None:
    """A policy error names the file's line; serve exits before listening."""
    keys = Keys()
    keys.log.save(tmp_path / "log.key")
    (tmp_path / "policy").write_text("witness W1 nonsense\nquorum W1\n")
    run = subprocess.run(
        [
            *(sys.executable, "-m", "api.cli", "serve"),
            *("--db", f"sqlite:///{tmp_path / 'u.db'}", "--log-key", str(tmp_path / "log.key")),
            *("--witness-policy", str(tmp_path / "policy")),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert run.stderr.startswith("uchast: policy line 1: ")
