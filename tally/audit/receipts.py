"""Mirrors votes/receipts.py and ledger/tlog_proof.py: receipt codes, receipt tags, and the
offline check of a receipt's C2SP tlog-proof file (``uchast verify-receipt``).

A ballot's receipt code is Crockford base32 of the first 50 bits of
SHA-256("uchast/receipt\\n" || signature), written ``XXXXX-XXXXX``; its entry carries the tag
``receipt:`` + the first 32 hex digits of SHA-256("uchast/receipt-tag\\n" || code), never the
code itself. The auditor derives both from the signature and checks every ballot's tag.

A receipt's proof file (``c2sp.org/tlog-proof@v1``) holds the entry itself as its ``extra``
data, the entry's index, the RFC 9162 inclusion proof and the log's signed checkpoint, so the
file and the log's public key are all a check needs: no server, no network.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tally.audit.crypto import (
    NoteError,
    VerifierKey,
    canonical,
    decode_b64,
    leaf_hash,
    node_hash,
    open_checkpoint,
)

__all__ = [
    "ReceiptProof",
    "ReceiptProofError",
    "main",
    "proof_checkpoint",
    "receipt_code",
    "receipt_tag",
    "root_from_inclusion",
    "verify_receipt_proof",
]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_HEADER = "c2sp.org/tlog-proof@v1"
_INDEX = re.compile(r"index (0|[1-9][0-9]{0,19})")
_CODE = re.compile(r"[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}")
_BALLOT_TYPES = frozenset({"ballot", "paper-ballot"})
_NOTE_SIGNATURE = "\u2014 "
_MAX_PROOF_HASHES = 64
_LOOKALIKES = str.maketrans("ILOU", "110V")


_PAIRS = [first + second for first in _ALPHABET for second in _ALPHABET]
"""Each 10 bits as their two characters: a code is derived for every ballot, and a join of ten
characters took a sixth of the workers' time besides the signatures."""


def receipt_code(signature: bytes) -> str:
    """The receipt code of the ballot whose envelope signature is ``signature``."""
    value = int.from_bytes(hashlib.sha256(b"uchast/receipt\n" + signature).digest()[:7]) >> 6
    pairs = _PAIRS
    return (
        pairs[value >> 40]
        + pairs[value >> 30 & 1023]
        + _ALPHABET[value >> 25 & 31]
        + "-"
        + _ALPHABET[value >> 20 & 31]
        + pairs[value >> 10 & 1023]
        + pairs[value & 1023]
    )


