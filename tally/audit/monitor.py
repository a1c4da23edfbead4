"""Mirrors ledger/checkpoint.py (CheckpointJournal) for an outside observer; tests/tally/audit/
test_monitor_*.py run it against real servers.

``uchast monitor URL --log-vkey V``: follows a live log from its C2SP tiles (``URL`` is the log's
tile prefix, ``http://host/v1/elections/E/log/``) and raises an alarm on what no honest log does.

Each poll, the checklist:

1. fetch the checkpoint; it must be signed by ``--log-vkey`` and name the log seen before
   (alarm ``bad-signature``);
2. with ``--witness-policy``, the cosignatures on it (C2SP ``cosignature/v1``) by the policy's
   witnesses must meet its quorum (alarm ``witness-quorum``);
3. it must not be smaller than the last checkpoint seen (alarm ``rollback``), nor of the same
   size with another root (alarm ``split-view``);
4. the leaves added since are folded into the tree of every leaf seen: its root must be the
   checkpoint's, so the new tree extends the old one (alarm ``split-view``). They are the leaf
   hashes of the entry bundles; when those cannot be read (while results are sealed they
   answer 403), the level-0 hash tiles;
5. the new entries are replayed by the incremental audit (:class:`~tally.audit.replay.
   IncrementalAudit`: signatures, keys, ballot rules, totals), which must pass (alarm ``audit``);
   entries that could not be read are audited as soon as they can.

The last checkpoint seen is kept in ``--state FILE``, so a restarted monitor still notices a
rollback (and, re-reading the log, a split view) across restarts; the state only moves forward,
after a poll that passed. On an alarm the monitor prints it, sets the Prometheus gauge
``uchast_monitor_alarm{reason}`` to 1 (on ``--metrics-port``, served on for ``--hold-alarm``
seconds so that it is scraped) and exits with the alarm's code (:data:`EXIT_CODES`).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import FrameType

from tally.audit.crypto import (
    Checkpoint,
    Frontier,
    NoteError,
    VerifierKey,
    leaf_hash,
    open_checkpoint,
)
from tally.audit.policy import Policy, PolicyError, cosigners, parse_policy
from tally.audit.replay import IncrementalAudit
from tally.audit.tiles import (
    TILE_WIDTH,
    TileFormatError,
    TileReader,
    TileUnavailableError,
    tiles_for_size,
)

__all__ = ["EXIT_CODES", "Alarm", "Monitor", "Seen", "build_parser", "main"]

EXIT_CODES = {
    "rollback": 3,
    "split-view": 4,
    "bad-signature": 5,
    "witness-quorum": 6,
    "audit": 7,
}
"""The exit status of each alarm. 0: ``--once`` and every check passed; 1: unused; 2: the
monitor cannot start (arguments, policy or state file); 8: ``--once`` and the log could not be
read."""
EXIT_UNREADABLE = 8
BATCH = 16 * TILE_WIDTH  # entries replayed at a time while catching up


@dataclass(frozen=True)
class Alarm:
    """What the monitor saw that no honest log does: ``reason`` (a key of :data:`EXIT_CODES`)
    and a sentence saying what."""

    reason: str
    message: str

    @property
    def code(self) -> int:
        """The monitor's exit status for this alarm."""
        return EXIT_CODES[self.reason]

    def __str__(self) -> str:
        return f"ALARM {self.reason}: {self.message}"


