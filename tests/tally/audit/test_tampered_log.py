"""Threat: someone edits an exported log. Any changed byte or field, a dropped entry or a
reordered pair must fail the audit."""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

import tally.audit.crypto
import tally.audit.entries
import tally.audit.policy
from tally.audit import AuditReport, audit
from tests.tally.election_log import AuditKeys, election_log, export, standard_log

TAMPERINGS = 1000


async def exported(tmp_path: Path, sqlite_url: str) -> tuple[bytes, AuditKeys]:
    keys = AuditKeys()
    async with election_log(sqlite_url, keys) as log:
        await standard_log(log)
        await log.lookup(104)  # and the paper ballot it precedes: every entry type is tampered
        await log.paper(104, ["S02"])
    data = await export(sqlite_url, tmp_path / "log.jsonl")
    return data, keys


def audit_bytes(tmp_path: Path, data: bytes, keys: AuditKeys) -> AuditReport:
    path = tmp_path / "tampered.jsonl"
    path.write_bytes(data)
    return audit(str(path), keys.log.verifier.vkey, keys.admin.verifier.vkey, workers=0)


def _flip_byte(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    at = rng.randrange(len(data))
    new = rng.choice([b for b in range(256) if b != data[at]])
    return data[:at] + bytes([new]) + data[at + 1 :], f"byte {at}: {data[at]:#x} -> {new:#x}"


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _leaves(item, (*path, key))]
    if isinstance(value, list) and value:
        return [p for i, item in enumerate(value) for p in _leaves(item, (*path, i))]
    return [path]


def _changed(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.choice([-1, 1, 2, 1000])
    if isinstance(value, str):
        if value and rng.random() < 0.5:
            i = rng.randrange(len(value))
            return value[:i] + chr(ord(value[i]) ^ 1) + value[i + 1 :]
        return value + rng.choice(["x", "0", " ", "Ж"])
    if isinstance(value, list):
        return [*value, "extra"]
    if value is None:
        return "x"
    return {"x": 1}


def _change_field(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Parse one line, change one scalar somewhere in it, write the line back in its format."""
    lines = data.split(b"\n")[:-1]
    n = rng.randrange(len(lines))
    value = json.loads(lines[n])
    path = rng.choice(_leaves(value))
    parent = value
    for key in path[:-1]:
        parent = parent[key]
    old = parent[path[-1]] if path else value
    new = _changed(old, rng)
    if path:
        parent[path[-1]] = new
    else:
        value = new
    if isinstance(value, dict) and set(value) == {"index", "entry"}:
        # An entry line, written back as exported: compact, members sorted.
        entry = json.dumps(
            value["entry"], separators=(",", ":"), sort_keys=True, ensure_ascii=False
        )
        encoded = b'{"index":%s,"entry":%s}' % (json.dumps(value["index"]).encode(), entry.encode())
    else:
        encoded = json.dumps(value).encode()
    lines[n] = encoded
    return b"\n".join(lines) + b"\n", f"line {n} field {path}: {old!r} -> {new!r}"


@functools.cache
def _verifies(public: bytes, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except InvalidSignature:
        return False
    return True


class _RememberingKey:
    """An Ed25519 public key whose verdict on a (signature, message) is computed once."""

    def __init__(self, public: bytes) -> None:
        self.public = public

    def verify(self, signature: bytes, message: bytes) -> None:
        if not _verifies(self.public, message, signature):
            raise InvalidSignature


@pytest.fixture
def remembered_signatures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each signature check's verdict remembered across the 1,000 audits of nearly the same
    file: most of their signatures are the untampered file's, and Ed25519 verification was half
    of each audit's time. A verdict depends on nothing but the key, message and signature
    bytes, so a changed byte in any of them is verified afresh: every check still runs, with
    the answers a fresh verification gives (keys the audit refuses are refused as before)."""
    verifier = tally.audit.entries._verifier

    def remembering(public: bytes) -> Any:
        return None if verifier(public) is None else _RememberingKey(public)

    monkeypatch.setattr(tally.audit.entries, "_verifier", remembering)
    remembered = functools.cache(tally.audit.crypto.ed25519_verify)  # checkpoints, cosignatures
    monkeypatch.setattr(tally.audit.crypto, "ed25519_verify", remembered)
    monkeypatch.setattr(tally.audit.policy, "ed25519_verify", remembered)


async def test_every_single_byte_or_field_tampering_is_detected(
    tmp_path: Path, sqlite_url: str, remembered_signatures: None
) -> None:
    """1,000 seeded random tamperings: each changes one byte or one field of the file, and
    every one fails the audit."""
    data, keys = await exported(tmp_path, sqlite_url)
    assert audit_bytes(tmp_path, data, keys).ok
    rng = random.Random(20181010)
    undetected = []
    checks: set[str] = set()
    for _ in range(TAMPERINGS):
        tampered, how = (_flip_byte if rng.random() < 0.5 else _change_field)(data, rng)
        if tampered == data:
            continue
        report = audit_bytes(tmp_path, tampered, keys)
        if report.ok:
            undetected.append(how)
        checks.update(report.violation_counts)
    assert not undetected, undetected[:10]
    # The tamperings are caught by many different checks, not one catch-all.
    assert {"canonical", "root", "signature", "gapless", "checkpoint-signature"} <= checks


async def test_a_dropped_entry_is_detected(tmp_path: Path, sqlite_url: str) -> None:
    """Removing one entry line breaks the index sequence, the size and the roots."""
    data, keys = await exported(tmp_path, sqlite_url)
    lines = data.split(b"\n")
    del lines[10]
    report = audit_bytes(tmp_path, b"\n".join(lines), keys)
    assert not report.ok
    assert {"gapless", "size", "root"} <= set(report.violation_counts)
    first = next(v for v in report.violations if v.check == "gapless")
    assert (first.entry, first.expected, first.found) == (9, "index 9", "index 10")


async def test_a_dropped_entry_with_indices_renumbered_is_detected(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Even with the indices and the header made consistent, the signed roots disagree."""
    data, keys = await exported(tmp_path, sqlite_url)
    lines = data.split(b"\n")[:-1]
    header = json.loads(lines[0])
    entries = [json.loads(line)["entry"] for line in lines[1 : 1 + header["size"]]]
    del entries[12]
    header["size"] -= 1
    rebuilt = [json.dumps(header).encode()]
    for i, entry in enumerate(entries):
        raw = json.dumps(entry, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        rebuilt.append(b'{"index":%d,"entry":%s}' % (i, raw.encode()))
    rebuilt += lines[1 + header["size"] + 1 :]
    report = audit_bytes(tmp_path, b"\n".join(rebuilt) + b"\n", keys)
    assert not report.ok
    assert "root" in report.violation_counts


async def test_a_reordered_pair_is_detected(tmp_path: Path, sqlite_url: str) -> None:
    """Swapping two adjacent entry lines breaks the indices and the roots."""
    data, keys = await exported(tmp_path, sqlite_url)
    lines = data.split(b"\n")
    lines[8], lines[9] = lines[9], lines[8]
    report = audit_bytes(tmp_path, b"\n".join(lines), keys)
    assert not report.ok
    assert {"gapless", "root"} <= set(report.violation_counts)
    swapped = [v.entry for v in report.violations if v.check == "gapless"]
    assert swapped == [7, 8]
