"""C2SP signed notes (https://c2sp.org/signed-note) and tlog checkpoints (c2sp.org/tlog-checkpoint).

A signed note is a text ending in a newline, a blank line, then one or more signature lines
``"— <key name> <base64(4-byte key hash || signature)>\\n"``. The Ed25519 signature covers the
note text exactly (UTF-8, including its final newline). A checkpoint is a note whose text is::

    <origin>
    <tree size, decimal, no leading zeros>
    <base64 of the 32-byte RFC 9162 root hash>
    [extension lines, each non-empty]

Parsing is strict: anything the specifications do not allow raises CheckpointError.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ledger.errors import BadSignatureError, CheckpointError, KeyFormatError
from ledger.keys import (
    SignerKey,
    VerifierKey,
    decode_b64,
    encode_b64,
    validate_key_name,
)

__all__ = [
    "JOURNAL_SUFFIX",
    "MAX_SIGNATURES",
    "MAX_TREE_SIZE",
    "SIGNATURE_PREFIX",
    "Checkpoint",
    "CheckpointJournal",
    "JournalHead",
    "SignedNote",
    "parse_note",
    "sign_checkpoint",
    "sign_note",
    "verify_checkpoint",
    "verify_note",
]

SIGNATURE_PREFIX = "\u2014 "
"""Start of every signature line: em dash (U+2014) and a space."""

MAX_SIGNATURES = 100
"""Notes with more signature lines are refused (the spec requires accepting at least 16)."""

MAX_TREE_SIZE = 2**64 - 1
"""Largest tree size a checkpoint may state (RFC 9162 sizes are uint64)."""

ROOT_SIZE = 32
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")  # ASCII digits only; int() would accept far more
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # ASCII controls other than newline


def _check_text(text: str, what: str) -> None:
    """Refuse text that is not valid UTF-8 or contains ASCII controls other than newline."""
    if not isinstance(text, str):
        raise CheckpointError(f"{what} must be a string, not {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise CheckpointError(f"{what} is not valid Unicode (lone surrogate)") from None
    found = _CONTROL.search(text)
    if found:
        raise CheckpointError(
            f"{what} contains a control character U+{ord(found.group()):04X} at {found.start()}"
        )


# --------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, tree size, RFC 9162 root hash and optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for what, line in [
            ("origin", self.origin),
            *(("extension line", e) for e in self.extensions),
        ]:
            _check_text(line, what)
            if not line:
                raise CheckpointError(f"checkpoint {what} must not be empty")
            if "\n" in line:
                raise CheckpointError(f"checkpoint {what} must not contain a newline")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise CheckpointError(f"checkpoint size must be an int, not {type(self.size).__name__}")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(f"checkpoint size {self.size} is out of range 0..2^64-1")
        if not isinstance(self.root, bytes) or len(self.root) != ROOT_SIZE:
            raise CheckpointError(f"checkpoint root must be {ROOT_SIZE} bytes")

    def body(self) -> str:
        """Return the note text: origin, size, base64 root and extensions, each line + newline."""
        lines = [self.origin, str(self.size), encode_b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """Parse a checkpoint note text strictly per C2SP tlog-checkpoint; raise CheckpointError.

        At least three non-empty lines, each ending in a newline; size in ASCII decimal without
        leading zeros (``0`` for the empty tree); root canonical standard base64 of 32 bytes.
        """
        _check_text(body, "checkpoint")
        if not body.endswith("\n"):
            raise CheckpointError("checkpoint text must end with a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError(
                f"checkpoint text must have at least 3 lines (origin, size, root), "
                f"found {len(lines)}"
            )
        for number, line in enumerate(lines, start=1):
            if not line:
                raise CheckpointError(f"checkpoint line {number} is empty")
        origin, size_text, root_text, *extensions = lines
        if not _SIZE.fullmatch(size_text):
            raise CheckpointError(
                f"checkpoint size {size_text!r} is not a decimal number without leading zeros"
            )
        size = int(size_text)
        if size > MAX_TREE_SIZE:
            raise CheckpointError(f"checkpoint size {size_text} exceeds 2^64-1")
        try:
            root = decode_b64(root_text)
        except ValueError as exc:
            raise CheckpointError(f"checkpoint root hash is {exc}") from None
        if len(root) != ROOT_SIZE:
            raise CheckpointError(
                f"checkpoint root hash must be {ROOT_SIZE} bytes, got {len(root)}"
            )
        return cls(origin=origin, size=size, root=root, extensions=tuple(extensions))


# --------------------------------------------------------------------------- signed notes


@dataclass(frozen=True)
class SignedNote:
    """A parsed, not yet verified, signed note: its text and (name, key hash, signature) lines."""

    body: str
    signatures: list[tuple[str, bytes, bytes]]


def sign_note(body: str, signers: Sequence[SignerKey]) -> str:
    """Sign ``body`` with each signer and return the note: body, blank line, signature lines.

    ``body`` must be non-empty, end with a newline, be valid Unicode and contain no ASCII
    control characters other than newline (else CheckpointError).
    """
    _check_text(body, "note text")
    if not body.endswith("\n"):
        raise CheckpointError("note text must end with a newline")
    if not signers:
        raise CheckpointError("a signed note needs at least one signer")
    if len(signers) > MAX_SIGNATURES:
        raise CheckpointError(f"a signed note may carry at most {MAX_SIGNATURES} signatures")
    message = body.encode("utf-8")
    lines = []
    for signer in signers:
        sig64 = encode_b64(signer.verifier.key_hash + signer.sign(message))
        lines.append(f"{SIGNATURE_PREFIX}{signer.name} {sig64}\n")
    return body + "\n" + "".join(lines)


def parse_note(note: str) -> SignedNote:
    """Split a signed note into its text and signature lines, strictly; raise CheckpointError.

    The note must be valid Unicode without ASCII controls other than newline; the text is
    everything up to and including the newline before the last blank line; after it come one to
    :data:`MAX_SIGNATURES` lines ``"— <name> <base64>"``, each ending in a newline, with a valid
    key name and canonical base64 of at least 5 bytes (4-byte key hash and a signature).
    Signatures are not verified here.
    """
    _check_text(note, "note")
    split = note.rfind("\n\n")
    if split < 0:
        raise CheckpointError("note has no blank line before its signatures")
    body, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise CheckpointError("note has no signature lines")
    if not block.endswith("\n"):
        raise CheckpointError("note's last signature line does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"note has more than {MAX_SIGNATURES} signatures")
    signatures: list[tuple[str, bytes, bytes]] = []
    for number, line in enumerate(lines, start=1):
        if not line.startswith(SIGNATURE_PREFIX):
            raise CheckpointError(f"note signature line {number} does not start with '— '")
        name, space, sig64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
        if not space:
            raise CheckpointError(f"note signature line {number} has no signature")
        try:
            validate_key_name(name)
        except KeyFormatError as exc:
            raise CheckpointError(f"note signature line {number}: {exc}") from None
        try:
            raw = decode_b64(sig64)
        except ValueError as exc:
            raise CheckpointError(f"note signature line {number}: signature is {exc}") from None
        if len(raw) < 5:
            raise CheckpointError(f"note signature line {number}: signature is too short")
        signatures.append((name, raw[:4], raw[4:]))
    return SignedNote(body=body, signatures=signatures)


def verify_note(note: str, verifiers: Sequence[VerifierKey]) -> str:
    """Verify a signed note against known keys and return its text; raise CheckpointError.

    Signature lines whose (name, key hash) match no verifier are ignored, as the spec requires.
    Every line that does match a verifier must verify (else the whole note is refused), and at
    least one must: a note with no verified signature is refused.
    """
    return _verify_parsed(parse_note(note), verifiers)


def _verify_parsed(parsed: SignedNote, verifiers: Sequence[VerifierKey]) -> str:
    known: dict[tuple[str, bytes], VerifierKey] = {}
    for verifier in verifiers:
        slot = (verifier.name, verifier.key_hash)
        other = known.get(slot)
        if other is not None and other.public != verifier.public:
            raise CheckpointError(
                f"two different verifier keys share the name and hash {verifier.key_id}"
            )
        known[slot] = verifier
    message = parsed.body.encode("utf-8")
    verified = 0
    for name, hash4, sig in parsed.signatures:
        key = known.get((name, hash4))
        if key is None:
            continue
        try:
            key.verify(message, sig)
        except BadSignatureError:
            raise CheckpointError(
                f"note signature by known key {key.key_id} does not verify"
            ) from None
        verified += 1
    if not verified:
        raise CheckpointError("note carries no signature by a known key")
    return parsed.body


# --------------------------------------------------------------------------- signed checkpoints


def sign_checkpoint(cp: Checkpoint, signer: SignerKey) -> str:
    """Return ``cp`` as a signed note, signed by the log key ``signer``."""
    return sign_note(cp.body(), [signer])


def verify_checkpoint(note: str, log_key: VerifierKey, origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint from the log with key ``log_key``; raise CheckpointError.

    1. Parse the signed note (strict C2SP signed-note).
    2. Verify it carries a valid signature by ``log_key`` (other keys' lines are ignored).
    3. Parse the note text as a C2SP tlog-checkpoint.
    4. If ``origin`` is given, the checkpoint's origin must equal it.
    """
    parsed = parse_note(note)
    body = _verify_parsed(parsed, [log_key])
    checkpoint = Checkpoint.parse(body)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(
            f"checkpoint origin {checkpoint.origin!r} is not the expected {origin!r}"
        )
    return checkpoint


