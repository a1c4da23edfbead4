"""Scores through the service: live results (JSON, CSV), ``uchast export results``'s replay and
the auditor agree on cumulative and ordinal ballots; an older saved tally without scores is not
read as if scores were votes."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from api.service import TALLY_PROJECTION, ServiceConfig
from ledger.casting import Casting
from ledger.export import export_log
from ledger.keys import sign_envelope
from ledger.store import open_store
from tally.audit import audit
from tally.export import replay_tally, results_from_log
from tests.api.conftest import VOTER_KEY, VOTING_DAY
from tests.api.test_vote_routes import BASE
from tests.factories import ELECTION, Keys, example_definition, opened_ledger, voter_token

# Large: cumulative (at most 3 points a project, 5 in all, 2 projects); small: ordinal, three
# ranked, scored 3, 2, 1.
BALLOTS: list[tuple[dict[str, int], list[str]]] = [
    ({"L01": 3, "L02": 2}, ["S01", "S02", "S03"]),
    ({"L01": 1}, ["S02"]),
    ({"L03": 3}, ["S03", "S01"]),
    ({"L02": 3, "L03": 2}, []),
]
EXPECTED = {  # (votes, score)
    "L01": (2, 4),
    "L02": (2, 5),
    "L03": (2, 5),
    "S01": (2, 5),
    "S02": (2, 5),
    "S03": (2, 4),
}


def kinds_definition(method: str) -> dict[str, Any]:
    """The example election, its large category cumulative and its small one ordinal."""
    definition = example_definition()
    definition["categories"][0].update(ballot="cumulative", max_points=3, max_total_points=5)
    definition["categories"][1].update(ballot="ordinal", max_picks=3)
    definition["rule"]["method"] = method
    return definition


def envelope(keys: Keys, n: int, points: dict[str, int], ranking: list[str]) -> dict[str, Any]:
    """A signed online ballot with points and a ranking."""
    payload: dict[str, Any] = {
        "type": "ballot",
        "election": ELECTION,
        "voter": voter_token(n),
        "cast_at": "2018-10-03T10:15:00+03:00",
        "nonce": str(uuid.uuid4()),
        "points": points,
    }
    if ranking:
        payload["ranking"] = ranking
    return sign_envelope(payload, keys.site)


def figures(document: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """(votes, score) of every project that has votes."""
    return {
        p["id"]: (p["votes"], p["score"])
        for c in document["categories"]
        for p in c["projects"]
        if p["votes"]
    }


@pytest.mark.parametrize("method", ["greedy", "equal-shares"])
async def test_live_export_and_audit_carry_the_scores(
    aiohttp_client: Any, sqlite_url: str, method: str
) -> None:
    """Live JSON and CSV results have votes and score per project; the replayed export (what
    ``uchast export results`` writes) has the same figures and winners, and the auditor's
    recount finds nothing to differ."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys, definition=kinds_definition(method)):
        pass
    config = ServiceConfig(sqlite_url, keys.log, voter_key=VOTER_KEY, clock=lambda: VOTING_DAY)
    client = await aiohttp_client(create_app(config))
    for n, (points, ranking) in enumerate(BALLOTS):
        response = await client.post(f"{BASE}/ballots", json=envelope(keys, n, points, ranking))
        assert response.status == 201, await response.text()
    document = await (await client.get(f"{BASE}/results")).json()
    assert figures(document) == EXPECTED
    assert [c["ballot"] for c in document["categories"]] == ["cumulative", "ordinal"]
    response = await client.get(f"{BASE}/results", params={"format": "csv"})
    rows = csv.DictReader(io.StringIO(await response.text()))
    assert {
        r["project"]: (int(r["votes"]), int(r["score"])) for r in rows if r["votes"] != "0"
    } == EXPECTED

    store = open_store(sqlite_url)
    await store.open()
    try:
        exported = await results_from_log(store, ELECTION)
        log_file = Path(sqlite_url.removeprefix("sqlite:///")).with_suffix(".log")
        with open(log_file, "wb") as out:
            await export_log(store, ELECTION, out)
    finally:
        await store.close()
    assert figures(exported) == EXPECTED
    assert [c["funded"] for c in exported["categories"]] == [
        c["funded"] for c in document["categories"]
    ]
    report = await asyncio.to_thread(
        audit,
        str(log_file),
        keys.log.verifier.vkey,
        keys.admin.verifier.vkey,
        results=document,
        workers=0,
    )
    assert report.violations == [], report.violations[:3]
    assert report.winners == {c["id"]: c["funded"] for c in document["categories"]}
    assert {p: (report.totals[p], report.scores[p]) for p in EXPECTED} == EXPECTED


async def test_older_saved_tally_is_replayed_not_misread(
    aiohttp_client: Any, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A saved tally in the format before ballot kinds (no scores) under an election with point
    and ranking ballots is refused at start: the service replays the log and publishes the
    right scores, and says why in its log."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys, definition=kinds_definition("greedy")) as ledger:
        for n, (points, ranking) in enumerate(BALLOTS):
            await Casting(ledger).submit(envelope(keys, n, points, ranking))
    store = open_store(sqlite_url)
    await store.open()
    try:
        tally, size, _ = await replay_tally(store, ELECTION)
        older = json.loads(tally.snapshot())
        older["format"] = 1  # as a server before ballot kinds would have saved it
        del older["surplus"]
        assert await store.save_projection(
            ELECTION, TALLY_PROJECTION, size, json.dumps(older).encode()
        )
    finally:
        await store.close()
    config = ServiceConfig(sqlite_url, keys.log, voter_key=VOTER_KEY, clock=lambda: VOTING_DAY)
    with caplog.at_level(logging.WARNING, logger="uchast.service"):
        client = await aiohttp_client(create_app(config))
        document = await (await client.get(f"{BASE}/results")).json()
    assert figures(document) == EXPECTED
    assert "format 1" in caplog.text and "replaying from 0" in caplog.text
