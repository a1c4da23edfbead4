"""bench/audit_replay.py's logs: the voting day's shape (paper ballots by the clerks of the
polling points, each after its clerk's voter lookup; a checkpoint every few entries) passes the
audit, and the baseline verifies every entry's signature."""

from __future__ import annotations

import json
from pathlib import Path

from bench.audit_replay import build_log, signatures_of
from tally.audit import audit


def test_voting_day_shaped_log_passes_the_audit(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    keys = build_log(path, 600, 1, paper=0.3, checkpoint_every=12)

    report = audit(str(path), keys["log_vkey"], keys["admin_vkey"], workers=0)

    assert report.ok, report.summary()
    header = json.loads(path.open("rb").readline())
    assert report.entries == header["size"]
    assert report.ballots == 600
    assert 0 < report.lookups < 600
    types = [
        json.loads(line)["entry"]["type"]
        for line in path.read_bytes().splitlines()[1:]
        if line.startswith(b'{"index"')
    ]
    paper = [i for i, t in enumerate(types) if t == "paper-ballot"]
    assert len(paper) == report.lookups
    assert all(types[i - 1] == "voter-lookup" for i in paper)
    signed, checkpoints, paper_ballots = signatures_of(path)
    assert len(signed) == header["size"] - 1 - 1 - 3  # election, site and three clerk keys
    assert paper_ballots == len(paper)
    assert checkpoints == report.checkpoints == -(-header["size"] // 12)


def test_default_log_is_online_ballots_only(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    keys = build_log(path, 300, 1)

    report = audit(str(path), keys["log_vkey"], keys["admin_vkey"], workers=0)

    assert report.ok, report.summary()
    assert report.entries == 302 and report.lookups == 0
    signed, checkpoints, paper_ballots = signatures_of(path)
    assert (len(signed), checkpoints, paper_ballots) == (300, 1, 0)
