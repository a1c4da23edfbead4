"""C2SP tlog-proof (``c2sp.org/tlog-proof@v1``): an offline-verifiable proof that an entry is in
the log, the file a voter keeps with a receipt.

The format (https://c2sp.org/tlog-proof), one item per line, each ending in a newline::

    c2sp.org/tlog-proof@v1
    extra <base64 of the entry's canonical bytes>
    index <the entry's position, decimal>
    <base64 inclusion proof hash, from the leaf's sibling up>
    ...
    <empty line>
    <the signed checkpoint note, verbatim, with any witness cosignatures>

The spec leaves ``extra`` to the application ("additional data necessary to reconstruct the
record hash"): uchast puts the whole entry there, its leaf bytes (RFC 8785 JSON), so the file
alone lets a verifier recompute the leaf hash, read the ballot it proves and derive the receipt
code from the ballot's signature. The extra data is not trusted for anything else: it counts
only once its hash, through the inclusion proof, leads to the root the log key signed
(``uchast verify-receipt``, tally/audit/receipts.py, does exactly that).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

__all__ = ["TLOG_PROOF_HEADER", "TLOG_PROOF_SUFFIX", "tlog_proof"]

TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
TLOG_PROOF_SUFFIX = ".tlog-proof"
"""The file extension the spec recommends."""


def tlog_proof(index: int, hashes: Sequence[bytes], checkpoint_note: str, entry: bytes) -> str:
    """The tlog-proof text of the entry at ``index`` (its canonical bytes ``entry``), with its
    inclusion proof ``hashes`` in the tree of the checkpoint ``checkpoint_note``."""
    lines = [
        TLOG_PROOF_HEADER,
        f"extra {base64.b64encode(entry).decode()}",
        f"index {index}",
        *(base64.b64encode(h).decode() for h in hashes),
        "",
    ]
    return "\n".join(lines) + "\n" + checkpoint_note
