"""Mirrors ledger/export.py and api/log_routes.py; tests/tally/audit/test_audit*.py read both.

Where the log comes from: an exported file (``uchast export log``), a running server, or a
tiled log (C2SP tlog-tiles: the server's ``log/`` prefix, a static copy, ``uchast export tiles``).

Both give the same things, streamed so that memory stays bounded: the entry lines in order
(``{"index":i,"entry":{...}}``), the checkpoints smallest first, the published results if any,
and (server only) RFC 9162 consistency proofs.

File layout (``uchast-log/1``), one JSON document per line::

    {"format": "uchast-log/1", "election": ID, "size": N, "origin": "<deployment>/<election>"}
    {"index":0,"entry":{...}}            N lines, the entry exactly as stored (the Merkle leaf)
    ...
    {"checkpoint": {"size": s, "note": "<signed note>"}}       sizes ascending

The header and checkpoint lines are written by Python's ``json.dumps`` defaults and the entry
lines as shown; each line has that one serialisation, so any altered byte is noticed.

HTTP uses ``urllib.request`` only.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from tally.audit.crypto import Checkpoint, NoteError, VerifierKey, decode_b64, open_checkpoint
from tally.audit.errors import Violation
from tally.audit.tiles import (
    TILE_WIDTH,
    TileFormatError,
    TileHashes,
    TileMissingError,
    TileReader,
    TileUnavailableError,
    is_tiles_location,
    leaf_hashes,
    problem_detail,
)

__all__ = [
    "LOG_FORMAT",
    "CheckpointLine",
    "LogFile",
    "LogServer",
    "LogTiles",
    "Source",
    "SourceUnavailableError",
    "open_source",
]

LOG_FORMAT = "uchast-log/1"
ENTRIES_PER_REQUEST = 1000  # the most a server answers in one page (api/log_routes.py)
CHECKPOINTS_PER_REQUEST = 1000
_BLOCK = 4 << 20
_CHECKPOINT_HEAD = b'{"checkpoint":'


class SourceUnavailableError(Exception):
    """The source cannot be read at all (missing file, server unreachable, HTTP error)."""


@dataclass(frozen=True, slots=True)
class CheckpointLine:
    """A checkpoint as listed by the source: its stated size and signed note, or what is wrong
    with the listing (``problem``; then size and note may be None)."""

    size: int | None
    note: object
    problem: Violation | None = None


@dataclass(slots=True)
class Outline:
    """What a source says of the log before its entries are read."""

    election: str
    size: int
    origin: str | None
    violations: list[Violation]


class Source:
    """A log to audit. Subclasses stream its parts."""

    def outline(self, log_key: VerifierKey) -> Outline:
        raise NotImplementedError

    problems: list[Violation]

    def entry_blocks(self) -> Iterator[bytes]:
        """The entry lines in order, a block of whole lines at a time, each line ending in a
        newline. A last line without one is yielded too, with a newline added, and reported in
        :attr:`problems`."""
        raise NotImplementedError

    def checkpoint_lines(self) -> Iterator[CheckpointLine]:
        raise NotImplementedError

    def published_results(self) -> Any | None:
        """The results the server publishes (None when it has none); files carry none."""
        return None

    def consistency_proof(self, old: int, new: int) -> list[bytes] | None:
        """RFC 9162 proof hashes from ``old`` to ``new``; None when the source has no proofs."""
        return None

    def close(self) -> None:
        """Release what the source holds open."""


# --------------------------------------------------------------------------- file


class LogFile(Source):
    """An exported log file."""

    def __init__(self, path: str, election: str | None = None) -> None:
        self.path = path
        self.election = election
        try:
            self._file: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise SourceUnavailableError(f"cannot read {path}: {exc.strerror}") from None
        self._entries_begin = 0
        self._entries_end = 0
        self.problems: list[Violation] = []

    def close(self) -> None:
        self._file.close()

    def outline(self, log_key: VerifierKey) -> Outline:
        """Step 1 for the header: one line, exactly as the exporter writes it."""
        problems: list[Violation] = []
        line = self._file.readline()
        self._entries_begin = self._file.tell()
        self._entries_end = self._checkpoint_section()
        try:
            header = json.loads(line)
        except ValueError:
            header = None
        if not isinstance(header, dict):
            problems.append(Violation(1, "header", f"a {LOG_FORMAT} header line", _cut(line)))
            return Outline(self.election or "", 0, None, problems)
        if json.dumps(header).encode() + b"\n" != line:
            problems.append(
                Violation(1, "header", "the header as the exporter writes it", _cut(line))
            )
        if list(header) != ["format", "election", "size", "origin"]:
            problems.append(
                Violation(
                    1, "header", "format, election, size, origin", ", ".join(map(str, header))
                )
            )
        if header.get("format") != LOG_FORMAT:
            problems.append(Violation(1, "format", LOG_FORMAT, repr(header.get("format"))))
        election = header.get("election")
        if not isinstance(election, str):
            problems.append(Violation(1, "header", "election: a string", repr(election)))
            election = self.election or ""
        elif self.election is not None and election != self.election:
            problems.append(Violation(1, "election", self.election, election))
        size = header.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            problems.append(Violation(1, "header", "size: a count of entries", repr(size)))
            size = 0
        origin = header.get("origin")
        if origin is not None and not isinstance(origin, str):
            problems.append(Violation(1, "header", "origin: a string", repr(origin)))
            origin = None
        self.election = election
        return Outline(election, size, origin, problems)

    def _checkpoint_section(self) -> int:
        """Where the trailing run of checkpoint lines begins (read backwards, nothing kept)."""
        f = self._file
        end = f.seek(0, os.SEEK_END)
        begin = self._entries_begin
        boundary = pos = end
        # data[:kept] are the file's bytes [pos, boundary): lines are looked at in place, since
        # cutting each off (a copy of up to a block) took 0.7 s for the 13,110 checkpoints of
        # a x10 voting day.
        data = b""
        kept = 0
        while boundary > begin:
            cut = data.rfind(b"\n", 0, kept - 1) if kept else -1
            if cut < 0 and pos > begin:
                step = min(_BLOCK, pos - begin)
                pos -= step
                f.seek(pos)
                data = f.read(step) + data[:kept]
                kept = len(data)
                continue
            if not data.startswith(_CHECKPOINT_HEAD, cut + 1, kept):
                break
            boundary = pos + cut + 1
            kept = cut + 1
        f.seek(self._entries_begin)
        return boundary

    def entry_blocks(self) -> Iterator[bytes]:
        f = self._file
        f.seek(self._entries_begin)
        left = self._entries_end - self._entries_begin
        lines = _WholeLines()
        while left > 0:
            block = f.read(min(_BLOCK, left))
            if not block:
                break
            left -= len(block)
            whole = lines.add(block)
            if whole:
                yield whole
        if lines.carry:
            self.problems.append(lines.unterminated())
            yield lines.carry + b"\n"

    def checkpoint_lines(self) -> Iterator[CheckpointLine]:
        with open(self.path, "rb") as f:
            f.seek(self._entries_end)
            for line in f:
                yield _checkpoint_line(line)


class _WholeLines:
    """Cuts a stream of blocks at newlines: :meth:`add` returns the whole lines so far."""

    def __init__(self) -> None:
        self.carry = b""

    def add(self, block: bytes) -> bytes:
        cut = block.rfind(b"\n") + 1
        if not cut:
            self.carry += block
            return b""
        whole = self.carry + block[:cut] if self.carry else block[:cut]
        self.carry = block[cut:]
        return whole

    @staticmethod
    def unterminated() -> Violation:
        return Violation(1, "line-format", "a newline after every line", "none after the last")


def _checkpoint_line(line: bytes) -> CheckpointLine:
    try:
        value = json.loads(line)
        body = value["checkpoint"]
        size, note = body["size"], body["note"]
    except (ValueError, KeyError, TypeError):
        return CheckpointLine(
            None,
            None,
            Violation(1, "checkpoint-line", '{"checkpoint": {"size", "note"}}', _cut(line)),
        )
    exact = json.dumps({"checkpoint": {"size": size, "note": note}}).encode() + b"\n"
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        return CheckpointLine(None, None, Violation(1, "checkpoint-line", "a size", repr(size)))
    if line != exact:
        return CheckpointLine(
            size,
            note,
            Violation(
                1,
                "checkpoint-line",
                "the line as the exporter writes it",
                _cut(line),
                checkpoint=size,
            ),
        )
    return CheckpointLine(size, note)


def _cut(data: bytes, limit: int = 60) -> str:
    text = repr(data[:limit])
    return text + ("..." if len(data) > limit else "")


# --------------------------------------------------------------------------- server


class LogServer(Source):
    """A running uchast server: ``http://host:port`` and the election, or the election's URL
    ``http://host:port/v1/elections/ID``."""

    def __init__(self, url: str, election: str | None = None, timeout: float = 60.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SourceUnavailableError(f"{url} is not an http(s) URL")
        path = parts.path.rstrip("/")
        segments = path.split("/")
        if election is None and len(segments) >= 4 and segments[-3:-1] == ["v1", "elections"]:
            election = urllib.parse.unquote(segments[-1])
            path = "/".join(segments[:-3])
        elif path.endswith("/v1/elections/" + (election or "")):
            path = path[: -len("/v1/elections/" + (election or ""))]
        if not election:
            raise SourceUnavailableError(
                "say which election with --election, or give the URL /v1/elections/ID"
            )
        self.election = election
        self.base = f"{parts.scheme}://{parts.netloc}{path}/v1/elections/" + urllib.parse.quote(
            election, safe=""
        )
        self.timeout = timeout
        self.size = 0
        self.problems: list[Violation] = []

    def _open(self, path: str, **query: int) -> Any:
        url = self.base + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        try:
            return urllib.request.urlopen(url, timeout=self.timeout)
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, OSError) as exc:
            raise SourceUnavailableError(f"cannot reach {url}: {exc}") from None

    def _json(self, path: str, **query: int) -> Any:
        try:
            with self._open(path, **query) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise SourceUnavailableError(f"{self.base}{path}: HTTP {exc.code}") from None
        except ValueError:
            raise SourceUnavailableError(f"{self.base}{path}: not JSON") from None

    def outline(self, log_key: VerifierKey) -> Outline:
        """The latest signed checkpoint fixes how much of the log is audited."""
        try:
            with self._open("/log/checkpoint") as response:
                note = response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            problem = Violation(1, "latest-checkpoint", "a signed checkpoint", f"HTTP {exc.code}")
            return Outline(self.election, 0, None, [problem])
        try:
            latest: Checkpoint = open_checkpoint(note, log_key)
        except NoteError as exc:
            problem = Violation(4, "checkpoint-signature", f"signed by {log_key.key_id}", str(exc))
            return Outline(self.election, 0, None, [problem])
        self.size = latest.size
        return Outline(self.election, latest.size, latest.origin, [])

    def entry_blocks(self) -> Iterator[bytes]:
        start = 0
        while start < self.size:
            end = min(start + ENTRIES_PER_REQUEST, self.size)
            got = 0
            lines = _WholeLines()
            try:
                with self._open("/log/entries", start=start, end=end) as response:
                    while block := response.read(_BLOCK):
                        whole = lines.add(block)
                        if whole:
                            got += whole.count(b"\n")
                            yield whole
            except urllib.error.HTTPError as exc:
                raise SourceUnavailableError(
                    f"entries from {start}: HTTP {exc.code}{problem_detail(exc)}"
                ) from None
            if lines.carry:
                self.problems.append(lines.unterminated())
                got += 1
                yield lines.carry + b"\n"
            if got == 0:
                return
            start += got

    def checkpoint_lines(self) -> Iterator[CheckpointLine]:
        min_size = 0
        while True:
            page = self._json("/log/checkpoints", min_size=min_size)
            listed = page.get("checkpoints") if isinstance(page, dict) else None
            if not isinstance(listed, list):
                yield CheckpointLine(
                    None,
                    None,
                    Violation(1, "checkpoint-line", '{"checkpoints": [...]}', repr(page)[:60]),
                )
                return
            for item in listed:
                size = item.get("size") if isinstance(item, dict) else None
                if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                    yield CheckpointLine(
                        None, None, Violation(1, "checkpoint-line", "a size", repr(item)[:60])
                    )
                    return
                if size > self.size:
                    return
                yield CheckpointLine(size, item.get("note"))
                min_size = size + 1
            if len(listed) < CHECKPOINTS_PER_REQUEST:
                return

    def published_results(self) -> Any | None:
        try:
            with self._open("/results") as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise SourceUnavailableError(f"{self.base}/results: HTTP {exc.code}") from None
        except ValueError:
            raise SourceUnavailableError(f"{self.base}/results: not JSON") from None

    def consistency_proof(self, old: int, new: int) -> list[bytes] | None:
        body = self._json("/log/proof/consistency", old=old, new=new)
        hashes = body.get("hashes") if isinstance(body, dict) else None
        if not isinstance(hashes, list):
            return []
        try:
            return [decode_b64(h) for h in hashes]
        except ValueError:
            return []


