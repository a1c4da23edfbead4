"""Mirrors votes/receipts.py: receipt codes and the tag a ballot's entry carries for its code.

A ballot's receipt code is Crockford base32 of the first 50 bits of
SHA-256("uchast/receipt\\n" || signature), written ``XXXXX-XXXXX``; its entry carries the tag
``receipt:`` + the first 32 hex digits of SHA-256("uchast/receipt-tag\\n" || code), never the
code itself. The auditor derives both from the signature and checks every ballot's tag.
"""

from __future__ import annotations

import hashlib

__all__ = ["receipt_code", "receipt_tag"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def receipt_code(signature: bytes) -> str:
    """The receipt code of the ballot whose envelope signature is ``signature``."""
    value = int.from_bytes(hashlib.sha256(b"uchast/receipt\n" + signature).digest()[:7]) >> 6
    chars = "".join(_ALPHABET[(value >> shift) & 31] for shift in range(45, -5, -5))
    return f"{chars[:5]}-{chars[5:]}"


def receipt_tag(code: str) -> str:
    """The tag of the ballot whose receipt code is ``code``."""
    digest = hashlib.sha256(b"uchast/receipt-tag\n" + code.encode("ascii")).hexdigest()
    return f"receipt:{digest[:32]}"
