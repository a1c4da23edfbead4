"""Reads from a real streaming replica (issue 14): a primary's `uchast serve` takes ballots, a
`uchast serve --read-only` on a hot standby of it (pg_basebackup -R) serves the same results
and receipts once it has caught up, refuses every write without touching the standby, and
refuses to start on a database without the schema."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from api.service import ServiceConfig
from ledger.casting import Casting
from ledger.keys import sign_envelope
from tally.audit.crypto import VerifierKey
from tally.audit.receipts import verify_receipt_proof
from tests.api.conftest import VOTING_DAY
from tests.api.servers import ROOT, serving
from tests.factories import ELECTION, Keys, opened_ledger, voter_token
from tests.pg_cluster import PgCluster, replicated_pg_clusters

BASE = f"/v1/elections/{ELECTION}"
VOTER_KEY = bytes(range(64, 96))


@pytest.fixture(scope="module")
def clusters() -> Iterator[tuple[PgCluster, PgCluster]]:
    yield from replicated_pg_clusters()


def ballot(keys: Keys, n: int) -> dict[str, Any]:
    payload = {
        "type": "ballot",
        "election": ELECTION,
        "voter": voter_token(n),
        "projects": ["L01", "S02"] if n % 2 else ["L01"],
        "cast_at": "2018-10-05T10:00:00+03:00",
        "nonce": str(uuid.uuid4()),
    }
    return sign_envelope(payload, keys.site)


def url_of(cluster: PgCluster, database: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{cluster.port}/{database}"


async def on_standby(standby: PgCluster, database: str, query: str) -> Any:
    """``query``'s value on the standby, once the database has been replayed there."""
    for _ in range(300):
        try:
            conn = await asyncpg.connect(url_of(standby, database))
        except asyncpg.InvalidCatalogNameError:  # CREATE DATABASE not replayed yet
            await asyncio.sleep(0.1)
            continue
        try:
            return await conn.fetchval(query)
        finally:
            await conn.close()
    raise AssertionError(f"database {database} never reached the standby")


async def create_database(primary: PgCluster, name: str) -> None:
    conn = await asyncpg.connect(primary.url)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()


async def test_replica_serves_reads_and_refuses_writes(
    clusters: tuple[PgCluster, PgCluster], tmp_path: Path
) -> None:
    """Ballots through the primary's server; the read-only server on the standby answers the
    same /results once caught up, a receipt the primary gave verifies from the replica's proof,
    a ballot POSTed to the replica is 503 read-only (no Retry-After) and never reaches any
    database; /readyz says read-only and in recovery; the replica's log has no failure."""
    primary, standby = clusters
    await create_database(primary, "election")
    keys = Keys()
    async with opened_ledger(url_of(primary, "election"), keys):
        pass
    keys.log.save(tmp_path / "log.key")
    (tmp_path / "voter.key").write_text(VOTER_KEY.hex())
    assert await on_standby(standby, "election", "SELECT pg_is_in_recovery()") is True
    # The replica's host needs only the log key's public half (it signs nothing).
    replica_args = ["--read-only", "--log-vkey", keys.log.verifier.vkey]

    with (
        serving(url_of(primary, "election"), tmp_path) as ([writer], _),
        serving(url_of(standby, "election"), tmp_path, args=replica_args) as ([reader], _),
    ):
        async with aiohttp.ClientSession() as session:
            receipts = []
            for n in range(6):
                async with session.post(f"{writer}{BASE}/ballots", json=ballot(keys, n)) as r:
                    assert r.status == 201, await r.text()
                    receipts.append(await r.json())

            async def results(url: str) -> dict[str, Any]:
                async with session.get(f"{url}{BASE}/results") as r:
                    assert r.status == 200, await r.text()
                    document: dict[str, Any] = await r.json()
                    return document

            expected = await results(writer)
            assert expected["log"]["size"] == 4 + 6
            for _ in range(300):  # replication and the replica's polling: not timed, bounded
                replica = await results(reader)
                if replica["log"]["size"] == expected["log"]["size"]:
                    break
                await asyncio.sleep(0.1)
            assert replica == expected

            code = receipts[3]["receipt"]
            async with session.get(f"{reader}{BASE}/receipts/{code}/proof") as r:
                assert r.status == 200, await r.text()
                proof_text = await r.text()
            proof = verify_receipt_proof(
                proof_text, VerifierKey.parse(keys.log.verifier.vkey), code
            )
            assert (proof.index, proof.projects) == (receipts[3]["position"], ("L01", "S02"))
            async with session.get(f"{reader}{BASE}/log/key") as r:
                assert (await r.json())["vkey"] == keys.log.verifier.vkey
            async with session.get(f"{reader}{BASE}/log/checkpoint") as r:
                assert r.status == 200
                assert (await r.text()).split("\n")[1] == str(expected["log"]["size"])

            for path, body in (("ballots", ballot(keys, 100)), ("voids", {})):
                async with session.post(f"{reader}{BASE}/{path}", json=body) as r:
                    problem = await r.json(content_type=None)
                    assert r.status == 503, problem
                    assert "Retry-After" not in r.headers
                assert problem["code"] == "read-only"
                assert "primary" in problem["detail"]

            async with session.get(f"{reader}/readyz") as r:
                ready = await r.json()
                assert r.status == 200, ready
            assert ready["read_only"] is True
            [replica_status] = ready["replicas"].values()
            assert replica_status["in_recovery"] is True
            assert ready["elections"][ELECTION]["size"] == expected["log"]["size"]
            assert (await results(writer))["log"]["size"] == expected["log"]["size"]

    assert await on_standby(standby, "election", "SELECT pg_is_in_recovery()") is True
    for log in tmp_path.glob("server-*.log"):
        text = log.read_text()
        assert "Traceback" not in text, text
        assert "paused" not in text, text
        assert "ERROR" not in text, text


