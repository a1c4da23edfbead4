"""Mirrors ledger/entry.py and ledger/keys.py; tests/tally/audit/test_audit_crypto.py checks it.

The per-entry work of an audit, done on every core: steps 1 and 2, the cryptographic half of
step 3, the leaf hashes of step 4, the stateless half of step 5, and the checkpoints' signatures.

The main process cuts the log into chunks of lines and hands each to :func:`check_chunk` (in a
worker process, or inline). A chunk needs nothing from the chunks before it except the public
keys registered so far and the election definition, which the main process reads ahead (see
:func:`registered_vkey`, :func:`defined_election`). Whether a key was *valid* for an entry
(registered before it, not revoked, of the right role) and whether the definition was the one in
force are decided afterwards, in log order, by the main process, which re-checks any entry
where the worker's assumption was wrong.
"""

from __future__ import annotations

import binascii
import json
import re
from binascii import a2b_base64, b2a_base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tally.audit.ballots import (
    FIRST_BALLOT,
    Definition,
    Refusal,
    Ruled,
    check_stateless,
    online_ballot_picks,
    parse_definition,
)
from tally.audit.crypto import (
    ENVELOPE_CONTEXT,
    Checkpoint,
    NoteError,
    VerifierKey,
    canonical,
    canonical_plain,
    leaf_hash,
    open_checkpoint,
)
from tally.audit.errors import Violation
from tally.audit.receipts import receipt_code, receipt_tag

__all__ = [
    "ENTRY_TYPES",
    "FIRST_BALLOT",
    "ChunkResult",
    "ChunkTask",
    "Other",
    "Record",
    "check_chunk",
    "defined_election",
    "record",
    "registered_vkey",
]

ENTRY_TYPES = frozenset(
    {
        "election",
        "election-amended",
        "key-registered",
        "key-revoked",
        "ballot",
        "paper-ballot",
        "spoiled-ballot",
        "void",
        "results-published",
        "voter-lookup",
    }
)

_ENTRY_KEYS = frozenset({"envelope", "recorded_at", "tags", "type"})
_ENVELOPE_KEYS = frozenset({"key", "payload", "sig"})
_KEY_ID = re.compile(r"[^+\s\x00-\x1f]+\+[0-9a-f]{8}")
_RECORDED_AT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_LINE_HEAD = b'{"index":'
_ENTRY_HEAD = b',"entry":'
_PAYLOAD_HEAD = b'{"envelope":{"key":"'
_PAYLOAD_AFTER_KEY = b'","payload":'
_MAX_SAFE_INTEGER = 2**53 - 1

# An online ballot entry exactly as RFC 8785 writes it when every string is printable ASCII
# without quote or backslash (then each string is written as is, and nothing else can vary):
# a line matching this is canonical by construction, and its fields are the groups. The pattern
# also holds the form the rules require of the voter token, the nonce, the project ids, the
# start of cast_at, and the tags (the key's, the nonce's, the voter's and one receipt; the
# project tags are compared with the projects in the code). Most of a log is such lines;
# anything else takes the general path (parse, re-encode, compare, check field by field), which
# names what is wrong.
_S = r"[\x20\x21\x23-\x5b\x5d-\x7e]"
_ONLINE_BALLOT_ENTRY = (
    r'\{"envelope":\{"key":"(?P<key>[\x21\x23-\x2a\x2c-\x5b\x5d-\x7e]+\+[0-9a-f]{8})",'
    r'"payload":\{"cast_at":"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}'
    rf'{_S}*)","election":"({_S}*)",'
    r'"nonce":"(?P<nonce>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})",'
    rf'"projects":\[("{_S}+"(?:,"{_S}+")*)\],'
    r'"type":"ballot","voter":"(?P<voter>[0-9a-f]{64})"\},'
    r'"sig":"([A-Za-z0-9+/]{85}[AQgw]==)"\},'
    r'"recorded_at":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z",'
    r'"tags":\["key:(?P=key)","nonce:(?P=nonce)",'
    rf'("project:{_S}+"(?:,"project:{_S}+")*),"receipt:([0-9a-f]{{32}})","voter:(?P=voter)"\],'
    r'"type":"ballot"\}'
)
_ONLINE_BALLOT = re.compile(_ONLINE_BALLOT_ENTRY)
# The line with its newline, matched where it begins in the chunk's text.
_ONLINE_BALLOT_LINE = re.compile(r'\{"index":([0-9]+),"entry":' + _ONLINE_BALLOT_ENTRY + r"\}\n")
# Where the signed payload and the entry lie in such a line, from its groups.
_CAST_AT_GROUP, _VOTER_GROUP, _KEY_GROUP = 3, 7, 2
_PAYLOAD_OPEN = len('{"cast_at":"')
_PAYLOAD_CLOSE = len('"}')
_ENTRY_OPEN = len('{"envelope":{"key":"')
_ENTRY_CLOSE = len("}\n")

