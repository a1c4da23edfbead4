"""Mirrors ledger/casting.py in log order; tests/tally/audit/test_differential.py proves it.

The auditor's independent replay of an election's log.

The checklist. Every step reports each violation as (entry index or checkpoint size, check name,
expected, found), and has its own error type (``tally.audit.errors``):

 1. Source format (``SourceFormatError``): the header, each line's framing, entries gapless
    0..N-1 and as many as the header (or the latest checkpoint) says; checkpoint lines in
    ascending size.
 2. Entry shape (``EntryShapeError``): each entry is JSON whose bytes are its RFC 8785
    canonical form; members envelope/recorded_at/tags/type; the payload's type is the entry's;
    the election is this one; tags sorted, without repeats, with ``key:<key id>``; the first
    entry defines the election.
 3. Signatures (``SignatureError``): Ed25519 over ``b"uchast/v1\\n" + canonical(payload)`` by a
    key valid at that position for its role: the admin key pinned by ``--admin-vkey`` (and named
    by the election entry), others registered by the admin before the position and not revoked
    before it. The key registry is replayed from the log (names unique, revocations of known
    keys only).
 4. Merkle roots (``CheckpointError``): every checkpoint is signed by ``--log-vkey``, names this
    log (origin ``<deployment>/<election>``), states its size, and its root is the RFC 9162 root
    the auditor computes over the first ``size`` entries; successive checkpoints are consistent
    (from a server, RFC 9162 consistency proofs are fetched and checked too); the last
    checkpoint covers the whole log. Each checkpoint saved elsewhere (``--checkpoint FILE``: a
    witness's, a voter's receipt, a newspaper's) is signed by ``--log-vkey`` for this log, is
    not larger than the log (else the log was rolled back or truncated), and its root is the
    root of the log's first ``size`` entries (else the log shows another history: a split view).
 5. Rules (``RuleViolationError``): each ballot, paper, spoiled ballot and void re-decided as
    ``votes/rules.py`` does (limits, repeats, window, paper deadline, nonces, voids, double
    entry, polling points), see ``tally.audit.ballots``.
 6. Results (``ResultsMismatchError``): totals and winners recomputed (``tally.audit.recount``)
    and compared with the published results, whose log size and root must be the log's.

Steps 1, 2, the signature arithmetic of 3 and the leaf hashes of 4 run on every core
(``tally.audit.entries``), while the main process streams the source and replays the rest in log
order, keeping per-voter state only.
"""

from __future__ import annotations

import base64
import bisect
import copy
import gc
import itertools
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tally.audit.ballots import BallotRules, Definition, Ruled, parse_definition
from tally.audit.crypto import (
    EMPTY_ROOT,
    Checkpoint,
    Frontier,
    NoteError,
    VerifierKey,
    check_consistency,
    open_checkpoint,
)
from tally.audit.entries import (
    ChunkResult,
    ChunkTask,
    Other,
    Record,
    check_chunk,
    defined_election,
    registered_vkey,
)
from tally.audit.entries import record as entry_record
from tally.audit.errors import Violation, error_for
from tally.audit.receipts import proof_checkpoint
from tally.audit.recount import SCORED_KINDS, Ballot, Recount, compare_results, recount
from tally.audit.sources import (
    CheckpointLine,
    Outline,
    Source,
    SourceUnavailableError,
    open_source,
)

__all__ = ["AuditReport", "IncrementalAudit", "SavedCheckpoint", "audit", "audit_strict"]

