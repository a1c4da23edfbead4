"""C2SP tlog-tiles: strict paths, the tiles of a size, and tiles that rebuild the tree exactly."""

from __future__ import annotations

import asyncio
import hashlib
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.store import StoredEntry, open_store
from ledger.tiles import (
    MAX_LEVEL,
    TILE_WIDTH,
    Tile,
    TilePathError,
    encode_index,
    entry_bundle,
    parse_tile_path,
    read_tile,
    tiles_for_size,
)

LOG = "tiles-test"
SIZE = 70_000  # the spec's example: three levels of tiles, partial ones on each


def leaf(i: int) -> bytes:
    # Lengths vary (1 .. 40 bytes) so that bundles are not uniform.
    return b"entry %d " % i + b"." * (i % 31)


# --- paths ---------------------------------------------------------------------------------------


def test_index_is_written_in_groups_of_three_digits() -> None:
    """N is zero-padded 3-digit groups, all but the last prefixed by x (the spec's examples)."""
    assert encode_index(0) == "000"
    assert encode_index(5) == "005"
    assert encode_index(1000) == "x001/000"
    assert encode_index(1234067) == "x001/x234/067"
    assert Tile(0, 1234067).path == "tile/0/x001/x234/067"
    assert Tile(1, 1, 17).path == "tile/1/001.p/17"
    assert Tile(0, 273, 112, entries=True).path == "tile/entries/273.p/112"


@given(
    level=st.integers(0, MAX_LEVEL),
    index=st.integers(0, 10**18),
    width=st.integers(1, TILE_WIDTH),
    entries=st.booleans(),
)
def test_every_tile_path_parses_back_to_its_tile(
    level: int, index: int, width: int, entries: bool
) -> None:
    """parse_tile_path inverts Tile.path for every tile."""
    tile = Tile(0 if entries else level, index, width, entries=entries)
    assert parse_tile_path(tile.path) == tile


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/x000/005",  # a superfluous group
        "tile/0/5",  # not three digits
        "tile/0/0005",
        "tile/00/005",  # leading zero in the level
        "tile/64/000",  # level above 63
        "tile/-1/000",
        "tile/0/005.p/0",  # empty tile
        "tile/0/005.p/256",  # a full tile is never written as partial
        "tile/0/005.p/300",
        "tile/0/005.p/017",  # leading zero in the width
        "tile/0/005.p/",
        "tile/0/005/",
        "tile/0/x005",  # the last group has no x
        "tile/0/005/x001",
        "tile/8/0/005",  # Go's tlog paths carry the height; ours do not
        "tile/data/005",
        "tile/entries/x001",
        "tile/entries/001.p/1x",
        "/tile/0/005",
        "tile/0/x001/x002/x003/x004/x005/x006/x007/008",  # beyond any 64-bit index
        "tile/0/００5",  # non-ASCII digits
        "tile/0/005\n",
        "",
    ],
)
def test_bad_tile_paths_are_refused(path: str) -> None:
    """Only the canonical name of a tile is a tile path."""
    with pytest.raises(TilePathError):
        parse_tile_path(path)


@given(
    path=st.one_of(st.text(max_size=40), st.from_regex(r"tile/[0-9a-z.x/]{1,30}", fullmatch=True))
)
def test_any_string_is_a_canonical_tile_path_or_refused(path: str) -> None:
    """Parsing never fails otherwise: a string is a tile's own path, or TilePathError."""
    try:
        tile = parse_tile_path(path)
    except TilePathError:
        return
    assert tile.path == path