@dataclass(frozen=True)
class Seen:
    """A checkpoint the monitor has checked: what it states, and its signed note."""

    origin: str
    size: int
    root: bytes
    note: str

    @classmethod
    def of(cls, checkpoint: Checkpoint, note: str) -> Seen:
        return cls(checkpoint.origin, checkpoint.size, checkpoint.root, note)

    @classmethod
    def load(cls, path: str, log_key: VerifierKey) -> Seen | None:
        """The state file's checkpoint (None when there is no file yet); :class:`ValueError`
        when the file is not a checkpoint signed by the log key."""
        try:
            with open(path, encoding="utf-8") as f:
                state = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ValueError(f"state file {path}: {exc}") from None
        note = state.get("checkpoint") if isinstance(state, dict) else None
        try:
            return cls.of(open_checkpoint(note, log_key), str(note))
        except NoteError as exc:
            raise ValueError(f"state file {path}: {exc}") from None

    def save(self, path: str) -> None:
        """Write the state file whole, then rename it over the old one."""
        temporary = f"{path}.tmp"
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump({"checkpoint": self.note, "size": self.size}, f)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Monitor:
    """Follows one log. :meth:`poll` runs the checklist once; nothing is kept but the last
    checkpoint seen, the incremental audit and (on disk) the state file."""

    def __init__(
        self,
        url: str,
        log_vkey: str,
        *,
        admin_vkey: str | None = None,
        policy: Policy | None = None,
        state: str | None = None,
        reader: TileReader | None = None,
        workers: int = 0,
    ) -> None:
        self.reader = reader or TileReader(url)
        self.url = url
        self.log_key = VerifierKey.parse(log_vkey)
        if (
            policy is not None
            and policy.logs
            and all(log.public != self.log_key.public for log in policy.logs)
        ):
            # The policy says which logs its witnesses cosign: quorum on another log means nothing.
            raise ValueError(
                f"the witness policy's log lines do not name the log key {self.log_key.key_id}:"
                " check --log-vkey and --witness-policy"
            )
        self.admin_vkey = admin_vkey
        self.policy = policy
        self.state = state
        self.workers = workers
        self.last = Seen.load(state, self.log_key) if state else None
        self.audit: IncrementalAudit | None = None
        self.tree = Frontier()  # the leaf hashes of every entry read, as the tiles give them
        self.cosigned: set[str] = set()
        self.unreadable: str | None = None  # why the entry bundles could not be read, if so

    @property
    def audited(self) -> int:
        """Entries read and replayed so far."""
        return self.audit.size if self.audit is not None else 0

    def poll(self) -> Alarm | None:
        """One round of the checklist; the alarm raised, or None. Raises
        :class:`TileUnavailableError` or :class:`TileFormatError` when the log cannot be read
        (nothing is concluded then: the next poll tries again)."""
        # 1. The log's signature, on a checkpoint of the log seen before.
        note = self.reader.checkpoint_note()
        try:
            checkpoint = open_checkpoint(note, self.log_key)
        except NoteError as exc:
            return Alarm("bad-signature", f"the checkpoint served does not verify: {exc}")
        seen = Seen.of(checkpoint, note)
        last = self.last
        if last is not None and seen.origin != last.origin:
            return Alarm(
                "bad-signature", f"the checkpoint names the log {seen.origin}, not {last.origin}"
            )
        # 2. The witnesses' quorum.
        if self.policy is not None:
            self.cosigned = cosigners(note, self.policy)
            if not self.policy.satisfied(self.cosigned):
                return Alarm(
                    "witness-quorum",
                    f"the checkpoint of {seen.size} entries is cosigned by "
                    f"{', '.join(sorted(self.cosigned)) or 'no witness'} of the policy: "
                    f"not its quorum ({self.policy.quorum})",
                )
        # 3. Never smaller, never another root at the same size.
        if last is not None and seen.size < last.size:
            return Alarm(
                "rollback",
                f"the log's checkpoint is of {seen.size} entries, fewer than the {last.size} "
                f"of a checkpoint it signed before (root {_b64(last.root)}): the log was "
                "rolled back or truncated",
            )
        if last is not None and seen.size == last.size and seen.root != last.root:
            return Alarm(
                "split-view",
                f"two checkpoints of {seen.size} entries with different roots "
                f"({_b64(last.root)} before, {_b64(seen.root)} now): split view",
            )
        # 4. The leaves since, into the tree: to the size of the state file's checkpoint first
        #    (after a restart), then to the new one.
        targets = [t for t in (last, seen) if t is not None and t.size > self.tree.size]
        if len(targets) == 2 and last is not None and last.size == seen.size:
            targets = [last]  # the same tree: its root was compared in step 3
        if targets:
            alarm = self._extend(targets)
            if alarm is not None:
                return alarm
        # 5. The audit, of every entry once the bundles can be read.
        if self.audited < seen.size:
            try:
                alarm = self._audit_up_to(seen)
            except TileUnavailableError as exc:
                self.unreadable = str(exc)
            else:
                if alarm is not None:
                    return alarm
        if self.audit is not None:
            report = self.audit.report()
            if not report.ok:
                shown = [str(v) for v in report.violations[:5]]
                return Alarm(
                    "audit",
                    f"the audit of the log's first {report.entries} entries failed "
                    f"({report.violation_total} violations): " + "; ".join(shown),
                )
        self.last = seen
        if self.state is not None:
            seen.save(self.state)
        return None

    def _extend(self, targets: list[Seen]) -> Alarm | None:
        """Fold the leaves up to the last target's size into the tree, checking each target's
        root on the way: from the entry bundles (fed to the audit too) while the audit is level
        with the tree, else, or when the bundles cannot be read (sealed results answer 403),
        from the level-0 hash tiles. One pass over the tiles of the newest tree: a static
        mirror has no other partial tiles."""
        start, size = self.tree.size, targets[-1].size
        if self.audited == start:
            try:
                return self._fold(targets, self._bundles(size, start))
            except TileUnavailableError as exc:
                if self.tree.size != start:
                    raise  # part read: the next poll goes on from there
                self.unreadable = str(exc)
        return self._fold(targets, self._hash_tiles(size, start))

    def _bundles(self, size: int, start: int) -> Iterator[tuple[list[bytes], list[bytes] | None]]:
        """From ``start`` on, per entry bundle of the tree of ``size``: leaf hashes, entries."""
        for tile, entries in self.reader.bundles(size, start):
            skip = max(0, start - tile.index * TILE_WIDTH)
            entries = entries[skip:] if skip else entries
            yield [leaf_hash(e) for e in entries], entries

    def _hash_tiles(
        self, size: int, start: int
    ) -> Iterator[tuple[list[bytes], list[bytes] | None]]:
        """From ``start`` on, per level-0 hash tile of the tree of ``size``: leaf hashes."""
        for tile in tiles_for_size(size):
            if (tile.index + 1) * TILE_WIDTH <= start:
                continue
            hashes = self.reader.hash_tile(0, tile.index, tile.width)
            yield hashes[max(0, start - tile.index * TILE_WIDTH) :], None

    def _fold(
        self, targets: list[Seen], chunks: Iterator[tuple[list[bytes], list[bytes] | None]]
    ) -> Alarm | None:
        start = self.tree.size
        pending = list(targets)
        batch: list[bytes] = []  # entries read, not yet fed to the audit
        for hashes, entries in chunks:
            at = 0
            while at < len(hashes):
                goal = pending[0].size if pending else self.tree.size + len(hashes) - at
                take = min(len(hashes) - at, goal - self.tree.size)
                for h in hashes[at : at + take]:
                    self.tree.append(h)
                if entries is not None:
                    batch.extend(entries[at : at + take])
                at += take
                while pending and self.tree.size == pending[0].size:
                    target = pending.pop(0)
                    if entries is not None:
                        alarm = self._feed(batch, [(target.size, target.note)], target.origin)
                        batch = []
                        if alarm is not None:
                            return alarm
                    if self.tree.root() != target.root:
                        return self._split(target, start)
            if len(batch) >= BATCH:
                alarm = self._feed(batch, [], targets[-1].origin)
                batch = []
                if alarm is not None:
                    return alarm
        if pending:
            raise TileFormatError(
                f"the tiles held {self.tree.size} entries, not {pending[-1].size}"
            )
        return None

    def _split(self, target: Seen, start: int) -> Alarm:
        root = _b64(self.tree.root())
        if target is self.last:
            why = (
                f"the checkpoint of {target.size} entries seen before (the state file's, root "
                f"{_b64(target.root)}) is not the tree of the log's first {target.size} entries "
                f"now served (root {root}): the log shows another history (split view)"
            )
        else:
            why = (
                f"the checkpoint of {target.size} entries (root {_b64(target.root)}) is not the "
                f"tree of the log's entries (root {root}): it does not extend the {start} "
                "entries seen before (split view), or the tiles served are not its tree"
            )
        return Alarm("split-view", why)

    def _audit_up_to(self, seen: Seen) -> Alarm | None:
        """Feed the audit, which fell behind the tree while the bundles could not be read, the
        entries up to ``seen`` (whose root the tree has: the audit checks the entries' root)."""
        start = self.audited
        batch: list[bytes] = []
        for _, entries in self._bundles(seen.size, start):
            batch.extend(entries or [])
            if len(batch) >= BATCH and start + len(batch) < seen.size:
                alarm = self._feed(batch, [], seen.origin)
                start, batch = start + len(batch), []
                if alarm is not None:
                    return alarm
        alarm = self._feed(batch, [(seen.size, seen.note)], seen.origin)
        if alarm is None and self.audited != seen.size:
            raise TileFormatError(f"the bundles held {self.audited} entries, not {seen.size}")
        self.unreadable = None
        return alarm

    def _feed(
        self, entries: list[bytes], checkpoints: list[tuple[int, str]], origin: str
    ) -> Alarm | None:
        if self.audit is None:
            if not entries:
                return None
            admin = self.admin_vkey or _admin_of(entries[0])
            if admin is None:
                return Alarm("audit", "entry 0 is not an election entry naming its admin key")
            election = self.reader.election or origin.rsplit("/", 1)[-1]
            try:
                self.audit = IncrementalAudit(
                    self.log_key.vkey,
                    admin,
                    election,
                    source=self.url,
                    origin=origin,
                    workers=self.workers,
                )
            except ValueError as exc:
                return Alarm("audit", f"entry 0 names an admin key that is not a vkey: {exc}")
        self.audit.feed(entries, checkpoints, chunk_size=1024 if self.workers else 2000)
        return None

    def close(self) -> None:
        """Stop the audit's worker processes."""
        if self.audit is not None:
            self.audit.close()


