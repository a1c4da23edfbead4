"""bench/voting_day.py resumed: stopped after its first phase, interrupted in the middle of a
chunk of voters, then run to the end on the same database, it still ends with every server's
totals equal to the generator's, the audit passed and each ballot in the log exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.loadgen import BALLOT_TYPES
from ledger.entry import entry_payload
from ledger.store import open_store
from tests.conftest import PG_ADMIN_URL, drop_pg_database, require_postgres
from tests.faults.patroni import require_patroni

ROOT = Path(__file__).resolve().parents[2]


def voting_day(*args: str) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "voting_day.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "UCHAST_BENCH_PG": PG_ADMIN_URL},
        timeout=240,
    )
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "{}"
    return done.returncode, json.loads(last), done.stderr


async def logged_nonces(db: str, election: str) -> list[str]:
    store = open_store(db)
    await store.open()
    try:
        size = await store.size(election)
        return [
            entry_payload(entry.data)["nonce"]
            async for entry in store.stream(election, 0, size)
            if entry.type in BALLOT_TYPES
        ]
    finally:
        await store.close()


def test_a_run_stopped_and_interrupted_resumes_to_exact_totals(tmp_path: Path) -> None:
    require_postgres()
    work = tmp_path / "run"
    small = ["--scale", "0.02", "--servers", "1", "--concurrency", "4", "--signers", "1"]
    try:
        code, line, err = voting_day(
            *small, "--chunk", "30", "--work", str(work), "--stop-after", "morning-peak"
        )
        assert code == 3, err
        assert line["done"] == ["setup", "morning-peak"]
        assert f"--resume {work}" in err

        # Like a Ctrl-C with 20 voters of the quiet phase's first chunk answered but not saved.
        code, line, err = voting_day("--resume", str(work), "--interrupt-after-voters", "20")
        assert code == 130, err
        assert line["stopped"] == "interrupted" and "quiet" not in line["done"]

        code, line, err = voting_day("--resume", str(work), "--keep")
        assert code == 0, err
        assert line["ok"] and line["totals_match"] and line["audit"]["ok"], err
        assert line["sittings"] == 3
        assert line["replays"] > 0  # the interrupted chunk, sent again
        assert line["surprises"] == 0
        assert line["log"]["duplicates"] == line["log"]["lost"] == 0
        assert set(line["peak_rss_mib"]["overall"]) == {"server-0", "generator"}
        assert line["results_reads"]["requests"] > 0  # the results page was open all along
        assert set(line["phases"]) == {"morning-peak", "quiet", "evening-peak"}
        assert sum(p["voters"] for p in line["phases"].values()) == line["voters"]

        state = json.loads((work / "state.json").read_text())
        nonces = asyncio.run(logged_nonces(state["db"], "zhytomyr-2018"))
        assert len(nonces) == len(set(nonces)) == line["acknowledged"]
        assert line["acknowledged"] + sum(line["refused"].values()) == line["ballots_sent"]
    finally:
        if (work / "state.json").exists():
            drop_pg_database(json.loads((work / "state.json").read_text())["db"])


@pytest.mark.parametrize("nodes", [2, 3])
def test_a_failover_in_the_morning_peak_loses_no_acknowledged_ballot(
    tmp_path: Path, nodes: int
) -> None:
    """--failover: the primary's postmaster SIGKILLed as the morning peak begins; the run still
    ends with each acknowledged ballot once in the log, exact totals on both servers and the
    audit passed with every checkpoint seen while voting, and it times the outage. With a third
    node too (the new primary's synchronous standby is then not the old primary)."""
    require_patroni()
    work = tmp_path / "run"
    small = ["--scale", "0.1", "--servers", "2", "--concurrency", "16", "--signers", "1"]
    code, line, err = voting_day(
        *small, "--work", str(work), "--failover", "0.2", "--cluster-nodes", str(nodes)
    )
    assert code == 0, err
    assert line["failover"]["nodes"] == nodes
    assert line["ok"] and line["totals_match"] and line["audit"]["ok"], err
    failover = line["failover"]
    assert failover["struck"] and failover["killed"] in ("pg1", "pg2")
    assert 0 < failover["promoted_s"] < failover["first_ack_s"]
    assert failover["probes"] > 0
    assert line["log"]["duplicates"] == line["log"]["lost"] == line["log"]["unacknowledged"] == 0
    assert line["surprises"] == 0
    # The outage was seen (503 store-unavailable, retried), and no answer was a 500.
    assert line["transient"].get("503 store-unavailable", 0) > 0
    assert not any(kind.startswith("500") for kind in line["transient"])
    assert line["audit"]["checkpoints_given"] == failover["checkpoints_seen"] > 1
    # Probes are ballots like any other: acknowledged ones are in the log and the totals.
    assert line["acknowledged"] + sum(line["refused"].values()) == (
        line["ballots_sent"] + failover["probes"]
    )


def test_a_failover_run_is_one_sitting(tmp_path: Path) -> None:
    """It cannot be stopped to resume later, nor resumed: its cluster goes with the sitting."""
    code, _, err = voting_day("--failover", "1", "--stop-after", "setup")
    assert code == 2 and "one sitting" in err
    work = tmp_path / "run"
    work.mkdir()
    state = {"args": {"failover": 1.0}, "db": "postgresql://unused/none", "total": 1}
    (work / "state.json").write_text(json.dumps(state))
    code, _, err = voting_day("--resume", str(work))
    assert code == 1 and "cannot be resumed" in err
