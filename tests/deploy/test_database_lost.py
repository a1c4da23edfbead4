"""Threat: the database is lost (disk, operator error, ransomware). The backup made by
deploy/backup.sh must restore to the same log, provably, and voting must go on from it. A backup
older than the last checkpoint the servers published is a rollback, not a restore: a server on
it refuses writes (RUNBOOK.md, "Rollback protection")."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import create_pg_database, drop_pg_database
from tests.deploy.tools import DEPLOY, VENV_BIN
from tests.factories import ELECTION
from tests.faults.trial import Server, Trial, run_load

pytestmark = pytest.mark.slow


def entries(export: Path) -> list[bytes]:
    """The exported log's entry lines (without the header and checkpoints)."""
    return [line for line in export.read_bytes().splitlines() if line.startswith(b'{"index"')]


def backup(trial: Trial, root: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "UCHAST_DB": trial.url,
        "UCHAST_ELECTIONS": ELECTION,
        "UCHAST_LOG_VKEY": trial.keys.log.verifier.vkey,
        "UCHAST_ADMIN_VKEY": trial.keys.admin.verifier.vkey,
        **overrides,
    }
    return subprocess.run(
        ["sh", str(DEPLOY / "backup.sh"), str(root)], env=env, capture_output=True, text=True
    )


async def test_backup_restores_the_same_log_and_voting_resumes(pg_url: str, tmp_path: Path) -> None:
    """uchast-backup writes a dump, an export that `uchast audit` passed and checksums; with
    the wrong admin key it fails and leaves no finished backup. After the database is
    dropped, pg_restore into a new one gives back the exported log entry for entry; a server
    on it accepts new ballots, and the new log (old entries as its prefix) audits."""
    trial = await Trial.create(pg_url, tmp_path)
    server = Server(trial)
    server.start()
    try:
        book = await run_load(trial, lambda: [server.url], trial.electorate(), 300)
    finally:
        server.stop()
    root = tmp_path / "backups"

    wrong = backup(trial, root, UCHAST_ADMIN_VKEY=trial.keys.site.verifier.vkey)
    assert wrong.returncode != 0 and "FAILED" in wrong.stderr
    assert not [p for p in root.iterdir() if not p.name.endswith(".partial")]

    done = backup(trial, root)
    assert done.returncode == 0, done.stderr
    [made] = [p for p in root.iterdir() if p.name.endswith("Z")]
    assert {p.name for p in made.iterdir()} == {
        "uchast.dump",
        f"{ELECTION}.log.jsonl",
        f"{ELECTION}.audit.txt",
        "SHA256SUMS",
    }
    assert "PASSED" in (made / f"{ELECTION}.audit.txt").read_text()
    sums = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=made, capture_output=True)
    assert sums.returncode == 0
    saved = entries(made / f"{ELECTION}.log.jsonl")
    assert len(saved) == 4 + 3 + len(book.acknowledged)  # definition, keys, clerks, ballots

    drop_pg_database(pg_url)  # the loss
    restored = create_pg_database()
    try:
        subprocess.run(
            ["pg_restore", "--no-owner", "--exit-on-error", "-d", restored, made / "uchast.dump"],
            check=True,
            capture_output=True,
        )
        trial.url = restored
        trial.audit()
        assert entries(trial.dir / "export.jsonl") == saved, "the restored log differs"

        server = Server(trial)
        server.start()
        try:
            urls = [server.url]
            book = await run_load(
                trial, lambda: urls, trial.electorate(), 100, first=300, book=book
            )
            await trial.check(book, urls)
        finally:
            server.stop()
        resumed = entries(trial.dir / "export.jsonl")
        assert resumed[: len(saved)] == saved and len(resumed) > len(saved)
    finally:
        drop_pg_database(restored)

    # The same backup again, now older than what the servers published since: a rollback.
    stale = create_pg_database()
    try:
        subprocess.run(
            ["pg_restore", "--no-owner", "--exit-on-error", "-d", stale, made / "uchast.dump"],
            check=True,
            capture_output=True,
        )
        trial.url = stale
        server = Server(trial)
        server.start()
        try:
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{server.url}/readyz", timeout=5)
            assert refused.value.code == 503
            ready = json.loads(refused.value.read())
            assert ready["reason"] == "log-rolled-back"
            assert ready["elections"] == {ELECTION: {"published": len(resumed), "size": len(saved)}}
        finally:
            server.stop()
        assert "ROLLED BACK" in server.output()
    finally:
        drop_pg_database(stale)
