"""Mirrors ledger/policy.py and ledger/cosignature.py; tests/tally/audit/test_audit_policy.py
checks that both read policies and count cosignatures alike.

Witness policies for the monitor (``uchast monitor --witness-policy FILE``): C2SP tlog-policy
files and C2SP tlog-cosignature ``cosignature/v1`` (Ed25519) lines on a checkpoint.

A policy file, items separated by ASCII spaces and tabs, blank lines and ``#`` comments ignored::

    log <vkey> [<url>]                         checkpoint keys (type 0x01)
    witness <name> <cosigner vkey> [<url>]     cosignature/v1 keys (type 0x04)
    group <name> <k|any|all> <member>...       members defined on earlier lines, each once
    quorum <name|none>                         exactly one

A cosignature is a signature line ``— <key name> base64(key ID || timestamp || signature)``:

1. the key ID is ``SHA-256(name || "\\n" || 0x04 || public key)[:4]``;
2. the timestamp is 8 bytes, big-endian, at most 2^63-1;
3. the Ed25519 signature is over ``"cosignature/v1\\n" "time <timestamp>\\n"`` followed by the
   checkpoint's note text (up to and including the newline before the blank line).

Lines of keys the policy does not name, and lines that name a witness but do not verify, count
for nothing, as C2SP signed-note requires. Standard library and ``cryptography`` only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from dataclasses import dataclass

from tally.audit.crypto import VerifierKey, decode_b64, ed25519_verify

__all__ = ["Policy", "PolicyError", "WitnessKey", "cosigners", "parse_policy"]

_ALG_COSIGNATURE_V1 = 0x04
_HEADER = "cosignature/v1\n"
_MAX_TIMESTAMP = 2**63 - 1
_HEX8 = re.compile(r"[0-9a-f]{8}")
_ITEMS = re.compile(r"[ \t]+")
_THRESHOLD = re.compile(r"[1-9][0-9]{0,5}")
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SIGNATURE_LINE = "\u2014 "


class PolicyError(ValueError):
    """The policy file is not a valid C2SP tlog-policy; the message names the line."""


@dataclass(frozen=True)
class WitnessKey:
    """A witness's ``cosignature/v1`` key: the name it signs under and its Ed25519 key."""

    name: str
    public: bytes

    @property
    def key_id(self) -> bytes:
        """``SHA-256(name || "\\n" || 0x04 || public)[:4]``."""
        material = self.name.encode("utf-8") + b"\n" + bytes([_ALG_COSIGNATURE_V1]) + self.public
        return hashlib.sha256(material).digest()[:4]

    @classmethod
    def parse(cls, vkey: str) -> WitnessKey:
        """A cosigner vkey ``<name>+<hex8>+<base64(0x04 || key)>``, strictly."""
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise ValueError("a cosigner vkey has the form <name>+<hex8>+<base64 key>")
        name, hex8, key64 = parts
        if not name or any(c.isspace() or ord(c) < 0x20 for c in name):
            raise ValueError(f"{name!r} is not a key name")
        if not _HEX8.fullmatch(hex8):
            raise ValueError(f"key ID {hex8!r} is not 8 lowercase hex digits")
        raw = decode_b64(key64)
        if len(raw) != 33 or raw[0] != _ALG_COSIGNATURE_V1:
            raise ValueError(
                f"cosigner key {name}: not 0x04 (cosignature/v1) and a 32-byte Ed25519 key"
            )
        key = cls(name, raw[1:])
        if key.key_id.hex() != hex8:
            raise ValueError(f"cosigner key {name}: key ID {hex8} does not match the key")
        return key

    def verify(self, body: str, signed: bytes) -> bool:
        """Whether ``signed`` (timestamp || signature) is this witness's cosignature of the
        checkpoint note text ``body``."""
        if len(signed) != 8 + 64:
            return False
        timestamp = int.from_bytes(signed[:8], "big")
        if timestamp > _MAX_TIMESTAMP:
            return False
        message = f"{_HEADER}time {timestamp}\n{body}".encode()
        return ed25519_verify(self.public, message, signed[8:])


