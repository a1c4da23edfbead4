"""C2SP signed notes and tlog checkpoints: vectors, round trips and strict parsing."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from ledger.checkpoint import (
    MAX_SIGNATURES,
    Checkpoint,
    SignedNote,
    parse_note,
    sign_checkpoint,
    sign_note,
    verify_checkpoint,
    verify_note,
)
from ledger.errors import CheckpointError
from ledger.keys import SignerKey, VerifierKey

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
NOTE_FILE = SHARED / "vectors" / "signed-note" / "note_vectors.json"
NOTE_VECTORS: Any = (
    json.loads(NOTE_FILE.read_text(encoding="utf-8")) if NOTE_FILE.exists() else None
)
NOTE_IDS = [v["id"] for v in NOTE_VECTORS["vectors"]] if NOTE_VECTORS else ["missing"]


def _vectors() -> Any:
    """Return the note vectors; fail (in CI) or skip (elsewhere) when the shared dir is missing."""
    if NOTE_VECTORS is None:
        message = f"test vectors missing: {NOTE_FILE}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return NOTE_VECTORS


def _vector(vector_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(v for v in _vectors()["vectors"] if v["id"] == vector_id)
    return found


def _text_of(note: str) -> str:
    return note[: note.rindex("\n\n") + 1]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


LOG = SignerKey.from_seed("uchast.example/zhytomyr-2018", bytes(range(32)))
WITNESS = SignerKey.from_seed("witness.example", bytes(range(100, 132)))
ROOT = hashlib.sha256(b"\x01" + bytes(64)).digest()
CP = Checkpoint("uchast.example/zhytomyr-2018", 32017, ROOT)


# --------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("vector_id", NOTE_IDS)
def test_note_vectors_verify(vector_id: str) -> None:
    """Every signed-note vector verifies under its vkey and yields the text before the blank."""
    vector = _vector(vector_id)
    key = VerifierKey.parse(vector["vkey"])
    assert vector["expect_valid"] is True
    assert verify_note(vector["note"], [key]) == _text_of(vector["note"])
    parsed = parse_note(vector["note"])
    assert parsed.body == _text_of(vector["note"])
    assert [(name, h) for name, h, _ in parsed.signatures] == [(key.name, key.key_hash)]
    assert all(len(sig) == 64 for _, _, sig in parsed.signatures)


@pytest.mark.parametrize("vector_id", NOTE_IDS)
def test_note_vectors_fail_under_an_unrelated_key(vector_id: str) -> None:
    """A vector note checked against a key it was not signed by is refused."""
    vector = _vector(vector_id)
    with pytest.raises(CheckpointError, match="no signature by a known key"):
        verify_note(vector["note"], [LOG.verifier])


def test_note_vector_resigns_deterministically() -> None:
    """Signing the PeterNeumann text with its skey reproduces the Go note byte for byte."""
    vector = _vector("go-sumdb-note-PeterNeumann")
    signer = SignerKey.parse(vector["skey"])
    assert sign_note(_text_of(vector["note"]), [signer]) == vector["note"]


def test_two_go_signers_combine_in_one_note() -> None:
    """The same text signed by PeterNeumann and EnochRoot verifies under either key alone."""
    vectors = {v["id"]: v for v in _vectors()["vectors"]}
    peter, enoch = vectors["go-sumdb-note-PeterNeumann"], vectors["go-sumdb-note-EnochRoot"]
    text = _text_of(peter["note"])
    assert _text_of(enoch["note"]) == text
    both = text + "\n" + peter["note"][len(text) + 1 :] + enoch["note"][len(text) + 1 :]
    for vkey in (peter["vkey"], enoch["vkey"]):
        assert verify_note(both, [VerifierKey.parse(vkey)]) == text


def test_pre_c2sp_tree_note_body_parses_as_checkpoint() -> None:
    """The Go sumdb tree note text is a valid checkpoint body and re-encodes identically."""
    data = _vectors()["other_go_vectors"]
    cp = Checkpoint.parse(data["tree_note_text"])
    assert cp.origin == "go.sum database tree"
    assert cp.size == 123456789012
    assert cp.root == hashlib.sha256(b"\x00hello world").digest()
    assert cp.extensions == ()
    assert cp.body() == data["tree_note_text"]


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_body_layout() -> None:
    """body() is origin, decimal size, base64 root and extensions, each followed by a newline."""
    cp = Checkpoint("example.com/log", 7, ROOT, ("ext one", "ext-2"))
    assert cp.body() == f"example.com/log\n7\n{_b64(ROOT)}\next one\next-2\n"
    assert Checkpoint.parse(cp.body()) == cp


def test_empty_tree_checkpoint_round_trips() -> None:
    """Size 0 is written as '0' and parses back."""
    empty = hashlib.sha256(b"").digest()
    cp = Checkpoint("o", 0, empty)
    assert cp.body() == f"o\n0\n{_b64(empty)}\n"
    assert Checkpoint.parse(cp.body()) == cp


def test_largest_size_round_trips() -> None:
    """A size of 2^64-1 is accepted; 2^64 is not."""
    cp = Checkpoint("o", 2**64 - 1, ROOT)
    assert Checkpoint.parse(cp.body()) == cp
    with pytest.raises(CheckpointError):
        Checkpoint.parse(f"o\n{2**64}\n{_b64(ROOT)}\n")


def test_checkpoint_extensions_are_a_tuple() -> None:
    """Extensions given as a list are stored as a tuple, so checkpoints stay hashable."""
    cp = Checkpoint("o", 1, ROOT, ["x"])  # type: ignore[arg-type]
    assert cp.extensions == ("x",)
    assert hash(cp) == hash(Checkpoint("o", 1, ROOT, ("x",)))


R64 = _b64(ROOT)


@pytest.mark.parametrize(
    "body",
    [
        f"o\n1\n{R64}",  # no final newline
        f"o\n1\n{R64}\n\n",  # empty extension line
        "o\n1\n",  # too few lines
        f"\n1\n{R64}\n",  # empty origin
        f"o\n\n{R64}\n",  # empty size
        f"o\n01\n{R64}\n",  # leading zero
        f"o\n00\n{R64}\n",
        f"o\n+1\n{R64}\n",
        f"o\n-1\n{R64}\n",
        f"o\n 1\n{R64}\n",
        f"o\n1 \n{R64}\n",
        f"o\n1_000\n{R64}\n",
        f"o\n\u0661\u0662\n{R64}\n",  # Arabic-Indic digits: int() would accept them
        f"o\n0x10\n{R64}\n",
        f"o\n1e3\n{R64}\n",
        f"o\n{'9' * 21}\n{R64}\n",
        f"o\n1\n{_b64(ROOT[:31])}\n",  # 31-byte root
        f"o\n1\n{_b64(ROOT + b'x')}\n",  # 33-byte root
        f"o\n1\n{R64.rstrip('=')}\n",  # missing padding
        f"o\n1\n{R64.replace('+', '-').replace('/', '_')}x\n",
        f"o\n1\n{R64} \n",
        f"o\r\n1\n{R64}\n",  # carriage return
        f"o\n1\n{R64}\n\x7fext\x01\n",  # control character in an extension
    ],
)
def test_malformed_checkpoint_bodies_are_rejected(body: str) -> None:
    """Checkpoint.parse refuses anything C2SP tlog-checkpoint does not allow."""
    with pytest.raises(CheckpointError):
        Checkpoint.parse(body)


@pytest.mark.parametrize(
    ("origin", "size", "root", "extensions"),
    [
        ("", 1, ROOT, ()),
        ("a\nb", 1, ROOT, ()),
        ("o", -1, ROOT, ()),
        ("o", 2**64, ROOT, ()),
        ("o", True, ROOT, ()),
        ("o", 1, ROOT[:31], ()),
        ("o", 1, ROOT, ("",)),
        ("o", 1, ROOT, ("a\nb",)),
    ],
)
def test_checkpoint_constructor_refuses_values_it_cannot_write(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...]
) -> None:
    """A Checkpoint that would not produce a valid body cannot be built."""
    with pytest.raises(CheckpointError):
        Checkpoint(origin, size, root, extensions)


# --------------------------------------------------------------------------- signed notes


def test_sign_note_layout() -> None:
    """A signed note is the text, a blank line, then '— <name> <base64(hash4 || sig)>' lines."""
    text = "hello\n"
    note = sign_note(text, [LOG, WITNESS])
    lines = note.split("\n")
    assert lines[0] == "hello"
    assert lines[1] == ""
    for line, signer in zip(lines[2:4], (LOG, WITNESS), strict=True):
        dash, name, sig64 = line.split(" ")
        assert dash == "\u2014"
        assert name == signer.name
        raw = base64.b64decode(sig64, validate=True)
        assert raw[:4] == signer.verifier.key_hash
        assert raw[4:] == signer.sign(text.encode("utf-8"))
    assert lines[4:] == [""]
    parsed = parse_note(note)
    assert parsed == SignedNote(
        text,
        [
            (LOG.name, LOG.verifier.key_hash, LOG.sign(b"hello\n")),
            (WITNESS.name, WITNESS.verifier.key_hash, WITNESS.sign(b"hello\n")),
        ],
    )


def test_note_text_may_contain_blank_lines_and_unicode() -> None:
    """Text with empty lines and non-ASCII characters signs and verifies (UTF-8 bytes signed)."""
    text = "Житомир\n\nбюджет участі — 2018\n"
    note = sign_note(text, [LOG])
    assert verify_note(note, [LOG.verifier]) == text


def test_verify_note_with_several_known_keys() -> None:
    """A note signed by two keys verifies with either or both as known keys."""
    note = sign_note("t\n", [LOG, WITNESS])
    assert verify_note(note, [LOG.verifier]) == "t\n"
    assert verify_note(note, [WITNESS.verifier]) == "t\n"
    assert verify_note(note, [WITNESS.verifier, LOG.verifier]) == "t\n"


def test_unknown_signature_lines_are_ignored() -> None:
    """Lines by unknown keys, of any algorithm or length, before or after, do not matter."""
    note = sign_checkpoint(CP, LOG)
    log_line = note[len(CP.body()) + 1 :]
    cosig = "\u2014 witness.example " + _b64(b"\x00\x01\x02\x03" + bytes(72)) + "\n"
    short = "\u2014 other " + _b64(b"abcd" + b"z") + "\n"
    same_name = f"\u2014 {LOG.name} " + _b64(b"\xff\xff\xff\xff" + bytes(64)) + "\n"
    for block in (log_line + cosig + short, cosig + log_line, same_name + log_line + short):
        assert verify_checkpoint(CP.body() + "\n" + block, LOG.verifier) == CP


def test_sixteen_signatures_are_accepted_and_too_many_refused() -> None:
    """Notes with 16 signatures verify (the spec's minimum); more than the limit are refused."""
    signers = [SignerKey.from_seed(f"w{i}", bytes([i]) * 32) for i in range(16)]
    note = sign_note("t\n", [LOG, *signers[1:]])
    assert verify_note(note, [LOG.verifier]) == "t\n"
    line = note.split("\n")[2] + "\n"
    with pytest.raises(CheckpointError, match="more than"):
        parse_note("t\n\n" + line * (MAX_SIGNATURES + 1))
    assert len(parse_note("t\n\n" + line * MAX_SIGNATURES).signatures) == MAX_SIGNATURES


def _note() -> str:
    return sign_note("t\n", [LOG])


SIG_LINE = _note()[3:]


@pytest.mark.parametrize(
    "note",
    [
        "t\n" + SIG_LINE,  # no blank line
        "t\n\n",  # no signature lines
        "t\n\n" + SIG_LINE[:-1],  # last line without newline
        "t\n\n" + SIG_LINE + "\n",  # trailing blank line
        "t\n\n" + SIG_LINE.replace("\u2014", "-"),  # hyphen, not em dash
        "t\n\n" + SIG_LINE.replace("\u2014 ", "\u2014"),
        "t\n\n" + SIG_LINE.replace(" ", "  ", 1),
        "t\n\n" + SIG_LINE.replace(" ", "  ").replace("  ", " ", 1),  # two spaces before sig
        "t\n\n" + SIG_LINE.replace("\n", " \n"),  # trailing space
        "t\n\n" + SIG_LINE[:-2] + "\n",  # broken base64
        "t\n\n\u2014 name\n",  # no signature
        "t\n\n\u2014 name \n",  # empty signature
        "t\n\n\u2014  " + SIG_LINE.split(" ")[2],  # empty name
        "t\n\n\u2014 a+b " + SIG_LINE.split(" ")[2],  # '+' in name
        "t\n\n\u2014 name " + _b64(b"abcd") + "\n",  # hash only, no signature bytes
        "t\r\n\n" + SIG_LINE,  # control character
        "t\n\n" + SIG_LINE.replace("\n", "\r\n"),
        "t\x00\n\n" + SIG_LINE,
        "\ud800\n\n" + SIG_LINE,  # lone surrogate
        "",
    ],
)
def test_malformed_notes_are_rejected(note: str) -> None:
    """parse_note and verify_note refuse notes that break C2SP signed-note syntax."""
    with pytest.raises(CheckpointError):
        parse_note(note)
    with pytest.raises(CheckpointError):
        verify_note(note, [LOG.verifier])


@pytest.mark.parametrize("body", ["", "t", "t\r\n", "a\x1b[0m\n"])
def test_sign_note_refuses_bad_text(body: str) -> None:
    """Only text ending in a newline, without ASCII control characters, can be signed."""
    with pytest.raises(CheckpointError):
        sign_note(body, [LOG])


def test_sign_note_needs_a_signer() -> None:
    """A note without signatures is not a signed note."""
    with pytest.raises(CheckpointError):
        sign_note("t\n", [])


class _ClashingKey(VerifierKey):
    """A key that claims another key's hash: stands in for a 2^32 brute-force collision."""

    @property
    def key_hash(self) -> bytes:
        return LOG.verifier.key_hash


def test_conflicting_verifiers_are_refused() -> None:
    """Two different known keys with the same name and key hash make verification refuse."""
    clash = _ClashingKey(LOG.name, WITNESS.verifier.public)
    note = sign_checkpoint(CP, LOG)
    assert verify_note(note, [LOG.verifier, LOG.verifier]) == CP.body()
    with pytest.raises(CheckpointError, match="share the name and hash"):
        verify_note(note, [LOG.verifier, clash])


# --------------------------------------------------------------------------- signed checkpoints


def test_checkpoint_sign_verify_round_trip() -> None:
    """A signed checkpoint verifies under the log key and returns the same checkpoint."""
    note = sign_checkpoint(CP, LOG)
    assert note.startswith(CP.body() + "\n\u2014 uchast.example/zhytomyr-2018 ")
    assert verify_checkpoint(note, LOG.verifier) == CP
    assert verify_checkpoint(note, LOG.verifier, origin=CP.origin) == CP


def test_checkpoint_with_extensions_round_trips() -> None:
    """Extension lines are signed and returned."""
    cp = Checkpoint(CP.origin, CP.size, CP.root, ("timestamp 1538550900",))
    assert verify_checkpoint(sign_checkpoint(cp, LOG), LOG.verifier) == cp


def test_checkpoint_origin_must_match_when_given() -> None:
    """verify_checkpoint refuses a checkpoint of another origin."""
    note = sign_checkpoint(CP, LOG)
    with pytest.raises(CheckpointError, match="origin"):
        verify_checkpoint(note, LOG.verifier, origin="uchast.example/kyiv-2018")


def test_signed_text_that_is_not_a_checkpoint_is_refused() -> None:
    """A validly signed note whose text is not a checkpoint is refused."""
    note = sign_note("uchast.example/zhytomyr-2018\n12\nnot a root\n", [LOG])
    assert verify_note(note, [LOG.verifier])
    with pytest.raises(CheckpointError, match="root"):
        verify_checkpoint(note, LOG.verifier)


def test_interoperates_with_tlog_scales_byte_for_byte() -> None:
    """Our signed checkpoint equals tlog-scales' and each side verifies the other's."""
    from tlog_scales import signing, tlog

    seed = bytes(range(32))
    theirs = tlog.Checkpoint.make_signed(
        CP.origin, CP.size, CP.root, [signing.PlainEd25519Signer(LOG.name, seed)]
    ).serialize()
    ours = sign_checkpoint(CP, LOG)
    assert ours == theirs
    assert verify_checkpoint(theirs, LOG.verifier, origin=CP.origin) == CP
    parsed = tlog.Checkpoint.from_text(ours)
    parsed.verify(signing.Vkey.from_string(LOG.verifier.vkey))
    assert (parsed.origin, parsed.size, parsed.root_hash) == (CP.origin, CP.size, CP.root)
