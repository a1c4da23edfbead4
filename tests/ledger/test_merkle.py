"""Tests for ledger.merkle: RFC 9162 hashing, append, proof plans and verification."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.errors import ConsistencyProofError, InclusionProofError, ProofError
from ledger.merkle import NodeId

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
TDEV = VECTORS / "transparency-dev-merkle"
PROBES = TDEV / "testdata"

PROPERTY = settings(max_examples=100, deadline=None)


def _require_vectors() -> None:
    if not TDEV.is_dir():
        msg = f"test vectors not found at {TDEV}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


def _probe_params(kind: str) -> list[Any]:
    files = sorted((PROBES / kind).rglob("*.json")) if PROBES.is_dir() else []
    if not files:
        return [pytest.param(None, id=f"{kind}-vectors-missing")]
    return [pytest.param(f, id=str(f.relative_to(PROBES / kind))) for f in files]


def _b64(s: str) -> bytes:
    return base64.b64decode(s)


def _proof(raw: list[str] | None) -> list[bytes]:
    return [_b64(p) for p in raw or []]


# --- an independent, naive RFC 9162 reference (section 2.1), hashlib only -----------------------


def _mth(d: Sequence[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(d[:k]) + _mth(d[k:])).digest()


def _path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*_path(m, d[:k]), _mth(d[k:])]
    return [*_path(m - k, d[k:]), _mth(d[:k])]


def _subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*_subproof(m, d[:k], b), _mth(d[k:])]
    return [*_subproof(m - k, d[k:], False), _mth(d[:k])]


def _leaves(n: int, salt: bytes) -> list[bytes]:
    return [salt + i.to_bytes(2, "big") for i in range(n)]


def _tree(leaves: Sequence[bytes], chunks: Sequence[int] = ()) -> merkle.MemoryTree:
    """Build a MemoryTree, appending in batches of the given sizes (then one by one)."""
    tree = merkle.MemoryTree()
    pos = 0
    for c in chunks:
        tree.extend(leaves[pos : pos + c])
        pos = min(pos + c, len(leaves))
    for leaf in leaves[pos:]:
        tree.append(leaf)
    assert tree.size == len(leaves)
    return tree


def _flip(hashes: list[bytes], which: int, bit: int) -> list[bytes]:
    out = list(hashes)
    h = bytearray(out[which])
    h[bit // 8] ^= 1 << (bit % 8)
    out[which] = bytes(h)
    return out


def _span(node: NodeId) -> tuple[int, int]:
    level, index = node
    return index << level, (index + 1) << level


# --- 1. transparency-dev probes -------------------------------------------------------------


@pytest.mark.parametrize("path", _probe_params("inclusion"))
def test_transparency_dev_inclusion_probe(path: Path | None) -> None:
    """Each transparency-dev inclusion probe is accepted or rejected as its wantErr says."""
    _require_vectors()
    assert path is not None
    probe = json.loads(path.read_text())
    args = (
        _b64(probe["leafHash"]),
        probe["leafIdx"],
        probe["treeSize"],
        _proof(probe["proof"]),
        _b64(probe["root"]),
    )
    if probe["wantErr"]:
        with pytest.raises(InclusionProofError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("path", _probe_params("consistency"))
def test_transparency_dev_consistency_probe(path: Path | None) -> None:
    """Each transparency-dev consistency probe is accepted or rejected as its wantErr says."""
    _require_vectors()
    assert path is not None
    probe = json.loads(path.read_text())
    args = (
        probe["size1"],
        probe["size2"],
        _b64(probe["root1"]),
        _b64(probe["root2"]),
        _proof(probe["proof"]),
    )
    if probe["wantErr"]:
        with pytest.raises(ConsistencyProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


def test_happy_path_probes_are_what_we_generate() -> None:
    """Our proofs for the 8-leaf reference tree equal the proofs of the happy-path probes."""
    _require_vectors()
    data = json.loads((TDEV / "tree8_leaves_roots.json").read_text())
    tree = _tree([bytes.fromhex(x) for x in data["leaf_inputs_hex"]])
    checked = 0
    for f in sorted(PROBES.glob("inclusion/[0-9]/happy-path.json")):
        p = json.loads(f.read_text())
        if p["treeSize"] <= 8 and _b64(p["root"]) == tree.root(p["treeSize"]):
            assert tree.inclusion_proof(p["leafIdx"], p["treeSize"]) == _proof(p["proof"])
            checked += 1
    for f in sorted(PROBES.glob("consistency/[0-9]/happy-path.json")):
        p = json.loads(f.read_text())
        if p["size2"] <= 8 and _b64(p["root2"]) == tree.root(p["size2"]):
            assert tree.consistency_proof(p["size1"], p["size2"]) == _proof(p["proof"])
            checked += 1
    assert checked >= 8


# --- 2. reference tree and hasher vectors ------------------------------------------------------


def test_tree8_roots_for_every_size() -> None:
    """root_of, MemoryTree.root and the frontier fold give the published roots for sizes 0..8."""
    _require_vectors()
    data = json.loads((TDEV / "tree8_leaves_roots.json").read_text())
    leaves = [bytes.fromhex(x) for x in data["leaf_inputs_hex"]]
    roots = [bytes.fromhex(x) for x in data["root_hashes_by_size_hex"]]
    assert len(roots) == 9
    tree = _tree(leaves)
    for size, want in enumerate(roots):
        assert merkle.root_of(leaves[:size]) == want
        assert tree.root(size) == want
        frontier, _ = merkle.append([], 0, [merkle.leaf_hash(x) for x in leaves[:size]])
        assert merkle.root_from_frontier(frontier) == want
    assert tree.root() == roots[8]


def test_hasher_vectors() -> None:
    """EMPTY_ROOT, leaf_hash and node_hash match the transparency-dev RFC 6962 hasher vectors."""
    _require_vectors()
    vectors = json.loads((TDEV / "tree8_leaves_roots.json").read_text())["hasher_vectors"]
    assert merkle.EMPTY_ROOT.hex() == vectors["empty_tree"]
    assert merkle.leaf_hash(b"").hex() == vectors["leaf_hash_of_empty_leaf"]
    assert (
        merkle.leaf_hash(b"L123456").hex() == vectors["leaf_hash_of_L123456 (input 4c313233343536)"]
    )
    node = merkle.node_hash(b"N123", b"N456").hex()
    assert node == vectors["node_hash_of N123 N456 (0x01||'N123'||'N456')"]


# --- unit tests of the plan arithmetic ---------------------------------------------------------


def test_frontier_ids_examples() -> None:
    """frontier_ids gives one complete subtree per set bit of the size, highest level first."""
    assert merkle.frontier_ids(0) == []
    assert merkle.frontier_ids(1) == [(0, 0)]
    assert merkle.frontier_ids(6) == [(2, 0), (1, 2)]
    assert merkle.frontier_ids(8) == [(3, 0)]
    assert merkle.frontier_ids(11) == [(3, 0), (1, 4), (0, 10)]


def test_fold_edge_cases() -> None:
    """fold of nothing is the empty root, of one hash that hash, of three joins from the right."""
    a, b, c = (hashlib.sha256(bytes([i])).digest() for i in range(3))
    assert merkle.fold([]) == merkle.EMPTY_ROOT
    assert merkle.fold([a]) == a
    assert merkle.fold([a, b, c]) == merkle.node_hash(a, merkle.node_hash(b, c))


def test_plan_examples() -> None:
    """Plans split a right-edge proof hash into the complete nodes whose fold it is."""
    assert merkle.inclusion_plan(0, 1) == []
    assert merkle.inclusion_plan(0, 7) == [[(0, 1)], [(1, 1)], [(1, 2), (0, 6)]]
    assert merkle.inclusion_plan(6, 7) == [[(1, 2)], [(2, 0)]]
    assert merkle.consistency_plan(6, 8) == [[(1, 2)], [(1, 3)], [(2, 0)]]
    assert merkle.consistency_plan(4, 7) == [[(1, 2), (0, 6)]]
    assert merkle.consistency_plan(5, 5) == []
    plan = merkle.consistency_plan(3, 7)
    assert merkle.plan_node_ids(plan) == {(0, 2), (0, 3), (1, 0), (1, 2), (0, 6)}


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 1), (-1, 5), (5, 5)])
def test_inclusion_plan_rejects_bad_index(index: int, size: int) -> None:
    """inclusion_plan raises ProofError unless 0 <= index < size."""
    with pytest.raises(ProofError):
        merkle.inclusion_plan(index, size)


@pytest.mark.parametrize(("old", "new"), [(0, 0), (0, 3), (4, 3), (-1, 2)])
def test_consistency_plan_rejects_bad_sizes(old: int, new: int) -> None:
    """consistency_plan raises ProofError unless 0 < old_size <= new_size."""
    with pytest.raises(ProofError):
        merkle.consistency_plan(old, new)


def test_assemble_reports_missing_node() -> None:
    """assemble raises ProofError naming a node the store did not return."""
    with pytest.raises(ProofError, match=r"\(1, 1\)"):
        merkle.assemble([[(0, 1)], [(1, 1)]], {(0, 1): b"\x00" * 32})


def test_append_rejects_wrong_frontier_length() -> None:
    """append refuses a frontier that does not have one hash per set bit of the size."""
    with pytest.raises(ValueError):
        merkle.append([b"\x00" * 32], 3, [b"\x01" * 32])


def test_memory_tree_refuses_sizes_beyond_its_own() -> None:
    """MemoryTree proofs and roots for a size larger than the tree raise ProofError."""
    tree = _tree(_leaves(5, b"x"))
    with pytest.raises(ProofError):
        tree.root(6)
    with pytest.raises(ProofError):
        tree.inclusion_proof(0, 6)
    with pytest.raises(ProofError):
        tree.consistency_proof(2, 6)
    with pytest.raises(KeyError):
        tree.node((1, 2))  # leaves 4..5: not complete yet
    assert tree.node((2, 0)) == _mth(_leaves(4, b"x"))


def test_verify_rejects_short_hashes_and_bad_sizes() -> None:
    """Verification rejects non-32-byte values and impossible sizes with the right error type."""
    tree = _tree(_leaves(6, b"y"))
    lh = merkle.leaf_hash(b"y" + (2).to_bytes(2, "big"))
    proof = tree.inclusion_proof(2, 6)
    merkle.verify_inclusion(lh, 2, 6, proof, tree.root())
    with pytest.raises(InclusionProofError, match="leaf hash"):
        merkle.verify_inclusion(lh[:31], 2, 6, proof, tree.root())
    with pytest.raises(InclusionProofError, match="root"):
        merkle.verify_inclusion(lh, 2, 6, proof, tree.root() + b"\x00")
    with pytest.raises(InclusionProofError, match="proof hash 1"):
        merkle.verify_inclusion(lh, 2, 6, [proof[0], proof[1][:-1], proof[2]], tree.root())
    with pytest.raises(InclusionProofError, match="not in a tree"):
        merkle.verify_inclusion(lh, -1, 6, proof, tree.root())
    cproof = tree.consistency_proof(3, 6)
    merkle.verify_consistency(3, 6, tree.root(3), tree.root(6), cproof)
    with pytest.raises(ConsistencyProofError, match="old root"):
        merkle.verify_consistency(3, 6, tree.root(3)[:16], tree.root(6), cproof)
    with pytest.raises(ConsistencyProofError, match="empty"):
        merkle.verify_consistency(3, 6, tree.root(3), tree.root(6), [])
    with pytest.raises(ConsistencyProofError, match="negative"):
        merkle.verify_consistency(-3, 6, tree.root(3), tree.root(6), cproof)


@PROPERTY
@given(size=st.integers(1, 2**63), data=st.data())
def test_plans_tile_the_tree_at_any_size(size: int, data: st.DataObject) -> None:
    """At any size, plan hashes are runs of adjacent complete nodes tiling the rest of the tree."""
    index = data.draw(st.integers(0, size - 1), label="index")
    old = data.draw(st.integers(1, size), label="old")
    old_is_root = old & (old - 1) == 0  # the old root is the proof's omitted first hash
    for plan, known in (
        (merkle.inclusion_plan(index, size), [(index, index + 1)]),
        (merkle.consistency_plan(old, size), [(0, old)] if old_is_root and old < size else []),
    ):
        assert len(plan) <= (size - 1).bit_length() + 1
        spans = list(known)
        for group in plan:
            assert group
            for node in group:
                assert _span(node)[1] <= size  # complete inside the tree
            for left, right in itertools.pairwise(group):
                assert _span(left)[1] == _span(right)[0]  # adjacent, left to right
            spans.append((_span(group[0])[0], _span(group[-1])[1]))
        pos = 0
        for a, b in sorted(spans):
            assert a == pos
            pos = b
        assert pos == (size if plan or known else pos)


# --- 3. properties against the naive reference -------------------------------------------------


@st.composite
def _trees(draw: st.DrawFn, max_size: int = 300) -> tuple[list[bytes], merkle.MemoryTree]:
    n = draw(st.integers(1, max_size))
    leaves = _leaves(n, draw(st.binary(max_size=8)))
    chunks = draw(st.lists(st.integers(1, 70), max_size=6))
    return leaves, _tree(leaves, chunks)


@PROPERTY
@given(built=_trees(), data=st.data())
def test_proofs_equal_naive_rfc_proofs_and_verify(
    built: tuple[list[bytes], merkle.MemoryTree], data: st.DataObject
) -> None:
    """MemoryTree roots and proofs equal the naive RFC MTH/PATH/SUBPROOF and they verify."""
    leaves, tree = built
    size = data.draw(st.integers(1, len(leaves)), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    old = data.draw(st.integers(1, size), label="old")
    d = leaves[:size]
    root = tree.root(size)
    assert root == _mth(d) == merkle.root_of(d)

    proof = tree.inclusion_proof(index, size)
    assert proof == _path(index, d)
    merkle.verify_inclusion(merkle.leaf_hash(d[index]), index, size, proof, root)

    cproof = tree.consistency_proof(old, size)
    assert cproof == _subproof(old, d, True)
    merkle.verify_consistency(old, size, tree.root(old), root, cproof)


@PROPERTY
@given(
    old=st.integers(0, 300),
    chunks=st.lists(st.integers(0, 40), min_size=1, max_size=5),
    salt=st.binary(max_size=4),
)
def test_append_returns_exactly_the_completed_nodes(
    old: int, chunks: list[int], salt: bytes
) -> None:
    """append yields each newly completed level>=1 node once, with its MTH, and the new frontier."""
    leaves = _leaves(old + sum(chunks), salt)
    frontier, _ = merkle.append([], 0, [merkle.leaf_hash(x) for x in leaves[:old]])
    size = old
    for k in chunks:
        new = [merkle.leaf_hash(x) for x in leaves[size : size + k]]
        frontier, nodes = merkle.append(frontier, size, new)
        ids = [node for node, _ in nodes]
        assert len(ids) == len(set(ids))
        expected = {
            (lvl, i)
            for lvl in range(1, (size + k).bit_length())
            for i in range((size + k) >> lvl)
            if size < (i + 1) << lvl
        }
        assert set(ids) == expected
        for node, h in nodes:
            a, b = _span(node)
            assert h == _mth(leaves[a:b])
        size += k
        assert frontier == [_mth(leaves[slice(*_span(n))]) for n in merkle.frontier_ids(size)]
        assert (
            merkle.root_from_frontier(frontier)
            == _mth(leaves[:size])
            == merkle.root_of(leaves[:size])
        )


@PROPERTY
@given(built=_trees(), data=st.data())
def test_any_bit_flip_is_rejected(
    built: tuple[list[bytes], merkle.MemoryTree], data: st.DataObject
) -> None:
    """Flipping any single bit of an inclusion or consistency proof hash makes it fail."""
    leaves, tree = built
    n = len(leaves)
    index = data.draw(st.integers(0, n - 1), label="index")
    proof = tree.inclusion_proof(index, n)
    lh = merkle.leaf_hash(leaves[index])
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1), label="which")
        bit = data.draw(st.integers(0, 255), label="bit")
        with pytest.raises(InclusionProofError):
            merkle.verify_inclusion(lh, index, n, _flip(proof, which, bit), tree.root())
    old = data.draw(st.integers(1, n), label="old")
    cproof = tree.consistency_proof(old, n)
    if cproof:
        which = data.draw(st.integers(0, len(cproof) - 1), label="cwhich")
        bit = data.draw(st.integers(0, 255), label="cbit")
        with pytest.raises(ConsistencyProofError):
            merkle.verify_consistency(
                old, n, tree.root(old), tree.root(), _flip(cproof, which, bit)
            )


@PROPERTY
@given(built=_trees(), data=st.data())
def test_wrong_index_or_size_is_rejected(
    built: tuple[list[bytes], merkle.MemoryTree], data: st.DataObject
) -> None:
    """A proof checked for another leaf index, or against the real root of another size, fails."""
    leaves, tree = built
    n = len(leaves)
    size = data.draw(st.integers(1, n), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    lh = merkle.leaf_hash(leaves[index])
    proof = tree.inclusion_proof(index, size)

    other_index = data.draw(st.integers(0, size), label="other_index")
    if other_index != index:
        with pytest.raises(InclusionProofError):
            merkle.verify_inclusion(lh, other_index, size, proof, tree.root(size))
    # Against the root of its own size, a proof may pass for another size whose proof has the
    # same shape (index 0: sizes 3 and 4); the signed checkpoint binds size and root together.
    other_size = data.draw(st.integers(index + 1, n), label="other_size")
    if other_size != size:
        with pytest.raises(InclusionProofError):
            merkle.verify_inclusion(lh, index, other_size, proof, tree.root(other_size))

    old = data.draw(st.integers(1, size), label="old")
    cproof = tree.consistency_proof(old, size)
    old2 = data.draw(st.integers(1, n), label="old2")
    new2 = data.draw(st.integers(old2, n), label="new2")
    if (old2, new2) != (old, size) and not (old2 == new2 and old == size):
        with pytest.raises(ConsistencyProofError):
            merkle.verify_consistency(old2, new2, tree.root(old2), tree.root(new2), cproof)


# --- 4. cross-check with tlog-scales -----------------------------------------------------------


def test_cross_check_with_tlog_scales(tmp_path: Path) -> None:
    """tlog-scales (tile-based, independent) computes our roots and proofs and accepts them."""
    tlog = pytest.importorskip("tlog_scales.tlog")
    writer_mod = pytest.importorskip("tlog_scales.writer")

    leaves = _leaves(520, b"tlog-scales/")
    tree = _tree(leaves, [300])
    writer = writer_mod.TilesWriter.create(tmp_path / "log", "example.org/uchast-test")
    sizes = [1, 2, 7, 256, 257, 300, 520]
    done = 0
    checked = 0
    for size in sizes:
        for leaf in leaves[done:size]:
            writer.add_leaf(leaf)
        writer.commit([])
        done = size
        reader = writer.reader
        root = tree.root(size)
        assert reader.calculate_root_hash() == root
        for index in sorted({0, size // 3, size // 2, size - 1}):
            proof = tree.inclusion_proof(index, size)
            assert reader.get_inclusion_proof(index, size).node_hashes == proof
            tlog.InclusionProof(index, size, proof).check(merkle.leaf_hash(leaves[index]), root)
            checked += 1
        for old in sorted({1, size // 2 or 1, size}):
            cproof = tree.consistency_proof(old, size)
            assert reader.get_consistency_proof(old, size).node_hashes == cproof
            tlog.ConsistencyProof(old, size, cproof).check(tree.root(old), root)
            checked += 1
        # ... and rejects a corrupted proof, so the acceptance above means something.
        if size > 1:
            bad = _flip(tree.inclusion_proof(0, size), 0, 0)
            with pytest.raises(tlog.InclusionProofInvalid):
                tlog.InclusionProof(0, size, bad).check(merkle.leaf_hash(leaves[0]), root)
    assert checked > 30