@dataclass(frozen=True)
class Policy:
    """A parsed policy: the log keys it accepts, its witnesses by name, its groups
    (name -> threshold, members) and its quorum (None: ``quorum none``)."""

    logs: tuple[VerifierKey, ...]
    witnesses: dict[str, WitnessKey]
    groups: dict[str, tuple[int, tuple[str, ...]]]
    quorum: str | None

    def satisfied(self, cosigned: Collection[str]) -> bool:
        """Whether cosignatures by the witnesses named in ``cosigned`` meet the quorum."""
        if self.quorum is None:
            return True
        memo: dict[str, bool] = {}

        def met(name: str) -> bool:
            if name not in memo:
                group = self.groups.get(name)
                if group is None:
                    memo[name] = name in cosigned
                else:
                    threshold, members = group
                    memo[name] = sum(met(m) for m in members) >= threshold
            return memo[name]

        return met(self.quorum)


def parse_policy(text: str) -> Policy:
    """Read a tlog-policy file; :class:`PolicyError` names the first line that is wrong."""
    logs: list[VerifierKey] = []
    witnesses: dict[str, WitnessKey] = {}
    groups: dict[str, tuple[int, tuple[str, ...]]] = {}
    quorum: list[str | None] = []
    publics: set[bytes] = set()
    for number, raw in enumerate(text.split("\n"), start=1):

        def fail(why: str, number: int = number) -> PolicyError:
            return PolicyError(f"policy line {number}: {why}")

        bad = _FORBIDDEN.search(raw)
        if bad:
            raise fail(f"control character U+{ord(bad.group()):04X}")
        items = [item for item in _ITEMS.split(raw) if item]
        if not items or items[0].startswith("#"):
            continue
        keyword, args = items[0], items[1:]
        defined = witnesses.keys() | groups.keys()
        if keyword == "log":
            if len(args) not in (1, 2):
                raise fail("expected: log <vkey> [<url>]")
            try:
                key = VerifierKey.parse(args[0])
            except ValueError as exc:
                raise fail(str(exc)) from None
            if any(log.public == key.public for log in logs):
                raise fail(f"log key {key.name} is listed twice")
            logs.append(key)
        elif keyword == "witness":
            if len(args) not in (2, 3):
                raise fail("expected: witness <name> <vkey> [<url>]")
            name = args[0]
            if name == "none" or name in defined:
                raise fail(f"{name!r} is reserved or defined twice")
            try:
                witness = WitnessKey.parse(args[1])
            except ValueError as exc:
                raise fail(str(exc)) from None
            if witness.public in publics:
                raise fail(f"witness {name}: its key is listed twice")
            publics.add(witness.public)
            witnesses[name] = witness
        elif keyword == "group":
            if len(args) < 3:
                raise fail("expected: group <name> <k|any|all> <member>...")
            name, members = args[0], tuple(args[2:])
            if name == "none" or name in defined:
                raise fail(f"{name!r} is reserved or defined twice")
            if not set(members) <= defined:
                raise fail(f"group {name}: a member is not defined above")
            if len(set(members)) != len(members):
                raise fail(f"group {name}: a member is listed twice")
            k = args[1]
            if k == "any":
                threshold = 1
            elif k == "all":
                threshold = len(members)
            elif _THRESHOLD.fullmatch(k) and 1 <= int(k) <= len(members):
                threshold = int(k)
            else:
                raise fail(f"threshold {k!r} must be any, all or 1..{len(members)}")
            groups[name] = (threshold, members)
        elif keyword == "quorum":
            if len(args) != 1:
                raise fail("expected: quorum <name|none>")
            if quorum:
                raise fail("a second quorum line")
            if args[0] != "none" and args[0] not in defined:
                raise fail(f"quorum {args[0]!r} is not defined above")
            quorum.append(None if args[0] == "none" else args[0])
        else:
            raise fail(f"unknown keyword {keyword!r}")
    if not quorum:
        raise PolicyError("policy: no quorum line")
    return Policy(tuple(logs), witnesses, groups, quorum[0])


def cosigners(note: str, policy: Policy) -> set[str]:
    """The names of the policy's witnesses with a valid cosignature line on ``note`` (a
    checkpoint whose note form :func:`tally.audit.crypto.open_checkpoint` accepted)."""
    split = note.rfind("\n\n")
    if split < 0:
        return set()
    body = note[: split + 1]
    by_slot = {(key.name, key.key_id): name for name, key in policy.witnesses.items()}
    found: set[str] = set()
    for line in note[split + 2 :].split("\n"):
        if not line.startswith(_SIGNATURE_LINE):
            continue
        key_name, _, sig64 = line[len(_SIGNATURE_LINE) :].partition(" ")
        try:
            raw = decode_b64(sig64)
        except ValueError:
            continue
        witness = by_slot.get((key_name, raw[:4]))
        if witness is not None and policy.witnesses[witness].verify(body, raw[4:]):
            found.add(witness)
    return found