async def test_replica_refuses_to_start_without_the_schema(
    clusters: tuple[PgCluster, PgCluster], tmp_path: Path
) -> None:
    """`serve --read-only` on a database the primary never served: one line, exit 2, and
    nothing created (the standby could not, and a primary must not be changed by a reader)."""
    primary, standby = clusters
    await create_database(primary, "empty")
    await on_standby(standby, "empty", "SELECT 1")
    vkey = Keys().log.verifier.vkey
    for cluster in (standby, primary):
        done = subprocess.run(
            [
                *(sys.executable, "-m", "api.cli", "serve", "--read-only"),
                *("--db", url_of(cluster, "empty"), "--log-vkey", vkey),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        [line] = done.stderr.splitlines()
        assert "no uchast schema" in line and "primary first" in line, line
    conn = await asyncpg.connect(url_of(primary, "empty"))
    try:
        assert await conn.fetchval("SELECT to_regclass('uchast_logs')") is None
    finally:
        await conn.close()


async def test_read_only_service_on_sqlite(
    aiohttp_client: Callable[[Any], Awaitable[TestClient[Any, Any]]], sqlite_url: str
) -> None:
    """The same server without PostgreSQL (a copied SQLite file, say): reads answer, writes are
    503 read-only before anything else looks at them, /readyz says read-only, nothing is
    written (no tally saved, no checkpoint signed: the file is unchanged)."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys) as ledger:
        await Casting(ledger).submit(ballot(keys, 1))
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    files = [path, path.with_name(path.name + "-wal")]
    before = [f.read_bytes() if f.exists() else None for f in files]
    config = ServiceConfig(
        sqlite_url, keys.log.verifier, voter_key=VOTER_KEY, clock=lambda: VOTING_DAY, read_only=True
    )
    client = await aiohttp_client(create_app(config))
    results = await client.get(f"{BASE}/results")
    assert results.status == 200
    assert (await results.json())["log"]["size"] == 5
    for method, path_ in (("POST", "ballots"), ("POST", "ballot-batches"), ("PUT", "voids")):
        refused = await client.request(method, f"{BASE}/{path_}", data=b"not even JSON")
        assert refused.status == 503
        assert "Retry-After" not in refused.headers
        assert (await refused.json())["code"] == "read-only"
    ready = await (await client.get("/readyz")).json()
    assert ready["read_only"] is True and ready["status"] == "ready"
    await client.close()
    assert [f.read_bytes() if f.exists() else None for f in files] == before
