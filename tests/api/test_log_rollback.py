"""Threat (issue 12): with the database but not the log key, the entries from position 6 on are
deleted (tags, tree nodes, checkpoints too), the log's size set back to 6, the server restarted.
It used to sign the shorter history and go on voting; now two real `uchast serve` processes
publish into the journal beside the log key, and after the rollback a restarted server refuses
every write saying why, still answers reads, and /readyz names the reason."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import aiohttp

from ledger.checkpoint import CheckpointJournal
from ledger.keys import sign_envelope
from tests.api.servers import serving
from tests.factories import ELECTION, Keys, opened_ledger, voter_token
from tests.ledger.test_rollback import KEPT, roll_back

VOTER_KEY = bytes(range(32, 64))
BASE = f"/v1/elections/{ELECTION}"


def ballot(keys: Keys, n: int) -> dict[str, Any]:
    payload = {
        "type": "ballot",
        "election": ELECTION,
        "voter": voter_token(n),
        "projects": ["L01"],
        "cast_at": "2018-10-05T10:00:00+03:00",
        "nonce": str(uuid.uuid4()),
    }
    return sign_envelope(payload, keys.site)


async def test_restarted_server_refuses_writes_after_a_rollback(
    store_url: str, tmp_path: Path
) -> None:
    """Ballots through two servers; rows from position 6 deleted; a restarted server answers a
    ballot with 500 log-rolled-back (the published and found sizes in the problem), serves the
    results of the 6 entries left, /readyz is 503 with reason log-rolled-back, its log says
    ROLLED BACK; nothing is appended or signed."""
    keys = Keys()
    async with opened_ledger(store_url, keys):
        pass
    keys.log.save(tmp_path / "log.key")
    (tmp_path / "voter.key").write_text(VOTER_KEY.hex())

    with serving(store_url, tmp_path, count=2) as (urls, _):
        async with aiohttp.ClientSession() as session:
            for n in range(8):
                async with session.post(f"{urls[n % 2]}{BASE}/ballots", json=ballot(keys, n)) as r:
                    assert r.status == 201, await r.text()
    published = 4 + 8
    journal = CheckpointJournal(tmp_path / "log.key.checkpoints")
    head = journal.head(f"uchast.local/{ELECTION}")
    assert head is not None and head.size == published

    await roll_back(store_url)

    with serving(store_url, tmp_path) as ([url], _):
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}{BASE}/ballots", json=ballot(keys, 100)) as r:
                problem = await r.json(content_type=None)
                assert r.status == 500, problem
            assert problem["code"] == "log-rolled-back"
            assert (problem["published"], problem["size"], problem["reason"]) == (
                published,
                KEPT,
                "shorter",
            )
            assert "rolled back" in problem["detail"]

            async with session.get(f"{url}{BASE}/results") as r:
                assert r.status == 200
                results = await r.json()
            assert results["log"]["size"] == KEPT

            async with session.get(f"{url}/readyz") as r:
                assert r.status == 503
                ready = await r.json(content_type=None)
            assert ready["reason"] == "log-rolled-back"
            assert ready["elections"] == {ELECTION: {"published": published, "size": KEPT}}
            async with session.get(f"{url}{BASE}/log/checkpoint") as r:
                assert r.status == 200
                assert (await r.text()).splitlines()[1] == str(KEPT)  # nothing newly signed
    logs = "".join(p.read_text() for p in tmp_path.glob("server-*.log"))
    assert "ROLLED BACK" in logs
    head = CheckpointJournal(tmp_path / "log.key.checkpoints").head(f"uchast.local/{ELECTION}")
    assert head is not None and head.size == published
    async with opened_ledger(store_url, keys, register=False) as ledger:
        assert await ledger.size() == KEPT