def test_tiles_of_a_size_follow_the_spec_example() -> None:
    """70,000 entries: 273 full level-0 tiles and one of 112, a full level-1 tile and one of
    17, a level-2 tile of 1; entry bundles like level 0. Size 256: a full tile and a level-1
    tile of width 1. Nothing for the empty tree."""
    tiles = list(tiles_for_size(70_000))
    hashes = [t for t in tiles if not t.entries]
    bundles = [t for t in tiles if t.entries]
    assert hashes == [
        *(Tile(0, n) for n in range(273)),
        Tile(0, 273, 112),
        Tile(1, 0),
        Tile(1, 1, 17),
        Tile(2, 0, 1),
    ]
    assert bundles == [*(Tile(0, n, entries=True) for n in range(273)), Tile(0, 273, 112, True)]
    assert list(tiles_for_size(256, entries=False)) == [Tile(0, 0), Tile(1, 0, 1)]
    assert list(tiles_for_size(0)) == []
    assert all(t.within(70_000) for t in tiles)


def test_entry_bundle_is_uint16_length_prefixed() -> None:
    """Each entry behind its big-endian uint16 length; 65,535 bytes fit, 65,536 do not."""
    assert entry_bundle([b"ab", b"", b"c"]) == b"\x00\x02ab\x00\x00\x00\x01c"
    big = b"x" * 65_535
    assert entry_bundle([big]) == b"\xff\xff" + big
    with pytest.raises(ValueError):
        entry_bundle([big + b"x"])


# --- tiles from a store --------------------------------------------------------------------------


async def fill_log(url: str, size: int, log: str = LOG) -> None:
    """A log of ``size`` entries ``leaf(i)``, written through the store interface in batches."""
    store = open_store(url)
    await store.open()
    try:
        await store.create_log(log)
        frontier: list[bytes] = []
        for start in range(0, size, 5_000):
            end = min(start + 5_000, size)
            entries = [
                StoredEntry(i, "test", (), leaf(i), merkle.leaf_hash(leaf(i)))
                for i in range(start, end)
            ]
            frontier, nodes = merkle.append(frontier, start, [e.leaf_hash for e in entries])
            async with store.sequencing(log) as tx:
                await tx.write(entries, nodes, None)
    finally:
        await store.close()


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite log of SIZE entries, written through the store interface like the sequencer."""
    url = f"sqlite:///{tmp_path_factory.mktemp('tiles') / 'tiles.db'}"
    asyncio.run(fill_log(url, SIZE))
    return url


@pytest.fixture(scope="module")
def reference() -> merkle.MemoryTree:
    tree = merkle.MemoryTree()
    tree.extend([leaf(i) for i in range(SIZE)])
    return tree


def _tile_of(size: int, level: int, index: int) -> Tile:
    """The tile ``index`` of ``level`` in a tree of ``size``, as wide as that tree makes it."""
    count = size >> (8 * level)
    return Tile(level, index, min(TILE_WIDTH, count - index * TILE_WIDTH))


def _subtree(hashes: list[bytes]) -> bytes:
    """MTH of a power-of-two run of subtree hashes, pairwise."""
    while len(hashes) > 1:
        hashes = [merkle.node_hash(a, b) for a, b in zip(hashes[::2], hashes[1::2], strict=True)]
    return hashes[0]


class TileTree:
    """Tree node hashes of a tree of ``size``, computed only from its tiles (as a client does)."""

    def __init__(self, url: str, size: int) -> None:
        self.url, self.size = url, size
        self.tiles: dict[Tile, bytes] = {}

    async def load(self, ids: set[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
        store = open_store(self.url)
        await store.open()
        try:
            found = {}
            for level, index in ids:
                tile_level = level // 8
                below = level - 8 * tile_level  # levels between the tile's hashes and this node
                first = index << below
                tile = _tile_of(self.size, tile_level, first // TILE_WIDTH)
                if tile not in self.tiles:
                    data = await read_tile(store, LOG, tile, self.size)
                    assert data is not None and len(data) == 32 * tile.width
                    self.tiles[tile] = data
                data = self.tiles[tile]
                offset = first % TILE_WIDTH
                run = [data[32 * k : 32 * k + 32] for k in range(offset, offset + (1 << below))]
                found[(level, index)] = _subtree(run)
            return found
        finally:
            await store.close()


def _nodes(url: str, size: int, plan: list[list[merkle.NodeId]]) -> dict[merkle.NodeId, bytes]:
    return asyncio.run(TileTree(url, size).load(merkle.plan_node_ids(plan)))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_tiles_rebuild_the_roots_and_proofs_of_the_tree(
    store_url: str, reference: merkle.MemoryTree, data: st.DataObject
) -> None:
    """For random sizes, the root, inclusion and consistency proofs folded from hash tiles alone
    equal ledger.merkle's over the same leaves."""
    size = data.draw(st.one_of(st.integers(1, SIZE), st.sampled_from([1, 255, 256, 65_536])))
    index = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(1, size))
    root_plan = [merkle.frontier_ids(size)]
    assert merkle.assemble(root_plan, _nodes(store_url, size, root_plan)) == [reference.root(size)]
    inclusion = merkle.inclusion_plan(index, size)
    proof = merkle.assemble(inclusion, _nodes(store_url, size, inclusion))
    assert proof == reference.inclusion_proof(index, size)
    consistency = merkle.consistency_plan(old, size)
    proof = merkle.assemble(consistency, _nodes(store_url, size, consistency))
    assert proof == reference.consistency_proof(old, size)


