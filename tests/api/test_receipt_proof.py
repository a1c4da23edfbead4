"""A receipt's C2SP tlog-proof file through HTTP: the file the server gives verifies offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.cli import main as uchast
from tally.audit.crypto import VerifierKey
from tally.audit.receipts import verify_receipt_proof
from tests.api.conftest import Setup
from tests.api.test_vote_routes import BASE, post
from tests.factories import Keys, ballot_envelope, voter_token


async def test_the_proof_file_verifies_offline(
    service: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """GET .../receipts/{code}/proof is a c2sp.org/tlog-proof@v1 file named after the code,
    carrying the entry; ``uchast verify-receipt`` accepts it against the log key."""
    status, accepted = await post(
        service, "ballots", ballot_envelope(service.keys.site, voter_token(1), ["L01", "S02"])
    )
    assert status == 201
    code = accepted["receipt"]
    response = await service.client.get(f"{BASE}/receipts/{code.lower()}/proof")
    assert response.status == 200
    assert response.content_type == "text/plain"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{code}.tlog-proof"'
    text = await response.text()
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ")
    proof = verify_receipt_proof(text, VerifierKey.parse(service.keys.log.verifier.vkey), code)
    assert (proof.code, proof.index, proof.projects) == (code, accepted["position"], ("L01", "S02"))
    receipt = await (await service.client.get(f"{BASE}/receipts/{code}")).json()
    assert text.endswith(receipt["checkpoint"])
    saved = tmp_path / f"{code}.tlog-proof"
    saved.write_text(text)
    vkey = service.keys.log.verifier.vkey
    assert uchast(["verify-receipt", str(saved), "--log-vkey", vkey, "--code", code]) == 0
    assert capsys.readouterr().out.startswith(f"VERIFIED: receipt {code} is entry ")
    other = Keys().log.verifier.vkey
    assert uchast(["verify-receipt", str(saved), "--log-vkey", other]) == 1
    assert capsys.readouterr().out.startswith("NOT VERIFIED (checkpoint-signature)")


async def test_unknown_and_malformed_codes_have_no_proof(service: Setup) -> None:
    """No file for a code no ballot has (404 unknown-receipt) or that is no code (400)."""
    response = await service.client.get(f"{BASE}/receipts/ZZZZZ-ZZZZZ/proof")
    assert response.status == 404
    assert (await response.json())["code"] == "unknown-receipt"
    response = await service.client.get(f"{BASE}/receipts/nope/proof")
    assert response.status == 400