# --------------------------------------------------------------------------- checkpoint journal

JOURNAL_SUFFIX = ".checkpoints"
"""The journal's default place: the log key's file name and this (``log.key.checkpoints``)."""

_log = logging.getLogger("uchast.ledger.journal")


@dataclass(frozen=True, slots=True)
class JournalHead:
    """The largest checkpoint the journal holds for one origin. ``forked``: the journal holds two
    different roots at that size (the key already signed a split view; nothing can extend it)."""

    size: int
    root: bytes
    forked: bool = False


class CheckpointJournal:
    """Every checkpoint this log key published, in a file the database does not reach.

    The file is append-only JSON lines, one per checkpoint, for every log the key signs::

        {"origin": "<origin>", "size": N, "root": "<base64>", "note": "<the signed note>"}

    A line is appended with one ``write`` under ``O_APPEND`` and an exclusive ``flock`` and
    fsynced before the checkpoint is acknowledged, so several server processes signing with the
    same key on one machine append whole lines. A line cut short by a crash is skipped (and the
    next append starts on a new line). Someone who can rewrite this file can also read the log
    key beside it: the journal is trusted exactly as far as the key is, and signatures are not
    re-verified when reading it.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._heads: dict[str, JournalHead] = {}
        self._read_to = 0
        self._lock = threading.Lock()  # record() runs in worker threads

    def head(self, origin: str) -> JournalHead | None:
        """The largest checkpoint of ``origin`` in the file, including lines other processes
        appended since the last call (only the new bytes are read)."""
        with self._lock:
            self._read_new()
            return self._heads.get(origin)

    def record(self, origin: str, note: str, checkpoint: Checkpoint) -> None:
        """Append ``note`` (a signed ``checkpoint`` of ``origin``) and fsync, before anyone is
        told of it."""
        line = json.dumps(
            {
                "origin": origin,
                "size": checkpoint.size,
                "root": encode_b64(checkpoint.root),
                "note": note,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            end = os.lseek(fd, 0, os.SEEK_END)
            if end and os.pread(fd, 1, end - 1) != b"\n":
                line = b"\n" + line  # a torn line from a crash stays alone on its line
            os.write(fd, line + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)  # releases the flock
        with self._lock:
            self._read_new()

    def _read_new(self) -> None:
        try:
            if os.stat(self.path).st_size <= self._read_to:
                return  # the usual case before a batch: nobody appended since
            with open(self.path, "rb") as file:
                file.seek(self._read_to)
                data = file.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1  # an unfinished last line is read once it is finished
        for raw in data[:end].splitlines():
            if raw.strip():
                self._apply(raw)
        self._read_to += end

    def _apply(self, raw: bytes) -> None:
        try:
            line = json.loads(raw)
            origin, size = str(line["origin"]), int(line["size"])
            root = decode_b64(str(line["root"]))
        except (ValueError, KeyError, TypeError):
            _log.warning("%s: skipped a line that is not a checkpoint (torn?)", self.path)
            return
        head = self._heads.get(origin)
        if head is None or size > head.size:
            self._heads[origin] = JournalHead(size, root)
        elif size == head.size and root != head.root and not head.forked:
            _log.error("%s: two different checkpoints of %s at size %d", self.path, origin, size)
            self._heads[origin] = JournalHead(size, head.root, forked=True)