# A clerk's paper ballot and voter lookup as RFC 8785 writes them, on the same terms as the
# online ballot above (a third of a voting day's log: each paper ballot follows its lookup).
# Groups by name: the line's index, the entry, the signed payload and their fields.
_KEY_PART = r"[\x21\x23-\x2a\x2c-\x5b\x5d-\x7e]+\+[0-9a-f]{8}"
_NONCE_PART = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_STAMP_PART = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z"
_SIG_PART = r"[A-Za-z0-9+/]{85}[AQgw]=="
_PAPER_BALLOT_LINE = re.compile(
    r'\{"index":(?P<index>[0-9]+),"entry":(?P<entry>\{"envelope":\{'
    rf'"key":"(?P<key>{_KEY_PART})","payload":(?P<payload>\{{'
    rf'"cast_at":"(?P<cast_at>[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T[0-9]{{2}}:[0-9]{{2}}{_S}*)",'
    rf'"election":"(?P<election>{_S}*)","nonce":"(?P<nonce>{_NONCE_PART})",'
    rf'"polling_point":"(?P<point>{_S}+)","projects":\[(?P<projects>"{_S}+"(?:,"{_S}+")*)\],'
    r'"type":"paper-ballot","voter":"(?P<voter>[0-9a-f]{64})"\}),'
    rf'"sig":"(?P<sig>{_SIG_PART})"\}},"recorded_at":"(?P<recorded_at>{_STAMP_PART})",'
    r'"tags":\["key:(?P=key)","nonce:(?P=nonce)","point:(?P=point)",'
    rf'(?P<project_tags>"project:{_S}+"(?:,"project:{_S}+")*),'
    r'"receipt:(?P<receipt>[0-9a-f]{32})","voter:(?P=voter)"\],"type":"paper-ballot"\})\}\n'
)
_VOTER_LOOKUP_LINE = re.compile(
    r'\{"index":(?P<index>[0-9]+),"entry":(?P<entry>\{"envelope":\{'
    rf'"key":"(?P<key>{_KEY_PART})","payload":(?P<payload>\{{'
    rf'"election":"(?P<election>{_S}*)","nonce":"(?P<nonce>{_NONCE_PART})",'
    rf'"polling_point":"(?P<point>{_S}+)","type":"voter-lookup"\}}),'
    rf'"sig":"(?P<sig>{_SIG_PART})"\}},"recorded_at":"(?P<recorded_at>{_STAMP_PART})",'
    r'"tags":\["key:(?P=key)","lookup:(?P<token>[0-9a-f]{64})","nonce:(?P=nonce)",'
    r'"point:(?P=point)"\],"type":"voter-lookup"\})\}\n'
)


class Other(NamedTuple):
    """An entry outside the ballot rules (election, keys, amendments, results): what the main
    process needs to replay the key registry and the definition."""

    type: str
    key: str
    sig: bool | None
    payload: dict[str, Any]
    recorded_at: str


Record = tuple[Any, ...] | None
"""Per entry: the fields of a :class:`~tally.audit.ballots.Ruled` ballot-like entry or of an
:class:`Other`, as a plain tuple (a named tuple costs five times as much to unpickle), or the
short :data:`FIRST_BALLOT` form, or None when the entry is too malformed to say who signed
what. ``sig`` is None when the worker did not know the key. :func:`record` gives the named
view back."""

_RULED_FIELDS = len(Ruled._fields)


def record(fields: tuple[Any, ...]) -> Ruled | Other:
    """The named view of a :data:`Record` that is not None."""
    if len(fields) == FIRST_BALLOT:
        key, voter, nonce, projects = fields
        return Ruled("ballot", key, True, None, voter, nonce, projects, None, -1, None, ())
    return Ruled._make(fields) if len(fields) == _RULED_FIELDS else Other._make(fields)


