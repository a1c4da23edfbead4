"""Threat: the public log lists the receipt codes voters were handed. Entries carry a hash of
each code (votes/receipts.py), never the code; the auditor derives each ballot's code from its
signature and reports a ballot whose receipt tag is anything but that hash."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from ledger.keys import sign_envelope
from tally.audit import audit
from tally.audit import receipts as audit_receipts
from tests.factories import ELECTION, voter_token
from tests.tally.election_log import (
    CAST_AT,
    AuditKeys,
    election_log,
    export,
    standard_log,
    tags_of,
)
from votes.receipts import receipt_code, receipt_tag


async def test_no_entry_of_an_exported_log_holds_a_receipt_code(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Every ballot's code, with or without its dash, appears nowhere in the exported log;
    its entry carries the code's hash instead, and the audit passes."""
    keys = AuditKeys()
    async with election_log(sqlite_url, keys) as log:
        await standard_log(log)
    data = await export(sqlite_url, tmp_path / "log.jsonl")
    codes = []
    for line in data.splitlines():
        entry = json.loads(line).get("entry")
        if entry and entry["type"] in ("ballot", "paper-ballot"):
            code = receipt_code(base64.b64decode(entry["envelope"]["sig"]))
            assert receipt_tag(code) in entry["tags"]
            codes.append(code)
    assert len(codes) >= 20
    text = data.decode()
    for code in codes:
        assert code not in text and code.replace("-", "") not in text
    report = audit(str(tmp_path / "log.jsonl"), keys.log.verifier.vkey, keys.admin.verifier.vkey)
    assert report.violations == []


async def test_a_ballot_tagged_with_its_plain_code_is_reported(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A server that tags a ballot with its code in the clear (or with another code's hash)
    is caught: step 2 receipt-tag names the entry and the tag it should carry."""
    keys = AuditKeys()
    async with election_log(sqlite_url, keys) as log:
        await log.ballot(1, ["L01"])
        smuggled = []
        for wrong in ("plain", "other"):
            payload = {
                "type": "ballot",
                "election": ELECTION,
                "voter": voter_token(2 if wrong == "plain" else 3),
                "projects": ["L02"],
                "cast_at": CAST_AT,
                "nonce": str(uuid.uuid4()),
            }
            envelope = sign_envelope(payload, keys.site)
            code = receipt_code(base64.b64decode(envelope["sig"]))
            tag = f"receipt:{code}" if wrong == "plain" else receipt_tag("00000-00000")
            appended = await log.ledger.append(envelope, tags=[*tags_of(payload), tag])
            smuggled.append((appended.position, receipt_tag(code)))
        await log.ballot(4, ["L03"])
    await export(sqlite_url, tmp_path / "log.jsonl")
    report = audit(
        str(tmp_path / "log.jsonl"), keys.log.verifier.vkey, keys.admin.verifier.vkey, workers=0
    )
    found = [(v.entry, v.expected) for v in report.violations if v.check == "receipt-tag"]
    assert found == smuggled
    assert all(v.step == 2 for v in report.violations if v.check == "receipt-tag")


@given(st.binary(min_size=64, max_size=64))
def test_the_auditor_derives_codes_and_tags_as_the_server_does(signature: bytes) -> None:
    """tally/audit/receipts.py mirrors votes/receipts.py byte for byte."""
    code = receipt_code(signature)
    assert audit_receipts.receipt_code(signature) == code
    assert audit_receipts.receipt_tag(code) == receipt_tag(code)
