"""A toy log for witness tests: a Merkle tree, its signed checkpoints, add-checkpoint bodies."""

from __future__ import annotations

import base64

from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.keys import SignerKey
from ledger.merkle import MemoryTree


class ToyLog:
    """A log of ``leaf-<i>`` entries signed by ``key`` under ``origin``."""

    def __init__(self, key: SignerKey, origin: str = "test.uchast/e1", tag: str = "") -> None:
        self.key = key
        self.origin = origin
        self.tag = tag  # a different tag grows a different history: a fork
        self.tree = MemoryTree()

    def grow(self, to: int) -> None:
        """Append leaves until the log holds ``to`` entries."""
        while self.tree.size < to:
            self.tree.append(f"leaf-{self.tree.size}{self.tag}".encode())

    def note(self, size: int | None = None) -> str:
        """The signed checkpoint at ``size`` (default: the whole log)."""
        size = self.tree.size if size is None else size
        return sign_checkpoint(Checkpoint(self.origin, size, self.tree.root(size)), self.key)

    def request(self, old: int, size: int | None = None) -> bytes:
        """An add-checkpoint body from ``old`` to ``size`` with the right proof."""
        size = self.tree.size if size is None else size
        proof = self.tree.consistency_proof(old, size) if 0 < old < size else []
        return body(old, proof, self.note(size))


def body(old: int, proof: list[bytes], note: str) -> bytes:
    """An add-checkpoint request body."""
    lines = [f"old {old}", *(base64.b64encode(h).decode() for h in proof)]
    return ("\n".join(lines) + "\n\n" + note).encode()
