"""RFC 8785 (JSON Canonicalization Scheme): the one serialisation that is signed and hashed."""

from __future__ import annotations

import json
from typing import Any

import rfc8785

_MAX_SAFE_INTEGER = 2**53 - 1
_encode = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
).encode


def _plain(value: Any) -> bool:
    """Whether ``value`` holds only what json.dumps writes exactly as RFC 8785 does.

    For strings, safe integers, booleans, null, lists and objects with string keys, the two agree
    byte for byte: the same escapes (\\b \\f \\n \\r \\t, other controls as lowercase \\u00xx, the
    rest literal) and, for keys without characters beyond U+FFFF, the same member order (RFC 8785
    sorts by UTF-16 code units, Python by code points; they differ only above U+FFFF). Floats and
    lone surrogates are left to the reference implementation.
    """
    if isinstance(value, str):
        return value.isascii() or not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(
            isinstance(key, str)
            and (key.isascii() or (max(key) < "\U00010000" and _plain(key)))
            and _plain(item)
            for key, item in value.items()
        )
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
