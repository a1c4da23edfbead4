"""Checks through tlog-scales, an independent implementation of RFC 9162 and C2SP notes."""

from __future__ import annotations

from tlog_scales import signing, tlog


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    try:
        tlog.InclusionProof(index, size, proof).check(leaf, root)
    except tlog.InclusionProofInvalid:
        return False
    return True


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> bool:
    try:
        tlog.ConsistencyProof(old, new, proof).check(old_root, new_root)
    except tlog.ConsistencyProofInvalid:
        return False
    return True


def verify_checkpoint(note: str, vkey: str) -> tuple[str, int, bytes]:
    """Raise unless ``note`` is a checkpoint signed by ``vkey``; return (origin, size, root)."""
    checkpoint = tlog.Checkpoint.from_text(note)
    checkpoint.verify(signing.Vkey.from_string(vkey))
    return checkpoint.origin, checkpoint.size, checkpoint.root_hash
