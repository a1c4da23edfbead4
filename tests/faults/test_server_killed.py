"""Threat: a server process killed (SIGKILL) mid-load, while clients retry by nonce."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.loadgen import Book
from tests.faults.trial import Trial, run_load, servers, when

pytestmark = pytest.mark.slow

VOTERS = 1500


async def test_sigkill_mid_load_loses_nothing_and_counts_nothing_twice(
    store_url: str, tmp_path: Path
) -> None:
    """Two servers on one database; each is SIGKILLed in turn while 48 clients are casting,
    and started again a moment later. Every ballot ends acknowledged or refused as expected;
    each acknowledged one is in the log once, at its receipt's position; both servers' totals
    equal the generator's; `uchast audit` passes on the exported log."""
    trial = await Trial.create(store_url, tmp_path)
    electorate = trial.electorate(paper=0.2, split=0.1, over_limit=0.05)
    with servers(trial, count=2) as (a, b):
        kills: list[int] = []

        async def kill_and_restart(book: Book) -> None:
            for server, threshold in ((a, VOTERS * 3 // 10), (b, VOTERS * 6 // 10)):
                await when(lambda: len(book.acknowledged) >= threshold)  # noqa: B023
                server.kill()
                kills.append(len(book.acknowledged))
                await asyncio.sleep(0.5)
                await asyncio.to_thread(server.start)

        book = await run_load(
            trial, lambda: [a.url, b.url], electorate, VOTERS, during=kill_and_restart
        )
        assert len(kills) == 2
        print(f"killed at {kills} acknowledged: {book.summary()}")
        lost_connections = sum(n for what, n in book.transient.items() if "connection" in what)
        assert lost_connections > 0, "the kills went unnoticed: nothing was in flight"
        assert book.ballots["online"] > 0 and book.ballots["paper"] > 0
        await trial.check(book, [a.url, b.url])
        for server in (a, b):
            assert "Traceback" not in server.output()
