"""The log export format ``uchast-log/1``: what ``uchast export log`` writes and ``uchast audit``
reads (its reader, independent of this module, is :mod:`tally.audit.sources`).

One JSON document per line::

    {"format": "uchast-log/1", "election": ID, "size": N, "origin": "<deployment>/<election>"}
    {"index": 0, "entry": {...}}         one line per entry, 0 .. N-1, the entry's bytes as stored
    {"checkpoint": {"size": S, "note": "..."}}   every kept checkpoint, smallest first
"""

from __future__ import annotations

import json
from typing import BinaryIO

from ledger.store import Store

__all__ = ["LOG_FORMAT", "export_log"]

LOG_FORMAT = "uchast-log/1"


async def export_log(store: Store, election: str, out: BinaryIO) -> int:
    """Write the election's log as JSON lines: a header, every entry as stored (the Merkle
    leaves, byte for byte), then every kept checkpoint, smallest first. Returns the size."""
    size = await store.size(election)
    latest = await store.latest_checkpoint(election)
    origin = latest.note.split("\n", 1)[0] if latest else None
    header = {"format": LOG_FORMAT, "election": election, "size": size, "origin": origin}
    out.write(json.dumps(header).encode() + b"\n")
    async for entry in store.stream(election, 0, size):
        out.write(b'{"index":%d,"entry":%s}\n' % (entry.position, entry.data))
    min_size = 0
    while True:
        kept = await store.checkpoints(election, min_size)
        for checkpoint in kept:
            if checkpoint.size <= size:
                line = {"checkpoint": {"size": checkpoint.size, "note": checkpoint.note}}
                out.write(json.dumps(line).encode() + b"\n")
        if len(kept) < 1000:
            return size
        min_size = kept[-1].size + 1