# --------------------------------------------------------------------------- tiles


class LogTiles(Source):
    """A tiled log (c2sp.org/tlog-tiles): the server's ``.../v1/elections/ID/log/``, a copy of
    that tree on any static host, or a directory from ``uchast export tiles``.

    Reads the checkpoint and the entry bundles of its size, and the hash tiles, which must be
    those of the entries' tree (a client that proves inclusion from tiles relies on them);
    nothing else. The entries become the same lines a server's ``/log/entries`` gives.
    """

    def __init__(
        self, location: str, election: str | None = None, *, check_hash_tiles: bool = True
    ) -> None:
        try:
            self.reader = TileReader(location)
        except TileUnavailableError as exc:
            raise SourceUnavailableError(str(exc)) from None
        self.base = location
        self.election = election or self.reader.election
        self.check_hash_tiles = check_hash_tiles
        self.size = 0
        self.note: str | None = None
        self.problems: list[Violation] = []

    def outline(self, log_key: VerifierKey) -> Outline:
        """The checkpoint fixes how much of the log is audited (as a server's latest does)."""
        try:
            checkpoint, note = self.reader.checkpoint(log_key)
        except TileMissingError as exc:
            problem = Violation(1, "latest-checkpoint", "a signed checkpoint", str(exc))
            return Outline(self.election or "", 0, None, [problem])
        except TileUnavailableError as exc:
            raise SourceUnavailableError(str(exc)) from None
        except NoteError as exc:
            problem = Violation(4, "checkpoint-signature", f"signed by {log_key.key_id}", str(exc))
            return Outline(self.election or "", 0, None, [problem])
        # A copy elsewhere may sit under any path: the origin names the election then.
        self.election = self.election or checkpoint.origin.rsplit("/", 1)[-1]
        self.size, self.note = checkpoint.size, note
        return Outline(self.election, checkpoint.size, checkpoint.origin, [])

    def entry_blocks(self) -> Iterator[bytes]:
        hashes = TileHashes(self.reader, self.size) if self.check_hash_tiles else None
        try:
            yield from self._blocks(hashes)
        finally:
            if hashes is not None:
                hashes.close()  # stops fetching ahead if the blocks were not all read

    def _blocks(self, hashes: TileHashes | None) -> Iterator[bytes]:
        try:
            for tile, entries in self.reader.bundles(self.size):
                first = tile.index * TILE_WIDTH
                for offset, data in enumerate(entries):
                    if b"\n" in data:  # canonical JSON has none; it would cut the line
                        self.problems.append(
                            Violation(
                                2,
                                "canonical",
                                "canonical JSON (no raw newline)",
                                _cut(data),
                                entry=first + offset,
                            )
                        )
                        return
                yield b"".join(
                    b'{"index":%d,"entry":%s}\n' % (first + offset, data)
                    for offset, data in enumerate(entries)
                )
                if hashes is not None:
                    hashes.add(leaf_hashes(entries))
        except TileFormatError as exc:
            self.problems.append(Violation(1, "entry-bundle", "a C2SP entry bundle", str(exc)))
            return
        except TileUnavailableError as exc:
            raise SourceUnavailableError(str(exc)) from None
        if hashes is not None:
            for path, why in hashes.finish():
                self.problems.append(
                    Violation(4, "hash-tile", "the hashes of the entries' tree", f"{path}: {why}")
                )

    def checkpoint_lines(self) -> Iterator[CheckpointLine]:
        if self.note is not None:
            yield CheckpointLine(self.size, self.note)


def open_source(source: str, election: str | None = None) -> Source:
    """:class:`LogTiles` for a tiled log (an http(s) URL ending in ``/log/`` or a directory
    holding ``checkpoint``), a :class:`LogServer` for another http(s) URL, else a
    :class:`LogFile`."""
    if is_tiles_location(source):
        return LogTiles(source, election)
    if source.startswith(("http://", "https://")):
        return LogServer(source, election)
    return LogFile(source, election)
