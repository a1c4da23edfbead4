"""Threat: the PostgreSQL database becomes unreachable, or read-only (as after a failover to a
standby), in the middle of voting."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bench.loadgen import Book
from tests.api.servers import free_port
from tests.conftest import PG_ADMIN_URL
from tests.factories import ELECTION
from tests.faults.trial import Trial, probe, run_load, servers, when

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

VOTERS = 1200


def admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def terminate_sessions(database: str) -> None:
    admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    )


@contextmanager
def unreachable(database: str) -> Iterator[None]:
    """No new connections to ``database`` and every open one cut; the server itself (shared
    with other tests) keeps running."""
    admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
    try:
        terminate_sessions(database)
        yield
    finally:
        admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')


@contextmanager
def read_only(database: str) -> Iterator[None]:
    """Every session of ``database`` read-only, as on a standby: open ones are cut so that the
    new ones pick the setting up."""
    admin(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
    try:
        terminate_sessions(database)
        yield
    finally:
        admin(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
        terminate_sessions(database)


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@asynccontextmanager
async def frozen_size(trial: Trial) -> AsyncIterator[list[tuple[int, ...]]]:
    """The log's size (and count of entries, tree nodes and checkpoints) before and after the
    block, read with plain SQL (a store would try to create its tables)."""
    sizes: list[tuple[int, ...]] = []

    def size() -> tuple[int, ...]:
        with psycopg.connect(trial.url) as conn:
            row = conn.execute(
                "SELECT (SELECT size FROM uchast_logs WHERE id = %s),"
                " (SELECT count(*) FROM uchast_entries),"
                " (SELECT count(*) FROM uchast_nodes),"
                " (SELECT count(*) FROM uchast_checkpoints)",
                (ELECTION,),
            ).fetchone()
        assert row is not None
        return tuple(row)

    sizes.append(await asyncio.to_thread(size))
    yield sizes
    sizes.append(await asyncio.to_thread(size))


def database(trial: Trial) -> str:
    return trial.url.rsplit("/", 1)[1]


async def test_database_unreachable_mid_load_then_back(pg_url: str, tmp_path: Path) -> None:
    """While the database refuses connections the servers answer 503 store-unavailable with
    Retry-After (readyz 503, healthz 200) and acknowledge nothing; once it is back they recover
    by themselves (same processes) and every acknowledged ballot is in the log exactly once,
    totals exact, audit passing."""
    trial = await Trial.create(pg_url, tmp_path)
    with servers(trial, count=2) as (a, b):
        pids = [a.process.pid if a.process else 0, b.process.pid if b.process else 0]
        seen: dict[str, Any] = {}

        async def outage(book: Book) -> None:
            await when(lambda: len(book.acknowledged) >= VOTERS // 3)
            with unreachable(database(trial)):
                await asyncio.sleep(0.5)
                before = len(book.acknowledged)
                seen["probe"] = await probe(trial, a, book)
                seen["readyz"] = await asyncio.to_thread(get, f"{a.url}/readyz")
                seen["healthz"] = await asyncio.to_thread(get, f"{b.url}/healthz")
                await asyncio.sleep(3)
                seen["acknowledged during"] = len(book.acknowledged) - before
                seen["503 during"] = book.transient["503 store-unavailable"]
            seen["back at"] = time.monotonic()

        book = await run_load(
            trial, lambda: [a.url, b.url], trial.electorate(), VOTERS, during=outage
        )
        status, problem, retry_after = seen["probe"]
        assert (status, problem["code"]) == (503, "store-unavailable"), problem
        assert retry_after is not None and problem["message_uk"]
        assert seen["readyz"][0] == 503 and b'"database"' in seen["readyz"][2]
        assert seen["healthz"][0] == 200
        assert seen["503 during"] > 0
        assert seen["acknowledged during"] == 0, "acknowledged while the database was away"
        assert [a.process.pid if a.process else 0, b.process.pid if b.process else 0] == pids
        assert all(s.process is not None and s.process.poll() is None for s in (a, b))
        await when(lambda: get(f"{a.url}/readyz")[0] == 200, timeout=30)  # tally caught up
        print(f"outage: {book.summary()}")
        await trial.check(book, [a.url, b.url])


async def test_database_turned_read_only_refuses_clearly_and_writes_nothing(
    pg_url: str, tmp_path: Path
) -> None:
    """When the database turns read-only (a standby after failover, a DBA's switch) writes are
    refused 503 store-unavailable, reads still answer, the log does not move; when it is
    writable again the same server resumes, and nothing was half-written (audit passes)."""
    trial = await Trial.create(pg_url, tmp_path)
    with servers(trial) as (server,):
        seen: dict[str, Any] = {}

        async def switch(book: Book) -> None:
            await when(lambda: len(book.acknowledged) >= VOTERS // 3)
            with read_only(database(trial)):
                await asyncio.sleep(0.3)
                async with frozen_size(trial) as sizes:
                    before = len(book.acknowledged)
                    seen["probe"] = await probe(trial, server, book)
                    seen["results"] = await asyncio.to_thread(
                        get, f"{server.url}/v1/elections/{ELECTION}/results"
                    )
                    await asyncio.sleep(2)
                    seen["acknowledged during"] = len(book.acknowledged) - before
                seen["sizes"] = sizes

        book = await run_load(
            trial, lambda: [server.url], trial.electorate(), VOTERS, during=switch
        )
        status, problem, _ = seen["probe"]
        assert (status, problem["code"]) == (503, "store-unavailable"), problem
        assert "read-only" in problem["detail"]
        assert seen["results"][0] == 200, "reads stop when only writes should"
        before, after = seen["sizes"]
        assert before == after, "the log grew while the database was read-only"
        assert seen["acknowledged during"] == 0
        assert book.transient["503 store-unavailable"] > 0
        print(f"read-only: {book.summary()}")
        await trial.check(book, [server.url])


async def test_a_failover_url_skips_a_dead_primary(pg_url: str, tmp_path: Path) -> None:
    """RUNBOOK's HA URL, `postgresql://...@dead-host,live-host/db?target_session_attrs=
    read-write`: the server starts and serves on the live host, exports and audits."""
    trial = await Trial.create(pg_url, tmp_path)
    host = pg_url.split("@", 1)[1].split("/", 1)[0]
    dead = f"127.0.0.1:{free_port()}"
    trial.url = pg_url.replace(host, f"{dead},{host}") + "?target_session_attrs=read-write"
    with servers(trial) as (server,):
        book = await run_load(trial, lambda: [server.url], trial.electorate(), 200)
        await trial.check(book, [server.url])