ROLES = ("admin", "site", "clerk", "supervisor")
WRITERS: dict[str, frozenset[str]] = {
    "election": frozenset({"admin"}),
    "election-amended": frozenset({"admin"}),
    "key-registered": frozenset({"admin"}),
    "key-revoked": frozenset({"admin"}),
    "results-published": frozenset({"admin"}),
    "ballot": frozenset({"site"}),
    "paper-ballot": frozenset({"clerk"}),
    "spoiled-ballot": frozenset({"clerk"}),
    "void": frozenset({"supervisor"}),
    "voter-lookup": frozenset({"clerk"}),
}
_RULED = frozenset({"ballot", "paper-ballot", "spoiled-ballot", "void", "voter-lookup"})
_OTHER_FIELDS = len(Other._fields)
# Lines the main process reads ahead for the workers: key registrations and definitions.
_READ_AHEAD = (
    b'"type":"key-registered"}}\n',
    b'"type":"election"}}\n',
    b'"type":"election-amended"}}\n',
)
KEPT_PER_CHECK = 100
"""Violations kept per check name (all are counted), so a ruined log cannot exhaust memory."""

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class SavedCheckpoint:
    """A checkpoint saved elsewhere (a witness, a voter's receipt, a newspaper): ``name`` says
    where it came from (the file's path) and ``note`` is its signed note as read."""

    name: str
    note: str

    @classmethod
    def read(cls, path: str) -> SavedCheckpoint:
        """The checkpoint in the file at ``path`` (a signed note, a receipt's tlog-proof file or
        a ``uchast monitor --state`` file, whose checkpoint it takes);
        :class:`SourceUnavailableError` when it cannot be read as UTF-8 text."""
        try:
            with open(path, encoding="utf-8", newline="") as f:
                text = f.read()
            if text.startswith("{"):
                return cls(path, _monitor_state_note(text))
            return cls(path, proof_checkpoint(text))
        except OSError as exc:
            raise SourceUnavailableError(f"cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise SourceUnavailableError(f"{path} is not UTF-8 text") from None


def _monitor_state_note(text: str) -> str:
    """The checkpoint note a monitor's state file keeps (``{"checkpoint": note, ...}``), else the
    text itself (it then fails as a note, saying why)."""
    try:
        state = json.loads(text)
    except ValueError:
        return text
    note = state.get("checkpoint") if isinstance(state, dict) else None
    return note if isinstance(note, str) else text


@dataclass(slots=True)
class _Key:
    public: bytes
    role: str
    registered_at: int
    revoked_at: int | None = None
    polling_point: str | None = None
    writes: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.writes = frozenset(t for t, roles in WRITERS.items() if self.role in roles)


@dataclass
class AuditReport:
    """What an audit found: the figures of the log and every violation (none: it passed)."""

    source: str
    election: str
    entries: int = 0
    checkpoints: int = 0
    root: str = ""
    ballots: int = 0
    voters: int = 0
    spoiled: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    winners: dict[str, list[str]] = field(default_factory=dict)
    results_compared: bool = False
    scores: dict[str, int] = field(default_factory=dict)
    """Each project's score (``totals`` are its votes): the sum of points or positional scores
    on cumulative and ordinal ballots, the votes on the others."""
    rechecked: int = 0
    """Entries the main process checked again because what a worker was given turned out not
    to be in force at them (a refused key registration or amendment); 0 on an honest log."""
    violations: list[Violation] = field(default_factory=list)
    violation_counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    lookups: int = 0
    """Clerks' voter lookups admitted."""
    unfollowed_lookups: dict[str, int] = field(default_factory=dict)
    """Per clerk key, its lookups that no paper ballot of the token followed (a statistic)."""
    counted: list[tuple[int, tuple[str, ...]]] | None = None
    """Asked for with ``audit(..., list_counted=True)``: every counted ballot as (the position of
    the entry that made it count, its projects), in log order; None when not asked for."""

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return not self.violation_counts

    @property
    def violation_total(self) -> int:
        return sum(self.violation_counts.values())

    def summary(self) -> list[str]:
        """The report as lines of text: the figures, then one line per violation kept."""
        rate = self.entries / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"audit of {self.election} from {self.source}: "
            + ("PASSED" if self.ok else f"FAILED ({self.violation_total} violations)"),
            f"entries: {self.entries} ({rate:,.0f}/s), checkpoints: {self.checkpoints}, "
            f"root: {self.root}",
            f"counted ballots: {self.ballots}, voters: {self.voters}, spoiled: {self.spoiled}",
        ]
        if self.lookups:
            lines.append(f"voter lookups: {self.lookups}")
            for key, count in sorted(self.unfollowed_lookups.items()):
                lines.append(f"lookups by {key} that no paper ballot followed: {count}")
        for category, funded in self.winners.items():
            lines.append(f"winners in {category}: {', '.join(funded) or '(none)'}")
        lines.append(
            "published results: "
            + (
                "match the recount"
                if self.results_compared and not any(v.step == 6 for v in self.violations)
                else "differ from the recount"
                if self.results_compared
                else "none to compare"
            )
        )
        lines.extend(str(v) for v in self.violations)
        shown = len(self.violations)
        if shown < self.violation_total:
            lines.append(f"... and {self.violation_total - shown} more violations")
        return lines


class _Stop(Exception):
    """Raised inside a strict audit at the first violation."""

    def __init__(self, violation: Violation) -> None:
        super().__init__(str(violation))
        self.violation = violation


