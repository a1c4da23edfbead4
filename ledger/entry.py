"""The bytes of a log entry: the one module that knows the entry object's layout.

An entry of an election's log is the RFC 8785 canonical JSON of

    {"envelope": {"key": ..., "payload": {...}, "sig": ...}, "recorded_at": ..., "tags": [...],
     "type": ...}

where ``envelope`` is the signed envelope as submitted (:class:`ledger.keys.Envelope`),
``recorded_at`` the time its batch was sequenced and ``type`` the payload's type. These bytes are
the Merkle leaf, so they are written once, here (:func:`entry_encoder`), and read back through
:func:`entry_object`, :func:`entry_envelope` and :func:`entry_payload`. A raw DCB event (written
only by :mod:`ledger.dcb`, for eventsourcing's own test case) is an entry with ``data`` (base64)
in place of ``envelope``: :func:`event_entry_encoder`, :func:`event_entry_data`.

Readers in a hurry (a projection rebuild reads millions of entries) may match the bytes instead of
parsing them: :func:`entry_pattern` is the regular expression of a canonical entry around a
payload pattern, and :func:`entry_type_suffix` what every canonical entry of a type ends with.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ledger.canonical import canonical
from ledger.keys import Envelope
from ledger.sequencer import Draft

__all__ = [
    "JSON_CHARS",
    "JSON_STRING",
    "JSON_STRINGS",
    "entry_encoder",
    "entry_envelope",
    "entry_object",
    "entry_pattern",
    "entry_payload",
    "entry_type",
    "entry_type_suffix",
    "event_entry_data",
    "event_entry_encoder",
]


def entry_object(data: bytes) -> dict[str, Any]:
    """The entry object whose canonical JSON is ``data`` (the Merkle leaf)."""
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("an entry must be a JSON object")
    return value


def entry_envelope(entry: bytes | Mapping[str, Any]) -> dict[str, Any]:
    """The signed envelope ``{"key", "payload", "sig"}`` of an entry (its bytes or its object)."""
    obj = entry_object(entry) if isinstance(entry, bytes) else entry
    envelope: dict[str, Any] = obj["envelope"]
    return envelope


def entry_payload(entry: bytes | Mapping[str, Any]) -> dict[str, Any]:
    """The signed payload of an entry (its bytes or its object)."""
    payload: dict[str, Any] = entry_envelope(entry)["payload"]
    return payload


def entry_type(entry: bytes | Mapping[str, Any]) -> str:
    """The type of an entry (its bytes or its object): its payload's, as sequenced."""
    obj = entry_object(entry) if isinstance(entry, bytes) else entry
    kind: str = obj["type"]
    return kind


@functools.lru_cache(maxsize=32)
def _canonical_text(text: str) -> bytes:
    """canonical() of a string that recurs: an entry type, a batch's ``recorded_at``."""
    return canonical(text)


def _draft(entry_type: str, tags: Sequence[str], head: bytes) -> Draft:
    """A draft of ``head + canonical(recorded_at) + ',"tags":...,"type":...}'``.

    RFC 8785 orders members by key, and ``envelope`` (or ``data``) < ``recorded_at`` < ``tags`` <
    ``type``, so the canonical form can be assembled around ``recorded_at``, which is only known
    when the batch is sequenced.
    """
    tail = b',"tags":' + canonical(list(tags)) + entry_type_suffix(entry_type)

    def encode(recorded_at: str) -> bytes:
        return head + _canonical_text(recorded_at) + tail

    return Draft(entry_type, tuple(tags), encode)


def entry_encoder(envelope: Envelope, tags: Sequence[str], entry_type: str) -> Draft:
    """A draft whose bytes are ``canonical({"envelope", "recorded_at", "tags", "type"})``."""
    head = b'{"envelope":' + envelope.canonical_bytes() + b',"recorded_at":'
    return _draft(entry_type, tags, head)


def entry_type_suffix(entry_type: str) -> bytes:
    """The bytes every canonical entry of ``entry_type`` ends with (``type`` sorts last)."""
    return b',"type":' + _canonical_text(entry_type) + b"}"


def event_entry_encoder(event_type: str, data: bytes, tags: Sequence[str]) -> Draft:
    """The draft of a raw DCB event: ``canonical({"data": base64, "recorded_at", "tags",
    "type"})``."""
    head = b'{"data":' + canonical(base64.b64encode(data).decode()) + b',"recorded_at":'
    return _draft(event_type, tags, head)


def event_entry_data(data: bytes) -> bytes:
    """The event data of a raw DCB event's entry."""
    return base64.b64decode(entry_object(data)["data"])


# A canonical JSON string with no escape and no control character: its value is exactly its
# bytes. (The class lists what it allows, every byte but 0x00-0x1f, '"' and '\\': twice as fast in
# re as the negated class.) JSON_CHARS is what lies between its quotes.
JSON_CHARS = rb"[ !#-\[\]-\xff]*"
JSON_STRING = rb'"' + JSON_CHARS + rb'"'
# The members of a canonical JSON array of such strings, between its brackets.
JSON_STRINGS = rb"(?:" + JSON_STRING + rb"(?:," + JSON_STRING + rb")*)?"


def entry_pattern(payload: bytes, entry_type: bytes) -> bytes:
    """The regular expression (bytes) of a canonical entry whose payload object matches
    ``payload`` (``\\{...\\}``) and whose type matches ``entry_type`` (a JSON string pattern).

    Only the two arguments' groups capture, payload's first. The envelope's key and signature,
    ``recorded_at`` and the tags must be strings free of escapes (:data:`JSON_STRING`).
    """
    return (
        rb'\{"envelope":\{"key":' + JSON_STRING
        + rb',"payload":' + payload
        + rb',"sig":' + JSON_STRING
        + rb'\},"recorded_at":' + JSON_STRING
        + rb',"tags":\[' + JSON_STRINGS + rb"\]"
        + rb',"type":' + entry_type + rb"\}"
    )  # fmt: skip
