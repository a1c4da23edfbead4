"""Threat: a ballot whose commit failed for the server (503) took on the primary alone, and its
retry is acknowledged as a replay before the synchronous standby has it: a receipt for a ballot
that a failover would lose."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from bench.patroni import PatroniCluster
from tests.factories import ELECTION
from tests.faults.failover import fresh_ballot
from tests.faults.trial import Trial, servers

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


async def post(url: str, envelope: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
        session.post(f"{url}/v1/elections/{ELECTION}/ballots", json=envelope) as response,
    ):
        return response.status, await response.json()


async def test_replay_waits_for_the_synchronous_standby(
    patroni_cluster: PatroniCluster, tmp_path: Path
) -> None:
    """The standby hangs; a ballot's commit waits for it, the server gives up (503) and the
    wait is cancelled, so the entry is committed on the primary only. Its retry is refused 503
    too, not answered 200: the replay waits for the standby like a new entry. Once the standby
    is back the retry is a 200 replay at the original position, counted once."""
    cluster = patroni_cluster
    primary, standby = await asyncio.to_thread(cluster.wait_healthy)
    url = await asyncio.to_thread(cluster.create_database)
    trial = await Trial.create(url, tmp_path)
    trial.url = url + "&command_timeout=1"
    ballot = fresh_ballot(trial)
    with servers(trial) as (server,):
        cluster.hang(standby)
        try:
            status, problem = await post(server.url, ballot.envelope)
            assert (status, problem["code"]) == (503, "store-unavailable"), problem
            # Whatever still waits for the standby is cancelled: committed here, nowhere else.
            database = url.rsplit("/", 1)[1].split("?")[0]
            with psycopg.connect(cluster.admin_url(primary, database), autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity"
                    " WHERE wait_event = 'SyncRep'"
                )
                await asyncio.sleep(0.3)
                nonce = ballot.nonce
                logged = conn.execute(
                    "SELECT count(*) FROM uchast_entries WHERE position(%s::bytea in data) > 0",
                    (nonce.encode(),),
                ).fetchone()
            assert logged is not None and logged[0] == 1, "the test did not set the trap"
            status, problem = await post(server.url, ballot.envelope)
            assert status == 503, f"acknowledged on the primary alone: {status} {problem}"
        finally:
            cluster.resume(standby)
        await asyncio.to_thread(cluster.wait_healthy)
        for _ in range(50):
            status, receipt = await post(server.url, ballot.envelope)
            if status != 503:
                break
            await asyncio.sleep(0.2)
        assert status == 200 and receipt["replay"] is True, receipt