class _Auditor:
    """One run of the checklist over one source."""

    def __init__(
        self,
        source: Source,
        log_key: VerifierKey,
        admin: VerifierKey,
        *,
        strict: bool,
        list_counted: bool = False,
    ) -> None:
        self.source = source
        self.log_key = log_key
        self.admin = admin
        self.strict = strict
        self.list_counted = list_counted
        self.report = AuditReport(
            source=getattr(source, "path", getattr(source, "base", "")), election=""
        )
        self.election = ""
        self.origin: str | None = None
        self.frontier = Frontier()
        # Step 3's registry; the admin key is pinned from the start.
        self.keys: dict[str, _Key] = {admin.key_id: _Key(admin.public, "admin", -1)}
        self.names: set[str] = {admin.name}
        self.registry_changes = 0  # registrations and revocations replayed so far
        # Public keys seen in key-registered lines as they are read, for the workers.
        self.hints: dict[str, bytes] = {admin.key_id: admin.public}
        # Election definitions read ahead from the lines, for the workers' stateless rules.
        self.hint_definition: Definition | None = None
        self.lines_cut = 0  # lines cut into chunks so far
        self.listed_size = -1  # the size of the last checkpoint listed so far
        self.hint_definitions: list[Definition] = []
        self.definition: Definition | None = None
        self.rules: BallotRules | None = None
        self.checkpoint_roots: list[tuple[int, bytes]] = []
        self.last_checkpoint = -1
        self.results: Any = None
        self.results_size: int | None = None
        self.snapshot: Recount | None = None
        self.snapshot_root = EMPTY_ROOT
        # Checkpoints saved elsewhere, verified, and the log's root at each of their sizes
        # (noted as the frontier passes it: the leaves are never kept).
        self.saved: list[tuple[str, Checkpoint]] = []
        self.saved_sizes: list[int] = []
        self.saved_roots: dict[int, bytes] = {}

    # -- reporting

    def add(self, violation: Violation) -> None:
        report = self.report
        count = report.violation_counts.get(violation.check, 0)
        report.violation_counts[violation.check] = count + 1
        if count < KEPT_PER_CHECK:
            report.violations.append(violation)
        if self.strict:
            raise _Stop(violation)

    # -- the run

    def run(
        self, workers: int, chunk_size: int, progress: Progress | None, results: Any
    ) -> AuditReport:
        started = time.perf_counter()
        # 1. Source format: the header (file) or the latest checkpoint (server).
        outline = self.source.outline(self.log_key)
        for problem in outline.violations:
            self.add(problem)
        self.election = self.report.election = outline.election
        self.origin = outline.origin
        total = outline.size

        self.results = results if results is not None else self.source.published_results()
        if self.results is not None:
            log = self.results.get("log") if isinstance(self.results, dict) else None
            size = log.get("size") if isinstance(log, dict) else None
            if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
                self.results_size = size
            else:
                self.add(Violation(6, "results-size", "the log size the results count", repr(size)))
            if self.results_size == 0:
                self._take_snapshot()

        done = self._stream(workers, chunk_size, progress, total)
        for problem in self.source.problems:
            self.add(problem)

        # 1. As many entries as announced.
        if done != total:
            self.add(Violation(1, "size", f"{total} entries", f"{done} entries"))
        self._conclude(done)
        self.report.seconds = time.perf_counter() - started
        return self.report

    def _conclude(self, done: int) -> None:
        """The checks that look at the log as a whole, once its ``done`` entries are read."""
        # 4. The last checkpoint covers the whole log; consistency proofs between successive
        #    checkpoints, where the source serves them.
        if self.last_checkpoint != done:
            self.add(
                Violation(
                    4,
                    "coverage",
                    f"a signed checkpoint of all {done} entries",
                    f"the last verified checkpoint is of {self.last_checkpoint}",
                )
            )
        self._consistency()
        # 4. The checkpoints saved elsewhere.
        self._check_saved(done)
        # 6. Totals, winners, and the published results.
        self._finish(done)

    def _stream(
        self,
        workers: int,
        chunk_size: int,
        progress: Progress | None,
        total: int,
        pool: ProcessPoolExecutor | None = None,
    ) -> int:
        """Check and replay the source's chunks, on ``workers`` processes (a ``pool`` of that
        many kept by the caller, else one for this run), or inline when ``workers`` is 0."""
        tasks = self._tasks(chunk_size)
        done = self.frontier.size  # entries replayed before (an incremental audit's feeds)
        if workers <= 0:
            for task in tasks:
                done = self._consume(task, check_chunk(task))
                if progress is not None:
                    progress(done, total)
            return done
        if pool is not None:
            return self._pipeline(pool, workers, tasks, progress, total, done)
        with ProcessPoolExecutor(workers, initializer=gc.disable) as own:
            return self._pipeline(own, workers, tasks, progress, total, done)

    def _pipeline(
        self,
        pool: ProcessPoolExecutor,
        workers: int,
        tasks: Iterator[ChunkTask],
        progress: Progress | None,
        total: int,
        done: int,
    ) -> int:
        """Up to twice ``workers`` chunks checked ahead on the pool, replayed in order."""
        inflight: deque[tuple[ChunkTask, Future[ChunkResult]]] = deque()
        try:
            for task in tasks:
                inflight.append((task, pool.submit(check_chunk, task)))
                while len(inflight) > 2 * workers:
                    task, future = inflight.popleft()
                    done = self._consume(task, future.result())
                    if progress is not None:
                        progress(done, total)
            while inflight:
                task, future = inflight.popleft()
                done = self._consume(task, future.result())
                if progress is not None:
                    progress(done, total)
        finally:
            for _, future in inflight:
                future.cancel()
        return done

    def _tasks(self, chunk_size: int) -> Iterator[ChunkTask]:
        """Cut the entry lines into chunks, each with the checkpoints its entries reach and the
        keys and definition read ahead for it (a chunk ends after a definition line, so that
        one definition holds for the whole of the next)."""
        checkpoints = self.source.checkpoint_lines()
        upcoming: CheckpointLine | None = next(checkpoints, None)
        last_size = self.listed_size

        def notes_upto(size: int) -> list[tuple[int, object]]:
            nonlocal upcoming, last_size
            notes: list[tuple[int, object]] = []
            while upcoming is not None and (upcoming.size is None or upcoming.size <= size):
                line, upcoming = upcoming, next(checkpoints, None)
                if line.problem is not None:
                    self.add(line.problem)
                if line.size is None:
                    continue
                if line.size <= last_size:
                    self.add(
                        Violation(
                            1,
                            "checkpoint-order",
                            f"a size above {last_size}",
                            str(line.size),
                            checkpoint=line.size,
                        )
                    )
                    continue
                last_size = line.size
                notes.append((line.size, line.note))
            return notes

        chunk_size = max(1, chunk_size)
        # The pending chunk: its first line, and how many lines it has.
        start, count = self.lines_cut, 0
        first = start == 0
        pieces: list[bytes] = []
        hint = self.hint_definition

        def chunk() -> ChunkTask:
            nonlocal start, count
            end = start + count
            task = ChunkTask(
                start,
                b"".join(pieces),
                self.election,
                dict(self.hints),
                self.log_key,
                hint,
                notes_upto(end),
            )
            start, count = end, 0
            pieces.clear()
            return task

        for block in self.source.entry_blocks():
            # The block's definitions, each where its line ends; its keys go to the hints.
            stops = [*self._read_ahead(block, hint), (len(block), None)]
            at = 0
            for stop, defined in stops:
                while at < stop:
                    cut, lines = _after_lines(block, at, chunk_size - count, stop)
                    pieces.append(block[at:cut])
                    at, count = cut, count + lines
                    if count >= chunk_size:
                        yield chunk()
                if defined is not None:
                    if count:
                        yield chunk()
                    hint = defined
        end = start + count
        if count or first or upcoming is not None:
            yield chunk()
        self.lines_cut, self.listed_size, self.hint_definition = end, last_size, hint
        while upcoming is not None:
            beyond, upcoming = upcoming, next(checkpoints, None)
            if beyond.problem is not None:
                self.add(beyond.problem)
            if beyond.size is not None:
                self.add(
                    Violation(
                        4,
                        "checkpoint-size",
                        f"at most {end} (the log's size)",
                        str(beyond.size),
                        checkpoint=beyond.size,
                    )
                )

    def _read_ahead(
        self, block: bytes, hint: Definition | None
    ) -> list[tuple[int, Definition | None]]:
        """The key registrations and definitions among the block's lines, read before the
        workers need them: keys go to the hints; returned, in order, is each definition line's
        end (where its chunk must end) with the definition (None when it does not parse)."""
        found: list[tuple[int, bytes]] = []
        for ending in _READ_AHEAD:
            at = block.find(ending)
            while at >= 0:
                end = at + len(ending)
                found.append((end, block[block.rfind(b"\n", 0, at) + 1 : end - 1]))
                at = block.find(ending, end)
        stops: list[tuple[int, Definition | None]] = []
        for end, line in sorted(found):
            vkey = registered_vkey(line)
            if vkey is not None:
                self.hints.setdefault(vkey.key_id, vkey.public)
                continue
            defined = defined_election(line)
            if defined is not None:
                if defined != hint:
                    # Known before the main process reaches this line, so it can adopt the
                    # very object the workers of later chunks are given.
                    self.hint_definitions.append(defined)
                hint = defined
                stops.append((end, defined))
        return stops

    def _consume(self, task: ChunkTask, result: ChunkResult) -> int:
        for violation in result.violations:
            self.add(violation)
        start, records = result.start, result.records
        # 4. The chunk's leaves into the tree; each checkpoint checked at its size.
        for size, checkpoint, why in result.checkpoints:
            self._grow(result.leaves, start, size)
            self._checkpoint(size, checkpoint, why)
        self._grow(result.leaves, start, start + len(records))
        # 3 and 5, in log order; the recount's snapshot at the published results' size.
        count = len(records)
        at = self.results_size
        if at is not None and start < at <= start + count:
            self._replay(task, records, 0, at - start)
            self._take_snapshot()
            self._replay(task, records, at - start, count)
        else:
            self._replay(task, records, 0, count)
        return start + count

    def _replay(self, task: ChunkTask, records: list[Record], offset: int, end: int) -> None:
        """Steps 3 and 5 for ``records[offset:end]``, in log order. Most entries are valid
        online ballots (short records, see FIRST_BALLOT) of voters with no history by a key
        valid here: the rules admit runs of them at once. Anything else goes to _entry."""
        signers: frozenset[str] = frozenset()
        changes = -1
        while offset < end:
            rules = self.rules
            # Whether the workers applied the definition in force.
            if rules is not None and task.definition is self.definition:
                if changes != self.registry_changes:
                    signers = self._ballot_signers(task, task.start + offset)
                    changes = self.registry_changes
                offset = rules.admit_first_ballots(task.start, records, offset, end, signers)
                if offset == end:
                    return
            self._entry(task.start + offset, records[offset], task, offset)
            offset += 1

    def _ballot_signers(self, task: ChunkTask, index: int) -> frozenset[str]:
        """The keys whose online ballots at ``index`` and after are valid as far as step 3 goes
        (until the registry changes): registered before, not revoked, a site's, and the very
        key the worker checked them with."""
        return frozenset(
            key_id
            for key_id, key in self.keys.items()
            if key.registered_at < index
            and key.revoked_at is None
            and "ballot" in key.writes
            and task.keys.get(key_id) is key.public
        )

    def _grow(self, leaves: bytes, start: int, size: int) -> None:
        """Extend the tree with the chunk's leaves (the chunk starts at ``start``) up to
        ``size``, noting the root at the published results' size and at the sizes of the
        saved checkpoints on the way."""
        frontier = self.frontier
        at = self.results_size
        stops = self.saved_sizes[
            bisect.bisect_right(self.saved_sizes, frontier.size) : bisect.bisect_right(
                self.saved_sizes, size
            )
        ]
        if at is not None and frontier.size < at <= size:
            stops = sorted({*stops, at})
        for stop in stops:
            frontier.extend(leaves[32 * (frontier.size - start) : 32 * (stop - start)])
            root = frontier.root()
            if stop == at:
                self.snapshot_root = root
            if stop in self.saved_roots:
                self.saved_roots[stop] = root
        frontier.extend(leaves[32 * (frontier.size - start) : 32 * (size - start)])

    # -- step 4, checkpoints saved elsewhere

    def expect_saved(self, saved: Sequence[SavedCheckpoint]) -> None:
        """Verify each saved checkpoint's signature before the entries stream by, and note its
        size, so that the log's root at that size is kept on the way."""
        for item in saved:
            try:
                checkpoint = open_checkpoint(item.note, self.log_key)
            except NoteError as exc:
                self.add(
                    Violation(
                        4,
                        "saved-checkpoint",
                        f"a checkpoint signed by {self.log_key.key_id}",
                        str(exc),
                        file=item.name,
                    )
                )
                continue
            self.saved.append((item.name, checkpoint))
            if checkpoint.size not in self.saved_roots:
                bisect.insort(self.saved_sizes, checkpoint.size)
                self.saved_roots[checkpoint.size] = EMPTY_ROOT
        if 0 in self.saved_roots:
            self.saved_sizes.remove(0)  # the empty tree's root is known already

    def _check_saved(self, done: int) -> None:
        """Each saved checkpoint names this log, is not beyond its ``done`` entries, and has
        the root of that many of them."""
        for name, checkpoint in self.saved:
            size = checkpoint.size
            origin = self.origin
            if (origin is not None and checkpoint.origin != origin) or not (
                checkpoint.origin.endswith("/" + self.election)
            ):
                self.add(
                    Violation(
                        4,
                        "saved-checkpoint",
                        f"the origin {origin or '.../' + self.election}",
                        checkpoint.origin,
                        checkpoint=size,
                        file=name,
                    )
                )
            elif size > done:
                self.add(
                    Violation(
                        4,
                        "rolled-back",
                        f"a log of at least {size} entries",
                        f"{done}: the log is shorter than checkpoint {name} ({size} entries): "
                        "rolled back or truncated",
                        checkpoint=size,
                        file=name,
                    )
                )
            elif checkpoint.root != self.saved_roots[size]:
                self.add(
                    Violation(
                        4,
                        "split-view",
                        f"the root of the log's first {size} entries, "
                        f"{_b64(self.saved_roots[size])}",
                        f"{_b64(checkpoint.root)}: {name} is not consistent with the log "
                        "(split view)",
                        checkpoint=size,
                        file=name,
                    )
                )

    # -- steps 3 and 5, per entry in log order

    def _entry(self, index: int, fields: Record, task: ChunkTask, offset: int) -> None:
        rules = self.rules
        if fields is not None and len(fields) != _OTHER_FIELDS and rules is not None:
            # A ballot-like entry by a key valid here, checked by the worker under that key
            # and the definition in force.
            ruled = entry_record(fields)
            assert isinstance(ruled, Ruled)
            signer = self.keys.get(ruled.key)
            if (
                ruled.sig
                and signer is not None
                and signer.registered_at < index
                and signer.revoked_at is None
                and ruled.type in signer.writes
                and task.keys.get(ruled.key) is signer.public
                and task.definition is self.definition
            ):
                refusal = rules.admit(index, ruled, signer.polling_point)
                if refusal is not None:
                    self.add(Violation(5, *refusal, entry=index))
                return
        if fields is None:
            if index == 0:
                self.add(
                    Violation(2, "first-entry", "the election entry", "no readable entry", entry=0)
                )
            if rules is not None:
                rules.skip(None)
            return
        record = entry_record(fields)
        entry_type, key = record.type, record.key
        if index == 0 and entry_type != "election":
            self.add(Violation(2, "first-entry", "the election entry", entry_type, entry=0))
        payload = record.payload if isinstance(record, Other) else None
        signer = self._signer(index, entry_type, payload, key)
        if signer is None:
            if rules is not None:
                rules.skip(entry_type, getattr(record, "voter", None))
            return
        if task.keys.get(key) is not signer.public or (
            entry_type in _RULED and task.definition is not self.definition
        ):
            # The worker checked under a key or definition read ahead that turned out not to
            # be the one in force here (a refused registration or amendment): check again.
            again = self._recheck(task, offset, {key: signer.public})
            if again is None:
                return
            record = entry_record(again)
        if not record.sig:
            self.add(
                Violation(
                    3, "signature", f"a valid Ed25519 signature by {key}", "invalid", entry=index
                )
            )
            if rules is not None:
                rules.skip(entry_type, getattr(record, "voter", None))
            return
        if isinstance(record, Other):
            if entry_type in ("key-registered", "key-revoked"):
                self._registry(index, entry_type, record.payload)
            elif entry_type in ("election", "election-amended"):
                self._definition(index, entry_type, record.payload, record.recorded_at)
            if rules is not None and rules is self.rules:
                rules.skip(entry_type)
            return
        if rules is None:
            return
        refusal = rules.admit(index, record, signer.polling_point)
        if refusal is not None:
            check, expected, found = refusal
            self.add(Violation(5, check, expected, found, entry=index))

    def _recheck(self, task: ChunkTask, offset: int, keys: dict[str, bytes]) -> Record:
        self.report.rechecked += 1
        line = task.lines()[offset]
        again = ChunkTask(
            task.start + offset, line + b"\n", self.election, keys, self.log_key, self.definition
        )
        return check_chunk(again).records[0]

    def _signer(
        self, index: int, entry_type: str, payload: dict[str, Any] | None, key: str
    ) -> _Key | None:
        """Step 3: the key that may sign this entry at this position, or None (reported)."""
        if entry_type == "election":
            if index != 0:
                self.add(
                    Violation(
                        3,
                        "election-entry",
                        "the election entry at position 0 only",
                        f"another at {index}",
                        entry=index,
                    )
                )
                return None
            admin_key = payload.get("admin_key") if payload is not None else None
            if admin_key != self.admin.vkey:
                self.add(
                    Violation(3, "admin-key", self.admin.vkey, str(admin_key)[:80], entry=index)
                )
                return None
            if key != self.admin.key_id:
                self.add(
                    Violation(3, "signer", f"the admin key {self.admin.key_id}", key, entry=index)
                )
                return None
            return self.keys[key]
        record = self.keys.get(key)
        if record is None or record.registered_at >= index:
            self.add(
                Violation(3, "unknown-key", "a key registered before this entry", key, entry=index)
            )
            return None
        if record.revoked_at is not None and record.revoked_at < index:
            self.add(
                Violation(
                    3,
                    "key-revoked",
                    f"a key not revoked (revoked at {record.revoked_at})",
                    key,
                    entry=index,
                )
            )
            return None
        if record.role not in WRITERS[entry_type]:
            self.add(
                Violation(
                    3,
                    "role",
                    f"a {'/'.join(sorted(WRITERS[entry_type]))} key for {entry_type}",
                    f"{record.role} key {key}",
                    entry=index,
                )
            )
            return None
        return record

    def _registry(self, index: int, entry_type: str, payload: dict[str, Any]) -> None:
        """Step 3: replay a key registration or revocation signed by the admin."""
        if entry_type == "key-registered":
            try:
                vkey = VerifierKey.parse(payload.get("vkey"))
            except ValueError as exc:
                self.add(Violation(3, "key-registration", "a C2SP vkey", str(exc), entry=index))
                return
            role = payload.get("role")
            point = payload.get("polling_point")
            if role not in ROLES:
                self.add(
                    Violation(
                        3,
                        "key-registration",
                        f"a role of {', '.join(ROLES)}",
                        repr(role),
                        entry=index,
                    )
                )
            elif point is not None and (role != "clerk" or not isinstance(point, str)):
                self.add(
                    Violation(
                        3,
                        "key-registration",
                        "a polling point for clerks only",
                        repr(point),
                        entry=index,
                    )
                )
            elif vkey.name in self.names:
                self.add(
                    Violation(
                        3,
                        "key-registration",
                        "a key name new in this election",
                        vkey.name,
                        entry=index,
                    )
                )
            else:
                if role == "clerk" and point is None:
                    # Flagged, yet registered: its ballots are still checked one by one.
                    self.add(
                        Violation(
                            3,
                            "key-registration",
                            "a polling point for a clerk key",
                            "none",
                            entry=index,
                        )
                    )
                self.names.add(vkey.name)
                # The same bytes object as the read-ahead key, so _entry compares by identity.
                public = self.hints.get(vkey.key_id)
                public = public if public == vkey.public else vkey.public
                self.keys[vkey.key_id] = _Key(public, role, index, polling_point=point)
                self.registry_changes += 1
            return
        target = payload.get("key")
        record = self.keys.get(target) if isinstance(target, str) else None
        if record is None or record.revoked_at is not None:
            self.add(
                Violation(
                    3,
                    "key-revocation",
                    "a registered key not yet revoked",
                    repr(target),
                    entry=index,
                )
            )
            return
        record.revoked_at = index
        self.registry_changes += 1

    def _definition(
        self, index: int, entry_type: str, payload: dict[str, Any], recorded_at: str
    ) -> None:
        try:
            definition = parse_definition(payload.get("definition"))
        except ValueError as exc:
            self.add(
                Violation(2, "definition", "an election definition", str(exc)[:80], entry=index)
            )
            return
        if definition.id != self.election:
            self.add(
                Violation(
                    2,
                    "definition",
                    f"the definition of {self.election}",
                    definition.id,
                    entry=index,
                )
            )
            return
        # Use the definition object the workers were given when it is the same, so that
        # _entry can tell by identity whether they applied the one in force.
        definition = next((d for d in self.hint_definitions if d == definition), definition)
        if entry_type == "election":
            self.definition = definition
            self.rules = BallotRules(definition)
            self.rules.skip("election")  # position 0 itself
            return
        current = self.definition
        if current is None or self.rules is None:
            return
        opens = _stamp(current.opens)
        if recorded_at >= opens:
            self.add(
                Violation(
                    5, "amendment", f"before voting opens ({opens})", recorded_at, entry=index
                )
            )
            return
        self.definition = definition
        self.rules.definition = definition

    # -- step 4

    def _checkpoint(self, size: int, checkpoint: Checkpoint | None, problem: str) -> None:
        self.report.checkpoints += 1
        if checkpoint is None:
            self.add(
                Violation(
                    4,
                    "checkpoint-signature",
                    f"a note signed by {self.log_key.key_id}",
                    problem,
                    checkpoint=size,
                )
            )
            return
        if checkpoint.size != size:
            self.add(
                Violation(
                    4,
                    "checkpoint-size",
                    f"the listed size {size}",
                    str(checkpoint.size),
                    checkpoint=size,
                )
            )
            return
        if self.origin is None:
            self.origin = checkpoint.origin
        if checkpoint.origin != self.origin or not checkpoint.origin.endswith("/" + self.election):
            self.add(
                Violation(
                    4,
                    "origin",
                    f"{self.origin} (ending /{self.election})",
                    checkpoint.origin,
                    checkpoint=size,
                )
            )
            return
        root = self.frontier.root()
        if checkpoint.root != root:
            self.add(Violation(4, "root", _b64(root), _b64(checkpoint.root), checkpoint=size))
            return
        self.last_checkpoint = size
        self.checkpoint_roots.append((size, root))

    def _consistency(self) -> None:
        roots = [(s, r) for s, r in self.checkpoint_roots if s > 0]
        for (old, old_root), (new, new_root) in itertools.pairwise(roots):
            try:
                proof = self.source.consistency_proof(old, new)
            except SourceUnavailableError as exc:
                self.add(
                    Violation(
                        4, "consistency", f"a proof from {old} to {new}", str(exc), checkpoint=new
                    )
                )
                continue
            if proof is None:
                return  # a file has no proofs: the roots above were each recomputed
            why = check_consistency(old, new, old_root, new_root, proof)
            if why is not None:
                self.add(
                    Violation(
                        4, "consistency", f"a valid proof from {old} to {new}", why, checkpoint=new
                    )
                )

    # -- step 6

    def _take_snapshot(self) -> None:
        if self.definition is None or self.rules is None:
            return
        assert self.results_size is not None
        self.snapshot = recount(
            self.definition,
            self._counted(),
            self.rules.spoiled,
            self.results_size,
            self.snapshot_root,
        )

    def _counted(self) -> Sequence[Sequence[Ballot]]:
        """Each voter's counted ballots for the recount: their projects, or where some category
        scores other than 1 per choice (cumulative, ordinal), what each adds to each score."""
        assert self.definition is not None and self.rules is not None
        if any(c.ballot in SCORED_KINDS for c in self.definition.categories.values()):
            return self.rules.counted_scores()
        return self.rules.counted()

    def _finish(self, done: int) -> None:
        report = self.report
        report.entries = done
        report.root = _b64(self.frontier.root())
        if self.definition is None or self.rules is None:
            self.add(
                Violation(5, "definition", "an election definition to apply the rules", "none")
            )
            return
        final = recount(
            self.definition, self._counted(), self.rules.spoiled, done, self.frontier.root()
        )
        report.ballots, report.voters, report.spoiled = final.ballots, final.voters, final.spoiled
        report.lookups = len(self.rules.lookups)
        report.unfollowed_lookups = self.rules.unfollowed_lookups()
        report.totals = final.votes
        report.scores = final.scores
        report.winners = final.funded
        if self.list_counted:
            report.counted = self.rules.counted_ballots()
        if self.results is None:
            return
        report.results_compared = True
        if self.results_size is not None and self.results_size > done:
            self.add(
                Violation(
                    6, "results-size", f"at most {done} (the log's size)", str(self.results_size)
                )
            )
            return
        if self.snapshot is not None:
            for problem in compare_results(
                self.results, self.election, self.definition, self.snapshot
            ):
                self.add(problem)


