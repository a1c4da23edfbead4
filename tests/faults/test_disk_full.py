"""Threat: the disk under the embedded (SQLite) database fills up in the middle of voting."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bench.loadgen import Book
from tests.factories import ELECTION
from tests.faults.trial import Trial, probe, run_load, servers, when

pytestmark = pytest.mark.slow

VOTERS = 1500


@contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (root only), unmounted afterwards."""
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def grow(path: Path, size: str) -> None:
    """Free space: the disk grows to ``size``."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def log_counts(db: Path) -> tuple[int, ...]:
    """Log size, entries, tree nodes and checkpoints, read-only."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT (SELECT size FROM logs WHERE id = ?), (SELECT count(*) FROM entries),"
            " (SELECT count(*) FROM nodes), (SELECT count(*) FROM checkpoints)",
            (ELECTION,),
        ).fetchone()
    return tuple(row)


def whole(counts: tuple[int, ...]) -> bool:
    """Entries exactly up to the log's size, and exactly the tree nodes a tree of that size
    stores (its complete subtrees above the leaves: n - popcount(n))."""
    size, entries, nodes, _ = counts
    return entries == size and nodes == size - bin(size).count("1")


async def test_disk_full_refuses_clearly_writes_nothing_half_and_recovers(tmp_path: Path) -> None:
    """On a 2 MiB disk, once it is full writes are refused 503 store-unavailable saying the
    disk is full (some still fit as space comes and goes); the log is whole at every moment:
    entries, tree nodes and size agree. When space is freed the same server resumes by itself;
    every acknowledged ballot is in the log once, totals exact, audit passing."""
    with small_disk(tmp_path / "disk", "2m") as disk:
        db = disk / "uchast.db"
        trial = await Trial.create(f"sqlite:///{db}", tmp_path)
        with servers(trial) as (server,):
            seen: dict[str, Any] = {"samples": []}

            async def fill_then_free(book: Book) -> None:
                await when(lambda: book.transient["503 store-unavailable"] >= 20, timeout=120)
                seen["full at"] = len(book.acknowledged)
                for _ in range(20):
                    seen["samples"].append(log_counts(db))
                    answer = await probe(trial, server, book)
                    if answer[0] == 503:
                        seen["probe"] = answer
                    await asyncio.sleep(0.05)
                seen["refused while full"] = book.transient["503 store-unavailable"]
                grow(disk, "64m")

            book = await run_load(
                trial, lambda: [server.url], trial.electorate(), VOTERS, during=fill_then_free
            )
            assert 0 < seen["full at"] < len(book.acknowledged)
            assert all(whole(counts) for counts in seen["samples"]), seen["samples"]
            status, problem, retry_after = seen["probe"]
            assert (status, problem["code"]) == (503, "store-unavailable"), problem
            assert "disk is full" in problem["detail"] and retry_after
            print(f"disk full after {seen['full at']} acknowledged: {book.summary()}")
            await trial.check(book, [server.url])
            assert whole(log_counts(db))
            assert server.process is not None and server.process.poll() is None
