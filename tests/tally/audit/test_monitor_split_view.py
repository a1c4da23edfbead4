"""Threat: a split view. The log key signs two histories and the log shows the monitor one, then
the other: a checkpoint of the same size with another root, or a bigger one whose tree does not
extend the entries the monitor read. Served here by a small aiohttp app that switches the tiles
it serves (both trees written by the real write path, signed by the same log key); the monitor
raises the split-view alarm, shows it in its metrics and exits 4."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web

from ledger.casting import Casting
from tests.api.servers import free_port
from tests.factories import Keys, opened_ledger
from tests.tally.audit.served_log import DEFINED, MonitorProcess, ballot, metrics, tiles


async def history(tmp: Path, name: str, keys: Keys, voters: range) -> Path:
    """A log of the election and ballots by ``voters``, exported as tiles under tmp/name."""
    url = f"sqlite:///{tmp / name}.db"
    async with opened_ledger(url, keys) as ledger:
        casting = Casting(ledger)
        for n in voters:
            await casting.submit(ballot(keys, n))
    await tiles(url, tmp / name)
    return tmp / name


class Forger:
    """Serves the tiles of one directory or another under /log/, as the operator chooses."""

    def __init__(self, shown: Path) -> None:
        self.shown = shown
        self.app = web.Application()
        self.app.router.add_get("/v1/elections/{election}/log/{path:.+}", self.serve)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        file = self.shown / request.match_info["path"]
        if not file.is_file():
            raise web.HTTPNotFound()
        return web.Response(body=file.read_bytes())


@pytest.mark.parametrize(
    ("ballots", "said"),
    [
        (8, f"two checkpoints of {DEFINED + 8} entries with different roots"),
        (10, f"it does not extend the {DEFINED + 8} entries seen before (split view)"),
    ],
)
async def test_the_other_history_served_live_is_a_split_view(
    tmp_path: Path, ballots: int, said: str
) -> None:
    """The monitor passes the first history's checkpoint of 12 entries; served the second
    history's checkpoint of the same size (another root) or of a bigger one (a tree whose
    first 12 leaves are not those read), it raises the split-view alarm saying which."""
    keys = Keys()
    first = await history(tmp_path, "first", keys, range(8))
    second = await history(tmp_path, "second", keys, range(100, 100 + ballots))
    forger = Forger(first)
    runner = web.AppRunner(forger.app)
    await runner.setup()
    port, metrics_port = free_port(), free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        url = f"http://127.0.0.1:{port}/v1/elections/test-2018/log/"
        monitor = MonitorProcess(
            url,
            *("--log-vkey", keys.log.verifier.vkey, "--interval", "0.1"),
            *("--metrics-port", str(metrics_port), "--hold-alarm", "60"),
        )
        await asyncio.to_thread(monitor.expect, f"checkpoint {DEFINED + 8} ")
        forger.shown = second
        alarm = await asyncio.to_thread(monitor.expect, "ALARM split-view: ")
        assert said in alarm
        shown = await asyncio.to_thread(metrics, metrics_port)
        assert 'uchast_monitor_alarm{reason="split-view"} 1.0' in shown
        assert 'uchast_monitor_alarm{reason="rollback"} 0.0' in shown
        assert await asyncio.to_thread(monitor.stop) == 4
    finally:
        await runner.cleanup()


async def test_a_bigger_tree_that_does_not_extend_the_one_seen_is_a_split_view(
    tmp_path: Path,
) -> None:
    """After the monitor saw 12 entries of the first history (its state file), the second
    history grown to 14 entries is signed by the same key, but its tree does not start with the
    12 entries read: split view, exit 4, from the state file alone (--once)."""
    keys = Keys()
    first = await history(tmp_path, "first", keys, range(8))
    second = await history(tmp_path, "second", keys, range(100, 110))
    state = str(tmp_path / "monitor.json")
    vkey = ("--log-vkey", keys.log.verifier.vkey, "--state", state, "--once")
    honest = MonitorProcess(str(first), *vkey)
    await asyncio.to_thread(honest.expect, f"checkpoint {DEFINED + 8} ")
    assert await asyncio.to_thread(honest.wait) == 0
    forked = MonitorProcess(str(second), *vkey)
    alarm = await asyncio.to_thread(forked.expect, "ALARM split-view: ")
    assert f"the checkpoint of {DEFINED + 8} entries seen before (the state file's" in alarm
    assert f"is not the tree of the log's first {DEFINED + 8} entries now served" in alarm
    assert await asyncio.to_thread(forked.wait) == 4