@dataclass(frozen=True, slots=True)
class ChunkTask:
    """Lines ``start, start + 1, ...`` of the log (``data``: each line followed by a newline,
    one bytes object, cheap to send to a worker), the checkpoints whose size they reach, and
    what the entries are checked against: the public keys registered so far (by key id) and
    the election definition in force (None before one is known)."""

    start: int
    data: bytes
    election: str
    keys: dict[str, bytes]
    log_key: VerifierKey
    definition: Definition | None
    notes: list[tuple[int, object]] = field(default_factory=list)

    def lines(self) -> list[bytes]:
        """The lines, without their newlines."""
        lines = self.data.split(b"\n")
        lines.pop()
        return lines


@dataclass(slots=True)
class ChunkResult:
    """The leaf hashes (32 bytes each, concatenated), one :data:`Record` per line, the
    checkpoints the notes state (or why they do not verify), and the violations of steps 1
    and 2 found."""

    start: int
    leaves: bytes
    records: list[Record]
    checkpoints: list[tuple[int, Checkpoint | None, str]]
    violations: list[Violation]


class _Malformed(ValueError):
    pass


# Numbers RFC 8785 writes differently from ``json`` (floats, integers beyond 2^53-1) are rare
# in entries: the reader notes them so that only those entries take the slow, general encoder.
_unusual_numbers = [False]


def _float(text: str) -> float:
    _unusual_numbers[0] = True
    return float(text)


def _int(text: str) -> int:
    value = int(text)
    if not -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
        _unusual_numbers[0] = True
    return value


def _no_constant(text: str) -> Any:
    raise _Malformed(f"{text} is not JSON")


_decoder = json.JSONDecoder(parse_float=_float, parse_int=_int, parse_constant=_no_constant)
_scan: Any = getattr(_decoder, "scan_once")  # noqa: B009 - set in __init__, not typed


def _decode(text: str) -> Any:
    """One JSON value filling ``text`` (ValueError otherwise), through the C scanner."""
    try:
        value, end = _scan(text, 0)
    except StopIteration as stop:
        raise ValueError(f"not JSON at character {stop.value}") from None
    if end != len(text):
        raise ValueError(f"extra data at character {end}")
    return value


_public_keys: dict[bytes, Ed25519PublicKey | None] = {}


def _verifier(public: bytes) -> Ed25519PublicKey | None:
    """The key to verify with (None when the bytes are no Ed25519 public key), kept per process."""
    if public not in _public_keys:
        try:
            _public_keys[public] = Ed25519PublicKey.from_public_bytes(public)
        except ValueError:
            _public_keys[public] = None
    return _public_keys[public]


def _invalid(to_verify: list[tuple[int, bytes, bytes, bytes]]) -> set[int]:
    """Of ``(record, public key, message, signature)``, the records whose signature does not
    verify."""
    invalid: list[int] = []
    last: bytes | None = None
    verifier = None
    for at, public, message, signature in to_verify:
        if public is not last:  # most of a chunk is signed by one key
            last, verifier = public, _verifier(public)
        if verifier is None:
            invalid.append(at)
            continue
        try:
            verifier.verify(signature, message)
        except InvalidSignature:
            invalid.append(at)
    return set(invalid)


