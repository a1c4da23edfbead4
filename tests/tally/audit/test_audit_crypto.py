"""The auditor's own re-implementations agree with the published vectors and with the server's
code (used here only as a second opinion)."""

from __future__ import annotations

import base64
import json
import re
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
from ledger.entry import entry_encoder
from ledger.keys import Envelope, SignerKey, sign_envelope
from tally.audit import crypto, entries
from tally.audit.ballots import parse_definition
from tally.audit.entries import _ONLINE_BALLOT
from tests.conftest import SHARED, require_shared
from votes.election import election_to_dict, parse_election_toml
from votes.receipts import receipt_code, receipt_tag

ROOT = Path(__file__).resolve().parents[3]

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


def _server_entry(
    signer: SignerKey,
    entry_type: str,
    payload: dict[str, Any],
    tags: list[str] | None,
    recorded_at: str,
    lookup: str | None = None,
) -> bytes:
    """``payload`` signed by ``signer`` and stored as the server writes an entry of
    ``entry_type``: with ``tags``, or, when None, those the rules give it (the voter looked up
    is ``lookup``, in no payload)."""
    envelope = Envelope.parse(sign_envelope(payload, signer))
    if tags is None:
        tags = [f"key:{signer.key_id}", f"nonce:{payload['nonce']}"]
        if "polling_point" in payload:
            tags.append(f"point:{payload['polling_point']}")
        if lookup is not None:
            tags.append(f"lookup:{lookup}")
        if entry_type in ("ballot", "paper-ballot"):
            tags += [f"voter:{payload['voter']}", *(f"project:{p}" for p in payload["projects"])]
            tags.append(receipt_tag(receipt_code(envelope.sig)))
        tags = sorted(set(tags))
    return entry_encoder(envelope, tags, entry_type).encode(recorded_at)


def _online_ballot_entry(site: SignerKey, **changes: Any) -> bytes:
    """An online ballot entry as the server writes it (``changes`` alter the payload, or the
    tags with ``tags=``), signed by ``site``."""
    payload: dict[str, Any] = {
        "type": "ballot",
        "election": "zhytomyr-2018",
        "voter": "ab" * 32,
        "projects": ["L02", "S01"],
        "cast_at": "2018-10-03T10:15:00+03:00",
        "nonce": str(uuid.UUID(int=0xABC, version=4)),
    }
    tags = changes.pop("tags", None)
    payload.update(changes)
    return _server_entry(site, "ballot", payload, tags, "2018-10-03T07:15:00.000001Z")


def test_the_online_ballot_pattern_matches_only_canonical_entries() -> None:
    """Server-written online ballots match the pattern; any re-spacing or escape does not."""
    site = SignerKey.generate("site.e-dem")
    raw = _online_ballot_entry(site)
    assert raw == rfc8785.dumps(json.loads(raw))
    assert _ONLINE_BALLOT.fullmatch(raw.decode())
    for variant in (
        raw.replace(b'"voter":', b'"voter" :'),
        raw.replace(b'"L02"', b'"L\\u0030\\u0032"'),
        raw.replace(b'"sig":"', b'"sig":"\\/'),
        json.dumps(json.loads(raw)).encode(),
    ):
        assert not _ONLINE_BALLOT.fullmatch(variant.decode())


