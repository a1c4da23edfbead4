"""Threat: a split view shown to a voter. The log key signs two histories; a voter's receipt
proof file verifies on its own against one of them, but ``uchast audit --checkpoint FILE`` takes
the proof file's checkpoint and fails, naming the file, when the audited log is the other."""

from __future__ import annotations

from pathlib import Path

from ledger.tlog_proof import tlog_proof
from tally.audit import audit
from tally.audit.crypto import VerifierKey
from tally.audit.receipts import verify_receipt_proof
from tests.tally.election_log import AuditKeys, election_log, export


async def write_log(url: str, keys: AuditKeys, path: Path, first_voter: int) -> str:
    """Eight ballots, exported to ``path``; the proof file of the last one."""
    async with election_log(url, keys) as log:
        for n in range(first_voter, first_voter + 8):
            await log.ballot(n, ["L01", "S02"])
        checkpoint = await log.ledger.latest_checkpoint()
        assert checkpoint is not None
        [entry] = await log.ledger.entries(checkpoint.size - 1, checkpoint.size)
        hashes = await log.ledger.inclusion_proof(entry.position, checkpoint.size)
    await export(url, path)
    return tlog_proof(entry.position, hashes, checkpoint.note, entry.data)


async def test_a_receipt_of_another_history_fails_the_audit(tmp_path: Path) -> None:
    """Both proof files verify alone; the audit of log A accepts A's and names B's."""
    keys = AuditKeys()
    shown = await write_log(f"sqlite:///{tmp_path / 'a.db'}", keys, tmp_path / "a.jsonl", 0)
    other = await write_log(f"sqlite:///{tmp_path / 'b.db'}", keys, tmp_path / "b.jsonl", 500)
    log_key = VerifierKey.parse(keys.log.verifier.vkey)
    verify_receipt_proof(shown, log_key)
    verify_receipt_proof(other, log_key)
    honest, voters = tmp_path / "mine.tlog-proof", tmp_path / "theirs.tlog-proof"
    honest.write_text(shown)
    voters.write_text(other)

    def audited(*files: Path) -> list[tuple[str, str | None]]:
        report = audit(
            str(tmp_path / "a.jsonl"),
            keys.log.verifier.vkey,
            keys.admin.verifier.vkey,
            workers=0,
            checkpoints=[str(f) for f in files],
        )
        return [(v.check, v.file) for v in report.violations]

    assert audited(honest) == []
    assert audited(honest, voters) == [("split-view", str(voters))]
