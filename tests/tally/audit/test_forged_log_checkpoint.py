"""Threat: checkpoints that the log key did not sign, that sign another tree or another log, or
that leave part of the log unsigned."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.keys import SignerKey
from tally.audit import AuditReport, audit
from tests.tally.election_log import AuditKeys, election_log, export, standard_log


async def exported(tmp_path: Path, sqlite_url: str) -> tuple[list[bytes], AuditKeys]:
    keys = AuditKeys()
    async with election_log(sqlite_url, keys) as log:
        await standard_log(log)
    data = await export(sqlite_url, tmp_path / "log.jsonl")
    return data.split(b"\n")[:-1], keys


def audit_lines(tmp_path: Path, lines: list[bytes], keys: AuditKeys) -> AuditReport:
    path = tmp_path / "forged.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return audit(str(path), keys.log.verifier.vkey, keys.admin.verifier.vkey, workers=0)


def checkpoint_line(note: str, size: int) -> bytes:
    return json.dumps({"checkpoint": {"size": size, "note": note}}).encode()


def last_checkpoint(lines: list[bytes]) -> tuple[int, Checkpoint]:
    note = json.loads(lines[-1])["checkpoint"]["note"]
    body = note[: note.rindex("\n\n") + 1]
    return len(lines) - 1, Checkpoint.parse(body)


async def test_a_checkpoint_signed_by_another_key_of_the_same_name_is_refused(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Same name as the log key, different key: the note carries no signature by the log."""
    lines, keys = await exported(tmp_path, sqlite_url)
    at, checkpoint = last_checkpoint(lines)
    impostor = SignerKey.generate(keys.log.name)
    lines[at] = checkpoint_line(sign_checkpoint(checkpoint, impostor), checkpoint.size)
    report = audit_lines(tmp_path, lines, keys)
    assert set(report.violation_counts) == {"checkpoint-signature", "coverage"}
    [forged] = [v for v in report.violations if v.check == "checkpoint-signature"]
    assert forged.checkpoint == checkpoint.size and forged.step == 4


async def test_an_impostor_copying_the_key_hash_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    """A signature line with the log key's name and hash but another key's signature."""
    lines, keys = await exported(tmp_path, sqlite_url)
    at, checkpoint = last_checkpoint(lines)
    impostor = SignerKey.generate(keys.log.name)
    body = checkpoint.body()
    signature = keys.log.verifier.key_hash + impostor.sign(body.encode())
    line = f"\u2014 {keys.log.name} {base64.b64encode(signature).decode()}\n"
    lines[at] = checkpoint_line(body + "\n\n" + line, checkpoint.size)
    report = audit_lines(tmp_path, lines, keys)
    assert "checkpoint-signature" in report.violation_counts
    assert not report.ok


async def test_an_altered_root_is_refused_whoever_signs_it(tmp_path: Path, sqlite_url: str) -> None:
    """An altered root under the old signature fails the signature; under the real log key
    (a forking log) it fails the recomputed root."""
    lines, keys = await exported(tmp_path, sqlite_url)
    at, checkpoint = last_checkpoint(lines)
    altered = Checkpoint(checkpoint.origin, checkpoint.size, hashlib.sha256(b"fork").digest())
    original = json.loads(lines[at])["checkpoint"]["note"]
    signature_block = original[original.rindex("\n\n") :]
    lines[at] = checkpoint_line(altered.body() + signature_block[1:], checkpoint.size)
    report = audit_lines(tmp_path, lines, keys)
    assert "checkpoint-signature" in report.violation_counts

    lines[at] = checkpoint_line(sign_checkpoint(altered, keys.log), checkpoint.size)
    report = audit_lines(tmp_path, lines, keys)
    [root] = [v for v in report.violations if v.check == "root"]
    assert root.checkpoint == checkpoint.size and root.step == 4


async def test_a_checkpoint_of_another_log_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    """The log key signing the same tree under another origin does not vouch for this log."""
    lines, keys = await exported(tmp_path, sqlite_url)
    at, checkpoint = last_checkpoint(lines)
    elsewhere = Checkpoint("elsewhere/test-2018", checkpoint.size, checkpoint.root)
    lines[at] = checkpoint_line(sign_checkpoint(elsewhere, keys.log), checkpoint.size)
    report = audit_lines(tmp_path, lines, keys)
    assert "origin" in report.violation_counts


async def test_entries_beyond_the_last_checkpoint_are_refused(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Dropping the last checkpoints leaves entries no signed root covers."""
    lines, keys = await exported(tmp_path, sqlite_url)
    report = audit_lines(tmp_path, lines[:-2], keys)
    assert set(report.violation_counts) == {"coverage"}
    report = audit_lines(tmp_path, [line for line in lines if b'"checkpoint"' not in line], keys)
    assert set(report.violation_counts) == {"coverage"}


async def test_a_checkpoint_beyond_the_log_or_out_of_order_is_refused(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Checkpoints must come in ascending size and not exceed the log."""
    lines, keys = await exported(tmp_path, sqlite_url)
    at, checkpoint = last_checkpoint(lines)
    beyond = Checkpoint(checkpoint.origin, checkpoint.size + 5, checkpoint.root)
    report = audit_lines(
        tmp_path, [*lines, checkpoint_line(sign_checkpoint(beyond, keys.log), beyond.size)], keys
    )
    assert "checkpoint-size" in report.violation_counts
    swapped = [*lines]
    swapped[at], swapped[at - 1] = swapped[at - 1], swapped[at]
    report = audit_lines(tmp_path, swapped, keys)
    assert "checkpoint-order" in report.violation_counts
