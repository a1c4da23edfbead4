"""Witness cosignatures on checkpoints: C2SP tlog-cosignature ``cosignature/v1`` (Ed25519).

A cosignature is a signed-note signature line added to a checkpoint by a witness::

    — <witness name> base64(key ID (4) || timestamp (8, big-endian) || Ed25519 signature (64))

* key ID: ``SHA-256(name || "\\n" || 0x04 || public key)[:4]`` (signature type 0x04, not the
  0x01 of the same key's checkpoint signatures, so a cosignature is never mistaken for a note
  signature by the same key);
* signed message: ``"cosignature/v1\\n" + "time <unix seconds>\\n" + the checkpoint's note text``
  (every line of the body, extension lines included, and its final newline);
* a witness's public key is written as a vkey with type 0x04:
  ``<name>+<hex8 key ID>+<base64(0x04 || public key)>`` (:class:`CosignerKey`).

A witness runs on a key from ``uchast keygen``: the same Ed25519 key and name, another key ID.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ledger.checkpoint import SIGNATURE_PREFIX, parse_note
from ledger.errors import BadSignatureError, KeyFormatError
from ledger.keys import (
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    SignerKey,
    VerifierKey,
    decode_b64,
    encode_b64,
    validate_key_name,
)

__all__ = [
    "ALG_COSIGNATURE_V1",
    "COSIGNATURE_HEADER",
    "Cosignature",
    "CosignerKey",
    "cosign",
    "cosignature_line",
    "cosigned_message",
    "verified_cosignatures",
]

ALG_COSIGNATURE_V1 = 0x04
"""C2SP signature type byte of Ed25519 ``cosignature/v1`` keys."""

COSIGNATURE_HEADER = "cosignature/v1\n"
"""First line of every signed cosignature message (domain separation)."""

MAX_TIMESTAMP = 2**63 - 1
_TIMESTAMPED_SIZE = 8 + SIGNATURE_SIZE
_HEX8 = re.compile(r"[0-9a-f]{8}")


def cosigned_message(body: str, timestamp: int) -> bytes:
    """The bytes a witness signs for checkpoint note text ``body`` at ``timestamp`` (seconds)."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ValueError(f"cosignature timestamp {timestamp} is out of range 0..2^63-1")
    return f"{COSIGNATURE_HEADER}time {timestamp}\n{body}".encode()


@dataclass(frozen=True)
class CosignerKey:
    """A witness's public key for ``cosignature/v1``: its name and Ed25519 public key."""

    name: str
    public: bytes

    def __post_init__(self) -> None:
        validate_key_name(self.name)
        if not isinstance(self.public, bytes) or len(self.public) != PUBLIC_KEY_SIZE:
            raise KeyFormatError(f"cosigner key {self.name}: public key must be 32 bytes")

    @classmethod
    def of(cls, key: VerifierKey) -> CosignerKey:
        """The cosigner key of the same name and Ed25519 key as ``key`` (a keygen vkey)."""
        return cls(key.name, key.public)

    @property
    def key_id(self) -> bytes:
        """``SHA-256(name || "\\n" || 0x04 || public)[:4]``."""
        return hashlib.sha256(
            self.name.encode("utf-8") + b"\n" + bytes([ALG_COSIGNATURE_V1]) + self.public
        ).digest()[:4]

    @property
    def vkey(self) -> str:
        """``<name>+<hex8 key ID>+<base64(0x04 || public)>``, the form a policy file names."""
        raw = bytes([ALG_COSIGNATURE_V1]) + self.public
        return f"{self.name}+{self.key_id.hex()}+{encode_b64(raw)}"

    @classmethod
    def parse(cls, vkey: str) -> CosignerKey:
        """Parse a cosigner vkey strictly (type 0x04, matching key ID); raise KeyFormatError."""
        parts = vkey.split("+", 2) if isinstance(vkey, str) else []
        if len(parts) != 3:
            raise KeyFormatError("cosigner key must be of the form <name>+<hex8>+<base64 key>")
        name, hex8, key64 = parts
        validate_key_name(name)
        if not _HEX8.fullmatch(hex8):
            raise KeyFormatError(f"cosigner key {name}: key ID must be 8 lowercase hex digits")
        try:
            raw = decode_b64(key64)
        except ValueError as exc:
            raise KeyFormatError(f"cosigner key {name}: key is {exc}") from None
        if not raw or raw[0] != ALG_COSIGNATURE_V1:
            found = f"0x{raw[0]:02x}" if raw else "nothing"
            raise KeyFormatError(
                f"cosigner key {name}: signature type is {found}, a cosignature/v1 key has 0x04"
                " (`uchast witness --key FILE --print-vkey` prints it)"
            )
        key = cls(name, raw[1:]) if len(raw) == 1 + PUBLIC_KEY_SIZE else None
        if key is None:
            raise KeyFormatError(f"cosigner key {name}: Ed25519 key must be 32 bytes")
        if key.key_id.hex() != hex8:
            raise KeyFormatError(f"cosigner key {name}: key ID {hex8} does not match the key")
        return key

    def verify(self, body: str, signature: bytes) -> int:
        """Check a cosignature's ``timestamp || signature`` bytes over ``body``; return the
        timestamp or raise BadSignatureError."""
        if len(signature) != _TIMESTAMPED_SIZE:
            raise BadSignatureError(f"{self.name}+{self.key_id.hex()}")
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp > MAX_TIMESTAMP:
            raise BadSignatureError(f"{self.name}+{self.key_id.hex()}")
        verifier = VerifierKey(self.name, self.public)
        try:
            verifier.verify(cosigned_message(body, timestamp), signature[8:])
        except BadSignatureError:
            raise BadSignatureError(f"{self.name}+{self.key_id.hex()}") from None
        return timestamp


@dataclass(frozen=True, slots=True)
class Cosignature:
    """A verified cosignature: who (the policy's witness name), when, and its note line."""

    witness: str
    timestamp: int
    line: str


def cosignature_line(signer: SignerKey, body: str, timestamp: int) -> str:
    """The signature line (with its newline) of ``signer``'s cosignature over ``body``."""
    key = CosignerKey.of(signer.verifier)
    signature = signer.sign(cosigned_message(body, timestamp))
    raw = key.key_id + timestamp.to_bytes(8, "big") + signature
    return f"{SIGNATURE_PREFIX}{key.name} {encode_b64(raw)}\n"


def cosign(note: str, lines: list[str]) -> str:
    """``note`` with the signature ``lines`` appended (each ends in a newline)."""
    return note + "".join(lines)


def verified_cosignatures(note: str, witnesses: Mapping[str, CosignerKey]) -> list[Cosignature]:
    """Every line of ``note`` that is a valid cosignature by one of ``witnesses`` (policy name ->
    key), first valid line per witness. Lines by other keys, and lines that name a witness's key
    but do not verify, count for nothing. Raises CheckpointError if the note is malformed."""
    parsed = parse_note(note)
    by_slot = {(key.name, key.key_id): name for name, key in witnesses.items()}
    found: dict[str, Cosignature] = {}
    lines = note[len(parsed.body) + 1 :].splitlines(keepends=True)
    for (name, hash4, sig), line in zip(parsed.signatures, lines, strict=True):
        witness = by_slot.get((name, hash4))
        if witness is None or witness in found:
            continue
        try:
            timestamp = witnesses[witness].verify(parsed.body, sig)
        except BadSignatureError:
            continue
        found[witness] = Cosignature(witness, timestamp, line)
    return list(found.values())
