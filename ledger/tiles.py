"""C2SP tlog-tiles: the log's Merkle tree and entries as static resources anyone can mirror.

A log of ``size`` entries is also served as files under its ``log/`` prefix:

- ``tile/<L>/<N>[.p/<W>]``: hash tile ``N`` of level ``L``, the 32-byte hashes of the complete
  subtrees of height ``8 * L`` numbered ``N * 256 .. N * 256 + W - 1`` (level 0: leaf hashes);
- ``tile/entries/<N>[.p/<W>]``: entry bundle ``N``, entries ``N * 256 .. N * 256 + W - 1``, each
  its stored leaf bytes behind a big-endian uint16 length.

``W`` is 256 for a full tile (no ``.p/`` suffix) and 1..255 for a partial one. ``N`` is written in
zero-padded groups of three digits, all but the last prefixed by ``x`` (1234067 is
``x001/x234/067``), so every tile is a plain file in a directory tree.

A tile's bytes never change: its hashes are complete subtrees, which a store never rewrites, and
its entries are committed. A tile exists for a size when everything it spans lies within it,
and this module serves only tiles within the latest checkpoint's size, so every tile agrees with
a signed checkpoint.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ledger.errors import ProofError
from ledger.store import Store

__all__ = [
    "MAX_ENTRY_SIZE",
    "MAX_LEVEL",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "Tile",
    "TilePathError",
    "encode_index",
    "entry_bundle",
    "export_tiles",
    "parse_tile_path",
    "read_tile",
    "tiles_for_size",
]

TILE_HEIGHT = 8
"""Levels of the Merkle tree one tile spans."""

TILE_WIDTH = 1 << TILE_HEIGHT
"""Hashes (or entries) in a full tile: 256."""

MAX_LEVEL = 63
"""The highest tile level the spec allows."""

MAX_ENTRY_SIZE = 0xFFFF
"""The longest entry an entry bundle can hold: its length prefix is a uint16 (65,535 bytes)."""

# At most 7 groups: indexes below 10**21 (a 64-bit position is below 2 * 10**19).
_MAX_GROUPS = 7
_PATH = re.compile(
    r"tile/(?P<level>entries|0|[1-9][0-9]?)/"
    rf"(?P<index>(?:x[0-9]{{3}}/){{0,{_MAX_GROUPS - 1}}}[0-9]{{3}})"
    r"(?:\.p/(?P<width>[1-9][0-9]{0,2}))?",
    re.ASCII,
)


class TilePathError(ValueError):
    """A path that is not the canonical C2SP tlog-tiles name of a tile or entry bundle."""


def encode_index(index: int) -> str:
    """``N`` as path elements: ``1234067`` -> ``x001/x234/067``, ``5`` -> ``005``."""
    if index < 0:
        raise ValueError(f"a tile index is not negative, got {index}")
    groups = []
    while True:
        groups.append(f"{index % 1000:03d}")
        index //= 1000
        if index == 0:
            break
    return "/".join(["x" + g for g in reversed(groups[1:])] + [groups[0]])


@dataclass(frozen=True, slots=True)
class Tile:
    """One tile: hash tile ``index`` of ``level``, or (``entries``) entry bundle ``index``.

    ``width`` is how many hashes or entries it holds: 256 when full, 1..255 when partial.
    """

    level: int
    index: int
    width: int = TILE_WIDTH
    entries: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.level <= MAX_LEVEL or (self.entries and self.level != 0):
            raise ValueError(f"no tile level {self.level}")
        if self.index < 0:
            raise ValueError(f"no tile index {self.index}")
        if not 1 <= self.width <= TILE_WIDTH:
            raise ValueError(f"a tile is 1 to {TILE_WIDTH} wide, not {self.width}")

    @property
    def partial(self) -> bool:
        """Whether the tile holds fewer than 256 hashes or entries (the tree's right edge)."""
        return self.width < TILE_WIDTH

    @property
    def path(self) -> str:
        """The path under the log prefix, e.g. ``tile/1/x001/234.p/17``."""
        kind = "entries" if self.entries else str(self.level)
        suffix = f".p/{self.width}" if self.partial else ""
        return f"tile/{kind}/{encode_index(self.index)}{suffix}"

    @property
    def node_level(self) -> int:
        """The tree level of the hashes in the tile: complete subtrees of ``2**node_level``."""
        return TILE_HEIGHT * self.level

    @property
    def first_node(self) -> int:
        """The index, at :attr:`node_level`, of the tile's first hash (or entry)."""
        return self.index * TILE_WIDTH

    @property
    def end(self) -> int:
        """One past the last log entry the tile spans: it exists in trees at least this big."""
        return (self.first_node + self.width) << self.node_level

    def within(self, size: int) -> bool:
        """Whether a tree of ``size`` entries holds everything the tile spans."""
        return self.end <= size


def parse_tile_path(path: str) -> Tile:
    """The tile a path names; :class:`TilePathError` unless it is the tile's canonical path.

    Strict: no leading zeros in ``L`` or ``W``, no superfluous ``x000/`` groups, no ``.p/256``.
    """
    match = _PATH.fullmatch(path)
    if match is None:
        raise TilePathError(f"{path!r} is not a tile path")
    level = match["level"]
    width = match["width"]
    try:
        tile = Tile(
            level=0 if level == "entries" else int(level),
            index=int(match["index"].replace("x", "").replace("/", "")),
            width=int(width) if width else TILE_WIDTH,
            entries=level == "entries",
        )
    except ValueError as exc:
        raise TilePathError(f"{path!r} is not a tile path: {exc}") from None
    if tile.path != path:
        raise TilePathError(f"{path!r} is not a canonical tile path (that is {tile.path!r})")
    return tile


def tiles_for_size(size: int, *, entries: bool = True) -> Iterator[Tile]:
    """Every tile of a tree of ``size`` entries: all full ones and the partial right edge of each
    level, level by level, then (with ``entries``) the entry bundles. A tree of 70,000 has 273
    full level 0 tiles and one of width 112, a full level 1 tile and one of width 17, and a
    level 2 tile of width 1."""
    if size < 0:
        raise ValueError(f"a tree size is not negative, got {size}")
    level = 0
    while level <= MAX_LEVEL and size >> (TILE_HEIGHT * level) > 0:
        yield from _level_tiles(level, size >> (TILE_HEIGHT * level), entries=False)
        level += 1
    if entries:
        yield from _level_tiles(0, size, entries=True)


def _level_tiles(level: int, count: int, *, entries: bool) -> Iterator[Tile]:
    full, rest = divmod(count, TILE_WIDTH)
    for index in range(full):
        yield Tile(level, index, entries=entries)
    if rest:
        yield Tile(level, full, rest, entries=entries)


def entry_bundle(entries: Iterable[bytes]) -> bytes:
    """Entries as a C2SP entry bundle: each behind its big-endian uint16 length.

    Raises :class:`ValueError` for an entry over :data:`MAX_ENTRY_SIZE`; the log refuses such
    entries before writing them (:class:`ledger.errors.EntryTooLargeError`), so one here means
    the store holds an entry the log never accepted.
    """
    parts = []
    for data in entries:
        if len(data) > MAX_ENTRY_SIZE:
            raise ValueError(
                f"an entry of {len(data)} bytes does not fit an entry bundle "
                f"(at most {MAX_ENTRY_SIZE})"
            )
        parts.append(struct.pack(">H", len(data)))
        parts.append(data)
    return b"".join(parts)


async def read_tile(store: Store, log_id: str, tile: Tile, size: int) -> bytes | None:
    """The bytes of ``tile`` of the log, or None unless it lies within ``size`` (pass the latest
    checkpoint's size, so that every tile served agrees with a signed checkpoint).

    Raises :class:`ProofError` if the store lacks a node or entry the tile needs.
    """
    if not tile.within(size):
        return None
    first, end = tile.first_node, tile.first_node + tile.width
    if tile.entries:
        stored = await store.read(log_id, first, end)
        if len(stored) != tile.width:
            raise ProofError(f"entries {first}..{end - 1} are not all stored")
        return entry_bundle(entry.data for entry in stored)
    hashes = await store.node_range(log_id, tile.node_level, first, end)
    if len(hashes) != tile.width:
        raise ProofError(
            f"tree nodes ({tile.node_level}, {first}..{end - 1}) are not all stored: "
            "the log is incomplete"
        )
    return b"".join(hashes)


async def export_tiles(store: Store, log_id: str, out: Path) -> tuple[int, int]:
    """Write the log as a static C2SP tiled log under ``out``: ``out/checkpoint`` and every hash
    tile and entry bundle of its size, byte for byte what the HTTP routes serve, so that any
    static file server (nginx, object storage) can serve the tree.

    The checkpoint is the one the server publishes: the latest the witnesses cosigned, with their
    lines, if the log has any (it is served with ``serve --witness-policy``), else the latest
    signed one.

    Each file is written to a temporary name and renamed, and the checkpoint last, so a server
    of ``out`` never shows a checkpoint whose tiles are not all there, nor half a file. Files
    from an earlier export stay: the bytes at a tile's path never change. Returns the
    checkpoint's size and the number of files written. Raises :class:`ValueError` if the log
    has no checkpoint.
    """
    stored = await store.latest_cosigned_checkpoint(log_id) or await store.latest_checkpoint(log_id)
    if stored is None:
        raise ValueError(f"the log of {log_id!r} has no checkpoint yet: nothing to export")
    written = 0
    for tile in tiles_for_size(stored.size):
        data = await read_tile(store, log_id, tile, stored.size)
        assert data is not None  # every tile of the size lies within it
        _write_file(out, tile.path, data)
        written += 1
    _write_file(out, "checkpoint", stored.note.encode())
    return stored.size, written + 1


def _write_file(root: Path, path: str, data: bytes) -> None:
    target = root.joinpath(*path.split("/"))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(temporary, 0o644)  # published files, for whichever user serves them
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise
