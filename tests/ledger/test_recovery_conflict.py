"""A read on a hot standby cancelled by PostgreSQL because replaying the primary's WAL needs what
the read holds (a recovery conflict: SQLSTATE 40001, "canceling statement due to conflict with
recovery") is the database being briefly unavailable, not a bug: the store says so, and a
server on a replica answers 503 with Retry-After instead of 500."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest

from ledger.errors import StoreUnavailableError
from ledger.postgres import PostgresStore
from tests.pg_cluster import PgCluster, replicated_pg_clusters


@pytest.fixture(scope="module")
def clusters() -> Iterator[tuple[PgCluster, PgCluster]]:
    yield from replicated_pg_clusters()


async def test_recovery_conflict_on_a_replica_read_is_store_unavailable(
    clusters: tuple[PgCluster, PgCluster],
) -> None:
    primary_cluster, standby_cluster = clusters
    primary = PostgresStore(primary_cluster.url)
    await primary.open()  # creates the schema, replicated to the standby
    await primary.create_log("conflict")
    standby_conn = await asyncpg.connect(standby_cluster.url)
    try:
        # Cancel conflicting reads at once instead of letting replay wait up to 30 s.
        await standby_conn.execute("ALTER SYSTEM SET max_standby_streaming_delay = 0")
        await standby_conn.execute("SELECT pg_reload_conf()")
        await _wait_replayed(primary, standby_conn)
        replica = PostgresStore(standby_cluster.url, read_only=True)
        await replica.open()
        try:
            assert await replica.log_ids() == ["conflict"]

            async def held_read() -> None:
                # A read that holds its lock on uchast_logs for a while, as a slow page
                # would; the primary's exclusive lock, replayed, must cancel it.
                async with replica._conn() as conn:
                    await conn.fetch("SELECT pg_sleep(5) FROM uchast_logs")

            read = asyncio.ensure_future(held_read())
            await asyncio.sleep(0.5)
            async with primary._conn() as conn, conn.transaction():
                await conn.execute("LOCK TABLE uchast_logs IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(StoreUnavailableError, match="conflict with recovery"):
                await asyncio.wait_for(read, 10)
            # And the replica answers again right after.
            assert await replica.log_ids() == ["conflict"]
        finally:
            await replica.close()
    finally:
        await standby_conn.execute("ALTER SYSTEM RESET max_standby_streaming_delay")
        await standby_conn.execute("SELECT pg_reload_conf()")
        await standby_conn.close()
        await primary.close()


async def _wait_replayed(primary: PostgresStore, standby: asyncpg.Connection) -> None:
    async with primary._conn() as conn:
        lsn = await conn.fetchval("SELECT pg_current_wal_lsn()")
    for _ in range(200):
        if await standby.fetchval("SELECT pg_last_wal_replay_lsn() >= $1", lsn):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the standby did not replay the primary's WAL in 10 s")
