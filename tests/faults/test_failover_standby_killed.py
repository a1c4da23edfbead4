"""Threat: the synchronous standby dies in the middle of voting, and the primary goes on
acknowledging ballots that exist on one machine only."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bench.loadgen import Book
from bench.patroni import PatroniCluster
from tests.faults.failover import Watch, failover_trial

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

OUTAGE = 4.0  # seconds the standby stays dead
# Acknowledgements up to this long after the kill may be of commits the standby had flushed
# before it died (their answers were on the way).
IN_FLIGHT = 0.5


async def test_standby_killed_mid_load_nothing_acknowledged_without_it(
    patroni_cluster: PatroniCluster, tmp_path: Path
) -> None:
    """Under steady load, the synchronous standby's machine is killed (Patroni and PostgreSQL,
    SIGKILL) and started again after a few seconds. While it is away the primary acknowledges
    nothing (synchronous_mode_strict): the servers answer 503 with Retry-After, retried ballots
    whose commit took on the primary alone are not answered as replays either; once the
    standby is back the same servers acknowledge again, nothing is lost or counted twice, and
    every checkpoint seen is consistent with the final log."""
    cluster = patroni_cluster
    primary, standby = await asyncio.to_thread(cluster.wait_healthy)
    seen: dict[str, int] = {}

    async def kill_standby(watch: Watch, book: Book) -> None:
        cluster.kill_node(standby)
        watch.fault_at = time.monotonic()
        await asyncio.sleep(IN_FLIGHT)
        seen["acknowledged after the kill"] = len(book.acknowledged)
        seen["replays after the kill"] = book.replays
        await asyncio.sleep(OUTAGE - IN_FLIGHT)
        seen["acknowledged while away"] = len(book.acknowledged) - seen.pop(
            "acknowledged after the kill"
        )
        seen["replays while away"] = book.replays - seen.pop("replays after the kill")
        cluster.start_node(standby)

    _, _, watch, _ = await failover_trial(cluster, tmp_path, kill_standby, label="standby killed")
    print(f"standby killed: {seen}")
    assert seen["acknowledged while away"] == 0, "acknowledged without the synchronous standby"
    assert seen["replays while away"] == 0
    assert watch.first_ack is not None and watch.first_ack > OUTAGE
    assert any(k.startswith("503") for k in watch.probe_answers), watch.probe_answers
    assert await asyncio.to_thread(cluster.wait_healthy) == (primary, standby)
