"""Receipt codes: short, hand-copyable names for an accepted ballot.

A code is derived from the ballot's signature (unique per ballot, known before the entry has a
position): Crockford base32 of the first 50 bits of SHA-256("uchast/receipt\\n" || signature),
written ``XXXXX-XXXXX``. Crockford's alphabet has no I, L, O or U, so a code read aloud or copied
by hand survives; lookups accept lower case and the look-alikes.
"""

from __future__ import annotations

import hashlib
import re

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LOOKALIKES = str.maketrans({"I": "1", "L": "1", "O": "0", "U": "V"})
_CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$")


def receipt_code(signature: bytes) -> str:
    """The receipt code of the ballot carrying ``signature``."""
    value = int.from_bytes(hashlib.sha256(b"uchast/receipt\n" + signature).digest()[:7]) >> 6
    chars = "".join(_ALPHABET[(value >> shift) & 31] for shift in range(45, -5, -5))
    return f"{chars[:5]}-{chars[5:]}"


def normalise_receipt_code(text: str) -> str | None:
    """The canonical form of a typed code, or None if it cannot be one."""
    compact = re.sub(r"[\s-]", "", text.upper()).translate(_LOOKALIKES)
    code = f"{compact[:5]}-{compact[5:]}"
    return code if _CODE.match(code) else None


def receipt_tag(code: str) -> str:
    return f"receipt:{code}"