def _bundle_entries(bundle: bytes) -> Iterator[bytes]:
    at = 0
    while at < len(bundle):
        (length,) = struct.unpack_from(">H", bundle, at)
        yield bundle[at + 2 : at + 2 + length]
        at += 2 + length


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(size=st.integers(1, SIZE))
def test_entry_bundles_hold_the_leaves_that_hash_to_level_zero(store_url: str, size: int) -> None:
    """The last bundle of a size holds the stored leaf bytes, each hashing to the same place in
    the level-0 tile; the partial tile is a prefix of the full one that replaces it."""

    async def check() -> None:
        store = open_store(store_url)
        await store.open()
        try:
            last = (size - 1) // TILE_WIDTH
            tile = _tile_of(size, 0, last)
            bundle = await read_tile(store, LOG, Tile(0, last, tile.width, entries=True), size)
            hashes = await read_tile(store, LOG, tile, size)
            assert bundle is not None and hashes is not None
            entries = list(_bundle_entries(bundle))
            assert entries == [leaf(i) for i in range(last * 256, last * 256 + tile.width)]
            assert b"".join(hashlib.sha256(b"\0" + e).digest() for e in entries) == hashes
            wider = await read_tile(store, LOG, _tile_of(SIZE, 0, last), SIZE)
            assert wider is not None and wider.startswith(hashes)
        finally:
            await store.close()

    asyncio.run(check())


async def test_no_tile_beyond_the_size(tmp_path: Path) -> None:
    """A tile, bundle or wider partial tile reaching past the size given is not read."""
    url = f"sqlite:///{tmp_path / 'small.db'}"
    await fill_log(url, 300)
    store = open_store(url)
    await store.open()
    try:
        assert await read_tile(store, LOG, Tile(0, 1, 44), 300) is not None
        assert await read_tile(store, LOG, Tile(0, 1, 44, entries=True), 300) is not None
        assert await read_tile(store, LOG, Tile(0, 1, 45), 300) is None
        assert await read_tile(store, LOG, Tile(0, 1, 45, entries=True), 300) is None
        assert await read_tile(store, LOG, Tile(0, 1), 300) is None
        assert await read_tile(store, LOG, Tile(1, 0, 1), 300) is not None
        assert await read_tile(store, LOG, Tile(1, 0, 2), 300) is None
        # Within a checkpoint of 200, the entries 200..299 already stored are not served.
        assert await read_tile(store, LOG, Tile(0, 0, 200), 200) is not None
        assert await read_tile(store, LOG, Tile(0, 0, 201), 200) is None
        assert await read_tile(store, LOG, Tile(1, 0, 1), 200) is None
    finally:
        await store.close()
