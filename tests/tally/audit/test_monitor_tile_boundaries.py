"""The monitor across tile boundaries: a log of a few hundred entries read as full and partial
entry bundles or level-0 hash tiles, the state file's checkpoint inside a tile, a restart that
re-reads the log from its first entry; every path reaches the same tree and the same verdict."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ledger.casting import Casting
from tally.audit.monitor import Monitor
from tests.factories import Keys, opened_ledger
from tests.tally.audit.served_log import DEFINED, ballot, tiles


@pytest.mark.parametrize("bundles", [True, False], ids=["entry bundles", "hash tiles only"])
async def test_the_monitor_follows_across_tiles_and_restarts(tmp_path: Path, bundles: bool) -> None:
    """Checkpoints of 100, 300 and 600 entries (inside the first tile, past its end, past the
    second), polled by one monitor, then by a restarted one from its state file: each passes,
    the tree's root is the checkpoint's, and with bundles every entry is audited."""
    keys = Keys()
    url = f"sqlite:///{tmp_path / 'log.db'}"
    state = str(tmp_path / "monitor.json")
    out = tmp_path / "tiles"
    monitor: Monitor | None = None
    async with opened_ledger(url, keys) as ledger:
        casting = Casting(ledger)
        cast = 0
        for size in (100, 300, 600):
            while DEFINED + cast < size:
                await casting.submit(ballot(keys, cast))
                cast += 1
            assert await tiles(url, out) == size
            if not bundles:
                shutil.rmtree(out / "tile" / "entries")
            if monitor is None or size == 600:  # the last poll by a restarted monitor
                monitor = Monitor(str(out), keys.log.verifier.vkey, state=state)
            assert monitor.poll() is None
            assert monitor.last is not None and monitor.last.size == size
            assert monitor.tree.size == size and monitor.tree.root() == monitor.last.root
            assert monitor.audited == (size if bundles else 0)