def _admin_of(entry: bytes) -> str | None:
    """The admin key that the election entry (position 0) names: trusted on first use when
    ``--admin-vkey`` is not given (every checkpoint covers it, so it cannot change unseen)."""
    try:
        payload = json.loads(entry)["envelope"]["payload"]
        admin = payload["admin_key"] if payload.get("type") == "election" else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return admin if isinstance(admin, str) else None


# --------------------------------------------------------------------------- metrics


class Metrics:
    """The monitor's Prometheus gauges, in a registry of their own."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry()
        self.alarm = Gauge(
            "uchast_monitor_alarm",
            "1 when the monitor raised this alarm (the log misbehaved), else 0",
            ["reason"],
            registry=self.registry,
        )
        for reason in EXIT_CODES:
            self.alarm.labels(reason).set(0)
        self.size = Gauge(
            "uchast_monitor_checkpoint_size",
            "entries in the last checkpoint that passed every check",
            registry=self.registry,
        )
        self.audited = Gauge(
            "uchast_monitor_entries_audited",
            "entries replayed by the audit",
            registry=self.registry,
        )
        self.checked = Gauge(
            "uchast_monitor_last_check_timestamp_seconds",
            "when a poll last passed every check",
            registry=self.registry,
        )
        self.errors = Counter(
            "uchast_monitor_read_errors",
            "polls that could not read the log (it is tried again)",
            registry=self.registry,
        )

    def serve(self, port: int, host: str) -> None:
        """Serve ``/metrics`` on ``host:port`` from a daemon thread."""
        from prometheus_client import start_http_server

        start_http_server(port, addr=host, registry=self.registry)


# --------------------------------------------------------------------------- command line


def build_parser(prog: str = "uchast monitor") -> argparse.ArgumentParser:
    """The monitor command's arguments."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Follow a live log from its C2SP tiles: every new checkpoint's signature, its "
            "cosignatures against the policy, consistency with the last one seen, and the "
            "audit of the new entries. Exit codes: 3 rollback, 4 split view, 5 bad signature, "
            "6 witness quorum not met, 7 audit violation, 8 (--once) log unreadable, "
            "2 cannot start."
        ),
    )
    parser.add_argument(
        "url", metavar="URL", help="the log's tiles: http://host/v1/elections/E/log/"
    )
    parser.add_argument("--log-vkey", required=True, help="the log's public key (C2SP vkey)")
    parser.add_argument(
        "--admin-vkey",
        help="the election administrator's vkey (default: the one entry 0 names)",
    )
    parser.add_argument(
        "--witness-policy", metavar="FILE", help="C2SP tlog-policy file: the quorum to check"
    )
    parser.add_argument(
        "--state", metavar="FILE", help="keeps the last checkpoint seen, across restarts"
    )
    parser.add_argument(
        "--interval", type=float, default=30.0, help="seconds between polls (default 30)"
    )
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    parser.add_argument("--metrics-host", default="127.0.0.1", help="(default 127.0.0.1)")
    parser.add_argument(
        "--hold-alarm",
        type=float,
        default=300.0,
        help="with --metrics-port, seconds to go on serving the alarm before exiting "
        "(default 300; SIGTERM ends it at once)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes verifying signatures, kept between polls (default 0: in the monitor's "
        "own process; worth it for the first catch-up of a large log)",
    )
    parser.add_argument("--once", action="store_true", help="poll once and exit")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "uchast monitor") -> int:
    """Run the monitor; returns the exit status."""
    args = build_parser(prog).parse_args(argv)
    try:
        policy = None
        if args.witness_policy:
            with open(args.witness_policy, encoding="utf-8") as f:
                policy = parse_policy(f.read())
        monitor = Monitor(
            args.url,
            args.log_vkey,
            admin_vkey=args.admin_vkey,
            policy=policy,
            state=args.state,
            workers=max(0, args.workers),
        )
    except (OSError, PolicyError, ValueError, TileUnavailableError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    metrics = Metrics()
    if args.metrics_port is not None:
        try:
            metrics.serve(args.metrics_port, args.metrics_host)
        except OSError as exc:
            print(
                f"{prog}: cannot serve metrics on port {args.metrics_port}: {exc}", file=sys.stderr
            )
            return 2
    stop = threading.Event()

    def stopping(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    if monitor.last is not None:
        metrics.size.set(monitor.last.size)
        say(f"resuming after checkpoint {monitor.last.size} {_b64(monitor.last.root)}")
    try:
        return _follow(monitor, args, metrics, stop, prog)
    finally:
        monitor.close()


def _follow(
    monitor: Monitor,
    args: argparse.Namespace,
    metrics: Metrics,
    stop: threading.Event,
    prog: str,
) -> int:
    """Poll until an alarm, ``--once``, or SIGTERM; the exit status."""
    shown: tuple[int, int] | None = None  # the checkpoint size and entries audited last said
    while True:
        try:
            alarm = monitor.poll()
        except (TileUnavailableError, TileFormatError) as exc:
            metrics.errors.inc()
            print(f"{prog}: cannot read the log: {exc}", file=sys.stderr, flush=True)
            if args.once:
                return EXIT_UNREADABLE
        else:
            if alarm is not None:
                metrics.alarm.labels(alarm.reason).set(1)  # before the line that announces it
                say(str(alarm))
                if args.metrics_port is not None and not args.once:
                    stop.wait(args.hold_alarm)
                return alarm.code
            assert monitor.last is not None
            metrics.size.set(monitor.last.size)
            metrics.audited.set(monitor.audited)
            metrics.checked.set(time.time())
            if shown != (monitor.last.size, monitor.audited):
                shown = (monitor.last.size, monitor.audited)
                say(_passed(monitor))
        if args.once:
            return 0
        if stop.wait(args.interval):
            return 0


def say(line: str) -> None:
    """One line of the monitor's report, at once (it runs under a supervisor, not a tty)."""
    print(line, flush=True)


def _passed(monitor: Monitor) -> str:
    last = monitor.last
    assert last is not None
    line = (
        f"checkpoint {last.size} {_b64(last.root)}: consistent, {monitor.audited} entries audited"
    )
    if monitor.audited < last.size:
        line = (
            f"checkpoint {last.size} {_b64(last.root)}: consistent (from the hash tiles), "
            f"{monitor.audited} of {last.size} entries audited (the entry bundles cannot be "
            f"read: {monitor.unreadable})"
        )
    if monitor.policy is not None:
        line += f", cosigned by {', '.join(sorted(monitor.cosigned)) or 'none'} (quorum met)"
    return line + ", PASSED"


if __name__ == "__main__":
    sys.exit(main())