def receipt_tag(code: str) -> str:
    """The tag of the ballot whose receipt code is ``code``."""
    digest = hashlib.sha256(b"uchast/receipt-tag\n" + code.encode("ascii")).hexdigest()
    return f"receipt:{digest[:32]}"


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root ``proof`` leads to from the leaf hash at ``index`` in a tree
    of ``size`` leaves; ValueError if the proof has the wrong length for them."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is not in a tree of {size} entries")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ValueError("the inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("the inclusion proof is too short")
    return r


class ReceiptProofError(ValueError):
    """A receipt's proof file fails one check: ``check`` names it (``format``,
    ``checkpoint-signature``, ``entry``, ``index``, ``inclusion``, ``receipt-code``), the
    message says what was wrong, in words a clerk can pass on."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check
        self.message = message


@dataclass(frozen=True)
class ReceiptProof:
    """What a verified proof file shows: this ballot is entry ``index`` of the log ``origin``,
    within its checkpoint of ``size`` entries signed by the log key. ``cosigners``: the names
    on the checkpoint's other signature lines (witnesses; not verified here)."""

    code: str
    index: int
    origin: str
    size: int
    entry_type: str
    election: str
    projects: tuple[str, ...]
    cosigners: tuple[str, ...]
    points: tuple[tuple[str, int], ...] = ()
    """Cumulative ballots: the points given, by project."""
    ranking: tuple[str, ...] = ()
    """Ordinal ballots: the ranking, most preferred first."""

    def choices(self) -> str:
        """The ballot's choices in words: projects, then points, then the ranking."""
        parts = list(self.projects)
        parts += [f"{p} ({n} points)" for p, n in self.points]
        if self.ranking:
            parts.append("ranking " + " > ".join(self.ranking))
        return ", ".join(parts) or "no project"


def proof_checkpoint(text: str) -> str:
    """The checkpoint note of a tlog-proof file (what follows its first empty line); any other
    text as it is. ``uchast audit --checkpoint`` takes a receipt's proof file this way."""
    if text.startswith(_HEADER + "\n"):
        _, blank, note = text.partition("\n\n")
        if blank:
            return note
    return text


def _parse(text: str) -> tuple[bytes, int, list[bytes], str]:
    """Step 1: the file's lines: extra (the entry), index, proof hashes, the checkpoint."""

    def bad(message: str) -> ReceiptProofError:
        return ReceiptProofError("format", message)

    head, blank, note = text.partition("\n\n")
    if not blank:
        raise bad("no empty line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != _HEADER:
        raise bad(f"the first line is not {_HEADER}")
    if len(lines) < 3 or not lines[1].startswith("extra "):
        raise bad("no 'extra' line: the file does not carry the ballot's entry")
    try:
        entry = decode_b64(lines[1].removeprefix("extra "))
    except ValueError as exc:
        raise bad(f"the extra line is not base64 ({exc})") from None
    match = _INDEX.fullmatch(lines[2])
    if match is None:
        raise bad("the third line is not 'index N' (a decimal without leading zeros)")
    hashes = []
    for number, line in enumerate(lines[3:], start=4):
        try:
            value = decode_b64(line)
        except ValueError:
            raise bad(f"line {number} is not a base64 hash") from None
        if len(value) != 32:
            raise bad(f"line {number} is not a 32-byte hash")
        hashes.append(value)
    if len(hashes) > _MAX_PROOF_HASHES:
        raise bad("the inclusion proof has more hashes than any log can need")
    return entry, int(match.group(1)), hashes, note


def _entry(data: bytes) -> dict[str, Any]:
    """Step 3: the extra data is a ballot's entry, in its canonical (RFC 8785) bytes."""

    def bad(message: str) -> ReceiptProofError:
        return ReceiptProofError("entry", message)

    try:
        entry = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise bad("the entry is not JSON") from None
    try:
        encoded = canonical(entry)
    except ValueError:
        raise bad("the entry is not RFC 8785 encodable") from None
    if encoded != data:
        raise bad("the entry is not in its canonical (RFC 8785) form")
    envelope = entry.get("envelope") if isinstance(entry, dict) else None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("sig"), str):
        raise bad("the entry holds no signed envelope")
    payload = envelope.get("payload")
    if not isinstance(payload, dict):
        raise bad("the entry holds no signed envelope")
    if entry.get("type") not in _BALLOT_TYPES or payload.get("type") != entry.get("type"):
        raise bad(f"the entry is a {entry.get('type')!r}, not a ballot or paper ballot")
    return dict(entry)


def verify_receipt_proof(text: str, log_key: VerifierKey, code: str | None = None) -> ReceiptProof:
    """Check a receipt's tlog-proof file against the log's public key; raise
    :class:`ReceiptProofError` naming the first check that fails.

    1. format: ``c2sp.org/tlog-proof@v1``, ``extra`` (the entry), ``index``, proof hashes, an
       empty line, the checkpoint;
    2. checkpoint-signature: the checkpoint carries a valid signature by ``log_key``;
    3. entry: the extra data is a ballot's or paper ballot's entry in canonical form, of the
       election the checkpoint's origin names;
    4. index: the index lies within the checkpoint's tree;
    5. inclusion: the entry's leaf hash at that index leads, through the proof, to the signed
       root;
    6. receipt-code: the code the entry's signature gives is ``code`` (when given), and the
       entry carries that code's receipt tag.
    """
    entry_bytes, index, hashes, note = _parse(text)

    try:
        checkpoint = open_checkpoint(note, log_key)
    except NoteError as exc:
        raise ReceiptProofError(
            "checkpoint-signature", f"the checkpoint is not signed by this log's key: {exc}"
        ) from None

    entry = _entry(entry_bytes)
    payload = entry["envelope"]["payload"]
    election = payload.get("election")
    if not isinstance(election, str) or not checkpoint.origin.endswith("/" + election):
        raise ReceiptProofError(
            "entry", f"the entry is of election {election!r}, not of log {checkpoint.origin}"
        )

    if not index < checkpoint.size:
        raise ReceiptProofError(
            "index", f"index {index} is beyond the checkpoint's {checkpoint.size} entries"
        )

    try:
        root = root_from_inclusion(index, checkpoint.size, leaf_hash(entry_bytes), hashes)
    except ValueError as exc:
        raise ReceiptProofError("inclusion", f"the proof does not fit the tree: {exc}") from None
    if root != checkpoint.root:
        raise ReceiptProofError(
            "inclusion",
            f"the entry is not at index {index} of the signed log: its proof leads to another root",
        )

    try:
        derived = receipt_code(decode_b64(entry["envelope"]["sig"]))
    except ValueError:
        raise ReceiptProofError("receipt-code", "the entry's signature is not base64") from None
    if code is not None and code != derived:
        raise ReceiptProofError(
            "receipt-code", f"this file proves the ballot with code {derived}, not {code}"
        )
    tags = entry.get("tags")
    if not isinstance(tags, list) or receipt_tag(derived) not in tags:
        raise ReceiptProofError(
            "receipt-code", f"the entry does not carry the receipt tag of code {derived}"
        )

    projects = payload.get("projects")
    return ReceiptProof(
        code=derived,
        index=index,
        origin=checkpoint.origin,
        size=checkpoint.size,
        entry_type=entry["type"],
        election=election,
        projects=tuple(p for p in projects if isinstance(p, str))
        if isinstance(projects, list)
        else (),
        cosigners=_cosigners(note, log_key),
        points=_points(payload.get("points")),
        ranking=_ids(payload.get("ranking")),
    )


def _points(value: object) -> tuple[tuple[str, int], ...]:
    if not isinstance(value, dict):
        return ()
    return tuple((p, n) for p, n in value.items() if isinstance(p, str) and type(n) is int)


def _ids(value: object) -> tuple[str, ...]:
    return tuple(p for p in value if isinstance(p, str)) if isinstance(value, list) else ()


def _cosigners(note: str, log_key: VerifierKey) -> tuple[str, ...]:
    block = note[note.rfind("\n\n") + 2 :]
    names = [line[len(_NOTE_SIGNATURE) :].partition(" ")[0] for line in block.splitlines()]
    return tuple(sorted({n for n in names if n and n != log_key.name}))


def _normalise(text: str) -> str | None:
    compact = re.sub(r"[\s-]", "", text.upper()).translate(_LOOKALIKES)
    code = f"{compact[:5]}-{compact[5:]}"
    return code if _CODE.fullmatch(code) else None


def build_parser(prog: str = "uchast verify-receipt") -> argparse.ArgumentParser:
    """The command's arguments."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Check a receipt's proof file (C2SP tlog-proof, from the /receipt page) offline: "
            "the ballot's entry is in the log the log key signed. Exit 0 only if it is."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="the .tlog-proof file")
    parser.add_argument("--log-vkey", required=True, help="the log's public key (C2SP vkey)")
    parser.add_argument("--code", help="the receipt code the voter was given (optional)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``uchast verify-receipt``: 0 when the file proves the ballot, 1 when a check fails, 2
    when the check cannot run (unreadable file, bad key or code)."""
    args = build_parser().parse_args(argv)
    try:
        log_key = VerifierKey.parse(args.log_vkey)
    except ValueError as exc:
        print(f"uchast verify-receipt: --log-vkey: {exc}", file=sys.stderr)
        return 2
    code = None
    if args.code is not None:
        code = _normalise(args.code)
        if code is None:
            print("uchast verify-receipt: a receipt code looks like ABCDE-12345", file=sys.stderr)
            return 2
    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"uchast verify-receipt: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    try:
        proof = verify_receipt_proof(text, log_key, code)
    except ReceiptProofError as exc:
        print(f"NOT VERIFIED ({exc.check}): {exc.message}")
        return 1
    kind = "a paper ballot" if proof.entry_type == "paper-ballot" else "an online ballot"
    print(
        f"VERIFIED: receipt {proof.code} is entry {proof.index} of {proof.origin}, "
        f"{kind} for {proof.choices()}, in the log of "
        f"{proof.size} entries signed by {log_key.key_id}."
    )
    if proof.cosigners:
        others = ", ".join(proof.cosigners)
        print(f"The checkpoint also carries signatures by {others} (not checked here).")
    print("Whether it counts now: the receipt page or GET .../receipts/CODE (status).")
    return 0
