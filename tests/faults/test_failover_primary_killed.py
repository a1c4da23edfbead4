"""Threat: the PostgreSQL primary dies (SIGKILL of its postmaster) in the middle of voting;
Patroni promotes the synchronous standby."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bench.loadgen import Book
from bench.patroni import PatroniCluster
from tests.faults.failover import Watch, failover_trial

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


async def test_primary_killed_mid_load_fails_over_losing_nothing(
    patroni_cluster: PatroniCluster, tmp_path: Path
) -> None:
    """Under steady load of online and paper ballots from 48 clients against two servers, the
    primary's postmaster is SIGKILLed. Until the standby is promoted the servers answer 503
    with Retry-After (never 500); then the same server processes acknowledge again, through
    the multi-host URL. Every acknowledged ballot is in the final log once, none is counted
    twice, and every checkpoint published before and after the failover is consistent with the
    final log (`uchast audit --checkpoint`)."""
    cluster = patroni_cluster
    old_primary, standby = await asyncio.to_thread(cluster.wait_healthy)

    async def kill(watch: Watch, _: Book) -> None:
        cluster.kill_postmaster(old_primary)
        watch.fault_at = time.monotonic()
        await asyncio.to_thread(cluster.wait_promoted, standby)

    _, book, watch, _ = await failover_trial(cluster, tmp_path, kill, label="primary killed")
    assert any(k.startswith("503") for k in watch.probe_answers) or any(
        k.startswith("503") for k in book.transient
    ), (watch.probe_answers, book.transient)
    # The old primary comes back as the new standby: the cluster is whole for the next trial.
    new_primary, new_standby = await asyncio.to_thread(cluster.wait_healthy)
    assert (new_primary, new_standby) == (standby, old_primary)
