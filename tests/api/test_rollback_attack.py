"""Threat (issue 12, the attack as it was reported): someone with the database but not the log
key deletes the rows of the entries from position 6 on (entries, tags, tree nodes, signed and
cosigned checkpoints), sets the log's size back to 6 and restarts the server. Before, the server
signed the shorter history and `uchast audit` passed. Now every party outside the database says
so: the server refuses to write, a witness refuses the shorter checkpoint, `uchast audit
--checkpoint` fails naming the checkpoint a client had saved, and `uchast monitor` raises its
rollback alarm. The same again when an insider also sets the checkpoint journal aside, so that the
server does sign the shorter history: only the parties outside can stop it then, and they do."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp

from tests.api.test_witness_quorum import value, witness_servers
from tests.factories import ELECTION, Keys
from tests.ledger.test_rollback import KEPT, roll_back
from tests.tally.audit.served_log import (
    BASE,
    DEFINED,
    MonitorProcess,
    audit_cli,
    ballot,
    cast,
    prepared,
    served,
    vkeys,
)

BALLOTS = 8
ORIGIN = f"uchast.local/{ELECTION}"
ROLLBACK_EXIT = 3  # `uchast monitor`'s exit status for a rollback (README, Monitoring)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def published(base: str, size: int, witnesses: int) -> str:
    """The checkpoint the server publishes, once it is at ``size`` with the witness lines."""
    for _ in range(300):
        status, note = get(f"{base}{BASE}/log/checkpoint")
        if status == 200 and note.split("\n")[1] == str(size):
            signatures = note[note.index("\n\n") + 2 :].splitlines()
            assert len(signatures) == 1 + witnesses, note
            return note
        await asyncio.sleep(0.1)
    raise AssertionError(f"no checkpoint of {size} entries was published")


def monitor_once(base: str, keys: Keys, policy: Path, state: Path) -> tuple[int, list[str]]:
    """One pass of `uchast monitor` over the log's tiles, against the witness policy."""
    process = MonitorProcess(
        f"{base}{BASE}/log/",
        *("--log-vkey", keys.log.verifier.vkey, "--witness-policy", str(policy)),
        *("--state", str(state), "--once"),
    )
    status = process.wait(timeout=60)
    lines = []
    while not process.lines.empty():
        line = process.lines.get()
        if line is not None:
            lines.append(line)
    return status, lines


def audit_fails_naming(base: str, keys: Keys, saved: Path) -> str:
    result = audit_cli(f"{base}{BASE}", *vkeys(keys), "--checkpoint", str(saved))
    assert result.returncode != 0, result.stdout
    assert f"checkpoint file {saved}" in result.stdout, result.stdout
    assert "rolled back" in result.stdout, result.stdout
    return result.stdout


async def test_a_rolled_back_log_is_refused_by_server_witness_audit_and_monitor(
    store_url: str, tmp_path: Path
) -> None:
    """Served with one witness (quorum 1): 12 entries cosigned and saved by a client, audited
    and monitored clean. Rolled back to 6: the server refuses ballots (log-rolled-back) and
    /readyz is 503; the audit with the saved checkpoint fails naming it; the monitor exits with
    its rollback status. With the journal set aside as well, the server signs 8 entries of
    another history: the witness refuses it and keeps 12, nothing is published, and the audit
    and the monitor still fail."""
    keys = Keys()
    await prepared(store_url, keys, tmp_path)
    saved, state = tmp_path / "saved.checkpoint", tmp_path / "monitor.json"
    with witness_servers(tmp_path, keys.log.verifier.vkey, 1) as [(witness, cosigner, _)]:
        policy = tmp_path / "witnesses.policy"
        policy.write_text(
            f"log {keys.log.verifier.vkey}\nwitness W1 {cosigner} {witness}\nquorum W1\n"
        )
        args = ("--witness-policy", str(policy))

        with served(store_url, tmp_path, args) as base:
            await cast(base, keys, range(BALLOTS))
            saved.write_text(await published(base, DEFINED + BALLOTS, witnesses=1))
            status, lines = monitor_once(base, keys, policy, state)
            assert status == 0, lines
            clean = audit_cli(f"{base}{BASE}", *vkeys(keys), "--checkpoint", str(saved))
            assert clean.returncode == 0, clean.stdout + clean.stderr

        await roll_back(store_url)

        # The server holds the journal of what it published: it refuses to go on.
        with served(store_url, tmp_path, args) as base:
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"{base}{BASE}/ballots", json=ballot(keys, 99)) as r,
            ):
                problem = await r.json()
                assert r.status == 500 and problem["code"] == "log-rolled-back", problem
            status, ready = get(f"{base}/readyz")
            assert status == 503 and "log-rolled-back" in ready
            audit_fails_naming(base, keys, saved)
            status, lines = monitor_once(base, keys, policy, state)
            assert status == ROLLBACK_EXIT and any("rollback" in line for line in lines), lines

        # An insider sets the journal aside too: the server signs the other history...
        (tmp_path / "log.key.checkpoints").rename(tmp_path / "set-aside.checkpoints")
        with served(store_url, tmp_path, args) as base:
            await cast(base, keys, range(100, 102))
            metric = f'uchast_witness_failures_total{{election="{ELECTION}",witness="W1"}}'
            for _ in range(300):
                _, metrics = get(f"{base}/metrics")
                if metric in metrics and value(metrics, metric) >= 1:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the server never heard the witness refuse")
            # ...which the witness refuses: it keeps the 12 entries it cosigned.
            _, kept = get(f"{witness}/metrics")
            assert f'uchast_witness_cosigned_size{{origin="{ORIGIN}"}} {DEFINED + BALLOTS}' in kept
            status, note = get(f"{base}{BASE}/log/checkpoint")
            assert status != 200 or int(note.split("\n")[1]) <= KEPT, note
            audit_fails_naming(base, keys, saved)
            status, lines = monitor_once(base, keys, policy, state)
            assert status == ROLLBACK_EXIT, lines
