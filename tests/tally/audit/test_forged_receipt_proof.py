"""Threat: a forged or altered receipt proof file. ``uchast verify-receipt`` accepts the file the
server gave and refuses, naming the check, one whose index, proof hash, checkpoint, signature or
entry was changed, or that proves another ballot than the code the voter holds."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ledger.canonical import canonical
from ledger.checkpoint import sign_note
from ledger.keys import SignerKey
from ledger.tlog_proof import tlog_proof
from tally.audit.crypto import VerifierKey
from tally.audit.receipts import ReceiptProofError, main, verify_receipt_proof
from tests.tally.election_log import AuditKeys, election_log, standard_log
from votes.receipts import receipt_code


async def _proof_file(sqlite_url: str, keys: AuditKeys) -> tuple[str, str, str]:
    """The proof file of the log's 18th entry (a ballot), its code, and another ballot's code."""
    async with election_log(sqlite_url, keys) as log:
        await standard_log(log)
        ledger = log.ledger
        checkpoint = await ledger.latest_checkpoint()
        assert checkpoint is not None
        entries = await ledger.entries(0, checkpoint.size)
        ballots = [e for e in entries if e.type in ("ballot", "paper-ballot")]
        entry, other = ballots[5], ballots[6]
        hashes = await ledger.inclusion_proof(entry.position, checkpoint.size)
        text = tlog_proof(entry.position, hashes, checkpoint.note, entry.data)

    def code_of(data: bytes) -> str:
        return receipt_code(base64.b64decode(json.loads(data)["envelope"]["sig"]))

    return text, code_of(entry.data), code_of(other.data)


def _replace_line(text: str, number: int, line: str) -> str:
    lines = text.split("\n")
    lines[number] = line
    return "\n".join(lines)


def _check(text: str, key: SignerKey, code: str | None = None) -> str:
    with pytest.raises(ReceiptProofError) as raised:
        verify_receipt_proof(text, VerifierKey.parse(key.verifier.vkey), code)
    return raised.value.check


async def test_the_servers_file_verifies_and_each_forgery_is_named(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The genuine file passes (exit 0); each tampering fails its own check (exit 1)."""
    keys = AuditKeys()
    text, code, other_code = await _proof_file(sqlite_url, keys)
    log_key = VerifierKey.parse(keys.log.verifier.vkey)
    proof = verify_receipt_proof(text, log_key, code)
    assert proof.code == code and proof.origin.endswith("/test-2018")
    lines = text.split("\n")
    index = int(lines[2].removeprefix("index "))
    entry = json.loads(base64.b64decode(lines[1].removeprefix("extra ")))

    changed_entry = json.loads(json.dumps(entry))
    changed_entry["envelope"]["payload"]["projects"] = ["L05"]
    forged_extra = "extra " + base64.b64encode(canonical(changed_entry)).decode()
    spaced_extra = "extra " + base64.b64encode(json.dumps(entry).encode()).decode()
    flipped = base64.b64encode(bytes(32)).decode()
    head, _, note = text.partition("\n\n")
    origin, size, _root, *rest = note.split("\n")
    other_root = base64.b64encode(bytes(32)).decode()

    forgeries = {
        "index": (_replace_line(text, 2, f"index {index + 1}"), "inclusion"),
        "index beyond the tree": (_replace_line(text, 2, "index 999999"), "index"),
        "proof hash": (_replace_line(text, 3, flipped), "inclusion"),
        "checkpoint root": (
            head + "\n\n" + "\n".join([origin, size, other_root, *rest]),
            "checkpoint-signature",
        ),
        "entry changed": (_replace_line(text, 1, forged_extra), "inclusion"),
        "entry re-spaced": (_replace_line(text, 1, spaced_extra), "entry"),
        "no entry": ("\n".join(lines[:1] + lines[2:]), "format"),
        "not a proof": (text.replace("tlog-proof@v1", "tlog-proof@v2", 1), "format"),
    }
    for name, (forged, check) in forgeries.items():
        assert _check(forged, keys.log) == check, name
    assert _check(text, SignerKey.generate(keys.log.name)) == "checkpoint-signature"
    assert _check(text, keys.log, other_code) == "receipt-code"

    genuine, tampered = tmp_path / "good.tlog-proof", tmp_path / "forged.tlog-proof"
    genuine.write_text(text)
    tampered.write_text(forgeries["proof hash"][0])
    vkey = keys.log.verifier.vkey
    assert main([str(genuine), "--log-vkey", vkey, "--code", code.lower()]) == 0
    assert f"VERIFIED: receipt {code}" in capsys.readouterr().out
    assert main([str(tampered), "--log-vkey", vkey]) == 1
    assert "NOT VERIFIED (inclusion)" in capsys.readouterr().out
    assert main([str(genuine), "--log-vkey", vkey, "--code", other_code]) == 1
    assert f"proves the ballot with code {code}" in capsys.readouterr().out
    assert main([str(tmp_path / "missing"), "--log-vkey", vkey]) == 2


async def test_other_signature_lines_are_named_not_trusted(sqlite_url: str) -> None:
    """A witness's line on the checkpoint is listed as a cosigner (not verified here); a line
    that claims the log key's name and hash but does not verify fails the file."""
    keys = AuditKeys()
    text, code, _ = await _proof_file(sqlite_url, keys)
    note = text.partition("\n\n")[2]
    body = note[: note.rindex("\n\n") + 1]
    witness = SignerKey.generate("witness-1.example")
    extra_line = sign_note(body, [witness]).rsplit("\n", 2)[-2]
    cosigned = text + extra_line + "\n"
    log_key = VerifierKey.parse(keys.log.verifier.vkey)
    assert verify_receipt_proof(cosigned, log_key, code).cosigners == ("witness-1.example",)
    log_line = note.rsplit("\n", 2)[-2]
    name, sig64 = log_line.removeprefix("\u2014 ").split(" ")
    raw = bytearray(base64.b64decode(sig64))
    raw[-1] ^= 1
    bad_line = f"\u2014 {name} {base64.b64encode(bytes(raw)).decode()}"
    assert _check(text.replace(log_line, bad_line), keys.log) == "checkpoint-signature"
