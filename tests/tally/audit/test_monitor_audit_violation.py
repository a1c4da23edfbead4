"""Threat: a log that stays append-only and consistent but takes in an entry the rules refuse
(a broken or dishonest server appending past the rules). The monitor replays each new entry
through the incremental audit and raises the audit alarm (exit 7) naming the violation."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.tally.audit.served_log import MonitorProcess, tiles
from tests.tally.audit.test_smuggled_ballot import ballot, smuggle
from tests.tally.election_log import AuditKeys, election_log


async def test_a_smuggled_ballot_raises_the_audit_alarm(tmp_path: Path) -> None:
    """Honest entries pass; then a third large project for a voter who holds two, appended
    straight through the ledger and signed into the next checkpoint: alarm, exit 7."""
    keys = AuditKeys()
    url = f"sqlite:///{tmp_path / 'log.db'}"
    out = tmp_path / "tiles"
    state = str(tmp_path / "monitor.json")
    watched = ("--log-vkey", keys.log.verifier.vkey, "--state", state, "--once")
    async with election_log(url, keys) as log:
        await log.ballot(1, ["L01", "S01"])
        await log.ballot(1, ["L02"])
        size = await tiles(url, out)
        honest = MonitorProcess(str(out), *watched)
        await asyncio.to_thread(honest.expect, f"checkpoint {size} ")
        assert await asyncio.to_thread(honest.wait) == 0

        smuggled = await smuggle(log, ballot(1, ["L03"]))
        await tiles(url, out)
    flagged = MonitorProcess(str(out), *watched)
    alarm = await asyncio.to_thread(flagged.expect, "ALARM audit: ")
    assert f"entry {smuggled}: step 5 limit: expected at most 2 in large" in alarm
    assert await asyncio.to_thread(flagged.wait) == 7