def registered_vkey(line: bytes) -> VerifierKey | None:
    """The key a ``key-registered`` line registers, if it is one and names a valid vkey.

    Cheap for every other line (one substring search): the main process calls it on each line
    it reads, so workers can check signatures by keys registered in chunks still in flight.
    """
    if not line.endswith(b'"type":"key-registered"}}'):
        return None
    try:
        start = line.index(_ENTRY_HEAD) + len(_ENTRY_HEAD)
        payload = json.loads(line[start:-1])["envelope"]["payload"]
        if payload.get("type") != "key-registered":
            return None
        return VerifierKey.parse(payload.get("vkey"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def defined_election(line: bytes) -> Definition | None:
    """The definition an ``election`` or ``election-amended`` line states, if it is one.

    The main process reads it ahead, so workers can apply the stateless rules; it checks later,
    in log order, that the definition was in force (and re-checks any entry where it was not).
    """
    if not line.endswith((b'"type":"election"}}', b'"type":"election-amended"}}')):
        return None
    try:
        start = line.index(_ENTRY_HEAD) + len(_ENTRY_HEAD)
        payload = json.loads(line[start:-1])["envelope"]["payload"]
        if payload.get("type") not in ("election", "election-amended"):
            return None
        return parse_definition(payload.get("definition"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _frame(line: bytes, index: int) -> tuple[bytes, list[Violation]]:
    """Step 1 for one line (without its newline): exactly ``{"index":<index>,"entry":<entry>}``.

    Returns the entry's bytes and what is wrong with the framing."""
    head = b'{"index":%d,"entry":' % index
    if line.startswith(head) and line.endswith(b"}"):
        return line[len(head) : -1], []
    problems: list[Violation] = []
    if not line.endswith(b"}") or not line.startswith(_LINE_HEAD):
        problems.append(
            Violation(1, "line-format", '{"index":i,"entry":{...}}', repr(line[:60]), entry=index)
        )
        # Salvage the entry if the line is JSON at all, so the other checks still run.
        try:
            value = json.loads(line)
            return canonical(value["entry"]), problems
        except (ValueError, KeyError, TypeError):
            return line, problems
    cut = line.find(_ENTRY_HEAD)
    digits = line[len(_LINE_HEAD) : cut] if cut > 0 else b""
    if not digits.isdigit() or digits != str(int(digits)).encode():
        problems.append(
            Violation(1, "line-format", "a decimal index", repr(digits[:30]), entry=index)
        )
    elif int(digits) != index:
        problems.append(
            Violation(1, "gapless", f"index {index}", f"index {int(digits)}", entry=index)
        )
    if cut < 0:
        return line[len(_LINE_HEAD) : -1], problems
    return line[cut + len(_ENTRY_HEAD) : -1], problems


def _online_ballot(
    match: re.Match[str], index: int, election: str, definition: Definition, keys: dict[str, bytes]
) -> tuple[str, bytes, str, str, tuple[str, ...], Refusal | None, str] | None:
    """Steps 1, 2 and 5 (stateless half) for a line matching :data:`_ONLINE_BALLOT_LINE`, past
    what the pattern holds: the index, the election, the project tags, the window and the
    projects. Returns the key id, its public key, the voter, the nonce, the picks, the limit
    they break on their own and the signature's base64; None when the line breaks a check (the
    general path then says which)."""
    position, key, cast_at, election_id, nonce, projects, voter, sig64, project_tags, tag = (
        match.groups()
    )
    public = keys.get(key)
    if public is None or election_id != election or position != str(index):
        return None
    if receipt_tag(receipt_code(a2b_base64(sig64))) != "receipt:" + tag:
        return None
    listed = projects[1:-1].split('","')
    # The project tags, sorted as every tag is: the one list the tags may hold.
    if project_tags != '"project:' + '","project:'.join(sorted(listed)) + '"':
        return None
    ruled = online_ballot_picks(definition, listed, cast_at)
    if ruled is None:
        return None
    return key, public, voter, nonce, ruled[0], ruled[1], sig64


def _clerk_entry(
    match: re.Match[str], index: int, election: str, definition: Definition
) -> tuple[Any, ...] | None:
    """Steps 1, 2 and 5 (stateless half) for a line matching :data:`_PAPER_BALLOT_LINE` or
    :data:`_VOTER_LOOKUP_LINE`, past what the pattern holds: the index, the election, the
    polling point, the paper deadline, the window or the lookup's time, the receipt tag and the
    projects. Returns the :class:`~tally.audit.ballots.Ruled` fields the general path gives
    (``sig`` None, to be verified); None when the line breaks a check (the general path then
    says which)."""
    d = definition
    fields = match.groupdict()
    point, recorded_at = fields["point"], fields["recorded_at"]
    if (
        fields["index"] != str(index)
        or fields["election"] != election
        or point not in d.points
        or recorded_at > d.deadline_stamp
    ):
        return None
    key, nonce = fields["key"], fields["nonce"]
    token = fields.get("token")
    if token is not None:  # a voter lookup: recorded from voting opens on
        try:
            if datetime.fromisoformat(recorded_at.replace("Z", "+00:00")) < d.opens:
                return None
        except ValueError:
            return None
        return ("voter-lookup", key, None, None, None, nonce, (), point, -1, None, (token,), None)
    receipt = receipt_tag(receipt_code(a2b_base64(fields["sig"])))
    if receipt != "receipt:" + fields["receipt"]:
        return None
    listed = fields["projects"][1:-1].split('","')
    if fields["project_tags"] != '"project:' + '","project:'.join(sorted(listed)) + '"':
        return None
    ruled = online_ballot_picks(d, listed, fields["cast_at"])
    if ruled is None:
        return None
    picks, alone = ruled
    voter = fields["voter"]
    return ("paper-ballot", key, None, None, voter, nonce, picks, point, -1, alone, (), None)


def _signature(text: object) -> bytes:
    """The bytes of a signature in canonical standard base64, else b""."""
    if type(text) is not str or not text.isascii():
        return b""
    try:
        data = a2b_base64(text, strict_mode=True)
    except binascii.Error:
        return b""
    return data if b2a_base64(data, newline=False) == text.encode() else b""


def _receipt_tag_problem(entry_type: str, sig: object, tags: list[str]) -> tuple[str, str] | None:
    """(expected, found) when the entry's receipt tags are not the one its type and signature
    give, else None."""
    found = [t for t in tags if t.startswith("receipt:")]
    if entry_type not in _RECEIPT_TAGGED:
        return None if not found else ("no receipt tag", _short(found))
    signature = _signature(sig)
    if len(signature) != 64:
        return None  # step 3 names the signature; no code can be derived from it
    expected = receipt_tag(receipt_code(signature))
    return None if found == [expected] else (expected, _short(found))


def _well_shaped(entry: Any, election: str) -> bool:
    """The common case of :func:`_shape`, without building anything: every member present and
    of its type, tags sorted and unique with the key tag."""
    if type(entry) is not dict or entry.keys() != _ENTRY_KEYS:
        return False
    envelope, tags, recorded_at = entry["envelope"], entry["tags"], entry["recorded_at"]
    if type(envelope) is not dict or envelope.keys() != _ENVELOPE_KEYS:
        return False
    payload, key = envelope["payload"], envelope["key"]
    return (
        type(payload) is dict
        and type(key) is str
        and type(tags) is list
        and type(recorded_at) is str
        and payload.get("type") == entry["type"]
        and entry["type"] in ENTRY_TYPES
        and payload.get("election") == election
        and _KEY_ID.fullmatch(key) is not None
        and _RECORDED_AT.fullmatch(recorded_at) is not None
        and _sorted_tags(tags, key)
    )


def _sorted_tags(tags: list[Any], key: str) -> bool:
    try:  # non-strings make set() or sorted() raise, or leave the key tag out
        return tags == sorted(set(tags)) and "key:" + key in tags
    except TypeError:
        return False


def _shape(entry: Any, election: str, index: int) -> tuple[list[Violation], bool]:
    """Step 2 (shape): the entry's members and types. Returns the violations and whether the
    entry is sound enough to read its signer and payload."""
    bad: list[Violation] = []

    def fail(check: str, expected: str, found: object) -> tuple[list[Violation], bool]:
        bad.append(Violation(2, check, expected, _short(found), entry=index))
        return bad, False

    if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
        return fail(
            "entry-members",
            "envelope, recorded_at, tags, type",
            sorted(entry) if isinstance(entry, dict) else type(entry).__name__,
        )
    envelope = entry["envelope"]
    if not isinstance(envelope, dict) or set(envelope) != _ENVELOPE_KEYS:
        return fail(
            "envelope-members",
            "key, payload, sig",
            sorted(envelope) if isinstance(envelope, dict) else envelope,
        )
    payload, key, entry_type = envelope["payload"], envelope["key"], entry["type"]
    if not isinstance(key, str) or _KEY_ID.fullmatch(key) is None:
        return fail("key-id", "<name>+<hex8>", key)
    if not isinstance(payload, dict):
        return fail("payload", "a JSON object", payload)
    if entry_type not in ENTRY_TYPES:
        return fail("entry-type", "one of " + ", ".join(sorted(ENTRY_TYPES)), entry_type)
    if payload.get("type") != entry_type:
        return fail("type", f"payload type {entry_type}", payload.get("type"))
    sound = True
    if payload.get("election") != election:
        bad.append(Violation(2, "election", election, _short(payload.get("election")), entry=index))
    recorded_at = entry["recorded_at"]
    if not isinstance(recorded_at, str) or _RECORDED_AT.fullmatch(recorded_at) is None:
        bad.append(
            Violation(
                2, "recorded-at", "YYYY-MM-DDTHH:MM:SS.ffffffZ", _short(recorded_at), entry=index
            )
        )
        sound = False
    tags = entry["tags"]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        bad.append(Violation(2, "tags", "a list of strings", _short(tags), entry=index))
        sound = False
    elif tags != sorted(set(tags)):
        bad.append(Violation(2, "tags", "sorted, without repeats", _short(tags), entry=index))
    elif f"key:{key}" not in tags:
        bad.append(Violation(2, "key-tag", f"key:{key}", _short(tags), entry=index))
    return bad, sound


def _short(value: object, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_RULED = frozenset({"ballot", "paper-ballot", "spoiled-ballot", "void", "voter-lookup"})
_RECEIPT_TAGGED = frozenset({"ballot", "paper-ballot"})


def check_chunk(task: ChunkTask) -> ChunkResult:
    """Check a chunk of log lines; see the module docstring. Pure: safe in any process."""
    leaves: list[bytes] = []
    records: list[Record] = []
    violations: list[Violation] = []
    keys = task.keys
    definition = task.definition
    election = task.election
    interned: dict[str, str] = {}
    # Signatures are verified after the chunk is read, in one tight loop: interleaved with the
    # Python work they run measurably slower (caches). ``unsigned``: the records whose ``sig``
    # the verification fills in (the short records of valid first ballots have none).
    to_verify: list[tuple[int, bytes, bytes, bytes]] = []
    unsigned: list[int] = []
    online_ballot = _ONLINE_BALLOT_LINE.match if definition is not None else None
    paper_ballot = _PAPER_BALLOT_LINE.match
    voter_lookup = _VOTER_LOOKUP_LINE.match
    data = task.data
    # The same characters as the bytes, one for one (the pattern admits only printable ASCII):
    # lines are matched where they begin, without cutting the chunk into lines.
    text = data.decode("latin-1")
    next_line, offset = 0, -1
    while next_line < len(data):
        offset += 1
        index = task.start + offset
        match = online_ballot(text, next_line) if online_ballot is not None else None
        fast = None
        if match is not None and definition is not None:
            fast = _online_ballot(match, index, election, definition, keys)
        if match is not None and fast is not None:
            key, signer, voter, nonce, picks, alone, sig64 = fast
            key = interned.setdefault(key, key)  # one object per chunk: pickled once
            next_line = match.end()
            leaves.append(
                leaf_hash(data[match.start(_KEY_GROUP) - _ENTRY_OPEN : next_line - _ENTRY_CLOSE])
            )
            payload_begin = match.start(_CAST_AT_GROUP) - _PAYLOAD_OPEN
            signed = data[payload_begin : match.end(_VOTER_GROUP) + _PAYLOAD_CLOSE]
            at = len(records)
            to_verify.append((at, signer, ENVELOPE_CONTEXT + signed, a2b_base64(sig64)))
            if alone is None:
                records.append((key, voter, nonce, picks))  # see FIRST_BALLOT
            else:
                unsigned.append(at)
                records.append(
                    ("ballot", key, None, None, voter, nonce, picks, None, -1, alone, (), None)
                )
            continue
        if match is None and definition is not None:
            clerks = paper_ballot(text, next_line) or voter_lookup(text, next_line)
            ruled = clerks and _clerk_entry(clerks, index, election, definition)
            public = keys.get(clerks["key"]) if clerks else None
            if clerks and ruled and public is not None:
                next_line = clerks.end()
                leaves.append(leaf_hash(data[clerks.start("entry") : clerks.end("entry")]))
                signed = data[clerks.start("payload") : clerks.end("payload")]
                unsigned.append(len(records))
                to_verify.append(
                    (len(records), public, ENVELOPE_CONTEXT + signed, a2b_base64(clerks["sig"]))
                )
                key = ruled[1]
                records.append((ruled[0], interned.setdefault(key, key), *ruled[2:]))
                continue
        newline = data.find(b"\n", next_line)
        if newline < 0:  # not as ChunkTask says: take the rest as the last line
            newline = len(data)
        line = data[next_line:newline]
        next_line = newline + 1

        # 1. Framing and gapless index.
        raw, problems = _frame(line, index)
        if problems:
            violations.extend(problems)

        # 2. Canonical form and shape.
        try:
            _unusual_numbers[0] = False
            entry = _decode(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            violations.append(
                Violation(2, "json", "an RFC 8785 JSON object", _short(str(exc)), entry=index)
            )
            leaves.append(leaf_hash(raw))
            records.append(None)
            continue
        try:
            encoded = canonical(entry) if _unusual_numbers[0] else canonical_plain(entry)
        except ValueError as exc:
            violations.append(
                Violation(2, "canonical", "RFC 8785 encodable", _short(str(exc)), entry=index)
            )
            encoded = raw
        # The leaf is the canonical re-encoding of what was read; the bytes must be it too.
        if encoded != raw:
            violations.append(
                Violation(
                    2, "canonical", "the RFC 8785 form of the entry", "other bytes", entry=index
                )
            )
        leaves.append(leaf_hash(encoded))
        if not _well_shaped(entry, election):
            shape_problems, sound = _shape(entry, election, index)
            violations.extend(shape_problems)
            if not sound:
                records.append(None)
                continue
        envelope = entry["envelope"]
        key = interned.setdefault(envelope["key"], envelope["key"])
        payload: dict[str, Any] = envelope["payload"]
        entry_type: str = entry["type"]

        # 3 (cryptographic half). Ed25519 over the context and the canonical payload, by the
        # key registered under this id (the main process checks it was valid here).
        sig: bool | None = None
        public = keys.get(key)
        if public is not None:
            signature = _signature(envelope["sig"])
            if len(signature) != 64:
                sig = False
            elif encoded == raw and '"' not in key and "\\" not in key:
                # raw is canonical, so the canonical payload is its slice between the key and
                # the signature (',"sig":"' cannot occur unescaped later in the entry).
                begin = len(_PAYLOAD_HEAD) + len(key.encode()) + len(_PAYLOAD_AFTER_KEY)
                end = raw.rfind(b',"sig":"')
                to_verify.append(
                    (len(records), public, ENVELOPE_CONTEXT + raw[begin:end], signature)
                )
                unsigned.append(len(records))
            else:
                try:
                    message = ENVELOPE_CONTEXT + canonical(payload)
                    to_verify.append((len(records), public, message, signature))
                    unsigned.append(len(records))
                except ValueError:
                    sig = False

        # 2 (receipt tag). A ballot carries exactly the tag of the code its signature gives
        # (tally/audit/receipts.py): a hash, never the code; no other entry carries one.
        if entry_type in _RULED:
            receipt_problem = _receipt_tag_problem(entry_type, envelope["sig"], entry["tags"])
            if receipt_problem is not None:
                violations.append(Violation(2, "receipt-tag", *receipt_problem, entry=index))

        # 5 (stateless half). The rules that need no history.
        if entry_type in _RULED and definition is not None:
            records.append(
                check_stateless(
                    definition,
                    entry_type,
                    payload,
                    key,
                    entry["tags"],
                    entry["recorded_at"],
                    index,
                    sig,
                )
            )
        else:
            records.append(tuple(Other(entry_type, key, sig, payload, entry["recorded_at"])))

    failed = _invalid(to_verify)
    for at in unsigned:
        fields = records[at]
        assert fields is not None
        ok = at not in failed
        # The short form has no marks: a ballot with points or a ranking keeps the long one.
        short = fields[0] == "ballot" and fields[3] is None and fields[9] is None
        if ok and short and fields[11] is None:
            records[at] = (fields[1], fields[4], fields[5], fields[6])  # see FIRST_BALLOT
        else:
            records[at] = (*fields[:2], ok, *fields[3:])
    for at in failed:
        fields = records[at]
        if fields is not None and len(fields) == FIRST_BALLOT:
            key, voter, nonce, picks = fields
            records[at] = (
                *("ballot", key, False, None, voter, nonce, picks),
                *(None, -1, None, (), None),
            )

    checkpoints: list[tuple[int, Checkpoint | None, str]] = []
    for size, note in task.notes:
        try:
            checkpoints.append((size, open_checkpoint(note, task.log_key), ""))
        except NoteError as exc:
            checkpoints.append((size, None, str(exc)))
    return ChunkResult(task.start, b"".join(leaves), records, checkpoints, violations)
