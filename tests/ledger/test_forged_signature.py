"""Forged envelopes: any change to a signed envelope is refused with BadSignatureError."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ledger.canonical import canonical
from ledger.errors import BadSignatureError
from ledger.keys import Envelope, KeyId, SignerKey, sign_envelope, verify_envelope

SITE = SignerKey.from_seed("site.e-dem", bytes(range(32)))
SAME_NAME = SignerKey.from_seed("site.e-dem", bytes(range(1, 33)))
CLERK = SignerKey.from_seed("clerk.point-2.olena", bytes(range(2, 34)))

SAFE_INT = 2**53 - 1
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-SAFE_INT, SAFE_INT)
    | st.floats(-SAFE_INT, SAFE_INT)
    | st.floats(1e21, 1e300)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
payloads = st.builds(
    lambda entry_type, rest: {**rest, "type": entry_type},
    st.text(min_size=1, max_size=16),
    st.dictionaries(st.text(max_size=10), json_values, max_size=6),
)


def _differs(a: Any, b: Any) -> bool:
    """True when the two payloads have different canonical JSON (1 and 1.0 are the same)."""
    return canonical(a) != canonical(b)


def _check_refused(wire: dict[str, Any], verifier_key: SignerKey = SITE) -> None:
    envelope = Envelope.parse(json.loads(json.dumps(wire)))
    with pytest.raises(BadSignatureError) as caught:
        verify_envelope(envelope, verifier_key.verifier)
    assert caught.value.key == envelope.key


@given(payloads)
def test_untouched_envelopes_verify(payload: dict[str, Any]) -> None:
    """Any well-formed payload, signed and sent as JSON, verifies (the baseline)."""
    wire = json.loads(json.dumps(sign_envelope(payload, SITE)))
    verify_envelope(Envelope.parse(wire), SITE.verifier)


@given(payloads, st.data())
def test_changed_field_value_is_rejected(payload: dict[str, Any], data: st.DataObject) -> None:
    """Replacing the value of any payload field by a different JSON value is rejected."""
    signed = sign_envelope(payload, SITE)
    name = data.draw(st.sampled_from(sorted(signed["payload"])), label="field")
    value = data.draw(st.text(min_size=1) if name == "type" else json_values, label="value")
    forged_payload = {**signed["payload"], name: value}
    assume(_differs(forged_payload, signed["payload"]))
    _check_refused({**signed, "payload": forged_payload})


@given(payloads, st.text(max_size=10), json_values)
def test_added_field_is_rejected(payload: dict[str, Any], name: str, value: Any) -> None:
    """Adding a field to a signed payload is rejected."""
    signed = sign_envelope(payload, SITE)
    assume(name not in signed["payload"])
    _check_refused({**signed, "payload": {**signed["payload"], name: value}})


@given(payloads, st.data())
def test_removed_field_is_rejected(payload: dict[str, Any], data: st.DataObject) -> None:
    """Removing any field but the type from a signed payload is rejected."""
    signed = sign_envelope(payload, SITE)
    names = sorted(set(signed["payload"]) - {"type"})
    assume(names)
    name = data.draw(st.sampled_from(names), label="field")
    forged_payload = {k: v for k, v in signed["payload"].items() if k != name}
    _check_refused({**signed, "payload": forged_payload})


@given(payloads, st.sampled_from([SAME_NAME, CLERK]))
def test_changed_key_is_rejected(payload: dict[str, Any], other: SignerKey) -> None:
    """Naming another key (same name or not) fails under either the original or the named key."""
    signed = sign_envelope(payload, SITE)
    forged = {**signed, "key": other.key_id}
    _check_refused(forged, SITE)
    _check_refused(forged, other)


@given(payloads, st.integers(0, 0xFFFFFFFF))
def test_changed_key_hash_is_rejected(payload: dict[str, Any], hash32: int) -> None:
    """Any other hex8 key hash in the key field is rejected."""
    signed = sign_envelope(payload, SITE)
    forged_key = KeyId(f"{SITE.name}+{hash32:08x}")
    assume(forged_key != SITE.key_id)
    _check_refused({**signed, "key": forged_key})


@given(payloads, st.integers(0, 63), st.integers(1, 255))
def test_changed_signature_byte_is_rejected(payload: dict[str, Any], index: int, xor: int) -> None:
    """Changing any single byte of the 64-byte signature, in any way, is rejected."""
    signed = sign_envelope(payload, SITE)
    sig = bytearray(base64.b64decode(signed["sig"]))
    sig[index] ^= xor
    _check_refused({**signed, "sig": base64.b64encode(bytes(sig)).decode("ascii")})


@given(payloads, payloads)
def test_signature_moved_to_another_payload_is_rejected(
    payload: dict[str, Any], other: dict[str, Any]
) -> None:
    """A valid signature copied onto a different payload is rejected."""
    assume(_differs(payload, other))
    signed = sign_envelope(payload, SITE)
    _check_refused({**sign_envelope(other, SITE), "sig": signed["sig"]})


def test_signature_by_same_named_key_is_rejected() -> None:
    """An envelope signed by another key claiming the site's key id is rejected."""
    forged = {**sign_envelope({"type": "ballot"}, SAME_NAME), "key": SITE.key_id}
    _check_refused(forged)
