"""Threat: the log's database is restored from a backup older than what a witness cosigned (and
the checkpoint journal that would have stopped the server is gone with it). The server signs a
shorter checkpoint of another history; the witness refuses it, nothing new is published, and the
receipt of the ballot written after the restore says it is not cosigned."""

from __future__ import annotations

import asyncio
import sqlite3
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from api.app import create_app
from api.service import ServiceConfig
from ledger.policy import parse_policy
from tests.api.conftest import VOTER_KEY, VOTING_DAY
from tests.api.test_vote_routes import BASE
from tests.api.test_witness_quorum import Client, cast, served, value, wait_for, witness_servers
from tests.factories import Keys, opened_ledger


async def test_witness_refuses_the_shorter_checkpoint_after_a_database_rollback(
    aiohttp_client: Callable[[Any], Awaitable[Client]], tmp_path: Path
) -> None:
    """Cosigned at 7, restored to 5, grown to 6 with another ballot: refused, not published."""
    keys = Keys()
    live, backup = tmp_path / "live.db", tmp_path / "backup.db"
    async with opened_ledger(f"sqlite:///{live}", keys):
        pass
    with witness_servers(tmp_path, keys.log.verifier.vkey, 1) as [(url, vkey, _)]:
        policy = parse_policy(f"witness W1 {vkey} {url}\nquorum W1\n")

        def app(db: Path) -> Any:
            return create_app(
                ServiceConfig(
                    f"sqlite:///{db}",
                    keys.log,
                    voter_key=VOTER_KEY,
                    clock=lambda: VOTING_DAY,
                    witness_policy=policy,
                )
            )

        async def published(client: Client, size: int) -> None:
            async def at_size() -> bool:
                status, note = await served(client)
                return status == 200 and note.split("\n")[1] == str(size)

            await wait_for(at_size)

        client = await aiohttp_client(app(live))
        await cast(client, keys, 1)
        await published(client, 5)
        with sqlite3.connect(live) as source, sqlite3.connect(backup) as copy:
            source.backup(copy)  # the nightly backup, at 5 entries
        await cast(client, keys, 2)
        await cast(client, keys, 3)
        await published(client, 7)  # the witness cosigned 7
        await client.close()

        restored = await aiohttp_client(app(backup))
        after = await cast(restored, keys, 99)  # entry 5 again, but another ballot
        await asyncio.sleep(3)
        status, note = await served(restored)
        assert status == 200 and note.split("\n")[1] == "5"  # still the backup's published one
        receipt = await (await restored.get(f"{BASE}/receipts/{after['receipt']}")).json()
        assert receipt["cosigned"] is False and receipt["proof"]["size"] == 6
        metrics = await (await restored.get("/metrics")).text()
        e = 'election="test-2018"'
        assert value(metrics, f'uchast_witness_failures_total{{{e},witness="W1"}}') >= 2
        assert value(metrics, f"uchast_witness_quorum_met{{{e}}}") == 0
        witness = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
        assert 'uchast_witness_cosigned_size{origin="uchast.local/test-2018"} 7' in witness
