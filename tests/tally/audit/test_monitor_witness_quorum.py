"""Threat: a checkpoint published without its witnesses (the log shows the monitor a tree no
witness checked, as a log hiding a split view would). With ``--witness-policy`` the monitor
counts the cosignatures (C2SP cosignature/v1) of the policy's witnesses on each checkpoint and
raises the witness-quorum alarm (exit 6) unless its quorum is met; lines of keys the policy
does not name count for nothing; against a real server and real witnesses it reads their
cosignatures as the server wrote them. Also: a checkpoint not signed by the log key (exit 5)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from ledger.casting import Casting
from ledger.cosignature import CosignerKey, cosign, cosignature_line
from ledger.keys import SignerKey
from tests.api.servers import ROOT
from tests.api.test_witness_quorum import witness_servers
from tests.factories import Keys, opened_ledger
from tests.tally.audit.served_log import BASE, DEFINED, ballot, cast, prepared, served, tiles

WITNESSES = [SignerKey.generate(f"witness-{n}.example") for n in range(3)]


async def published(tmp: Path, keys: Keys) -> Path:
    url = f"sqlite:///{tmp / 'log.db'}"
    async with opened_ledger(url, keys) as ledger:
        for n in range(3):
            await Casting(ledger).submit(ballot(keys, n))
    await tiles(url, tmp / "tiles")
    return tmp / "tiles"


def cosigned_by(out: Path, *signers: SignerKey) -> None:
    """Rewrite the exported checkpoint with cosignature lines by ``signers``."""
    note = (out / "checkpoint").read_text()
    body = note[: note.index("\n\n") + 1]
    lines = [cosignature_line(s, body, int(time.time())) for s in signers]
    (out / "checkpoint").write_text(cosign(note, lines))


def policy(tmp: Path, keys: Keys) -> str:
    path = tmp / "policy.txt"
    path.write_text(
        f"log {keys.log.verifier.vkey}\n"
        + "".join(
            f"witness w{n} {CosignerKey.of(w.verifier).vkey}\n" for n, w in enumerate(WITNESSES)
        )
        + "group two-of-three 2 w0 w1 w2\nquorum two-of-three\n"
    )
    return str(path)


def run(out: Path | str, *args: str) -> tuple[int, list[str]]:
    """`uchast monitor DIR --once ARGS`: its exit status and output lines."""
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "monitor", str(out), "--once", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, (done.stdout + done.stderr).splitlines()


async def test_the_quorum_of_the_policy_is_checked_on_each_checkpoint(tmp_path: Path) -> None:
    """One of three witnesses and a stranger cosigned: alarm, naming who did; two of three:
    the checkpoint passes and the line says by whom."""
    keys = Keys()
    out = await published(tmp_path, keys)
    watched = ("--log-vkey", keys.log.verifier.vkey, "--witness-policy", policy(tmp_path, keys))

    cosigned_by(out, WITNESSES[1], SignerKey.generate("stranger.example"))
    code, lines = run(out, *watched)
    assert code == 6, lines
    assert lines[-1] == (
        f"ALARM witness-quorum: the checkpoint of {DEFINED + 3} entries is cosigned by w1 of "
        "the policy: not its quorum (two-of-three)"
    )

    await tiles(f"sqlite:///{tmp_path / 'log.db'}", out)
    cosigned_by(out, WITNESSES[2], WITNESSES[0])
    code, lines = run(out, *watched)
    assert code == 0, lines
    assert lines[-1].endswith("cosigned by w0, w2 (quorum met), PASSED"), lines


async def test_a_checkpoint_the_log_key_did_not_sign_is_flagged(tmp_path: Path) -> None:
    """The monitor trusts one log key: a checkpoint under another key of the same name is a
    bad-signature alarm (exit 5)."""
    keys = Keys()
    out = await published(tmp_path, keys)
    other = Keys()
    code, lines = run(out, "--log-vkey", other.log.verifier.vkey)
    assert code == 5, lines
    assert lines[-1].startswith("ALARM bad-signature: the checkpoint served does not verify: ")


async def test_a_served_log_cosigned_by_real_witnesses_meets_the_quorum(
    sqlite_url: str, tmp_path: Path
) -> None:
    """`uchast serve --witness-policy` with two real `uchast witness` processes: the monitor,
    given the same policy, counts both cosignatures on the published checkpoint; a monitor whose
    policy wants a witness this log does not use raises the alarm."""
    keys = Keys()
    await prepared(sqlite_url, keys, tmp_path)
    with witness_servers(tmp_path, keys.log.verifier.vkey, 2) as up:
        policy = tmp_path / "policy.txt"
        policy.write_text(
            f"log {keys.log.verifier.vkey}\n"
            + "".join(f"witness W{i + 1} {vkey} {url}\n" for i, (url, vkey, _) in enumerate(up))
            + "group both all W1 W2\nquorum both\n"
        )
        with served(sqlite_url, tmp_path, ("--witness-policy", str(policy))) as base:
            await cast(base, keys, range(3))
            url = f"{base}{BASE}/log/"
            watched = ("--log-vkey", keys.log.verifier.vkey, "--witness-policy", str(policy))
            deadline = time.monotonic() + 20
            while True:  # the checkpoint is published once both witnesses cosigned it
                code, lines = run(url, *watched)
                if code == 0 and lines[-1].startswith(f"checkpoint {DEFINED + 3} "):
                    break
                assert time.monotonic() < deadline, lines
                await asyncio.sleep(0.2)
            assert lines[-1].endswith("cosigned by W1, W2 (quorum met), PASSED"), lines

            other = tmp_path / "other.txt"
            stranger = CosignerKey.of(WITNESSES[0].verifier).vkey
            other.write_text(f"witness S {stranger}\nquorum S\n")
            code, lines = run(
                url, "--log-vkey", keys.log.verifier.vkey, "--witness-policy", str(other)
            )
            assert code == 6, lines
            assert "is cosigned by no witness of the policy: not its quorum (S)" in lines[-1]


async def test_a_policy_for_another_log_is_refused_at_start(tmp_path: Path) -> None:
    """A policy whose log lines name other log keys says nothing about this log's quorum: the
    monitor refuses to start (exit 2), naming the key, instead of counting cosignatures."""
    keys = Keys()
    out = await published(tmp_path, keys)
    other = Keys()
    code, lines = run(
        out, "--log-vkey", keys.log.verifier.vkey, "--witness-policy", policy(tmp_path, other)
    )
    assert code == 2, lines
    assert f"do not name the log key {keys.log.verifier.key_id}" in lines[-1], lines