def _variants(site: SignerKey) -> list[bytes]:
    """Online ballots near the valid one: each breaks one check, or none."""
    nonce, voter = str(uuid.UUID(int=0xABC, version=4)), "ab" * 32
    key_tag, nonce_tag, voter_tag = f"key:{site.key_id}", f"nonce:{nonce}", f"voter:{voter}"
    projects = ["project:L02", "project:S01"]
    other = SignerKey.generate("site.e-dem")
    return [
        _online_ballot_entry(site),
        _online_ballot_entry(site, projects=["L01", "L02", "S01", "S02"]),
        _online_ballot_entry(site, projects=["L01", "L02", "L03"]),  # over the limit alone
        _online_ballot_entry(site, projects=["L02", "L02"]),
        _online_ballot_entry(site, projects=["L02", "X99"]),
        _online_ballot_entry(site, projects=[]),
        _online_ballot_entry(site, projects=["L02", ""]),
        _online_ballot_entry(site, election="another"),
        _online_ballot_entry(site, cast_at="2018-09-30T20:59:59+00:00"),  # before the window
        _online_ballot_entry(site, cast_at="2018-10-01T00:00:00+03:00"),  # its first second
        _online_ballot_entry(site, cast_at="2018-10-03T10:15:00"),  # no offset
        _online_ballot_entry(site, cast_at="2018-10-03T10:15:00.5+03:00"),
        _online_ballot_entry(site, cast_at="2018-13-03T10:15:00+03:00"),
        _online_ballot_entry(site, voter="AB" * 32),
        _online_ballot_entry(site, nonce=nonce.upper()),
        _online_ballot_entry(site, tags=sorted([key_tag, nonce_tag, voter_tag, *projects])),
        _online_ballot_entry(site, tags=sorted([key_tag, nonce_tag, *projects, "receipt:x"])),
        _online_ballot_entry(
            site, tags=[key_tag, nonce_tag, *projects[::-1], "receipt:x", voter_tag]
        ),
        _online_ballot_entry(site, tags=[key_tag, nonce_tag, projects[0], "receipt:x", voter_tag]),
        _online_ballot_entry(
            site, tags=[key_tag, nonce_tag, *projects, "receipt:x", "receipt:y", voter_tag]
        ),
        _online_ballot_entry(site, tags=[key_tag, nonce_tag, *projects, "receipt:x", "voter:x"]),
        _online_ballot_entry(other),  # a key of the same name, not the registered one
        _online_ballot_entry(site)
        .replace(b'"sig":"', b'"sig":"A', 1)
        .replace(b'A","rec', b'","rec', 1),
    ]


def test_the_online_ballot_short_path_decides_as_the_general_path() -> None:
    """For online ballots that pass or break one check, the chunk records, leaves and violations
    are the same whether the pattern's short path takes them or the general path does."""
    site = SignerKey.generate("site.e-dem")
    election = parse_election_toml((ROOT / "examples" / "zhytomyr-2018.toml").read_text())
    definition = parse_definition(election_to_dict(election))
    lines = [b'{"index":%d,"entry":%s}' % (5 + i, raw) for i, raw in enumerate(_variants(site))]
    lines.append(lines[0].replace(b'{"index":5,', b'{"index":7,'))  # not its index
    log_key = crypto.VerifierKey.parse(SignerKey.generate("log").verifier.vkey)
    public = crypto.VerifierKey.parse(site.verifier.vkey).public
    data = b"".join(line + b"\n" for line in lines)
    task = entries.ChunkTask(5, data, election.id, {site.key_id: public}, log_key, definition)
    short = entries.check_chunk(task)
    pattern = entries._ONLINE_BALLOT_LINE
    try:
        entries._ONLINE_BALLOT_LINE = re.compile("(?!)")  # the general path for every line
        general = entries.check_chunk(task)
    finally:
        entries._ONLINE_BALLOT_LINE = pattern
    assert short.records == general.records
    assert short.leaves == general.leaves
    assert short.violations == general.violations
    first, four, over = short.records[:3]
    assert first is not None and len(first) == entries.FIRST_BALLOT
    assert four is not None and len(four) == entries.FIRST_BALLOT
    assert over is not None and over[9] is not None  # the limit the picks break alone


def test_vectors_folder_exists() -> None:
    """The shared vectors are where the tests expect them."""
    assert isinstance(require_shared(VECTORS), Path)