def _after_lines(data: bytes, at: int, lines: int, limit: int) -> tuple[int, int]:
    """Where ``lines`` more lines from ``at`` end in ``data`` (not past ``limit``), and how many
    lines that is (fewer when ``limit`` comes first)."""
    found = 0
    find = data.find
    while found < lines:
        newline = find(b"\n", at, limit)
        if newline < 0:
            break
        at, found = newline + 1, found + 1
    return at, found


def _stamp(moment: datetime) -> str:
    """``moment`` in the form of ``recorded_at``, so that the two compare as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _load_results(results: str | dict[str, Any] | None) -> Any:
    if results is None or isinstance(results, dict):
        return results
    try:
        with open(results, "rb") as f:
            return json.load(f)
    except OSError as exc:
        raise SourceUnavailableError(f"cannot read {results}: {exc.strerror}") from None
    except ValueError:
        raise SourceUnavailableError(f"{results} is not JSON") from None


def _read_saved(
    auditor: _Auditor, checkpoints: Sequence[str | SavedCheckpoint]
) -> list[SavedCheckpoint]:
    """The saved checkpoints given by path read; an unreadable one is a violation naming it."""
    saved: list[SavedCheckpoint] = []
    for item in checkpoints:
        if isinstance(item, SavedCheckpoint):
            saved.append(item)
            continue
        try:
            saved.append(SavedCheckpoint.read(item))
        except SourceUnavailableError as exc:
            auditor.add(Violation(4, "saved-checkpoint", "a readable file", str(exc), file=item))
    return saved


def _run(
    source: str | Source,
    log_vkey: str,
    admin_vkey: str,
    *,
    election: str | None,
    results: str | dict[str, Any] | None,
    workers: int | None,
    chunk_size: int,
    progress: Progress | None,
    strict: bool,
    list_counted: bool = False,
    checkpoints: Sequence[str | SavedCheckpoint] = (),
) -> AuditReport:
    log_key = VerifierKey.parse(log_vkey)
    admin = VerifierKey.parse(admin_vkey)
    try:
        opened = open_source(source, election) if isinstance(source, str) else source
    except SourceUnavailableError as exc:
        problem = Violation(1, "source", "a readable source", str(exc))
        if strict:
            raise _Stop(problem) from None
        return AuditReport(
            source=str(source),
            election=election or "",
            violations=[problem],
            violation_counts={"source": 1},
        )
    auditor = _Auditor(opened, log_key, admin, strict=strict, list_counted=list_counted)
    if workers is None:
        workers = os.cpu_count() or 1
    # The replay builds millions of small objects that live to the end and form no cycles;
    # the cyclic collector would rescan them again and again (a few percent of the run).
    collecting = gc.isenabled()
    gc.disable()
    try:
        auditor.expect_saved(_read_saved(auditor, checkpoints))
        published = _load_results(results)
        return auditor.run(workers, chunk_size, progress, published)
    except SourceUnavailableError as exc:
        auditor.add(Violation(1, "source", "a readable source", str(exc)))
        return auditor.report
    finally:
        opened.close()
        if collecting:
            gc.enable()


def audit(
    source: str | Source,
    log_vkey: str,
    admin_vkey: str,
    *,
    election: str | None = None,
    results: str | dict[str, Any] | None = None,
    workers: int | None = None,
    chunk_size: int = 2000,
    progress: Progress | None = None,
    list_counted: bool = False,
    checkpoints: Sequence[str | SavedCheckpoint] = (),
) -> AuditReport:
    """Replay the log at ``source`` (an exported file's path or a server's URL) through the
    whole checklist and report every violation; never raises for what it finds.

    ``log_vkey`` and ``admin_vkey`` are the C2SP vkeys the auditor trusts (a malformed one raises
    ``ValueError``). ``results``: a results JSON file (or its parsed content) to compare; by
    default a server's published results. ``workers``: processes checking signatures (default:
    one per core; 0 checks inline). ``progress(done, total)`` is called after every chunk.
    ``list_counted``: also list every counted ballot in :attr:`AuditReport.counted`.
    ``checkpoints``: checkpoints saved elsewhere (file paths, or :class:`SavedCheckpoint`), each
    of which must verify and be consistent with the log (step 4).
    """
    return _run(
        source,
        log_vkey,
        admin_vkey,
        election=election,
        results=results,
        workers=workers,
        chunk_size=chunk_size,
        progress=progress,
        strict=False,
        list_counted=list_counted,
        checkpoints=checkpoints,
    )


def audit_strict(
    source: str | Source,
    log_vkey: str,
    admin_vkey: str,
    *,
    election: str | None = None,
    results: str | dict[str, Any] | None = None,
    workers: int | None = None,
    chunk_size: int = 2000,
    checkpoints: Sequence[str | SavedCheckpoint] = (),
) -> AuditReport:
    """As :func:`audit`, but stop at the first violation and raise it as the error of its
    step (:class:`~tally.audit.errors.AuditError` subclasses)."""
    try:
        return _run(
            source,
            log_vkey,
            admin_vkey,
            election=election,
            results=results,
            workers=workers,
            chunk_size=chunk_size,
            progress=None,
            strict=True,
            checkpoints=checkpoints,
        )
    except _Stop as stop:
        raise error_for(stop.violation) from None


# --------------------------------------------------------------------------- incremental


class _Fed(Source):
    """What the caller of :class:`IncrementalAudit` hands over, one feed at a time."""

    def __init__(self, name: str, election: str) -> None:
        self.base = name  # how the report names the source
        self.election = election
        self.problems: list[Violation] = []
        self.blocks: list[bytes] = []
        self.notes: list[CheckpointLine] = []

    def outline(self, log_key: VerifierKey) -> Outline:
        return Outline(self.election, 0, None, [])

    def entry_blocks(self) -> Iterator[bytes]:
        blocks, self.blocks = self.blocks, []
        yield from blocks

    def checkpoint_lines(self) -> Iterator[CheckpointLine]:
        notes, self.notes = self.notes, []
        yield from notes


class IncrementalAudit:
    """The same checklist as :func:`audit`, fed a log a piece at a time, as a monitor reads a
    live log: :meth:`feed` the entries that follow the ones fed before (with the checkpoints
    they reach), ask :meth:`report` for the verdict on the log so far, feed more.

    The state kept between feeds is the replay's own (the tree's frontier, the key registry,
    per-voter history), so each feed costs only its new entries. The verdict on a log fed in
    any number of pieces is the one :func:`audit` gives on the whole
    (tests/tally/audit/test_incremental_audit.py). There are no published results to compare.

    ``workers``: processes checking signatures (0: inline), kept between feeds until
    :meth:`close` (or the end of a ``with`` block).
    """

    def __init__(
        self,
        log_vkey: str,
        admin_vkey: str,
        election: str,
        *,
        source: str = "",
        origin: str | None = None,
        checkpoints: Sequence[str | SavedCheckpoint] = (),
        list_counted: bool = False,
        workers: int = 0,
    ) -> None:
        self.workers = max(0, workers)
        self._pool: ProcessPoolExecutor | None = None
        self._fed = _Fed(source, election)
        auditor = _Auditor(
            self._fed,
            VerifierKey.parse(log_vkey),
            VerifierKey.parse(admin_vkey),
            strict=False,
            list_counted=list_counted,
        )
        auditor.election = auditor.report.election = election
        auditor.origin = origin
        auditor.expect_saved(_read_saved(auditor, checkpoints))
        self._auditor = auditor
        self._seconds = 0.0

    @property
    def size(self) -> int:
        """How many entries were fed: the position the next feed starts at."""
        return self._auditor.frontier.size

    @property
    def root(self) -> bytes:
        """The RFC 9162 root of the entries fed."""
        return self._auditor.frontier.root()

    @property
    def last_checkpoint(self) -> int:
        """The size of the last checkpoint fed that verified (-1: none yet)."""
        return self._auditor.last_checkpoint

    def feed(
        self,
        entries: Sequence[bytes],
        checkpoints: Sequence[tuple[int, str]] = (),
        *,
        chunk_size: int = 2000,
    ) -> None:
        """Replay ``entries`` (each entry's bytes, the Merkle leaf, from position
        :attr:`size` on) and the signed ``checkpoints`` ``(size, note)`` they reach, in
        ascending size (a checkpoint beyond the entries fed so far is a violation)."""
        lines = []
        for offset, entry in enumerate(entries):
            if b"\n" in entry:
                # An entry is one line of the auditor's input: a raw newline (never in RFC 8785
                # JSON) would cut it in two. NUL keeps it one line, and just as non-canonical.
                entry = entry.replace(b"\n", b"\0")
            lines.append(b'{"index":%d,"entry":%b}\n' % (self.size + offset, entry))
        self.feed_lines(b"".join(lines), checkpoints, chunk_size=chunk_size)

    def feed_lines(
        self,
        lines: bytes,
        checkpoints: Sequence[tuple[int, str]] = (),
        *,
        chunk_size: int = 2000,
    ) -> None:
        """As :meth:`feed`, for entry lines of an exported log (``{"index":i,"entry":...}``,
        each ending in a newline)."""
        started = time.perf_counter()
        fed = self._fed
        fed.blocks = [lines] if lines else []
        fed.notes = [CheckpointLine(size, note) for size, note in checkpoints]
        collecting = gc.isenabled()
        gc.disable()
        try:
            if self.workers and self._pool is None:
                self._pool = ProcessPoolExecutor(self.workers, initializer=gc.disable)
            self._auditor._stream(self.workers, chunk_size, None, 0, self._pool)
        finally:
            if collecting:
                gc.enable()
        self._seconds += time.perf_counter() - started

    def report(self) -> AuditReport:
        """The verdict on the entries fed so far, as :func:`audit` gives it on a log of them
        (the last checkpoint must cover them all); feeding may go on afterwards."""
        auditor = self._auditor
        kept = auditor.report
        report = copy.copy(kept)
        report.violations = list(kept.violations)
        report.violation_counts = dict(kept.violation_counts)
        auditor.report = report
        try:
            auditor._conclude(self.size)
        finally:
            auditor.report = kept
        report.seconds = self._seconds
        return report

    def close(self) -> None:
        """Stop the worker processes (a later feed starts them again)."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> IncrementalAudit:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
