"""Threat: two server processes writing one election's log at once (the scaled-out topology)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.trial import Trial, run_load, servers

pytestmark = pytest.mark.slow

VOTERS = 1200


async def test_two_servers_on_one_database_count_exactly(store_url: str, tmp_path: Path) -> None:
    """Two servers share the load, each voter's successive ballots (splits and one pick too
    many) alternating between them: every over-limit ballot is refused whichever server gets
    it, both servers publish the generator's totals, and the audit passes."""
    trial = await Trial.create(store_url, tmp_path)
    with servers(trial, count=2) as (a, b):
        book = await run_load(
            trial, lambda: [a.url, b.url], trial.electorate(split=0.2, over_limit=0.1), VOTERS
        )
        assert book.refused and set(book.refused.values()) == {"limit-exceeded"}
        assert not book.transient, book.transient
        await trial.check(book, [a.url, b.url])
