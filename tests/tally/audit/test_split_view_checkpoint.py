"""Threat: a split view. The log key signs two histories of the same size, shows one to the
auditor and the other to someone who saved its checkpoint (a witness, a voter's receipt, a
newspaper). ``--checkpoint FILE`` compares the saved root with the root of the audited log's
first ``size`` entries, and fails naming the file; checkpoints that do not verify are named
too, while one that agrees passes, whatever cosignatures of unknown keys it carries."""

from __future__ import annotations

import json
from pathlib import Path

from ledger.checkpoint import Checkpoint, sign_checkpoint, sign_note
from ledger.keys import SignerKey
from tally.audit import AuditReport, audit
from tally.audit.replay import SavedCheckpoint
from tests.tally.election_log import AuditKeys, election_log, export


async def write_log(url: str, keys: AuditKeys, path: Path, first_voter: int) -> list[str]:
    """Eight ballots of voters from ``first_voter``; every checkpoint note of the export."""
    async with election_log(url, keys) as log:
        for n in range(first_voter, first_voter + 8):
            await log.ballot(n, ["L01", "S02"])
    lines = (await export(url, path)).decode().splitlines()
    return [json.loads(line)["checkpoint"]["note"] for line in lines if '"checkpoint"' in line]


def audited(path: Path, keys: AuditKeys, *saved: str | SavedCheckpoint) -> AuditReport:
    return audit(
        str(path), keys.log.verifier.vkey, keys.admin.verifier.vkey, workers=0, checkpoints=saved
    )


def body(note: str) -> Checkpoint:
    return Checkpoint.parse(note[: note.rindex("\n\n") + 1])


async def test_a_checkpoint_of_another_history_of_the_same_size_is_a_split_view(
    tmp_path: Path,
) -> None:
    """The same keys write two logs that differ after the definition; the checkpoint of the
    other log at the audited log's size fails the audit, named, its root and the log's shown;
    every checkpoint of the audited log itself passes."""
    keys = AuditKeys()
    shown = await write_log(f"sqlite:///{tmp_path / 'a.db'}", keys, tmp_path / "a.jsonl", 0)
    other = await write_log(f"sqlite:///{tmp_path / 'b.db'}", keys, tmp_path / "b.jsonl", 500)
    assert body(shown[-1]).size == body(other[-1]).size
    assert body(shown[-1]).root != body(other[-1]).root

    honest = [SavedCheckpoint(f"shown-{body(n).size}.note", n) for n in shown]
    assert audited(tmp_path / "a.jsonl", keys, *honest).ok

    forged = tmp_path / "newspaper.note"
    forged.write_text(other[-1])
    report = audited(tmp_path / "a.jsonl", keys, *honest, str(forged))
    assert report.violation_counts == {"split-view": 1}, report.summary()
    [split] = report.violations
    size = body(other[-1]).size
    assert (split.step, split.file, split.checkpoint) == (4, str(forged), size)
    assert split.where == f"checkpoint file {forged}"
    assert f"{forged} is not consistent with the log (split view)" in split.found
    assert report.root in split.expected  # the audited log's root at that size


async def test_an_older_checkpoint_of_another_history_is_a_split_view(tmp_path: Path) -> None:
    """A saved checkpoint smaller than the log: its root is compared with the root of that
    many of the log's first entries (kept while the leaves stream by)."""
    keys = AuditKeys()
    await write_log(f"sqlite:///{tmp_path / 'a.db'}", keys, tmp_path / "a.jsonl", 0)
    other = await write_log(f"sqlite:///{tmp_path / 'b.db'}", keys, tmp_path / "b.jsonl", 500)
    older = next(n for n in other if body(n).size == 10)
    report = audited(tmp_path / "a.jsonl", keys, SavedCheckpoint("receipt.note", older))
    assert report.violation_counts == {"split-view": 1}
    assert report.violations[0].checkpoint == 10


async def test_saved_checkpoints_that_do_not_verify_are_named(tmp_path: Path) -> None:
    """Signed by another key, of another log, or unreadable: each a violation naming the
    file; cosignatures of keys the auditor does not know are ignored (C2SP signed-note)."""
    keys = AuditKeys()
    notes = await write_log(f"sqlite:///{tmp_path / 'a.db'}", keys, tmp_path / "a.jsonl", 0)
    latest = body(notes[-1])
    witness = SignerKey.generate("witness.example")
    cosigned = notes[-1] + sign_note(latest.body(), [witness]).split("\n\n")[-1]
    assert cosigned.count("\u2014 ") == 2
    impostor = sign_checkpoint(latest, SignerKey.generate(keys.log.name))
    elsewhere = sign_checkpoint(
        Checkpoint("uchast.local/another-election", latest.size, latest.root), keys.log
    )
    report = audited(
        tmp_path / "a.jsonl",
        keys,
        SavedCheckpoint("witnessed.note", cosigned),
        SavedCheckpoint("impostor.note", impostor),
        SavedCheckpoint("elsewhere.note", elsewhere),
        str(tmp_path / "missing.note"),
    )
    assert report.violation_counts == {"saved-checkpoint": 3}, report.summary()
    named = {v.file: v for v in report.violations}
    assert set(named) == {"impostor.note", "elsewhere.note", str(tmp_path / "missing.note")}
    assert "no signature by" in named["impostor.note"].found
    assert named["elsewhere.note"].found == "uchast.local/another-election"
