"""C2SP tlog-cosignature cosignature/v1: key IDs, signed message, lines that verify or not."""

from __future__ import annotations

import base64
import hashlib

import pytest

from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.cosignature import (
    CosignerKey,
    cosign,
    cosignature_line,
    cosigned_message,
    verified_cosignatures,
)
from ledger.errors import KeyFormatError
from ledger.keys import SignerKey

# The example of c2sp.org/tlog-cosignature: the witness line carries key ID 8d66cf3f and the
# timestamp of the example's signed message, "time 1679315147".
SPEC_LINE = (
    "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZ"
    "qhf5nNo0xUe+mbIUBkBIfZ+qnA=="
)


def _checkpoint(size: int = 5) -> tuple[SignerKey, str]:
    log = SignerKey.generate("log.example")
    cp = Checkpoint("example.org/e", size, hashlib.sha256(b"%d" % size).digest())
    return log, sign_checkpoint(cp, log)


def test_spec_example_layout() -> None:
    """The spec's example decodes as key ID || big-endian timestamp || 64-byte signature."""
    raw = base64.b64decode(SPEC_LINE)
    assert len(raw) == 4 + 8 + 64
    assert int.from_bytes(raw[4:12], "big") == 1679315147


def test_key_id_uses_type_0x04() -> None:
    """The key ID hashes name, newline, 0x04 and the key; it differs from the note key hash."""
    signer = SignerKey.generate("witness.example/w1")
    key = CosignerKey.of(signer.verifier)
    expected = hashlib.sha256(b"witness.example/w1\n\x04" + signer.verifier.public).digest()[:4]
    assert key.key_id == expected != signer.verifier.key_hash
    assert CosignerKey.parse(key.vkey) == key


def test_signed_message_is_header_time_body() -> None:
    """The message is 'cosignature/v1', 'time N' and the whole note text."""
    assert cosigned_message("o\n1\nAAAA\n", 7) == b"cosignature/v1\ntime 7\no\n1\nAAAA\n"


def test_cosignature_verifies_and_carries_its_time() -> None:
    """A cosignature line appended to the note verifies under the witness's policy name."""
    _, note = _checkpoint()
    witness = SignerKey.generate("w1.example")
    body = note[: note.rfind("\n\n") + 1]
    line = cosignature_line(witness, body, 1_700_000_000)
    found = verified_cosignatures(cosign(note, [line]), {"W1": CosignerKey.of(witness.verifier)})
    assert [(c.witness, c.timestamp, c.line) for c in found] == [("W1", 1_700_000_000, line)]


def test_cosignature_over_another_checkpoint_counts_for_nothing() -> None:
    """A line moved from one checkpoint to another does not verify there."""
    _, note = _checkpoint(5)
    _, other = _checkpoint(6)
    witness = SignerKey.generate("w1.example")
    line = cosignature_line(witness, other[: other.rfind("\n\n") + 1], 1)
    assert verified_cosignatures(note + line, {"W1": CosignerKey.of(witness.verifier)}) == []


def test_note_signature_by_witness_key_is_not_a_cosignature() -> None:
    """A plain signed-note signature (type 0x01) by the witness key is ignored."""
    witness = SignerKey.generate("w1.example")
    cp = Checkpoint("example.org/e", 5, bytes(32))
    note = sign_checkpoint(cp, witness)
    assert verified_cosignatures(note, {"W1": CosignerKey.of(witness.verifier)}) == []


def test_parse_refuses_a_checkpoint_vkey() -> None:
    """A type 0x01 vkey where a cosigner key is needed says how to get the right one."""
    with pytest.raises(KeyFormatError, match="--print-vkey"):
        CosignerKey.parse(SignerKey.generate("w").verifier.vkey)


def test_parse_refuses_a_wrong_key_id() -> None:
    """The key ID must match the name and key."""
    key = CosignerKey.of(SignerKey.generate("w").verifier)
    name, _, rest = key.vkey.split("+", 2)
    with pytest.raises(KeyFormatError, match="does not match"):
        CosignerKey.parse(f"{name}+00000000+{rest}")
