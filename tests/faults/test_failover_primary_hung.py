"""Threat: the PostgreSQL primary's machine hangs (SIGSTOP of Patroni and every PostgreSQL
process: sockets stay open, nothing answers) in the middle of voting."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bench.loadgen import Book
from bench.patroni import PatroniCluster
from tests.faults.failover import Watch, failover_trial

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


async def test_primary_hung_mid_load_fails_over_losing_nothing(
    patroni_cluster: PatroniCluster, tmp_path: Path
) -> None:
    """Under steady load, the primary's machine hangs. Requests on its connections time out
    and are answered 503 with Retry-After (never 500, never a hang for ever); its leader key
    expires and Patroni promotes the synchronous standby; the hung machine then wakes, finds
    itself demoted and follows the new primary as its standby, and the same server processes
    acknowledge again. Nothing lost, nothing twice, every checkpoint seen consistent."""
    cluster = patroni_cluster
    old_primary, standby = await asyncio.to_thread(cluster.wait_healthy)
    seen: dict[str, float] = {}

    async def hang(watch: Watch, _: Book) -> None:
        cluster.hang(old_primary)
        watch.fault_at = time.monotonic()
        await asyncio.to_thread(cluster.wait_promoted, standby)
        seen["promoted after"] = watch.since_fault()
        cluster.resume(old_primary)

    _, _, watch, _ = await failover_trial(cluster, tmp_path, hang, label="primary hung")
    print(f"primary hung: standby promoted {seen['promoted after']:.2f} s after the hang")
    assert any(k.startswith("503") for k in watch.probe_answers), watch.probe_answers
    assert await asyncio.to_thread(cluster.wait_healthy) == (standby, old_primary)
