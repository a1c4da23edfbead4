"""RFC 8785 (JSON Canonicalization Scheme): the one serialisation that is signed and hashed."""

from __future__ import annotations

import json
import re
from typing import Any

import rfc8785

_MAX_SAFE_INTEGER = 2**53 - 1
_encode = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
).encode


_SURROGATE = re.compile("[\ud800-\udfff]")


def _plain(value: Any) -> bool:
    """Whether ``value`` holds only what json.dumps writes exactly as RFC 8785 does.

    For strings, safe integers, booleans, null, lists and objects with string keys, the two agree
    byte for byte: the same escapes (\\b \\f \\n \\r \\t, other controls as lowercase \\u00xx, the
    rest literal) and, for keys without characters beyond U+FFFF, the same member order (RFC 8785
    sorts by UTF-16 code units, Python by code points; they differ only above U+FFFF). Floats and
    lone surrogates are left to the reference implementation.
    """
    # Every signed payload passes here: the exact JSON types first, in plain loops.
    kind = type(value)
    if kind is str:
        return value.isascii() or _SURROGATE.search(value) is None
    if kind is dict:
        for key, item in value.items():
            if not (type(key) is str and key.isascii()) and not _plain_key(key):
                return False
            if not _plain(item):
                return False
        return True
    if kind is list:
        for item in value:  # noqa: SIM110 (a loop: no generator per list)
            if not _plain(item):
                return False
        return True
    if kind is int:
        number: int = value
        return -_MAX_SAFE_INTEGER <= number <= _MAX_SAFE_INTEGER
    if value is None or kind is bool:
        return True
    return _plain_subclass(value)


def _plain_key(key: Any) -> bool:
    return isinstance(key, str) and (key.isascii() or (max(key) < "\U00010000" and _plain(key)))


def _plain_subclass(value: Any) -> bool:
    """:func:`_plain` for instances of subclasses of the JSON types (and anything else)."""
    if isinstance(value, str):
        return value.isascii() or _SURROGATE.search(value) is None
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(_plain_key(key) and _plain(item) for key, item in value.items())
    return False


def canonical(value: Any) -> bytes:
    """Return the RFC 8785 canonical JSON encoding of ``value``.

    Raises :class:`ValueError` for values RFC 8785 cannot encode exactly (floats that are not
    finite, integers beyond the IEEE 754 safe range, non-string keys, lone surrogates).
    """
    if _plain(value):
        return _encode(value).encode("utf-8")
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise ValueError(f"cannot canonicalise: {exc}") from exc
    except UnicodeEncodeError as exc:
        raise ValueError(f"cannot canonicalise: {exc}") from exc


def reference_canonical(value: Any) -> bytes:
    """The ``rfc8785`` package's encoding, against which :func:`canonical` is tested."""
    return rfc8785.dumps(value)
