"""The auditor against a running server: entries, checkpoints, consistency proofs and published
results fetched over HTTP (urllib), with the same verdict as the exported file."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from api.app import create_app
from api.service import ServiceConfig
from tally.audit import AuditReport, audit
from tally.audit.sources import LogServer
from tests.factories import ELECTION
from tests.tally.election_log import AuditKeys, election_log, export, standard_log

ServerFactory = Callable[[Any], Awaitable[TestServer]]


async def serve(aiohttp_server: ServerFactory, sqlite_url: str, keys: AuditKeys) -> str:
    server = await aiohttp_server(create_app(ServiceConfig(sqlite_url, keys.log)))
    return str(server.make_url("")).rstrip("/")


async def audit_url(url: str, keys: AuditKeys, **options: Any) -> AuditReport:
    # The server runs on this event loop: audit from a thread, as an outside client would.
    return await asyncio.to_thread(
        audit, url, keys.log.verifier.vkey, keys.admin.verifier.vkey, workers=0, **options
    )


async def test_an_audit_of_a_live_server_passes_and_matches_the_file(
    aiohttp_server: ServerFactory, sqlite_url: str, tmp_path: Path
) -> None:
    """Base URL with --election, or the election's own URL: every check passes, the server's
    /results agree with the recount, and the figures equal those of the exported file."""
    keys = AuditKeys()
    async with election_log(sqlite_url, keys) as log:
        await standard_log(log)
    url = await serve(aiohttp_server, sqlite_url, keys)

    report = await audit_url(url, keys, election=ELECTION)
    assert report.ok, report.summary()
    assert report.results_compared
    assert report.checkpoints > 1

    by_path = await audit_url(f"{url}/v1/elections/{ELECTION}", keys)
    assert by_path.ok and by_path.root == report.root

    path = tmp_path / "log.jsonl"
    await export(sqlite_url, path)
    from_file = audit(str(path), keys.log.verifier.vkey, keys.admin.verifier.vkey, workers=0)
    assert (from_file.entries, from_file.root, from_file.totals, from_file.winners) == (
        report.entries,
        report.root,
        report.totals,
        report.winners,
    )


class LyingServer(LogServer):
    """Serves a wrong consistency proof between two checkpoints."""

    def consistency_proof(self, old: int, new: int) -> list[bytes] | None:
        proof = super().consistency_proof(old, new)
        if proof and old == 10:
            proof[0] = hashlib.sha256(b"lie").digest()
        return proof


async def test_a_bad_consistency_proof_is_reported(
    aiohttp_server: ServerFactory, sqlite_url: str
) -> None:
    """The proofs between successive checkpoints are checked, not just fetched."""
    keys = AuditKeys()
    async with election_log(sqlite_url, keys) as log:
        await standard_log(log)
    url = await serve(aiohttp_server, sqlite_url, keys)
    report = await audit_url(LyingServer(url, ELECTION), keys)  # type: ignore[arg-type]
    [violation] = report.violations
    assert (violation.step, violation.check, violation.checkpoint) == (4, "consistency", 11)


async def test_a_server_without_the_election_is_reported(
    aiohttp_server: ServerFactory, sqlite_url: str
) -> None:
    """An unknown election or an unreachable server fails the audit, it does not crash it."""
    keys = AuditKeys()
    async with election_log(sqlite_url, keys):
        pass
    url = await serve(aiohttp_server, sqlite_url, keys)
    report = await audit_url(url, keys, election="no-such-election")
    assert not report.ok and "latest-checkpoint" in report.violation_counts
    report = await audit_url("http://127.0.0.1:9/", keys, election=ELECTION)
    assert not report.ok and "source" in report.violation_counts
