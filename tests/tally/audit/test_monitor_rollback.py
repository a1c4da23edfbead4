"""Threat (issue 12): the log is rolled back (entries from position 6 on deleted with their tags,
tree nodes and checkpoints, the size set back to 6) and the server restarted. `uchast monitor`
follows the live log from its tiles, passes while it grows, and when the checkpoint it is served
is smaller than one it saw it raises the rollback alarm: a line naming both sizes, the gauge
uchast_monitor_alarm{reason="rollback"} at 1, exit status 3; across its own restarts too (the
last checkpoint seen is in its state file, which `uchast audit --checkpoint` then takes)."""

from __future__ import annotations

from pathlib import Path

from tests.api.servers import free_port
from tests.factories import Keys
from tests.ledger.test_rollback import KEPT, roll_back
from tests.tally.audit.served_log import (
    BASE,
    DEFINED,
    MonitorProcess,
    audit_cli,
    cast,
    metrics,
    prepared,
    served,
    tiles,
    vkeys,
)


def monitor(url: str, keys: Keys, *args: str) -> MonitorProcess:
    return MonitorProcess(url, "--log-vkey", keys.log.verifier.vkey, "--interval", "0.1", *args)


async def test_the_monitor_follows_a_live_log_then_flags_its_rollback(
    store_url: str, tmp_path: Path
) -> None:
    """A monitor (signatures checked on two worker processes) follows a real server through
    three checkpoints, each consistent and audited; stopped, it exits 0. After the rollback and
    a restart of the server, the monitor, started again on its state file, says the log was
    rolled back from 12 to 6 entries, shows it in its metrics while it holds the alarm, and
    exits 3."""
    keys = Keys()
    await prepared(store_url, keys, tmp_path)
    state = str(tmp_path / "monitor.json")
    with served(store_url, tmp_path) as base:
        following = monitor(f"{base}{BASE}/log/", keys, "--state", state, "--workers", "2")
        following.expect(f"checkpoint {DEFINED} ")
        for voters in (range(0, 3), range(3, 8)):
            await cast(base, keys, voters)
            line = following.expect(f"checkpoint {DEFINED + voters.stop} ")
            assert line.endswith(f"{DEFINED + voters.stop} entries audited, PASSED"), line
        assert following.stop() == 0
    published = DEFINED + 8

    await roll_back(store_url)
    port = free_port()
    with served(store_url, tmp_path) as base:
        restarted = monitor(
            f"{base}{BASE}/log/",
            keys,
            *("--state", state, "--metrics-port", str(port), "--hold-alarm", "60"),
        )
        restarted.expect(f"resuming after checkpoint {published} ")
        alarm = restarted.expect("ALARM rollback: ")
        assert (
            f"the log's checkpoint is of {KEPT} entries, fewer than the {published} of a "
            "checkpoint it signed before"
        ) in alarm
        assert "rolled back or truncated" in alarm
        shown = metrics(port)
        assert 'uchast_monitor_alarm{reason="rollback"} 1.0' in shown
        assert 'uchast_monitor_alarm{reason="split-view"} 0.0' in shown
        assert f"uchast_monitor_checkpoint_size {published}.0" in shown
        assert restarted.stop() == 3
        # The monitor's state file is evidence an audit takes as a saved checkpoint.
        audited = audit_cli(f"{base}{BASE}", *vkeys(keys), "--checkpoint", state, "--workers", "0")
        assert audited.returncode == 1, audited.stdout + audited.stderr
        assert f"checkpoint file {state}: step 4 rolled-back" in audited.stdout


async def test_a_running_monitor_flags_the_rollback_when_it_happens(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The log served as static tiles (`uchast export tiles`, re-exported as it changes): the
    monitor keeps running while the log grows, and the re-export after the rollback makes it
    stop with the alarm (no metrics port: at once) and exit 3."""
    keys = Keys()
    await prepared(sqlite_url, keys, tmp_path)
    out = tmp_path / "tiles"
    with served(sqlite_url, tmp_path) as base:
        await cast(base, keys, range(3))
        assert await tiles(sqlite_url, out) == DEFINED + 3
        running = monitor(str(out), keys)
        running.expect(f"checkpoint {DEFINED + 3} ")
        await cast(base, keys, range(3, 8))
        assert await tiles(sqlite_url, out) == DEFINED + 8
        running.expect(f"checkpoint {DEFINED + 8} ")
    await roll_back(sqlite_url)
    assert await tiles(sqlite_url, out) == KEPT
    running.expect(f"ALARM rollback: the log's checkpoint is of {KEPT} entries")
    assert running.wait() == 3
