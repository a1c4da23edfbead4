"""RFC 9162 Merkle tree arithmetic: hashing, incremental append, proof plans and verification.

Pure functions over SHA-256 (``hashlib`` only); no I/O. A store keeps the hash of every complete
subtree it has built and answers proofs in three steps::

    plan = inclusion_plan(index, size)          # which complete subtrees make up the proof
    nodes = store.fetch(plan_node_ids(plan))    # one query
    proof = assemble(plan, nodes)               # fold them into the RFC proof hashes

A complete subtree is named by a :data:`NodeId` ``(level, index)``: the ``2**level`` leaves
``[index * 2**level, (index + 1) * 2**level)``. Level 0 is a leaf hash. Nodes are immutable once
complete, so a store never rewrites one; the right edge of a tree whose size is not a power of
two is never stored but folded on demand from the complete subtrees it consists of.

Verification follows the iterative algorithms of RFC 9162 sections 2.1.3.2 and 2.1.4.2, with the
input checks of transparency-dev/merkle (whose test probes this module passes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from ledger.errors import ConsistencyProofError, InclusionProofError, ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MemoryTree",
    "NodeId",
    "append",
    "assemble",
    "consistency_plan",
    "fold",
    "frontier_ids",
    "inclusion_plan",
    "leaf_hash",
    "node_hash",
    "plan_node_ids",
    "root_from_frontier",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]

NodeId = tuple[int, int]
"""``(level, index)``: the complete subtree of ``2**level`` leaves from ``index * 2**level`` on."""

HASH_SIZE = 32
"""Length in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()
"""The root of the empty tree: ``SHA-256()`` of no input."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(leaf: bytes) -> bytes:
    """Return the RFC 9162 leaf hash ``SHA-256(0x00 || leaf)``."""
    return hashlib.sha256(_LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 interior node hash ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def frontier_ids(size: int) -> list[NodeId]:
    """Return the complete subtrees that together cover leaves ``[0, size)``, left to right.

    There is one per set bit of ``size``, highest level first; size 6 gives ``[(2, 0), (1, 2)]``.
    """
    if size < 0:
        raise ValueError(f"tree size must not be negative, got {size}")
    return _range_ids(0, size)


def _range_ids(start: int, end: int) -> list[NodeId]:
    """Decompose ``[start, end)`` into complete subtrees, left to right.

    ``start`` must be a multiple of the largest power of two not above ``end - start`` (true for
    a tree's left edge and for every subtree a proof needs), so the pieces follow the set bits of
    the length, highest first, and folding their hashes gives ``MTH(D[start:end])``.
    """
    ids: list[NodeId] = []
    length = end - start
    for level in range(length.bit_length() - 1, -1, -1):
        if length >> level & 1:
            ids.append((level, start >> level))
            start += 1 << level
    return ids


def fold(hashes: Sequence[bytes]) -> bytes:
    """Combine the hashes of adjacent subtrees, left to right, into the hash of their union.

    The subtrees are joined from the right, as RFC 9162 joins the right edge of a tree:
    ``node_hash(h0, node_hash(h1, ... node_hash(h[-2], h[-1])))``. An empty list folds to
    :data:`EMPTY_ROOT`, a single hash to itself.
    """
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def root_from_frontier(frontier: Sequence[bytes]) -> bytes:
    """Return the tree root from the hashes of :func:`frontier_ids` (same as :func:`fold`)."""
    return fold(frontier)


def append(
    frontier: Sequence[bytes], size: int, new_leaf_hashes: Sequence[bytes]
) -> tuple[list[bytes], list[tuple[NodeId, bytes]]]:
    """Append leaves to a tree known only by its frontier.

    ``frontier`` holds the hashes of ``frontier_ids(size)`` and ``new_leaf_hashes`` the leaf
    hashes of leaves ``size .. size + k - 1``. Returns the frontier hashes for ``size + k`` and
    every node of level >= 1 completed by these leaves as ``(NodeId, hash)``, children before
    parents. Leaf hashes (level 0) are not repeated in that list. Runs in O(k + log size).
    """
    levels = [level for level, _ in frontier_ids(size)]
    if len(frontier) != len(levels):
        raise ValueError(
            f"a tree of size {size} has {len(levels)} frontier hashes, got {len(frontier)}"
        )
    stack: list[tuple[int, bytes]] = list(zip(levels, frontier, strict=True))
    completed: list[tuple[NodeId, bytes]] = []
    position = size
    for h in new_leaf_hashes:
        level, acc = 0, h
        # Leaf ``position`` completes one node per trailing one bit of ``position``.
        while stack and stack[-1][0] == level:
            _, left = stack.pop()
            acc = node_hash(left, acc)
            level += 1
            completed.append(((level, position >> level), acc))
        stack.append((level, acc))
        position += 1
    return [h for _, h in stack], completed


def _path_ids(level: int, index: int, size: int) -> list[list[NodeId]]:
    """Audit path from the complete node ``(level, index)`` up to the root of a tree of ``size``.

    One entry per proof hash, bottom up: the sibling subtree at each level where one exists
    inside the tree, as the complete nodes whose fold is its hash.
    """
    plan: list[list[NodeId]] = []
    top = (size - 1).bit_length()  # height of the tree: 2**top >= size
    for lvl in range(level, top):
        i = index >> (lvl - level)
        if i & 1:
            plan.append([(lvl, i - 1)])
        else:
            start = (i + 1) << lvl
            if start < size:
                plan.append(_range_ids(start, min(start + (1 << lvl), size)))
    return plan


def inclusion_plan(index: int, size: int) -> list[list[NodeId]]:
    """Plan the RFC 9162 inclusion proof (section 2.1.3.1, PATH) of leaf ``index`` in ``size``.

    Returns, for each proof hash in proof order (leaf end first), the complete nodes whose
    :func:`fold` is that hash. Raises :class:`ProofError` unless ``0 <= index < size``.
    """
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    return _path_ids(0, index, size)


def consistency_plan(old_size: int, new_size: int) -> list[list[NodeId]]:
    """Plan the RFC 9162 consistency proof (section 2.1.4.1, SUBPROOF) from old to new size.

    Same shape as :func:`inclusion_plan`. Raises :class:`ProofError` unless
    ``0 < old_size <= new_size``; equal sizes need no proof and give ``[]``.
    """
    if not 0 < old_size <= new_size:
        raise ProofError(
            f"cannot prove consistency from size {old_size} to size {new_size}: "
            "need 0 < old size <= new size"
        )
    if old_size == new_size:
        return []
    # The last complete subtree of the old tree; the proof is its inclusion path in the new
    # tree, preceded by the subtree itself unless it is the whole old tree (the verifier has
    # that as the old root).
    level = (old_size & -old_size).bit_length() - 1
    index = (old_size - 1) >> level
    path = _path_ids(level, index, new_size)
    return path if index == 0 else [[(level, index)], *path]


def plan_node_ids(plan: list[list[NodeId]]) -> set[NodeId]:
    """Return every node a plan needs, so a store can fetch them in one query."""
    return {node for group in plan for node in group}


def assemble(plan: list[list[NodeId]], nodes: Mapping[NodeId, bytes]) -> list[bytes]:
    """Turn a plan into proof hashes using ``nodes`` (at least :func:`plan_node_ids` of it).

    Raises :class:`ProofError` if a needed node is missing.
    """
    proof: list[bytes] = []
    for group in plan:
        try:
            hashes = [nodes[node] for node in group]
        except KeyError as e:
            raise ProofError(f"Merkle node {e.args[0]} is missing from the store") from None
        proof.append(fold(hashes))
    return proof


def _check_hash(what: str, value: bytes, error: type[ProofError]) -> None:
    if len(value) != HASH_SIZE:
        raise error(f"{what} is {len(value)} bytes long, a hash is {HASH_SIZE}")


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``proof`` shows the leaf hash at ``index`` in the tree of ``size`` and ``root``.

    RFC 9162 section 2.1.3.2. Returns ``None`` on success; raises :class:`InclusionProofError`
    saying why otherwise. As in the RFC, ``size`` is bound to ``root`` only through the shape of
    the proof, so take both from the same signed checkpoint.
    """
    if not 0 <= index < size:
        raise InclusionProofError(f"leaf index {index} is not in a tree of size {size}")
    _check_hash("leaf hash", leaf_hash, InclusionProofError)
    _check_hash("root", root, InclusionProofError)
    for i, p in enumerate(proof):
        _check_hash(f"proof hash {i}", p, InclusionProofError)
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise InclusionProofError(
                f"inclusion proof for leaf {index} in size {size} is too long ({len(proof)} hashes)"
            )
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InclusionProofError(
            f"inclusion proof for leaf {index} in size {size} is too short ({len(proof)} hashes)"
        )
    if r != root:
        raise InclusionProofError(
            f"inclusion proof for leaf {index} in size {size} leads to root {r.hex()}, "
            f"not {root.hex()}"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that ``proof`` shows tree ``(new_size, new_root)`` extends ``(old_size, old_root)``.

    RFC 9162 section 2.1.4.2. Equal sizes need an empty proof and identical roots. Returns
    ``None`` on success; raises :class:`ConsistencyProofError` saying why otherwise.
    """
    what = f"consistency proof from size {old_size} to {new_size}"
    if old_size < 0 or new_size < 0:
        raise ConsistencyProofError(f"{what}: sizes must not be negative")
    if old_size > new_size:
        raise ConsistencyProofError(f"{what}: the old size is larger than the new one")
    if old_size == 0:
        raise ConsistencyProofError(f"{what}: every tree extends the empty tree, nothing to prove")
    if old_size == new_size:
        if proof:
            raise ConsistencyProofError(f"{what}: equal sizes need an empty proof")
        if old_root != new_root:
            raise ConsistencyProofError(f"{what}: equal sizes but different roots")
        return
    if not proof:
        raise ConsistencyProofError(f"{what}: the proof is empty")
    _check_hash("old root", old_root, ConsistencyProofError)
    _check_hash("new root", new_root, ConsistencyProofError)
    for i, p in enumerate(proof):
        _check_hash(f"proof hash {i}", p, ConsistencyProofError)

    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ConsistencyProofError(f"{what} is too long ({len(proof)} hashes)")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ConsistencyProofError(f"{what} is too short ({len(proof)} hashes)")
    if fr != old_root:
        raise ConsistencyProofError(f"{what} leads to old root {fr.hex()}, not {old_root.hex()}")
    if sr != new_root:
        raise ConsistencyProofError(f"{what} leads to new root {sr.hex()}, not {new_root.hex()}")


def root_of(leaves: Sequence[bytes]) -> bytes:
    """Return ``MTH(leaves)`` over raw leaf data, recursively as RFC 9162 section 2.1.1 defines.

    A reference for tests and small trees: it rehashes every leaf on each call.
    """
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hash(leaves[0])
    k = 1 << ((n - 1).bit_length() - 1)  # largest power of two smaller than n
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))


class MemoryTree:
    """An in-memory Merkle tree for tests and the auditor, built with :func:`append`.

    Keeps every complete node (leaf hashes included), so it answers roots and proofs for any
    size up to its own, through the same plans a database store uses.
    """

    def __init__(self) -> None:
        """Create an empty tree."""
        self._nodes: dict[NodeId, bytes] = {}
        self._frontier: list[bytes] = []
        self._size = 0

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append(self, leaf: bytes) -> int:
        """Append raw leaf data; return its index."""
        return self.extend_hashes([leaf_hash(leaf)])

    def extend(self, leaves: Sequence[bytes]) -> int:
        """Append raw leaves in one batch; return the index of the first."""
        return self.extend_hashes([leaf_hash(leaf) for leaf in leaves])

    def extend_hashes(self, leaf_hashes: Sequence[bytes]) -> int:
        """Append leaves given by their leaf hashes; return the index of the first."""
        first = self._size
        self._frontier, completed = append(self._frontier, first, leaf_hashes)
        for i, h in enumerate(leaf_hashes, start=first):
            self._nodes[(0, i)] = h
        self._nodes.update(completed)
        self._size += len(leaf_hashes)
        return first

    def node(self, node_id: NodeId) -> bytes:
        """Return the hash of a complete node; :class:`KeyError` if it is not complete yet."""
        return self._nodes[node_id]

    def root(self, size: int | None = None) -> bytes:
        """Return the root of the tree at ``size`` leaves (default: the current size)."""
        if size is None:
            return root_from_frontier(self._frontier)
        self._check_size(size)
        return fold([self._nodes[node] for node in frontier_ids(size)])

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Return the RFC 9162 inclusion proof of leaf ``index`` in the tree at ``size``."""
        size = self._size if size is None else size
        self._check_size(size)
        return assemble(inclusion_plan(index, size), self._nodes)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Return the RFC 9162 consistency proof from ``old_size`` to ``new_size``."""
        new_size = self._size if new_size is None else new_size
        self._check_size(new_size)
        return assemble(consistency_plan(old_size, new_size), self._nodes)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self._size:
            raise ProofError(f"tree size {size} is not in 0..{self._size}")
