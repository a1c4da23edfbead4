"""Forged checkpoints: other keys, altered size or root, truncation and reordering are refused."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ledger.checkpoint import (
    Checkpoint,
    sign_checkpoint,
    sign_note,
    verify_checkpoint,
    verify_note,
)
from ledger.errors import CheckpointError
from ledger.keys import SignerKey

ORIGIN = "uchast.example/zhytomyr-2018"
LOG = SignerKey.from_seed(ORIGIN, bytes(range(32)))
IMPOSTOR = SignerKey.from_seed(ORIGIN, bytes(range(1, 33)))  # same name, another key
WITNESS = SignerKey.from_seed("witness.example", bytes(range(2, 34)))
ROOT = hashlib.sha256(b"\x01" + bytes(64)).digest()
CP = Checkpoint(ORIGIN, 32017, ROOT)
NOTE = sign_checkpoint(CP, LOG)
BODY = CP.body()


def _refused(note: str) -> None:
    with pytest.raises(CheckpointError):
        verify_checkpoint(note, LOG.verifier, origin=ORIGIN)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def test_genuine_checkpoint_verifies() -> None:
    """The untouched note verifies (the baseline for every forgery below)."""
    assert verify_checkpoint(NOTE, LOG.verifier, origin=ORIGIN) == CP


def test_checkpoint_signed_by_another_key_with_the_same_name_is_refused() -> None:
    """A checkpoint signed by a different key that uses the log's name is refused."""
    assert IMPOSTOR.name == LOG.name
    assert IMPOSTOR.verifier.key_hash != LOG.verifier.key_hash
    forged = sign_checkpoint(Checkpoint(ORIGIN, 40000, ROOT), IMPOSTOR)
    with pytest.raises(CheckpointError, match="no signature by a known key"):
        verify_checkpoint(forged, LOG.verifier)


def test_impostor_signature_under_the_log_key_hash_is_refused() -> None:
    """A line with the log's name and key hash but another key's signature fails outright."""
    forged_cp = Checkpoint(ORIGIN, 40000, ROOT)
    sig = IMPOSTOR.sign(forged_cp.body().encode("utf-8"))
    line = f"\u2014 {LOG.name} {_b64(LOG.verifier.key_hash + sig)}\n"
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_checkpoint(forged_cp.body() + "\n" + line, LOG.verifier)


def test_bad_known_signature_is_refused_even_beside_a_good_one() -> None:
    """A failing line by the known key makes the whole note fail, even if another line verifies."""
    bad = f"\u2014 {LOG.name} {_b64(LOG.verifier.key_hash + bytes(64))}\n"
    _refused(NOTE + bad)
    _refused(BODY + "\n" + bad + NOTE[len(BODY) + 1 :])


def test_witness_only_note_is_refused() -> None:
    """A note signed only by some other known-looking key is not signed by the log."""
    _refused(sign_checkpoint(CP, WITNESS))


@pytest.mark.parametrize("size", [0, 1, 32016, 32018, 320170, 2**64 - 1])
def test_altered_size_is_refused(size: int) -> None:
    """Changing the tree size under the original signature is refused."""
    forged = NOTE.replace("\n32017\n", f"\n{size}\n", 1)
    assert forged != NOTE
    _refused(forged)


@given(st.integers(0, 31), st.integers(1, 255))
def test_altered_root_is_refused(index: int, xor: int) -> None:
    """Changing any byte of the root hash under the original signature is refused."""
    root = bytearray(ROOT)
    root[index] ^= xor
    _refused(NOTE.replace(_b64(ROOT), _b64(bytes(root)), 1))


@given(st.data())
def test_any_changed_character_of_the_text_is_refused(data: st.DataObject) -> None:
    """Replacing any single character of the checkpoint text by another is refused."""
    index = data.draw(st.integers(0, len(BODY) - 1), label="index")
    char = data.draw(st.characters(codec="utf-8"), label="char")
    assume(char != BODY[index])
    _refused(BODY[:index] + char + NOTE[index + 1 :])


def test_added_extension_line_is_refused() -> None:
    """Appending an extension line to a signed checkpoint is refused."""
    _refused(BODY + "extra\n" + NOTE[len(BODY) :])


def test_signature_replayed_on_another_checkpoint_is_refused() -> None:
    """The log's signature line copied onto a different checkpoint text is refused."""
    other = Checkpoint(ORIGIN, 32018, hashlib.sha256(b"other").digest())
    _refused(other.body() + NOTE[len(BODY) :])


@pytest.mark.parametrize("cut", range(len(NOTE)))
def test_truncated_note_is_refused(cut: int) -> None:
    """Every proper prefix of a singly signed checkpoint note is refused."""
    _refused(NOTE[:cut])


def test_note_with_lines_appended_after_the_signatures_is_refused() -> None:
    """Text after the signature block turns it into a malformed or unsigned note."""
    _refused(NOTE + "\n")
    _refused(NOTE + "32018\n")
    _refused(NOTE + "\n" + BODY)


def _lines(note: str) -> list[str]:
    return note.split("\n")


@pytest.mark.parametrize(
    "order",
    [
        (1, 0, 2, 3, 4, 5),  # size before origin
        (0, 2, 1, 3, 4, 5),  # root before size
        (2, 1, 0, 3, 4, 5),
        (4, 3, 0, 1, 2, 5),  # signature before the text
        (3, 4, 3, 0, 1, 2, 5),
        (0, 1, 2, 4, 3, 5),  # blank line after the signature
    ],
)
def test_reordered_note_is_refused(order: tuple[int, ...]) -> None:
    """Any reordering of the note's lines is refused."""
    lines = _lines(NOTE)
    assert len(lines) == 6 and lines[3] == "" and lines[5] == ""
    forged = "\n".join(lines[i] for i in order)
    assert forged != NOTE
    _refused(forged)


def test_dropping_the_log_signature_from_a_cosigned_note_is_refused() -> None:
    """Removing the log's line from a log+witness note leaves no log signature: refused."""
    cosigned = sign_note(BODY, [LOG, WITNESS])
    assert verify_checkpoint(cosigned, LOG.verifier, origin=ORIGIN) == CP
    log_line = NOTE[len(BODY) + 1 :]
    stripped = cosigned.replace(log_line, "", 1)
    assert stripped != cosigned
    _refused(stripped)


def test_reordered_signature_lines_still_verify() -> None:
    """Signature order carries no meaning in C2SP: swapping log and witness lines is accepted."""
    cosigned = sign_note(BODY, [WITNESS, LOG])
    assert verify_checkpoint(cosigned, LOG.verifier) == CP
    assert verify_note(cosigned, [WITNESS.verifier]) == BODY


def test_checkpoint_of_another_origin_is_refused() -> None:
    """A genuine checkpoint of another log (other origin) is refused when the origin is given."""
    other = sign_checkpoint(Checkpoint("uchast.example/kyiv-2018", 5, ROOT), LOG)
    with pytest.raises(CheckpointError, match="origin"):
        verify_checkpoint(other, LOG.verifier, origin=ORIGIN)
