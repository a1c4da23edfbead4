"""Ed25519 keys as C2SP signed-note key strings, and the signed envelope every write carries.

Key strings (https://c2sp.org/signed-note, and the Go ``golang.org/x/mod/sumdb/note`` forms):

* verifier key (public), ``vkey``: ``<name>+<hex8 key hash>+<base64(0x01 || 32-byte public key)>``
* signer key (secret), ``skey``: ``PRIVATE+KEY+<name>+<hex8>+<base64(0x01 || 32-byte seed)>``
* key id: ``<name>+<hex8>``, the name and key hash that identify a key in envelopes.

The key hash is ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``, written as 8 lowercase hex
digits. Names are non-empty and contain no ``+``, no Unicode space and no ASCII control character.

Signed envelope (DESIGN.md §3): ``{"payload": {...}, "key": "<name>+<hex8>", "sig": "<base64>"}``,
where ``sig`` is Ed25519 over :data:`SIGNING_CONTEXT` followed by the RFC 8785 canonical JSON of
the payload.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NewType

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.canonical import canonical
from ledger.errors import BadSignatureError, EnvelopeError, KeyFormatError

__all__ = [
    "ALG_ED25519",
    "SIGNATURE_SIZE",
    "SIGNING_CONTEXT",
    "Envelope",
    "KeyId",
    "SignerKey",
    "VerifierKey",
    "decode_b64",
    "encode_b64",
    "envelope_message",
    "key_hash",
    "parse_key_id",
    "sign_envelope",
    "validate_key_name",
    "verify_envelope",
]

KeyId = NewType("KeyId", str)
"""A key's identifier in envelopes and registries: ``"<name>+<hex8 key hash>"``."""

SIGNING_CONTEXT = b"uchast/v1\n"
"""Domain-separation prefix of every envelope signature (never used for notes)."""

ALG_ED25519 = 0x01
"""C2SP signed-note signature type byte for Ed25519."""

PUBLIC_KEY_SIZE = 32
SEED_SIZE = 32
SIGNATURE_SIZE = 64
"""Length in bytes of an Ed25519 signature."""

_PRIVATE_PREFIX = "PRIVATE+KEY+"
_HEX8 = re.compile(r"[0-9a-f]{8}")
_ENVELOPE_FIELDS = frozenset({"payload", "key", "sig"})


# --------------------------------------------------------------------------- base64


def encode_b64(data: bytes) -> str:
    """Return the RFC 4648 §4 standard base64 encoding of ``data``, with padding."""
    return base64.b64encode(data).decode("ascii")


def decode_b64(text: str) -> bytes:
    """Decode standard, padded base64 strictly; raise :class:`ValueError` otherwise.

    Only the canonical encoding is accepted (no whitespace, no URL-safe alphabet, no missing
    padding, no non-zero trailing bits), so every byte string has exactly one accepted text form.
    """
    if not isinstance(text, str):
        raise ValueError("base64 value must be a string")
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError("not valid standard base64") from exc
    if base64.b64encode(data).decode("ascii") != text:
        raise ValueError("not canonical standard base64")
    return data


# --------------------------------------------------------------------------- names and hashes


def validate_key_name(name: str) -> str:
    """Return ``name`` if it is a valid C2SP signed-note key name, else raise KeyFormatError.

    A key name is non-empty, valid Unicode (encodable as UTF-8), and contains no ``+``, no
    Unicode space (``str.isspace``) and no ASCII control character below U+0020.
    """
    if not isinstance(name, str):
        raise KeyFormatError(f"key name must be a string, not {type(name).__name__}")
    if not name:
        raise KeyFormatError("key name must not be empty")
    for ch in name:
        code = ord(ch)
        if ch == "+":
            raise KeyFormatError("key name must not contain '+'")
        if ch.isspace():
            raise KeyFormatError(f"key name must not contain a space (U+{code:04X})")
        if code < 0x20:
            raise KeyFormatError(f"key name must not contain a control character (U+{code:04X})")
        if 0xD800 <= code <= 0xDFFF:
            raise KeyFormatError("key name is not valid Unicode (lone surrogate)")
    return name


