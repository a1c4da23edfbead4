"""While an election's results are sealed (``results = "sealed-until-close"``) its entry bundles
answer 403, yet the log is watched most closely then. The monitor checks the checkpoints'
consistency from the level-0 hash tiles (the leaf hashes, always public): a rollback or a split
view is caught during the vote; the audit of the entries waits, and catches up once the
bundles open at the close."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.api.servers import ROOT
from tests.factories import Keys, example_definition
from tests.tally.audit.served_log import BASE, DEFINED, cast, prepared, served
from tests.tally.audit.test_monitor_split_view import history

AFTER_CLOSE = "2018-10-12T12:00:00+03:00"


def once(url: str, keys: Keys, state: Path) -> tuple[int, list[str]]:
    command = [sys.executable, "-m", "api.cli", "monitor", url, "--once"]
    command += ["--log-vkey", keys.log.verifier.vkey, "--state", str(state)]
    done = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, (done.stdout + done.stderr).splitlines()


async def test_sealed_entries_the_tree_is_checked_and_the_audit_catches_up(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A real server, sealed: the monitor passes each checkpoint from the hash tiles, saying
    none of the entries is audited yet and why (403); restarted after the close, the server
    opens the bundles and the monitor audits every entry."""
    keys = Keys()
    sealed = {**example_definition(), "results": "sealed-until-close"}
    await prepared(sqlite_url, keys, tmp_path, sealed)
    state = tmp_path / "monitor.json"
    with served(sqlite_url, tmp_path) as base:
        for voters in (range(0, 2), range(2, 5)):
            await cast(base, keys, voters)
            code, lines = once(f"{base}{BASE}/log/", keys, state)
            size = DEFINED + voters.stop
            assert code == 0, lines
            assert lines[-1].startswith(f"checkpoint {size} "), lines
            assert (
                f": consistent (from the hash tiles), 0 of {size} entries audited (the entry "
                "bundles cannot be read: "
            ) in lines[-1]
            assert "HTTP 403" in lines[-1]
    with served(sqlite_url, tmp_path, ("--clock", AFTER_CLOSE)) as base:
        code, lines = once(f"{base}{BASE}/log/", keys, state)
    assert code == 0, lines
    assert lines[-1].endswith(f": consistent, {DEFINED + 5} entries audited, PASSED"), lines


async def test_a_split_view_is_caught_from_the_hash_tiles_alone(tmp_path: Path) -> None:
    """Static tiles without their entry bundles: the monitor saw 12 entries of one history;
    the other history, grown to 14 under the same key, does not extend them: split view."""
    keys = Keys()
    first = await history(tmp_path, "first", keys, range(8))
    second = await history(tmp_path, "second", keys, range(100, 110))
    for out in (first, second):
        shutil.rmtree(out / "tile" / "entries")
    state = tmp_path / "monitor.json"
    code, lines = once(str(first), keys, state)
    assert code == 0 and "0 of 12 entries audited" in lines[-1], lines
    code, lines = once(str(second), keys, state)
    assert code == 4, lines
    assert lines[-1].startswith("ALARM split-view: the checkpoint of 12 entries seen before")
