"""RFC 8785 (JSON Canonicalization Scheme): the one serialisation that is signed and hashed."""

from __future__ import annotations

from typing import Any

import rfc8785


def canonical(value: Any) -> bytes:
    """Return the RFC 8785 canonical JSON encoding of ``value``.

    Raises :class:`ValueError` for values RFC 8785 cannot encode exactly (floats that are not
    finite, integers beyond the IEEE 754 safe range, non-string keys).
    """
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise ValueError(f"cannot canonicalise: {exc}") from exc
