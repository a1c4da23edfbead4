"""A sealed election (``results = "sealed-until-close"``) audited end to end over real HTTP.

While sealed, observers can only collect checkpoints (the entries are refused, so no audit can
run yet: it says why). At the close the log opens and ``uchast audit`` proves that every
checkpoint published while sealed is consistent with the final log: each one the server lists
is recomputed from the entries, and each one an observer saved (``--checkpoint``) must match.
A checkpoint published while sealed that the final log does not extend fails the audit, named.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import shutil
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from api.app import create_app
from api.service import ServiceConfig
from ledger.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from ledger.keys import sign_envelope
from tally.audit import AuditReport, audit
from tally.audit.monitor import Monitor
from tests.factories import ELECTION, voter_token
from tests.tally.election_log import CAST_AT, NOW, AuditKeys, election_log

CLOSES = datetime.fromisoformat("2018-10-10T23:59:59+03:00")  # election_log's definition
ServerFactory = Callable[[Any], Awaitable[TestServer]]


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Observer:
    """Someone who keeps every checkpoint the server published while the results were sealed."""

    directory: Path
    saved: list[Path]

    async def collect(self, http: ClientSession, base: str) -> int:
        async with http.get(f"{base}/v1/elections/{ELECTION}/log/checkpoint") as response:
            assert response.status == 200
            note = await response.text()
        size = int(note.split("\n")[1])
        path = self.directory / f"sealed-{size}.checkpoint"
        if not path.exists():
            path.write_text(note, encoding="utf-8")
            self.saved.append(path)
        return size


async def create(url: str, keys: AuditKeys) -> None:
    async with election_log(url, keys, results="sealed-until-close"):
        pass


async def serve(aiohttp_server: ServerFactory, url: str, keys: AuditKeys, clock: Clock) -> str:
    server = await aiohttp_server(create_app(ServiceConfig(url, keys.log, clock=clock)))
    return f"http://127.0.0.1:{server.port}"


async def vote(
    http: ClientSession, base: str, keys: AuditKeys, voters: range, picks: list[str]
) -> None:
    for voter in voters:
        payload = {
            "type": "ballot",
            "election": ELECTION,
            "voter": voter_token(voter),
            "projects": picks,
            "cast_at": CAST_AT,
            "nonce": f"00000000-0000-4000-8000-{voter:012d}",
        }
        envelope = sign_envelope(payload, keys.site)
        async with http.post(f"{base}/v1/elections/{ELECTION}/ballots", json=envelope) as r:
            assert r.status == 201, await r.text()


async def audit_url(base: str, keys: AuditKeys, saved: Sequence[Path] = ()) -> AuditReport:
    # The server runs on this event loop: audit from a thread, as an outside client would.
    return await asyncio.to_thread(
        audit,
        f"{base}/v1/elections/{ELECTION}",
        keys.log.verifier.vkey,
        keys.admin.verifier.vkey,
        workers=0,
        checkpoints=[str(p) for p in saved],
    )


async def listed_sizes(http: ClientSession, base: str) -> list[int]:
    async with http.get(f"{base}/v1/elections/{ELECTION}/log/checkpoints") as response:
        return [c["size"] for c in (await response.json())["checkpoints"]]


async def test_every_checkpoint_published_while_sealed_is_proved_at_the_close(
    aiohttp_server: ServerFactory, sqlite_url: str, tmp_path: Path
) -> None:
    """Vote while sealed (an observer saving each checkpoint), then close: the audit passes,
    having checked every listed checkpoint and every saved one; before the close it cannot run
    and says the results are sealed."""
    keys = AuditKeys()
    await create(sqlite_url, keys)
    clock = Clock(NOW)
    base = await serve(aiohttp_server, sqlite_url, keys, clock)
    observer = Observer(tmp_path, [])
    async with ClientSession() as http:
        for batch in range(4):
            await vote(http, base, keys, range(10 * batch, 10 * batch + 3), ["L01", "S01"])
            await observer.collect(http, base)

        early = await audit_url(base, keys)
        assert not early.ok
        [violation] = early.violations
        assert violation.check == "source" and "HTTP 403" in violation.found
        assert "sealed until voting closes at 2018-10-10 23:59:59 (Europe/Kyiv)" in violation.found

        clock.now = CLOSES
        report = await audit_url(base, keys, observer.saved)
        listed = await listed_sizes(http, base)
    assert report.ok, report.summary()
    sealed_sizes = sorted(int(p.stem.split("-")[1]) for p in observer.saved)
    assert len(sealed_sizes) == 4
    assert set(sealed_sizes) <= set(listed)
    assert report.checkpoints == len(listed)  # every listed checkpoint recomputed


async def test_a_listed_checkpoint_the_final_log_does_not_extend_fails_naming_it(
    aiohttp_server: ServerFactory, sqlite_url: str, tmp_path: Path
) -> None:
    """The server's list holds a checkpoint of the sealed period whose root is not the final
    log's at that size (signed by the log key all the same): the audit fails at that one."""
    keys = AuditKeys()
    await create(sqlite_url, keys)
    clock = Clock(NOW)
    base = await serve(aiohttp_server, sqlite_url, keys, clock)
    observer = Observer(tmp_path, [])
    async with ClientSession() as http:
        for batch in range(3):
            await vote(http, base, keys, range(10 * batch, 10 * batch + 2), ["L02"])
            await observer.collect(http, base)
        forged_size = int(observer.saved[1].stem.split("-")[1])
        note = observer.saved[1].read_text(encoding="utf-8")
        honest = verify_checkpoint(note, keys.log.verifier)
        forged = Checkpoint(honest.origin, forged_size, hashlib.sha256(b"another history").digest())
        database = sqlite_url.removeprefix("sqlite:///")
        with sqlite3.connect(database) as db:
            db.execute(
                "UPDATE checkpoints SET note = ? WHERE log = ? AND size = ?",
                (sign_checkpoint(forged, keys.log), ELECTION, forged_size),
            )
        clock.now = CLOSES
        report = await audit_url(base, keys)
    assert not report.ok
    roots = [v for v in report.violations if v.check == "root"]
    assert [(v.step, v.checkpoint) for v in roots] == [(4, forged_size)]
    assert roots[0].found == base64.b64encode(forged.root).decode()


