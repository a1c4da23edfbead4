"""Mirrors no server module: the auditor's own command line (``uchast audit``).

``uchast audit SOURCE --log-vkey VKEY --admin-vkey VKEY [--results FILE] [--checkpoint FILE]...``.

Prints a summary and each violation as one line; exits 0 only when every check passes, 1 when
some check fails, 2 when the audit cannot run (bad arguments, unreadable source).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from tally.audit.replay import audit

__all__ = ["build_parser", "main"]


def build_parser(prog: str = "uchast audit") -> argparse.ArgumentParser:
    """The audit command's arguments."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Replay an election's log independently: signatures, Merkle roots and checkpoints, "
            "ballot rules, totals and winners. Exit 0 only when every check passes."
        ),
    )
    parser.add_argument(
        "source",
        metavar="SOURCE",
        help="an exported log file (uchast export log), a server's base URL, or a tiled log "
        "(C2SP tlog-tiles): a URL ending in /log/ (the server's "
        "/v1/elections/ID/log/ or a static copy) or a directory from uchast export tiles",
    )
    parser.add_argument("--log-vkey", required=True, help="the log's public key (C2SP vkey)")
    parser.add_argument(
        "--admin-vkey", required=True, help="the election administrator's public key (vkey)"
    )
    parser.add_argument(
        "--results",
        metavar="FILE",
        help="published results JSON to compare (default: the server's /results, if any)",
    )
    parser.add_argument(
        "--checkpoint",
        metavar="FILE",
        action="append",
        default=[],
        help=(
            "a signed checkpoint saved elsewhere (a witness, a voter's receipt, a newspaper); "
            "the audit fails, naming the file, unless the log is consistent with it "
            "(repeatable)"
        ),
    )
    parser.add_argument(
        "--election", help="election id (for a server URL without /v1/elections/ID)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes verifying signatures (default: one per core; 0: none)",
    )
    parser.add_argument(
        "--chunk", type=int, default=2000, help="entries per work unit (default 2000)"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the verdict line")
    return parser


class ProgressBar:
    """A one-line progress bar on a terminal (standard library only); silent elsewhere."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.2 and done < total:
            return
        self.last = now
        width = 30
        fraction = min(done / total, 1.0) if total else 1.0
        filled = int(width * fraction)
        rate = done / (now - self.started) if now > self.started else 0.0
        self.stream.write(
            f"\raudit [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} entries "
            f"({rate:,.0f}/s)"
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\r\x1b[K")
        self.stream.flush()


def main(argv: Sequence[str] | None = None, prog: str = "uchast audit") -> int:
    """Run the audit command; returns the exit status."""
    args = build_parser(prog).parse_args(argv)
    bar = ProgressBar(sys.stderr) if sys.stderr.isatty() else None
    try:
        report = audit(
            args.source,
            args.log_vkey,
            args.admin_vkey,
            election=args.election,
            results=args.results,
            workers=args.workers,
            chunk_size=max(1, args.chunk),
            progress=bar,
            checkpoints=args.checkpoint,
        )
    except ValueError as exc:  # a malformed vkey, a bad URL
        print(f"uchast audit: {exc}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    lines = report.summary()
    for line in lines[:1] if args.quiet else lines:
        print(line)
    if report.violation_counts.get("source") and report.entries == 0:
        return 2
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