def key_hash(name: str, public: bytes) -> bytes:
    """Return the 4-byte C2SP signed-note key hash of an Ed25519 key.

    ``SHA-256(name || "\\n" || 0x01 || public)[:4]``; the name is UTF-8 encoded. No validation.
    """
    digest = hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + bytes(public)
    ).digest()
    return digest[:4]


_valid_key_ids: set[str] = set()  # every signed request names one of a few keys: check each once


@functools.lru_cache(maxsize=256)
def _canonical_key_id(key: KeyId) -> bytes:
    return canonical(key)


def parse_key_id(text: object) -> KeyId:
    """Check that ``text`` is a key id ``"<name>+<hex8>"`` and return it; else KeyFormatError.

    The name must be a valid key name and the hash exactly 8 lowercase hex digits.
    """
    if not isinstance(text, str):
        raise KeyFormatError(f"key id must be a string, not {type(text).__name__}")
    if text in _valid_key_ids:
        return KeyId(text)
    parts = text.split("+")
    if len(parts) != 2:
        raise KeyFormatError("key id is not of the form <name>+<hex8>")
    name, hex8 = parts
    validate_key_name(name)
    if not _HEX8.fullmatch(hex8):
        raise KeyFormatError("key id: key hash must be 8 lowercase hex digits")
    if len(_valid_key_ids) >= 4096:  # invented ids must not grow it without bound
        _valid_key_ids.clear()
    _valid_key_ids.add(text)
    return KeyId(text)


def _check_bytes(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"{what} must be bytes, not {type(value).__name__}")
    return bytes(value)


# --------------------------------------------------------------------------- verifier key


@dataclass(frozen=True)
class VerifierKey:
    """A public Ed25519 key with its C2SP name: verifies envelope and note signatures."""

    name: str
    public: bytes
    _key_hash: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        validate_key_name(self.name)
        if not isinstance(self.public, bytes):
            raise KeyFormatError(f"key {self.name}: public key must be bytes")
        if len(self.public) != PUBLIC_KEY_SIZE:
            raise KeyFormatError(
                f"key {self.name}: Ed25519 public key must be {PUBLIC_KEY_SIZE} bytes, "
                f"got {len(self.public)}"
            )
        # Looked up on every append: hash once.
        object.__setattr__(self, "_key_hash", key_hash(self.name, self.public))

    @property
    def key_hash(self) -> bytes:
        """The 4-byte C2SP key hash of this key."""
        return self._key_hash

    @property
    def key_id(self) -> KeyId:
        """``"<name>+<hex8>"``, the id written in envelopes' ``key`` field."""
        return KeyId(f"{self.name}+{self.key_hash.hex()}")

    @property
    def vkey(self) -> str:
        """The C2SP verifier key string ``"<name>+<hex8>+<base64(0x01 || public)>"``."""
        return f"{self.key_id}+{encode_b64(bytes([ALG_ED25519]) + self.public)}"

    @classmethod
    def parse(cls, vkey: str) -> VerifierKey:
        """Parse a C2SP verifier key string strictly; raise KeyFormatError saying what is wrong.

        Checks the name rules, that the hash is 8 lowercase hex digits equal to the hash computed
        from the name and key, that the algorithm byte is 0x01 (Ed25519) and that the key is 32
        bytes. The base64 must be canonical standard base64.
        """
        if not isinstance(vkey, str):
            raise KeyFormatError(f"verifier key must be a string, not {type(vkey).__name__}")
        if vkey.startswith(_PRIVATE_PREFIX):
            # Never echo it: this is a secret signer key given where a public one was expected.
            raise KeyFormatError("this is a private signer key (PRIVATE+KEY+...), not a vkey")
        parts = vkey.split("+", 2)  # base64 may itself contain '+'
        if len(parts) != 3:
            raise KeyFormatError("verifier key must be of the form <name>+<hex8>+<base64 key>")
        name, hex8, key64 = parts
        validate_key_name(name)
        if not _HEX8.fullmatch(hex8):
            raise KeyFormatError(f"verifier key {name}: key hash must be 8 lowercase hex digits")
        try:
            raw = decode_b64(key64)
        except ValueError as exc:
            raise KeyFormatError(f"verifier key {name}: key is {exc}") from exc
        if not raw:
            raise KeyFormatError(f"verifier key {name}: key is empty")
        if raw[0] != ALG_ED25519:
            raise KeyFormatError(
                f"verifier key {name}: unsupported algorithm 0x{raw[0]:02x} "
                f"(only Ed25519, 0x{ALG_ED25519:02x})"
            )
        public = raw[1:]
        if len(public) != PUBLIC_KEY_SIZE:
            raise KeyFormatError(
                f"verifier key {name}: Ed25519 key must be {PUBLIC_KEY_SIZE} bytes, "
                f"got {len(public)}"
            )
        key = cls(name, public)
        if key.key_hash.hex() != hex8:
            raise KeyFormatError(
                f"verifier key {name}: key hash {hex8} does not match the key "
                f"(computed {key.key_hash.hex()})"
            )
        return key

    def verify(self, message: bytes, signature: bytes) -> None:
        """Check an Ed25519 ``signature`` over exactly ``message``; raise BadSignatureError."""
        message = _check_bytes(message, "message")
        signature = _check_bytes(signature, "signature")
        if len(signature) != SIGNATURE_SIZE:
            raise BadSignatureError(self.key_id)
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except InvalidSignature:
            raise BadSignatureError(self.key_id) from None