def _clerk_entry(
    clerk: SignerKey,
    entry_type: str = "paper-ballot",
    recorded_at: str = "2018-10-03T07:15:00.000001Z",
    **changes: Any,
) -> bytes:
    """A paper ballot or a voter lookup as the server writes it (``changes`` alter the payload,
    or the tags with ``tags=``), signed by ``clerk``."""
    nonce, voter = str(uuid.UUID(int=0xDEF, version=4)), "cd" * 32
    payload: dict[str, Any] = {
        "type": entry_type,
        "election": "zhytomyr-2018",
        "polling_point": "city-council",
        "nonce": nonce,
    }
    if entry_type == "paper-ballot":
        payload |= {"voter": voter, "projects": ["S01", "L02"], "cast_at": "2018-10-03T10:15+03:00"}
    tags = changes.pop("tags", None)
    payload.update(changes)
    lookup = voter if entry_type == "voter-lookup" else None
    return _server_entry(clerk, entry_type, payload, tags, recorded_at, lookup)


def _clerk_variants(clerk: SignerKey) -> list[bytes]:
    """Paper ballots and voter lookups near valid ones: each breaks one check, or none."""
    nonce, voter = str(uuid.UUID(int=0xDEF, version=4)), "cd" * 32
    key_tag, nonce_tag, point_tag = f"key:{clerk.key_id}", f"nonce:{nonce}", "point:city-council"
    after_deadline = "2018-10-11T21:00:00.000000Z"
    unsorted_projects, voter_tag = ["project:S01", "project:L02"], f"voter:{voter}"
    return [
        _clerk_entry(clerk),
        _clerk_entry(clerk, "voter-lookup"),
        _clerk_entry(clerk, projects=["L01", "L02", "L03"]),  # over the limit alone
        _clerk_entry(clerk, projects=["L02", "L02"]),
        _clerk_entry(clerk, projects=["L02", "X99"]),
        _clerk_entry(clerk, projects=[]),
        _clerk_entry(clerk, election="another"),
        _clerk_entry(clerk, "voter-lookup", election="another"),
        _clerk_entry(clerk, cast_at="2018-09-30T20:59:59+00:00"),  # before the window
        _clerk_entry(clerk, cast_at="2018-10-03T10:15:00"),  # no offset
        _clerk_entry(clerk, polling_point="nowhere"),
        _clerk_entry(clerk, "voter-lookup", polling_point="nowhere"),
        _clerk_entry(clerk, recorded_at="2018-10-11T20:59:59.000000Z"),  # the deadline itself
        _clerk_entry(clerk, recorded_at=after_deadline),
        _clerk_entry(clerk, "voter-lookup", recorded_at=after_deadline),
        _clerk_entry(clerk, "voter-lookup", recorded_at="2018-09-30T20:59:59.999999Z"),
        _clerk_entry(clerk, "voter-lookup", recorded_at="2018-09-30T21:00:00.000000Z"),
        _clerk_entry(clerk, voter="CD" * 32),
        _clerk_entry(clerk, "voter-lookup", nonce=nonce.upper()),
        _clerk_entry(
            clerk,
            tags=[key_tag, nonce_tag, "project:L02", "project:S01", "receipt:x", f"voter:{voter}"],
        ),
        _clerk_entry(
            clerk,
            tags=[key_tag, nonce_tag, point_tag, *unsorted_projects, "receipt:x", voter_tag],
        ),
        _clerk_entry(clerk, "voter-lookup", tags=[key_tag, nonce_tag, point_tag]),
        _clerk_entry(clerk, "voter-lookup", tags=[key_tag, f"lookup:{voter}", nonce_tag]),
        _clerk_entry(
            clerk, "voter-lookup", tags=[key_tag, f"lookup:{voter}", nonce_tag, point_tag, "x"]
        ),
        _clerk_entry(clerk, "voter-lookup", tags=[key_tag, f"lookup:{voter}", nonce_tag, point_tag])
        .replace(b'"sig":"', b'"sig":"A', 1)
        .replace(b'A","rec', b'","rec', 1),
        _clerk_entry(SignerKey.generate("clerk.city-council")),  # not the registered key
        _clerk_entry(SignerKey.generate("clerk.city-council"), "voter-lookup"),
    ]