async def test_a_sealed_period_history_replaced_at_the_close_fails_naming_the_saved_file(
    aiohttp_server: ServerFactory, sqlite_url: str, tmp_path: Path
) -> None:
    """Split view: while sealed the server published checkpoints of one history (the observer
    kept them); at the close it opens another, built from the same start with other ballots,
    every one of its own checkpoints honest. Its own list passes; the observer's checkpoints
    fail the audit, each named by its file."""
    keys = AuditKeys()
    await create(sqlite_url, keys)
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    other = tmp_path / "other-history.db"
    shutil.copyfile(database, other)  # the same election entry and keys, no ballot yet

    shown, clock = Observer(tmp_path, []), Clock(NOW)
    base = await serve(aiohttp_server, sqlite_url, keys, clock)
    async with ClientSession() as http:
        for batch in range(2):
            await vote(http, base, keys, range(10 * batch, 10 * batch + 2), ["L01"])
            await shown.collect(http, base)

        opened_clock = Clock(CLOSES)
        opened = await serve(aiohttp_server, f"sqlite:///{other}", keys, opened_clock)
        opened_clock.now = NOW
        await vote(http, opened, keys, range(100, 106), ["L03", "S03"])
        opened_clock.now = CLOSES + timedelta(minutes=1)

        alone = await audit_url(opened, keys)
        assert alone.ok, alone.summary()
        report = await audit_url(opened, keys, shown.saved)
    assert not report.ok
    named = sorted((v.check, v.file) for v in report.violations)
    assert named == sorted(("split-view", str(p)) for p in shown.saved)


async def test_the_monitor_waits_for_the_close_and_then_follows(
    aiohttp_server: ServerFactory, sqlite_url: str
) -> None:
    """``uchast monitor`` reads entry bundles, which a sealed election withholds: before the
    close a poll checks the checkpoint's tree from the hash tiles, audits nothing and says why
    (the server's reason); after it, the same monitor reads and audits the whole log."""
    keys = AuditKeys()
    await create(sqlite_url, keys)
    clock = Clock(NOW)
    base = await serve(aiohttp_server, sqlite_url, keys, clock)
    async with ClientSession() as http:
        await vote(http, base, keys, range(3), ["L01"])
    monitor = Monitor(f"{base}/v1/elections/{ELECTION}/log/", keys.log.verifier.vkey)
    assert await asyncio.to_thread(monitor.poll) is None
    assert monitor.last is not None and monitor.audited == 0
    assert monitor.unreadable is not None
    assert "HTTP 403" in monitor.unreadable and "sealed until voting closes" in monitor.unreadable
    clock.now = CLOSES
    assert await asyncio.to_thread(monitor.poll) is None
    assert monitor.last is not None
    assert monitor.audited == monitor.last.size == 1 + 5 + 3  # the election, its keys, ballots
