"""Threat: the same voter's ballot sent to two server processes at once, against the same read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.factories import Keys, opened_ledger

ROOT = Path(__file__).resolve().parents[2]
VOTERS = 150


def save_keys(keys: Keys, keydir: Path) -> None:
    keydir.mkdir(exist_ok=True)
    keys.log.save(keydir / "log.key")
    keys.site.save(keydir / "site.key")


async def test_two_processes_never_both_win_the_same_read(store_url: str, tmp_path: Path) -> None:
    """Two processes cast for the same 150 voters against one read: exactly one wins each."""
    keys = Keys()
    async with opened_ledger(store_url, keys) as ledger:
        after = await ledger.size()
    save_keys(keys, tmp_path / "keys")
    command = [sys.executable, "-m", "tests.ledger.writer_process", "race", store_url]
    args = [str(tmp_path / "keys"), str(after), str(VOTERS)]
    # One process walks the voters upwards, the other downwards: they collide in the middle.
    processes = [
        subprocess.Popen([*command, *args, order], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for order in ("up", "down")
    ]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
    (tmp_path / "keys" / "go").touch()
    outcomes = []
    for process in processes:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0
        outcomes += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(outcomes) == 2 * VOTERS
    wins = [o for o in outcomes if "position" in o]
    assert len({o["pid"] for o in wins}) == 2, "both processes must have won some voters"
    assert sorted(o["voter"] for o in wins) == list(range(VOTERS))
    assert all(o["refused"] == "condition-failed" for o in outcomes if "refused" in o)
    async with opened_ledger(store_url, keys) as ledger:
        assert await ledger.size() == after + VOTERS
        assert sorted(o["position"] for o in wins) == list(range(after, after + VOTERS))