# --------------------------------------------------------------------------- signer key


class SignerKey:
    """A secret Ed25519 key with its C2SP name: signs envelopes and notes.

    Its ``repr`` shows only the key id; the secret appears only in :attr:`skey` and key files.
    """

    __slots__ = ("_private", "_verifier", "name")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        """Wrap an Ed25519 private key under the key name ``name`` (validated)."""
        self.name = validate_key_name(name)
        self._private = private_key
        public = private_key.public_key().public_bytes_raw()
        self._verifier = VerifierKey(name, public)

    def __repr__(self) -> str:
        return f"SignerKey({self.key_id!r})"

    @classmethod
    def generate(cls, name: str) -> SignerKey:
        """Return a new random key named ``name``."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> SignerKey:
        """Return the key whose RFC 8032 32-byte secret seed is ``seed``."""
        seed = _check_bytes(seed, "seed")
        if len(seed) != SEED_SIZE:
            raise KeyFormatError(
                f"key {name}: Ed25519 seed must be {SEED_SIZE} bytes, got {len(seed)}"
            )
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def parse(cls, skey: str) -> SignerKey:
        """Parse ``PRIVATE+KEY+<name>+<hex8>+<base64(0x01 || seed)>``; raise KeyFormatError.

        The hash must match the key derived from the seed. Error messages never contain the
        secret.
        """
        if not isinstance(skey, str):
            raise KeyFormatError(f"signer key must be a string, not {type(skey).__name__}")
        parts = skey.split("+", 4)  # base64 may itself contain '+'
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise KeyFormatError(
                "signer key must be of the form PRIVATE+KEY+<name>+<hex8>+<base64 key>"
            )
        _, _, name, hex8, key64 = parts
        validate_key_name(name)
        if not _HEX8.fullmatch(hex8):
            raise KeyFormatError(f"signer key {name}: key hash must be 8 lowercase hex digits")
        try:
            raw = decode_b64(key64)
        except ValueError as exc:
            raise KeyFormatError(f"signer key {name}: key is {exc}") from None
        if not raw:
            raise KeyFormatError(f"signer key {name}: key is empty")
        if raw[0] != ALG_ED25519:
            raise KeyFormatError(
                f"signer key {name}: unsupported algorithm 0x{raw[0]:02x} "
                f"(only Ed25519, 0x{ALG_ED25519:02x})"
            )
        seed = raw[1:]
        if len(seed) != SEED_SIZE:
            raise KeyFormatError(
                f"signer key {name}: Ed25519 seed must be {SEED_SIZE} bytes, got {len(seed)}"
            )
        key = cls.from_seed(name, seed)
        if key.verifier.key_hash.hex() != hex8:
            raise KeyFormatError(f"signer key {name}: key hash {hex8} does not match the key")
        return key

    @property
    def skey(self) -> str:
        """The secret key string ``PRIVATE+KEY+<name>+<hex8>+<base64(0x01 || seed)>``."""
        seed = self._private.private_bytes_raw()
        return f"{_PRIVATE_PREFIX}{self.key_id}+{encode_b64(bytes([ALG_ED25519]) + seed)}"

    @property
    def verifier(self) -> VerifierKey:
        """The matching public key."""
        return self._verifier

    @property
    def key_id(self) -> KeyId:
        """``"<name>+<hex8>"``, the same as ``self.verifier.key_id``."""
        return self._verifier.key_id

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of exactly ``message``."""
        return self._private.sign(_check_bytes(message, "message"))

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write :attr:`skey` and a newline to ``path`` with file mode 0600.

        Refuses (FileExistsError) to replace an existing file unless ``overwrite`` is true, so a
        key is never lost by accident; with ``overwrite`` the file is replaced atomically.
        """
        target = Path(path)
        data = (self.skey + "\n").encode("ascii")
        if not overwrite:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                _write_all(fd, data)
            except BaseException:
                target.unlink(missing_ok=True)  # never leave a half-written key behind
                raise
            return
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, data)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SignerKey:
        """Read a key file written by :meth:`save` (or Go's note.GenerateKey).

        Surrounding whitespace is ignored. Any problem (missing or unreadable file, not UTF-8,
        malformed key) raises KeyFormatError naming the path.
        """
        try:
            text = Path(path).read_bytes().decode("utf-8").strip()
        except OSError as exc:
            raise KeyFormatError(
                f"{os.fspath(path)}: cannot read key file: {exc.strerror}"
            ) from exc
        except UnicodeDecodeError:
            raise KeyFormatError(f"{os.fspath(path)}: key file is not UTF-8 text") from None
        try:
            return cls.parse(text)
        except KeyFormatError as exc:
            raise KeyFormatError(f"{os.fspath(path)}: {exc}") from None


def _write_all(fd: int, data: bytes) -> None:
    try:
        os.fchmod(fd, 0o600)  # exact mode, whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- envelopes


def envelope_message(payload: Mapping[str, Any]) -> bytes:
    """Return the exact bytes an envelope signature covers: SIGNING_CONTEXT + canonical(payload).

    Raises :class:`ValueError` when the payload cannot be encoded as RFC 8785 JSON.
    """
    return SIGNING_CONTEXT + canonical(payload)


def _check_payload(payload: object) -> bytes:
    """Check the payload's shape and return its canonical bytes; raise EnvelopeError."""
    if not isinstance(payload, dict):
        raise EnvelopeError(f"payload: must be a JSON object, not {type(payload).__name__}")
    entry_type = payload.get("type")
    if not isinstance(entry_type, str) or not entry_type:
        raise EnvelopeError("payload.type: must be a non-empty string")
    try:
        return canonical(payload)
    except ValueError as exc:
        raise EnvelopeError(f"payload: {exc}") from None


def sign_envelope(payload: Mapping[str, Any], signer: SignerKey) -> dict[str, Any]:
    """Sign ``payload`` and return ``{"payload": ..., "key": <key id>, "sig": <base64>}``.

    The returned payload is a fresh JSON copy of exactly what was signed, so later changes to the
    caller's object cannot invalidate it. Raises EnvelopeError for a payload that
    :meth:`Envelope.parse` would refuse (no string ``type``, not RFC 8785 encodable), or that
    would not read back the same after JSON transport (integral floats of 2^53 or more).
    """
    if not isinstance(payload, Mapping):
        raise EnvelopeError(f"payload: must be a mapping, not {type(payload).__name__}")
    signed = _check_payload(dict(payload))
    copy = json.loads(signed)
    try:
        again = canonical(copy)
    except ValueError as exc:  # e.g. the float 1e16 is written 10000000000000000, read as an int
        raise EnvelopeError(f"payload: does not survive a JSON round trip: {exc}") from None
    if again != signed:
        raise EnvelopeError("payload: does not survive a JSON round trip unchanged")
    message = SIGNING_CONTEXT + signed
    return {"payload": copy, "key": str(signer.key_id), "sig": encode_b64(signer.sign(message))}


@dataclass(frozen=True)
class Envelope:
    """A parsed signed envelope; ``raw`` is the object exactly as submitted."""

    payload: dict[str, Any]
    key: KeyId
    sig: bytes
    raw: dict[str, Any]
    payload_bytes: bytes  # canonical(payload), computed once: it is signed, then hashed

    @property
    def message(self) -> bytes:
        """The exact bytes the signature covers."""
        return SIGNING_CONTEXT + self.payload_bytes

    def canonical_bytes(self) -> bytes:
        """canonical(raw), assembled from the payload bytes already computed.

        The three members sort as ``key < payload < sig`` under RFC 8785.
        """
        # The submitted signature is the canonical base64 of ``sig`` (parse checks it), and
        # base64 needs no escaping.
        return (
            b'{"key":'
            + _canonical_key_id(self.key)
            + b',"payload":'
            + self.payload_bytes
            + b',"sig":"'
            + base64.b64encode(self.sig)
            + b'"}'
        )

    @classmethod
    def parse(cls, obj: object) -> Envelope:
        """Check the envelope's shape strictly and parse it; raise EnvelopeError naming the field.

        ``obj`` must be a dict with exactly the keys ``payload`` (an object with a non-empty string
        ``type``, RFC 8785 encodable), ``key`` (``"<name>+<hex8>"``) and ``sig`` (canonical
        standard base64 of 64 bytes). The signature itself is not checked here: see
        :func:`verify_envelope`.
        """
        if not isinstance(obj, dict):
            raise EnvelopeError(f"envelope: must be a JSON object, not {type(obj).__name__}")
        keys = set(obj)
        missing = sorted(_ENVELOPE_FIELDS - keys)
        if missing:
            raise EnvelopeError(f"{missing[0]}: missing field")
        extra = sorted(str(k) for k in keys - _ENVELOPE_FIELDS)
        if extra:
            if re.fullmatch(r"[a-z_]{1,32}", extra[0], re.ASCII):
                raise EnvelopeError(f"{extra[0]}: unexpected field in envelope")
            # Named only when it cannot carry text of the sender's choosing back to a page.
            raise EnvelopeError("envelope: unexpected field (it holds payload, key and sig only)")
        payload = obj["payload"]
        payload_bytes = _check_payload(payload)
        try:
            key = parse_key_id(obj["key"])
        except KeyFormatError as exc:
            raise EnvelopeError(f"key: {exc}") from None
        sig64 = obj["sig"]
        if not isinstance(sig64, str):
            raise EnvelopeError(f"sig: must be a base64 string, not {type(sig64).__name__}")
        try:
            sig = decode_b64(sig64)
        except ValueError as exc:
            raise EnvelopeError(f"sig: {exc}") from None
        if len(sig) != SIGNATURE_SIZE:
            raise EnvelopeError(f"sig: must be {SIGNATURE_SIZE} bytes, got {len(sig)}")
        return cls(payload=payload, key=key, sig=sig, raw=obj, payload_bytes=payload_bytes)


def verify_envelope(envelope: Envelope, verifier: VerifierKey) -> None:
    """Check that ``verifier`` signed ``envelope``; raise BadSignatureError(envelope.key).

    The envelope's key id must equal ``verifier.key_id`` and the signature must verify over
    :func:`envelope_message` of the payload.
    """
    if envelope.key != verifier.key_id:
        raise BadSignatureError(envelope.key)
    verifier.verify(envelope.message, envelope.sig)
