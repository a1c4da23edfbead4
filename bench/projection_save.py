"""Projection save benchmark: saving the live tally of a voting day's worth of voters on
PostgreSQL, every few seconds at the peak.

A :class:`tally.projection.Tally` of the Zhytomyr-2018 definition holds ``--voters`` voters
(default 1,252,700, the ×100 voting day; about 20% of them with a paper ballot) and counts per
project, day and channel. Each round, ``--changed`` voters change (default 12,000: 10 s of voting
at the peak of that day, 1,200 ballots/s; most of them new voters, some a second ballot), then
the view is saved both ways, in alternating order, into the same database:

- ours: :meth:`Tally.save_point` (the row without voters, format 3, and the voters changed since
  the last save) and :meth:`ledger.postgres.PostgresStore.save_projection` with those as items,
  as ``api/service.py`` saves it;
- baseline: the whole view with every voter as one JSON blob (format 2, as the service saved it
  before format 3), the same ``save_projection`` with no items, to a projection of its own name.

Per save: the time on the event loop (the longest stall a 1 ms heartbeat task saw, from the
moment the save started: encoding the view, and asyncpg encoding its parameters), the
synchronous part alone (``save_point`` / the blob's encoding), the total time until the save
committed, the bytes of its parameters and the WAL the database wrote meanwhile
(``pg_current_wal_insert_lsn``, and of it the bytes of full-page images, by ``pg_walinspect``:
the first change to a page after a checkpoint logs the whole 8 kB page, and 12,000 random voter
keys touch about as many index pages; both the cluster's, so other work on it adds). Medians over
``--rounds`` and the spread are reported. The first save of ours (every voter written as an
item, as after a rebuild or a format 2 view) is reported apart. At the end the saved view is
loaded (row and items, timed) and restored (timed), and must equal the tally. Before that,
``--alone`` saves of ours alone after a ``CHECKPOINT`` show its WAL without the baseline's
(whose ~100 MB a save force checkpoints, so ours logs whole pages on nearly every save in the
alternated rounds).

    .venv/bin/python bench/projection_save.py [--voters 1252700] [--changed 12000] [--rounds 5]
        [--alone 8]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from ledger.postgres import PostgresStore  # noqa: E402
from tally.projection import PAPER, Tally, VoterKey, voter_name  # noqa: E402
from votes.election import parse_election_toml  # noqa: E402

PG_ADMIN = os.environ.get("UCHAST_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
EXAMPLE = ROOT / "examples" / "zhytomyr-2018.toml"
OURS, BASELINE = "tally", "tally-format-2"
DAYS = ("2018-10-01", "2018-10-02", "2018-10-03", "2018-10-04", "2018-10-05")
PAPER_UNIT = 1 << 32


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def voter(rng: random.Random) -> bytes:
    """A voter token as the tally keeps it (:func:`tally.projection.voter_key`): its 32 bytes."""
    return rng.randbytes(32)


def filled_tally(voters: int, rng: random.Random) -> Tally:
    """A tally holding ``voters`` voters and counts like a voting day's (not from a log: the
    save neither knows nor cares where the counts came from)."""
    election = parse_election_toml(EXAMPLE.read_text(encoding="utf-8"))
    tally = Tally(election)
    projects = [p.id for p in election.projects]
    for day in DAYS:
        for channel in ("online", PAPER):
            tally._cells[(day, channel)] = {p: rng.randrange(1000, 50_000) for p in projects}
    for point in ("council", "bohunskyi", "koroliovskyi"):
        tally._point[point] = {p: rng.randrange(100, 5_000) for p in projects}
    packed = tally._voters
    for _ in range(voters):
        packed[voter(rng)] = PAPER_UNIT if rng.random() < 0.2 else 1
    tally._ballots = {"online": voters, PAPER: voters // 5}
    tally.position = tally.entries = voters * 13 // 10
    return tally


def vote(tally: Tally, changed: int, rng: random.Random) -> None:
    """``changed`` voters change as ballots would change them: 90% new voters, the rest a
    paper ballot of a voter who voted online (keys picked from the newest, as a peak's are)."""
    packed = tally._voters
    recent = list(packed)[-100_000:]
    for n in range(changed):
        key: VoterKey
        if n % 10:
            key = voter(rng)
            packed[key] = 1
        else:
            key = rng.choice(recent)
            packed[key] += PAPER_UNIT
        tally._changed.add(key)
    tally.position += changed
    tally.entries += changed
    tally._views = {}


def format_2_blob(tally: Tally) -> bytes:
    """The whole view as one blob, as ``Tally.snapshot`` wrote it in format 2."""
    state = {
        "format": 2,
        "election": tally.election.id,
        "position": tally.position,
        "entries": tally.entries,
        "spoiled": tally.spoiled,
        "voided": tally.voided,
        "cells": [[day, channel, counts] for (day, channel), counts in tally._cells.items()],
        "points": tally._point,
        "surplus": tally._surplus,
        "ballots": tally._ballots,
        "voters": {voter_name(key): n for key, n in tally._voters.items()},
        "voided_positions": sorted(tally._voided_positions),
        "paper": {},
    }
    return json.dumps(state, ensure_ascii=False, separators=(",", ":")).encode()


class Heartbeat:
    """A task that wakes every millisecond: the longest gap between wakes since ``reset`` is how
    long the event loop was held by something else."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def wal_lsn(conn: Any) -> str:
    return str(await conn.fetchval("SELECT pg_current_wal_insert_lsn()::text"))


async def measured(
    heartbeat: Heartbeat,
    conn: Any,
    encode: Callable[[], tuple[int, bytes, Callable[[], dict[str, int]] | None, bool]],
    save: Callable[[int, bytes, dict[str, int] | None, bool], Awaitable[bool]],
) -> dict[str, Any]:
    """One save: ``encode`` (synchronous), its items named in a worker thread as the service
    names them, then ``save`` (awaited), with what they cost."""
    await asyncio.sleep(0.005)  # the heartbeat's gap so far is not ours
    before = await wal_lsn(conn)
    await asyncio.sleep(0.005)
    heartbeat.longest = 0.0
    started = time.perf_counter()
    position, state, name_items, replace = encode()
    encoded = time.perf_counter()
    items = await asyncio.to_thread(name_items) if name_items is not None else None
    written = await save(position, state, items, replace)
    finished = time.perf_counter()
    await asyncio.sleep(0.003)  # let the heartbeat see the last gap
    wal = await conn.fetchval(
        "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::text::pg_lsn)", before
    )
    fpi = await conn.fetchval(
        "SELECT coalesce(sum(fpi_size), 0) FROM"
        " pg_get_wal_stats($1::text::pg_lsn, pg_current_wal_flush_lsn())",
        before,
    )
    assert written, "the save was refused"
    return {
        "loop_ms": heartbeat.longest * 1000,
        "sync_ms": (encoded - started) * 1000,
        "total_ms": (finished - started) * 1000,
        "bytes": len(state) + sum(len(k) + 8 for k in items or ()),
        "items": len(items or ()),
        "wal_bytes": int(wal),
        "wal_page_image_bytes": int(fpi),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    progress(f"filling a tally of {args.voters:,} voters")
    tally = filled_tally(args.voters, rng)
    name = f"uchast_bench_save_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    store = PostgresStore(url)
    await store.open()
    conn = await asyncpg.connect(url)
    await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
    heartbeat = Heartbeat()
    heartbeat.start()
    try:
        election = tally.election.id

        def ours_encode() -> tuple[int, bytes, Callable[[], dict[str, int]] | None, bool]:
            point = tally.save_point()
            return point.position, point.state, point.items, point.replace

        def baseline_encode() -> tuple[int, bytes, Callable[[], dict[str, int]] | None, bool]:
            return tally.position, format_2_blob(tally), None, False

        async def ours_save(
            position: int, state: bytes, items: dict[str, int] | None, replace: bool
        ) -> bool:
            return await store.save_projection(
                election, OURS, position, state, None, items, replace_items=replace
            )

        async def baseline_save(
            position: int, state: bytes, items: dict[str, int] | None, replace: bool
        ) -> bool:
            return await store.save_projection(election, BASELINE, position, state)

        kinds = {
            "ours": (ours_encode, ours_save),
            "baseline": (baseline_encode, baseline_save),
        }
        progress("first saves (ours: every voter as an item)")
        first = await measured(heartbeat, conn, ours_encode, ours_save)
        await measured(heartbeat, conn, baseline_encode, baseline_save)
        results: dict[str, list[dict[str, Any]]] = {"ours": [], "baseline": []}
        for round_ in range(args.rounds):
            vote(tally, args.changed, rng)
            order = ["ours", "baseline"] if round_ % 2 == 0 else ["baseline", "ours"]
            for kind in order:
                encode, save = kinds[kind]
                results[kind].append(await measured(heartbeat, conn, encode, save))
            progress(
                f"round {round_ + 1}: "
                + "; ".join(
                    f"{k} loop {results[k][-1]['loop_ms']:.1f} ms, total "
                    f"{results[k][-1]['total_ms']:.0f} ms, WAL {results[k][-1]['wal_bytes']:,} B"
                    for k in ("ours", "baseline")
                )
                + f"; load {os.getloadavg()[0]:.1f}"
            )
        # Ours alone after a checkpoint (as every checkpoint_timeout in production): the first
        # saves log their pages whole, the later ones mostly records. In the rounds above the
        # baseline's ~100 MB a save forces checkpoints (max_wal_size), so ours pays page images
        # on nearly every save there.
        await conn.execute("CHECKPOINT")
        alone = []
        for _ in range(args.alone):
            vote(tally, args.changed, rng)
            alone.append(await measured(heartbeat, conn, ours_encode, ours_save))
        progress(
            "ours alone after a checkpoint, WAL per save: "
            + ", ".join(f"{r['wal_bytes'] / 1e6:.1f} MB" for r in alone)
        )
        started = time.perf_counter()
        saved = await store.load_projection(election, OURS, with_items=True)
        assert saved is not None
        loaded = time.perf_counter()
        restored = Tally.restore(tally.election, saved.state, saved.items)
        restore = {
            "load_s": round(loaded - started, 2),
            "restore_s": round(time.perf_counter() - loaded, 2),
        }
        progress(f"restart: {restore}")
        assert restored.position == tally.position and restored._voters == tally._voters
        assert restored.votes == tally.votes
    finally:
        await heartbeat.stop()
        await conn.close()
        await store.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("loop_ms", "sync_ms", "total_ms", "bytes", "wal_bytes", "wal_page_image_bytes"):
            values = [r[key] for r in rows]
            out[key] = round(statistics.median(values), 1)
            out[key + "_range"] = [round(min(values), 1), round(max(values), 1)]
        return out

    ours, baseline = summary(results["ours"]), summary(results["baseline"])
    return {
        "bench": "projection_save",
        "ours": ours["loop_ms"],
        "baseline": baseline["loop_ms"],
        "ratio": round(ours["loop_ms"] / baseline["loop_ms"], 4),
        "unit": "ms on the event loop per save (median)",
        "voters": args.voters,
        "changed_per_save": args.changed,
        "rounds": args.rounds,
        "ours_detail": ours,
        "baseline_detail": baseline,
        "total_ratio": round(ours["total_ms"] / baseline["total_ms"], 4),
        "wal_ratio": round(ours["wal_bytes"] / baseline["wal_bytes"], 4),
        "first_save_ours": {k: round(v, 1) for k, v in first.items()},
        "restart_ours": restore,
        "ours_alone_after_checkpoint": {
            "wal_bytes": [r["wal_bytes"] for r in alone],
            "wal_page_image_bytes": [r["wal_page_image_bytes"] for r in alone],
            "total_ms": [round(r["total_ms"], 1) for r in alone],
        },
        "load": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voters", type=int, default=1_252_700)
    parser.add_argument("--changed", type=int, default=12_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--alone", type=int, default=8, help="saves of ours alone at the end")
    parser.add_argument("--seed", type=int, default=2018)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
