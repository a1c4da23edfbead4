"""Mirrors ledger/canonical.py, keys.py, checkpoint.py, merkle.py; test_audit_crypto.py checks it.

What the auditor needs of the specifications, re-implemented here so it can be read in one place.

- RFC 8785 canonical JSON (through the ``rfc8785`` package, with a byte-identical fast path);
- strict base64 (RFC 4648 §4, canonical form only);
- C2SP signed-note keys: ``<name>+<hex8>+<base64(0x01 || Ed25519 public key)>``, where the key
  hash is ``SHA-256(name || "\\n" || 0x01 || public key)[:4]``;
- C2SP signed notes and tlog checkpoints;
- RFC 9162 Merkle hashing (leaf ``0x00``, node ``0x01``), a streaming frontier and the
  consistency-proof check of RFC 9162 §2.1.4.2.

Standard library, ``cryptography`` and ``rfc8785`` only: nothing of the server is imported.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "EMPTY_ROOT",
    "ENVELOPE_CONTEXT",
    "Checkpoint",
    "Frontier",
    "NoteError",
    "VerifierKey",
    "canonical",
    "canonical_plain",
    "check_consistency",
    "decode_b64",
    "ed25519_verify",
    "leaf_hash",
    "node_hash",
    "open_checkpoint",
]

ENVELOPE_CONTEXT = b"uchast/v1\n"
"""What every envelope signature covers before the canonical payload."""

_ALG_ED25519 = 0x01
_HEX8 = re.compile(r"[0-9a-f]{8}")
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_NOTE_SIGNATURE = "\u2014 "  # em dash and a space starts every signature line


# --------------------------------------------------------------------------- canonical JSON

_MAX_SAFE_INTEGER = 2**53 - 1
_json_encode = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
).encode
# The C encoder behind that, called without the wrapper (a quarter faster per entry).
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_c_encoder: Any = (
    _c_make_encoder(None, None, json.encoder.encode_basestring, None, ":", ",", True, False, False)
    if _c_make_encoder is not None
    else None
)


def _fast_encode(value: Any) -> str:
    """Compact, members sorted, no ASCII escaping: ``json.dumps`` with those options."""
    if _c_encoder is None:
        return _json_encode(value)
    return "".join(_c_encoder(value, 0))


def _plain(value: Any) -> bool:
    """Whether ``json`` writes ``value`` exactly as RFC 8785 does.

    For ASCII strings, safe integers, booleans, null, lists and objects the two agree byte for
    byte (same escapes, same member order). Anything else goes to the ``rfc8785`` package.
    """
    if isinstance(value, str):
        return value.isascii()
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(
            isinstance(key, str) and key.isascii() and _plain(item) for key, item in value.items()
        )
    return False


def canonical(value: Any) -> bytes:
    """The RFC 8785 canonical JSON of ``value``; :class:`ValueError` when it has none."""
    if _plain(value):
        return _fast_encode(value).encode("ascii")
    try:
        encoded: bytes = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError, TypeError) as exc:
        raise ValueError(f"not encodable as RFC 8785 JSON: {exc}") from None
    return encoded


def canonical_plain(value: Any) -> bytes:
    """RFC 8785 of a value known to hold no float and no integer beyond 2^53-1 (the auditor's
    JSON reader tells): ``json``'s compact sorted encoding when every string is ASCII, which
    RFC 8785 writes identically; :func:`canonical` otherwise."""
    try:
        return _fast_encode(value).encode("ascii")
    except UnicodeEncodeError:
        return canonical(value)


def decode_b64(text: object) -> bytes:
    """Standard padded base64 in its one canonical form, else :class:`ValueError`."""
    if not isinstance(text, str):
        raise ValueError("base64 must be a string")
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ValueError("not standard base64") from None
    if base64.b64encode(data).decode("ascii") != text:
        raise ValueError("not canonical base64")
    return data


# --------------------------------------------------------------------------- keys


def _check_key_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() or ord(c) < 0x20 for c in name):
        raise ValueError(f"{name!r} is not a key name")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name!r} is not a key name") from None


def key_hash(name: str, public: bytes) -> bytes:
    """The C2SP key hash: ``SHA-256(name || "\\n" || 0x01 || public)[:4]``."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([_ALG_ED25519]) + public).digest()[
        :4
    ]


