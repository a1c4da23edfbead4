"""The auditor's own re-implementations agree with the published vectors and with the server's
code (used here only as a second opinion)."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.checkpoint import Checkpoint as ServerCheckpoint
from ledger.checkpoint import sign_checkpoint
from ledger.keys import Envelope, SignerKey, sign_envelope
from ledger.log import entry_encoder
from tally.audit import crypto
from tally.audit.entries import _ONLINE_BALLOT
from tests.conftest import SHARED, require_shared

VECTORS = SHARED / "vectors"


def _probes(kind: str) -> list[tuple[str, dict[str, Any]]]:
    folder = VECTORS / "transparency-dev-merkle" / "testdata" / kind
    if not folder.exists():
        return [("missing", {})]
    return [
        (f"{path.parent.name}/{path.name}", json.loads(path.read_text()))
        for path in sorted(folder.glob("*/*.json"))
    ]


@pytest.mark.parametrize(("name", "probe"), _probes("consistency"))
def test_consistency_proofs_match_transparency_dev_probes(name: str, probe: dict[str, Any]) -> None:
    """check_consistency accepts exactly the probes transparency-dev/merkle accepts."""
    require_shared(VECTORS / "transparency-dev-merkle")
    proof = [base64.b64decode(h) for h in probe["proof"] or []]
    why = crypto.check_consistency(
        probe["size1"],
        probe["size2"],
        base64.b64decode(probe["root1"] or ""),
        base64.b64decode(probe["root2"] or ""),
        proof,
    )
    if probe["size1"] == probe["size2"] and not probe["wantErr"]:
        assert why is None
    else:
        assert (why is not None) == probe["wantErr"], (name, probe["desc"], why)


def test_frontier_roots_equal_the_server_tree_at_every_size() -> None:
    """The streaming frontier gives MTH of every prefix, as ledger.merkle does."""
    tree = merkle.MemoryTree()
    frontier = crypto.Frontier()
    assert frontier.root() == tree.root()
    for i in range(70):
        leaf = f"leaf {i}".encode()
        tree.append(leaf)
        frontier.append(crypto.leaf_hash(leaf))
        assert frontier.root() == tree.root()
    batched = crypto.Frontier()
    batched.extend(b"".join(crypto.leaf_hash(f"leaf {i}".encode()) for i in range(33)))
    batched.extend(b"".join(crypto.leaf_hash(f"leaf {i}".encode()) for i in range(33, 70)))
    assert (batched.size, batched.root()) == (frontier.size, frontier.root())
    for old in range(1, 70, 7):
        for new in range(old, 71, 9):
            proof = tree.consistency_proof(old, new)
            assert crypto.check_consistency(old, new, tree.root(old), tree.root(new), proof) is None


def test_vkeys_of_the_signed_note_vectors_parse() -> None:
    """C2SP vkeys from the spec and Go's sumdb parse, with the key hash checked."""
    require_shared(VECTORS / "signed-note")
    vectors = json.loads((VECTORS / "signed-note" / "note_vectors.json").read_text())
    for vector in vectors["vectors"]:
        if "vkey" in vector:
            key = crypto.VerifierKey.parse(vector["vkey"])
            assert key.vkey == vector["vkey"]
    with pytest.raises(ValueError, match="does not match"):
        good = vectors["vectors"][0]["vkey"]
        name, _, rest = good.split("+", 2)
        crypto.VerifierKey.parse(f"{name}+{'0' * 8}+{rest}")


def test_checkpoints_signed_by_the_server_open_and_others_do_not() -> None:
    """open_checkpoint verifies what ledger.checkpoint signs, and only under the log key."""
    log = SignerKey.generate("uchast.local/log")
    other = SignerKey.generate("uchast.local/log")
    body = ServerCheckpoint("uchast.local/e-1", 5, merkle.leaf_hash(b"x"))
    note = sign_checkpoint(body, log)
    opened = crypto.open_checkpoint(note, crypto.VerifierKey.parse(log.verifier.vkey))
    assert (opened.origin, opened.size, opened.root) == (body.origin, body.size, body.root)
    with pytest.raises(crypto.NoteError, match="no signature"):
        crypto.open_checkpoint(note, crypto.VerifierKey.parse(other.verifier.vkey))
    with pytest.raises(crypto.NoteError):
        crypto.open_checkpoint(
            note.replace("\n5\n", "\n6\n"), crypto.VerifierKey.parse(log.verifier.vkey)
        )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_canonical_equals_the_rfc8785_package(value: Any) -> None:
    """The fast canonical encoder writes exactly what the rfc8785 package writes."""
    try:
        expected = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):
        with pytest.raises(ValueError):
            crypto.canonical_plain(value)
        return
    assert crypto.canonical(value) == expected
    assert crypto.canonical_plain(value) == expected


def test_the_online_ballot_pattern_matches_only_canonical_entries() -> None:
    """Server-written online ballots match the pattern; any re-spacing or escape does not."""
    site = SignerKey.generate("site.e-dem")
    payload = {
        "type": "ballot",
        "election": "e-1",
        "voter": "ab" * 32,
        "projects": ["L1", "S2"],
        "cast_at": "2018-10-03T10:15:00+03:00",
        "nonce": str(uuid.uuid4()),
    }
    envelope = Envelope.parse(sign_envelope(payload, site))
    tags = sorted({f"key:{site.key_id}", f"nonce:{payload['nonce']}", "project:L1"})
    raw = entry_encoder(envelope, tags, "ballot").encode("2018-10-03T07:15:00.000001Z")
    assert raw == rfc8785.dumps(json.loads(raw))
    assert _ONLINE_BALLOT.fullmatch(raw.decode())
    for variant in (
        raw.replace(b'"voter":', b'"voter" :'),
        raw.replace(b'"L1"', b'"L\\u0031"'),
        raw.replace(b'"sig":"', b'"sig":"\\/'),
        json.dumps(json.loads(raw)).encode(),
    ):
        assert not _ONLINE_BALLOT.fullmatch(variant.decode())


def test_vectors_folder_exists() -> None:
    """The shared vectors are where the tests expect them."""
    assert isinstance(require_shared(VECTORS), Path)
