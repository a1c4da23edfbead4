"""Monitor benchmark: what a poll of ``uchast monitor`` costs in the auditor, on a large log.

The monitor replays a live log with :class:`tally.audit.replay.IncrementalAudit`: a catch-up
over the whole log when it starts, then one feed of the new entries (with their checkpoint) and
one verdict (:meth:`~tally.audit.replay.IncrementalAudit.report`) per poll. Measured here, on an
exported log of ``--ballots`` signed ballots (``bench/audit_replay.py`` writes it, a checkpoint
every 512 entries), all in one process as the monitor runs it:

- ``one_shot``: ``audit(log, workers=0)``, the baseline: the same checklist in one pass;
- ``catch_up``: the incremental audit fed the same entries 4,096 at a time, then one verdict;
  inline, and with ``--workers`` processes kept between feeds (``uchast monitor --workers``);
- ``poll``: after the log minus its last ``--polls`` x 512 entries was fed, each further batch of
  512 entries and its checkpoint fed and judged, the p50 and worst of those polls.

    .venv/bin/python bench/monitor_poll.py [--ballots 100000] [--log FILE] [--polls 20]
                                           [--workers 2]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.audit_replay import build_log  # noqa: E402
from tally.audit import audit  # noqa: E402
from tally.audit.replay import IncrementalAudit  # noqa: E402

STEP = 512


def read(path: Path) -> tuple[dict[str, object], list[bytes], dict[int, str]]:
    """The header, the entry bytes and the checkpoints (by size) of an exported log."""
    entries: list[bytes] = []
    notes: dict[int, str] = {}
    with path.open("rb") as f:
        header = json.loads(f.readline())
        for line in f:
            if line.startswith(b'{"checkpoint":'):
                body = json.loads(line)["checkpoint"]
                notes[body["size"]] = body["note"]
            else:
                entries.append(line[line.index(b',"entry":') + 9 : -2])
    return header, entries, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ballots", type=int, default=100_000)
    parser.add_argument("--log", help="exported log to reuse (written first if absent)")
    parser.add_argument("--polls", type=int, default=20)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    path = Path(args.log) if args.log else Path(tempfile.mkdtemp()) / "log.jsonl"
    if not path.exists():
        build_log(path, args.ballots, os.cpu_count() or 1)
    keys = json.loads(Path(f"{path}.keys.json").read_text())
    header, entries, notes = read(path)
    election, origin = str(header["election"]), str(header["origin"])

    started = time.perf_counter()
    whole = audit(str(path), keys["log_vkey"], keys["admin_vkey"], workers=0)
    one_shot = time.perf_counter() - started
    assert whole.ok, whole.summary()

    def fresh(workers: int = 0) -> IncrementalAudit:
        return IncrementalAudit(
            keys["log_vkey"], keys["admin_vkey"], election, origin=origin, workers=workers
        )

    def feed(incremental: IncrementalAudit, begin: int, end: int) -> None:
        reached = [(s, notes[s]) for s in sorted(notes) if begin < s <= end]
        incremental.feed(entries[begin:end], reached)

    catch_up = {}
    for workers in (0, args.workers):
        started = time.perf_counter()
        with fresh(workers) as incremental:
            for begin in range(0, len(entries), 4096):
                feed(incremental, begin, min(begin + 4096, len(entries)))
            report = incremental.report()
        catch_up[workers] = time.perf_counter() - started
        assert report.ok and report.root == whole.root and report.totals == whole.totals

    last = len(entries) - len(entries) % STEP - args.polls * STEP
    incremental = fresh()
    feed(incremental, 0, last)
    polls = []
    for begin in range(last, last + args.polls * STEP, STEP):
        started = time.perf_counter()
        feed(incremental, begin, begin + STEP)
        assert incremental.report().ok
        polls.append(time.perf_counter() - started)
    result = {
        "entries": len(entries),
        "one_shot_s": round(one_shot, 2),
        "one_shot_per_s": round(len(entries) / one_shot),
        "catch_up_s": round(catch_up[0], 2),
        "catch_up_per_s": round(len(entries) / catch_up[0]),
        f"catch_up_{args.workers}_workers_s": round(catch_up[args.workers], 2),
        f"catch_up_{args.workers}_workers_per_s": round(len(entries) / catch_up[args.workers]),
        "poll_512_p50_ms": round(statistics.median(polls) * 1000, 1),
        "poll_512_max_ms": round(max(polls) * 1000, 1),
        "load": os.getloadavg()[0],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