@dataclass(frozen=True)
class VerifierKey:
    """An Ed25519 public key with its C2SP name, as written in a vkey string."""

    name: str
    public: bytes
    hash: bytes

    @property
    def key_id(self) -> str:
        """``<name>+<hex8>``: how envelopes name the key."""
        return f"{self.name}+{self.hash.hex()}"

    @property
    def vkey(self) -> str:
        """The vkey string this key reads from."""
        raw = base64.b64encode(bytes([_ALG_ED25519]) + self.public).decode("ascii")
        return f"{self.key_id}+{raw}"

    @classmethod
    def parse(cls, vkey: object) -> VerifierKey:
        """Read a C2SP vkey strictly: name, hash matching the key, algorithm 0x01, 32 bytes."""
        if not isinstance(vkey, str):
            raise ValueError("a vkey must be a string")
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise ValueError("a vkey has the form <name>+<hex8>+<base64 key>")
        name, hex8, key64 = parts
        _check_key_name(name)
        if not _HEX8.fullmatch(hex8):
            raise ValueError(f"key hash {hex8!r} is not 8 lowercase hex digits")
        raw = decode_b64(key64)
        if len(raw) != 33 or raw[0] != _ALG_ED25519:
            raise ValueError("the key is not 0x01 followed by a 32-byte Ed25519 public key")
        public = raw[1:]
        computed = key_hash(name, public)
        if computed.hex() != hex8:
            raise ValueError(f"key hash {hex8} does not match the key ({computed.hex()})")
        return cls(name, public, computed)


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519 signature of exactly ``message`` by ``public``."""
    if len(signature) != 64:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


# --------------------------------------------------------------------------- notes, checkpoints


class NoteError(ValueError):
    """A signed note or checkpoint that does not parse or verify; the message says why."""


@dataclass(frozen=True)
class Checkpoint:
    """A verified C2SP tlog checkpoint: origin, tree size, root hash."""

    origin: str
    size: int
    root: bytes


def open_checkpoint(note: object, log_key: VerifierKey) -> Checkpoint:
    """Verify a signed checkpoint note and return what it states; raise :class:`NoteError`.

    1. the note is text without ASCII controls other than newline;
    2. the note text is everything up to the last blank line; after it come signature lines
       ``"— <name> <base64(key hash || signature)>"``, each ending in a newline;
    3. the lines naming ``log_key`` (same name and key hash) must all verify, and one must
       (lines of other keys are ignored, as C2SP signed-note requires);
    4. the text is a checkpoint: origin, decimal size without leading zeros, base64 32-byte root,
       then optional non-empty extension lines.
    """
    if not isinstance(note, str):
        raise NoteError("the note is not text")
    if _CONTROL.search(note):
        raise NoteError("the note contains a control character")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("the note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block or not block.endswith("\n"):
        raise NoteError("the note's signature lines are missing or unterminated")
    try:
        message = text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError("the note is not valid Unicode") from None
    verified = 0
    for line in block[:-1].split("\n"):
        if not line.startswith(_NOTE_SIGNATURE):
            raise NoteError(f"signature line {line[:40]!r} does not start with an em dash")
        name, space, sig64 = line[len(_NOTE_SIGNATURE) :].partition(" ")
        try:
            _check_key_name(name)
            raw = decode_b64(sig64)
        except ValueError as exc:
            raise NoteError(f"signature line of {name!r}: {exc}") from None
        if not space or len(raw) < 5:
            raise NoteError(f"signature line of {name!r} is too short")
        if name != log_key.name or raw[:4] != log_key.hash:
            continue
        if not ed25519_verify(log_key.public, message, raw[4:]):
            raise NoteError(f"the signature by {log_key.key_id} does not verify")
        verified += 1
    if not verified:
        raise NoteError(f"the note carries no signature by {log_key.key_id}")

    lines = text[:-1].split("\n")
    if len(lines) < 3 or not all(lines):
        raise NoteError("a checkpoint has origin, size and root lines, none empty")
    origin, size_text, root_text = lines[:3]
    if not _SIZE.fullmatch(size_text) or int(size_text) >= 2**64:
        raise NoteError(f"checkpoint size {size_text!r} is not a decimal uint64")
    try:
        root = decode_b64(root_text)
    except ValueError as exc:
        raise NoteError(f"checkpoint root: {exc}") from None
    if len(root) != 32:
        raise NoteError("checkpoint root is not 32 bytes")
    return Checkpoint(origin, int(size_text), root)


# --------------------------------------------------------------------------- RFC 9162 Merkle


EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf: bytes) -> bytes:
    """``SHA-256(0x00 || leaf)``."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class Frontier:
    """The right edge of a growing RFC 9162 tree: one complete subtree hash per set bit of the
    size, so the root of every prefix is known in O(log n) memory while leaves stream by."""

    __slots__ = ("_stack", "size")

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []  # (height, hash), largest subtree first

    def append(self, leaf_digest: bytes) -> None:
        """Add the next leaf, given its leaf hash."""
        height, acc = 0, leaf_digest
        stack = self._stack
        while stack and stack[-1][0] == height:
            acc = node_hash(stack.pop()[1], acc)
            height += 1
        stack.append((height, acc))
        self.size += 1

    def extend(self, leaf_digests: bytes) -> None:
        """Add leaves given by their leaf hashes, concatenated (32 bytes each)."""
        stack, sha256 = self._stack, hashlib.sha256
        for i in range(0, len(leaf_digests), 32):
            height, acc = 0, leaf_digests[i : i + 32]
            while stack and stack[-1][0] == height:
                acc = sha256(b"\x01" + stack.pop()[1] + acc).digest()
                height += 1
            stack.append((height, acc))
        self.size += len(leaf_digests) // 32

    def root(self) -> bytes:
        """``MTH`` of the leaves so far: the subtrees joined from the right."""
        if not self._stack:
            return EMPTY_ROOT
        acc = self._stack[-1][1]
        for _, h in reversed(self._stack[:-1]):
            acc = node_hash(h, acc)
        return acc


def check_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> str | None:
    """RFC 9162 §2.1.4.2: does ``proof`` show that tree ``new`` extends tree ``old``?

    Returns None when it does, else why not. ``0 < old_size <= new_size``; equal sizes need an
    empty proof and equal roots.
    """
    if not 0 < old_size <= new_size:
        return f"no consistency proof exists from size {old_size} to {new_size}"
    if old_size == new_size:
        if proof:
            return "equal sizes need an empty proof"
        return None if old_root == new_root else "equal sizes but different roots"
    if not proof or any(len(h) != 32 for h in proof):
        return "the proof is empty or holds a hash that is not 32 bytes"
    path = [old_root, *proof] if old_size & (old_size - 1) == 0 else list(proof)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return "the proof is too long"
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return "the proof is too short"
    if fr != old_root:
        return "the proof does not lead to the old root"
    if sr != new_root:
        return "the proof does not lead to the new root"
    return None
