"""Mirrors ledger/tiles.py; tests/tally/audit/test_audit_tiles.py reads what the server serves.

A reader of a C2SP tlog-tiles log (c2sp.org/tlog-tiles), for the auditor and monitors: the
checkpoint, hash tiles and entry bundles, from an http(s) prefix (``.../v1/elections/ID/log/``,
or wherever the tree was copied: nginx, object storage) or a local directory written by
``uchast export tiles``. It reads those resources and nothing else.

- :meth:`TileReader.checkpoint` fetches the checkpoint and verifies its signature;
- :meth:`TileReader.entry_bundle` reads entry bundle ``N`` of width ``W`` as a list of entries;
- :meth:`TileReader.hash_tile` reads hash tile ``(L, N, W)`` as a list of 32-byte hashes;
- :meth:`TileReader.bundles` streams every bundle of a tree size, fetched ahead in parallel;
- :func:`tiles_for_size` names the tiles of a tree size; :class:`TileHashes` checks hash tiles
  against the leaf hashes of the entries, level by level, as they stream by.

Standard library only (``urllib``), like the rest of the auditor.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from tally.audit.crypto import Checkpoint, VerifierKey, node_hash, open_checkpoint

__all__ = [
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "Tile",
    "TileFormatError",
    "TileHashes",
    "TileMissingError",
    "TileReader",
    "TileUnavailableError",
    "is_tiles_location",
    "leaf_hashes",
    "problem_detail",
    "split_bundle",
    "tiles_for_size",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # hashes (or entries) in a full tile
HASH_SIZE = 32
_LOG_PATH = re.compile(r"/log/?\Z")


class TileUnavailableError(Exception):
    """The resource cannot be read: the server is unreachable, answers an error, or the file
    cannot be opened."""


class TileMissingError(TileUnavailableError):
    """The resource does not exist (HTTP 404, or no such file)."""


class TileFormatError(ValueError):
    """A tile or bundle whose bytes do not have the form the spec gives its path."""


@dataclass(frozen=True, slots=True)
class Tile:
    """Hash tile ``index`` of ``level``, or (``entries``) entry bundle ``index``; ``width`` is
    256 for a full tile, 1..255 for a partial one."""

    level: int
    index: int
    width: int = TILE_WIDTH
    entries: bool = False

    @property
    def path(self) -> str:
        """The path under the log's prefix: ``tile/0/x001/234.p/17``, ``tile/entries/005``."""
        groups = []
        n = self.index
        while True:
            groups.append(f"{n % 1000:03d}")
            n //= 1000
            if n == 0:
                break
        index = "/".join(["x" + g for g in reversed(groups[1:])] + [groups[0]])
        kind = "entries" if self.entries else str(self.level)
        suffix = f".p/{self.width}" if self.width < TILE_WIDTH else ""
        return f"tile/{kind}/{index}{suffix}"


def tiles_for_size(size: int, level: int = 0, *, entries: bool = False) -> Iterator[Tile]:
    """The tiles of ``level`` (or, with ``entries``, the entry bundles) in a tree of ``size``:
    the full ones, then the partial one at the right edge if the level has one."""
    count = size >> (TILE_HEIGHT * level)
    full, rest = divmod(count, TILE_WIDTH)
    for index in range(full):
        yield Tile(level, index, entries=entries)
    if rest:
        yield Tile(level, full, rest, entries=entries)


def split_bundle(data: bytes, width: int) -> list[bytes]:
    """The entries of an entry bundle: each behind a big-endian uint16 length. Raises
    :class:`TileFormatError` unless there are exactly ``width`` and nothing follows them."""
    entries: list[bytes] = []
    at, end = 0, len(data)
    while at < end:
        if at + 2 > end:
            raise TileFormatError(f"a length prefix is cut off after {len(entries)} entries")
        length = data[at] << 8 | data[at + 1]
        at += 2
        if at + length > end:
            raise TileFormatError(f"entry {len(entries)} is cut off ({length} bytes announced)")
        entries.append(data[at : at + length])
        at += length
    if len(entries) != width:
        raise TileFormatError(f"the bundle holds {len(entries)} entries, not {width}")
    return entries


def is_tiles_location(location: str) -> bool:
    """Whether ``uchast audit`` reads ``location`` as a tiled log: an http(s) URL whose path
    ends in ``/log`` or ``/log/``, or a directory holding a ``checkpoint`` file."""
    if location.startswith(("http://", "https://")):
        return bool(_LOG_PATH.search(urllib.parse.urlsplit(location).path))
    return os.path.isdir(location) and os.path.isfile(os.path.join(location, "checkpoint"))