def test_the_paper_ballot_and_lookup_short_paths_decide_as_the_general_path() -> None:
    """For paper ballots and voter lookups that pass or break one check, the chunk records,
    leaves and violations are the same whether the patterns' short paths take them or the
    general path does."""
    clerk = SignerKey.generate("clerk.city-council")
    election = parse_election_toml((ROOT / "examples" / "zhytomyr-2018.toml").read_text())
    definition = parse_definition(election_to_dict(election))
    variants = _clerk_variants(clerk)
    lines = [b'{"index":%d,"entry":%s}' % (5 + i, raw) for i, raw in enumerate(variants)]
    lines.append(lines[0].replace(b'{"index":5,', b'{"index":7,'))  # not its index
    lines.append(lines[1].replace(b'{"index":6,', b'{"index":06,'))
    log_key = crypto.VerifierKey.parse(SignerKey.generate("log").verifier.vkey)
    public = crypto.VerifierKey.parse(clerk.verifier.vkey).public
    data = b"".join(line + b"\n" for line in lines)
    task = entries.ChunkTask(5, data, election.id, {clerk.key_id: public}, log_key, definition)
    short = entries.check_chunk(task)
    patterns = entries._PAPER_BALLOT_LINE, entries._VOTER_LOOKUP_LINE
    assert patterns[0].match(lines[0].decode() + "\n")
    assert patterns[1].match(lines[1].decode() + "\n")
    try:
        entries._PAPER_BALLOT_LINE = entries._VOTER_LOOKUP_LINE = re.compile("(?!)")
        general = entries.check_chunk(task)
    finally:
        entries._PAPER_BALLOT_LINE, entries._VOTER_LOOKUP_LINE = patterns
    assert short.records == general.records
    assert short.leaves == general.leaves
    assert short.violations == general.violations
    paper, lookup = short.records[:2]
    assert paper is not None and paper[:4] == ("paper-ballot", clerk.key_id, True, None)
    assert paper[6:10] == (("S01", "L02"), "city-council", -1, None)
    assert lookup is not None and lookup[:4] == ("voter-lookup", clerk.key_id, True, None)
    assert lookup[10] == ("cd" * 32,)
    over = short.records[2]
    assert over is not None and over[9] is not None  # the limit the picks break alone
    assert len(general.violations) > 5


@pytest.mark.parametrize("stamp", ["2018-13-03T07:15:00.000001Z", "2018-10-32T07:15:00.000001Z"])
def test_tampered_entry_lookup_time_no_real_date_is_a_violation_not_a_crash(stamp: str) -> None:
    """Threat: an edited log gives a clerk's voter lookup a ``recorded_at`` of the right form
    but no real date (month 13). The audit must name the entry, not stop as unable to run."""
    clerk = SignerKey.generate("clerk.city-council")
    election = parse_election_toml((ROOT / "examples" / "zhytomyr-2018.toml").read_text())
    definition = parse_definition(election_to_dict(election))
    raw = _clerk_entry(clerk, "voter-lookup", recorded_at=stamp)
    data = b'{"index":5,"entry":%s}\n' % raw
    log_key = crypto.VerifierKey.parse(SignerKey.generate("log").verifier.vkey)
    public = crypto.VerifierKey.parse(clerk.verifier.vkey).public
    task = entries.ChunkTask(5, data, election.id, {clerk.key_id: public}, log_key, definition)
    [record] = entries.check_chunk(task).records  # before the fix: ValueError, exit 2
    assert record is not None and record[:3] == ("voter-lookup", clerk.key_id, True)
    assert record[3] is not None and record[3][0] == "recorded-at"  # the refusal the audit names
    assert record[3][2] == stamp
