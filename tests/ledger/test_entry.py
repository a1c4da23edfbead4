"""ledger.entry writes an entry's bytes as the canonical JSON of its object and reads them back."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.canonical import canonical
from ledger.entry import (
    JSON_STRING,
    entry_encoder,
    entry_envelope,
    entry_object,
    entry_pattern,
    entry_payload,
    entry_type,
    entry_type_suffix,
    event_entry_data,
    event_entry_encoder,
)
from ledger.keys import Envelope, SignerKey, sign_envelope

SIGNER = SignerKey.from_seed("site.test", bytes(32))
text = st.text(max_size=12)  # any code point, escapes and non-ASCII included
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
payloads = st.dictionaries(text, json_values, max_size=5).map(
    lambda extra: {**extra, "type": "ballot", "election": "test-2018"}
)
timestamps = st.sampled_from(["2018-10-03T07:15:00.000001Z", "2026-12-06T14:00:00.123456Z"])


@given(payloads, st.lists(text, max_size=4), text, timestamps)
def test_encoded_entry_is_the_canonical_json_of_its_object(
    payload: dict[str, Any], tags: list[str], kind: str, recorded_at: str
) -> None:
    """The leaf bytes are canonical({"envelope", "recorded_at", "tags", "type"}), and the readers
    give back each part."""
    submitted = sign_envelope(payload, SIGNER)
    draft = entry_encoder(Envelope.parse(submitted), tags, kind)
    data = draft.encode(recorded_at)
    obj = {"envelope": submitted, "recorded_at": recorded_at, "tags": tags, "type": kind}
    assert data == canonical(obj)
    assert (draft.type, draft.tags) == (kind, tuple(tags))
    assert entry_object(data) == obj
    assert entry_envelope(data) == entry_envelope(obj) == submitted
    assert entry_payload(data) == entry_payload(obj) == payload
    assert entry_type(data) == entry_type(obj) == kind
    assert data.endswith(entry_type_suffix(kind))


@given(st.binary(max_size=64), st.lists(text, max_size=4), text, timestamps)
def test_raw_dcb_event_round_trips(
    data: bytes, tags: list[str], kind: str, recorded_at: str
) -> None:
    """A raw DCB event's entry is canonical JSON with its data in base64, read back unchanged."""
    entry = event_entry_encoder(kind, data, tags).encode(recorded_at)
    obj = entry_object(entry)
    assert entry == canonical(obj)
    assert (obj["recorded_at"], obj["tags"], obj["type"]) == (recorded_at, tags, kind)
    assert event_entry_data(entry) == data


@pytest.mark.parametrize("data", [b"[]", b'"entry"', b"1"])
def test_entry_object_refuses_what_is_not_an_object(data: bytes) -> None:
    """An entry is a JSON object; a list, a string or a number is not one."""
    with pytest.raises(ValueError, match="JSON object"):
        entry_object(data)


def test_entry_pattern_matches_the_written_entry_and_captures_payload_then_type() -> None:
    """The pattern around a payload pattern matches an encoded entry, groups in order."""
    submitted = sign_envelope({"election": "test-2018", "type": "void"}, SIGNER)
    data = entry_encoder(Envelope.parse(submitted), ["key:site", "void-of:3"], "void").encode(
        "2018-10-03T07:15:00.000001Z"
    )
    payload = rb'\{"election":"([^"]*)","type":' + JSON_STRING + rb"\}"
    match = re.fullmatch(entry_pattern(payload, rb'"(void|ballot)"'), data)
    assert match is not None and match.groups() == (b"test-2018", b"void")
    assert re.fullmatch(entry_pattern(payload, rb'"ballot"'), data) is None