class TileReader:
    """Reads a tiled log at ``location``: an http(s) prefix or a local directory.

    Resources are read exactly as named by c2sp.org/tlog-tiles under that prefix; over HTTP,
    gzip-encoded answers are decoded. Missing resources raise :class:`TileMissingError`, others
    that cannot be read :class:`TileUnavailableError`; bytes of the wrong form
    :class:`TileFormatError`. Safe to share between threads.
    """

    def __init__(self, location: str, *, timeout: float = 60.0, parallel: int = 8) -> None:
        self.location = location
        self.timeout = timeout
        self.parallel = max(1, parallel)
        self.remote = location.startswith(("http://", "https://"))
        if self.remote:
            parts = urllib.parse.urlsplit(location)
            if not parts.netloc:
                raise TileUnavailableError(f"{location} is not an http(s) URL")
            self.prefix = location if location.endswith("/") else location + "/"
        else:
            if not os.path.isdir(location):
                raise TileUnavailableError(f"{location} is not a directory")
            self.prefix = location

    @property
    def election(self) -> str | None:
        """The election a server's prefix names (``.../v1/elections/ID/log/``), if it does."""
        if not self.remote:
            return None
        segments = urllib.parse.urlsplit(self.prefix).path.rstrip("/").split("/")
        if len(segments) >= 4 and segments[-4:-2] == ["v1", "elections"] and segments[-1] == "log":
            return urllib.parse.unquote(segments[-2])
        return None

    def read(self, path: str) -> bytes:
        """The bytes of the resource at ``path`` under the prefix (``checkpoint``,
        ``tile/0/000``...)."""
        if not self.remote:
            file = os.path.join(self.prefix, *path.split("/"))
            try:
                with open(file, "rb") as f:
                    return f.read()
            except FileNotFoundError:
                raise TileMissingError(f"{file} does not exist") from None
            except OSError as exc:
                raise TileUnavailableError(f"cannot read {file}: {exc.strerror}") from None
        url = self.prefix + path
        request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip, identity"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data: bytes = response.read()
                encoding = response.headers.get("Content-Encoding", "identity").lower()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise TileMissingError(f"{url}: HTTP 404") from None
            raise TileUnavailableError(f"{url}: HTTP {exc.code}{problem_detail(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise TileUnavailableError(f"cannot reach {url}: {exc}") from None
        if encoding == "gzip":
            try:
                return gzip.decompress(data)
            except (OSError, EOFError) as exc:
                raise TileFormatError(f"{url}: bad gzip encoding: {exc}") from None
        if encoding != "identity":
            raise TileFormatError(f"{url}: unasked-for Content-Encoding {encoding}")
        return data

    def checkpoint_note(self) -> str:
        """The checkpoint as served, unverified (text; invalid UTF-8 replaced)."""
        return self.read("checkpoint").decode("utf-8", "replace")

    def checkpoint(self, log_key: VerifierKey) -> tuple[Checkpoint, str]:
        """The checkpoint, verified with ``log_key`` (:class:`tally.audit.crypto.NoteError`
        if it does not verify), and its note as served."""
        note = self.checkpoint_note()
        return open_checkpoint(note, log_key), note

    def hash_tile(self, level: int, index: int, width: int = TILE_WIDTH) -> list[bytes]:
        """Hash tile ``index`` of ``level`` with ``width`` hashes, as 32-byte hashes."""
        tile = Tile(level, index, width)
        data = self.read(tile.path)
        if len(data) != HASH_SIZE * width:
            raise TileFormatError(f"{tile.path} is {len(data)} bytes, not {HASH_SIZE * width}")
        return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]

    def entry_bundle(self, index: int, width: int = TILE_WIDTH) -> list[bytes]:
        """Entry bundle ``index`` with ``width`` entries (``index * 256`` on), as their bytes."""
        tile = Tile(0, index, width, entries=True)
        try:
            return split_bundle(self.read(tile.path), width)
        except TileFormatError as exc:
            raise TileFormatError(f"{tile.path}: {exc}") from None

    def bundles(self, size: int, start: int = 0) -> Iterator[tuple[Tile, list[bytes]]]:
        """Every entry bundle of a tree of ``size`` from the one holding entry ``start`` on, in
        order, with up to ``parallel`` fetched ahead."""
        wanted = (t for t in tiles_for_size(size, entries=True) if t.index >= start // TILE_WIDTH)
        yield from self._ahead(wanted, lambda t: self.entry_bundle(t.index, t.width))

    def _ahead(
        self, tiles: Iterator[Tile], fetch: Callable[[Tile], list[bytes]]
    ) -> Iterator[tuple[Tile, list[bytes]]]:
        if self.parallel == 1 or not self.remote:
            for tile in tiles:
                yield tile, fetch(tile)
            return
        with ThreadPoolExecutor(self.parallel) as pool:
            inflight: deque[tuple[Tile, Future[list[bytes]]]] = deque()
            try:
                for tile in tiles:
                    inflight.append((tile, pool.submit(fetch, tile)))
                    if len(inflight) >= self.parallel:
                        done, future = inflight.popleft()
                        yield done, future.result()
                while inflight:
                    done, future = inflight.popleft()
                    yield done, future.result()
            finally:
                for _, future in inflight:
                    future.cancel()


class TileHashes:
    """Checks a log's hash tiles against its entries as they stream by, in O(levels) memory.

    Feed the leaf hashes of entries ``0 .. size-1`` in order (:meth:`add`, a bundle at a time),
    then call :meth:`finish`. Each tile of the tree of ``size`` is compared, once its hashes are
    known, with the one the reader serves: level 0 with the leaf hashes, level ``L + 1`` with the
    hashes of the full tiles of level ``L``. Returns what disagrees, as ``(tile path, why)``, in
    the order the tiles complete. Over HTTP the served tiles are fetched ahead in parallel, a
    bounded number at a time; :meth:`close` (or :meth:`finish`) stops that.
    """

    def __init__(self, reader: TileReader, size: int) -> None:
        self.reader = reader
        self.size = size
        self._pending: list[list[bytes]] = []  # per level: hashes of the tile being filled
        self._filled: list[int] = []  # per level: tiles completed so far
        self.problems: list[tuple[str, str]] = []
        ahead = reader.remote and reader.parallel > 1
        self._pool = ThreadPoolExecutor(reader.parallel) if ahead else None
        self._inflight: deque[tuple[Tile, list[bytes], Future[list[bytes]]]] = deque()

    def add(self, leaf_hashes: list[bytes]) -> None:
        """The next leaf hashes, in order."""
        for h in leaf_hashes:
            self._push(0, h)

    def _push(self, level: int, h: bytes) -> None:
        while len(self._pending) <= level:
            self._pending.append([])
            self._filled.append(0)
        run = self._pending[level]
        run.append(h)
        if len(run) == TILE_WIDTH:
            self._compare(Tile(level, self._filled[level]), run)
            self._filled[level] += 1
            self._pending[level] = []
            self._push(level + 1, _subtree_hash(run))

    def finish(self) -> list[tuple[str, str]]:
        """Compare the partial tiles of the right edge; return every disagreement found."""
        for level, run in enumerate(self._pending):
            if run:
                self._compare(Tile(level, self._filled[level], len(run)), run)
        while self._inflight:
            self._settle()
        self.close()
        return self.problems

    def close(self) -> None:
        """Stop fetching ahead (what is not compared yet is dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._inflight.clear()

    def _compare(self, tile: Tile, expected: list[bytes]) -> None:
        if self._pool is None:
            self._check(tile, expected, lambda: self.reader.hash_tile(*_coordinates(tile)))
            return
        future = self._pool.submit(self.reader.hash_tile, *_coordinates(tile))
        self._inflight.append((tile, expected, future))
        while len(self._inflight) > 2 * self.reader.parallel:
            self._settle()

    def _settle(self) -> None:
        tile, expected, future = self._inflight.popleft()
        self._check(tile, expected, future.result)

    def _check(self, tile: Tile, expected: list[bytes], served: Callable[[], list[bytes]]) -> None:
        try:
            hashes = served()
        except (TileUnavailableError, TileFormatError) as exc:
            self.problems.append((tile.path, str(exc)))
            return
        if hashes != expected:
            first = next(i for i, (a, b) in enumerate(zip(hashes, expected, strict=True)) if a != b)
            self.problems.append((tile.path, f"hash {first} is not the tree's"))


def _coordinates(tile: Tile) -> tuple[int, int, int]:
    return tile.level, tile.index, tile.width


def _subtree_hash(hashes: list[bytes]) -> bytes:
    """The Merkle tree hash of 256 consecutive complete subtrees of equal height."""
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


def leaf_hashes(entries: list[bytes]) -> list[bytes]:
    """RFC 9162 leaf hashes of entries."""
    sha256 = hashlib.sha256
    return [sha256(b"\x00" + e).digest() for e in entries]


def problem_detail(exc: urllib.error.HTTPError) -> str:
    """``: <detail>`` of the problem document a server refused with (say, 403 results-sealed:
    no entry is served before voting closes), or nothing."""
    try:
        detail = json.loads(exc.read(4096)).get("detail")
    except (ValueError, AttributeError, OSError):
        return ""
    return f": {detail}" if isinstance(detail, str) else ""
