"""Projection rebuild benchmark: the live tally rebuilt from position 0 of a large PostgreSQL log.

Ours: :func:`tally.export.replay_tally`, as ``uchast export results`` and the service's live
follower read the log: ``store.stream_data`` (an asyncpg server-side cursor over the entries'
bytes, the next chunk requested before the current one is applied) fed to a fresh
:class:`tally.projection.Tally`, from the election entry to the last ballot. Baseline, in the same
run on the same rows: a bare asyncpg cursor over ``uchast_entries`` selecting the same column in
the same order and chunks, with no processing at all (the scan rate the database and driver
allow). Each is
run ``--repeat`` times, interleaved, and the best of each is reported. Target: ours >= 100,000
entries/s.

The log (Zhytomyr-2018 definition, site, three clerk and a supervisor key; ``--n`` ballots, about
10% of them paper, each voter within the limits; plus about 1% spoiled ballots and 0.5% voids of
earlier ballots) is signed in worker processes and written through the ledger's own path
(``Ledger.append_verified``: the sequencer's batched transactions, Merkle nodes and signed
checkpoints), with the tags the rules would give. It is kept in the database ``--db-name`` and
reused while it holds the same plan; ``--rebuild`` writes it again. The rebuilt tally is checked
against the generator's own count.

    .venv/bin/python bench/projection_rebuild.py [--n 200000] [--repeat 3] [--profile]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from ledger.casting import Casting, create_election  # noqa: E402
from ledger.keys import Envelope, SignerKey, sign_envelope  # noqa: E402
from ledger.log import Ledger, VerifiedEnvelope  # noqa: E402
from ledger.postgres import PostgresStore  # noqa: E402
from tally.export import replay_tally  # noqa: E402
from votes.election import election_from_dict, election_to_dict, parse_election_toml  # noqa: E402
from votes.receipts import receipt_code, receipt_tag  # noqa: E402
from votes.tags import nonce_tag, point_tag, project_tag, void_tag, voter_tag  # noqa: E402
from votes.tokens import voter_token  # noqa: E402

PG_ADMIN = os.environ.get("UCHAST_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
EXAMPLE = ROOT / "examples" / "zhytomyr-2018.toml"
KYIV = ZoneInfo("Europe/Kyiv")
SEEDS = {  # fixed key seeds: workers rebuild the keys, reruns reuse the same log
    "admin": b"\x01" * 32,
    "log": b"\x02" * 32,
    "site": b"\x03" * 32,
    "supervisor": b"\x04" * 32,
}
POINTS = ("council", "bohunskyi", "koroliovskyi")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def keys() -> dict[str, SignerKey]:
    found = {
        "admin": SignerKey.from_seed("admin.bench-projection", SEEDS["admin"]),
        "log": SignerKey.from_seed("uchast.bench/log", SEEDS["log"]),
        "site": SignerKey.from_seed("site.bench", SEEDS["site"]),
        "supervisor": SignerKey.from_seed("supervisor.bench", SEEDS["supervisor"]),
    }
    for n, point in enumerate(POINTS):
        found[f"clerk:{point}"] = SignerKey.from_seed(f"clerk.{point}.bench", bytes([16 + n]) * 32)
    return found


def definition(election: str) -> dict[str, Any]:
    document = election_to_dict(parse_election_toml(EXAMPLE.read_text(encoding="utf-8")))
    document["id"] = election
    # Entries are recorded on today's clock: keep paper entry open for an honest audit.
    document["paper_deadline"] = "2100-01-01T00:00:00+00:00"
    document["polling_points"] = [{"id": p, "title": {"uk": p, "en": p}} for p in POINTS]
    return document


# --------------------------------------------------------------------------- the plan

Plan = list[tuple[Any, ...]]
"""("ballot"|"paper", voter, projects, cast_at, point) | ("spoiled", point, cast_at)
| ("void", target index in the plan, its voter)."""


def make_plan(n: int, seed: int) -> tuple[Plan, Counter[str], int]:
    """``n`` ballots (about 10% paper) plus spoiled ballots and voids, in log order; the
    expected per-project totals and the number of counted ballots."""
    rng = random.Random(seed)
    large = [f"L{i:02d}" for i in range(1, 41)]
    small = [f"S{i:02d}" for i in range(1, 41)]
    weights = {p: rng.paretovariate(1.2) for p in large + small}
    start = datetime(2018, 10, 1, 8, 0, tzinfo=KYIV)
    plan: Plan = []
    expected: Counter[str] = Counter()
    ballots: list[int] = []  # plan indexes of ballots not voided
    for voter in range(n):
        picks: list[str] = []
        for group, count in ((large, rng.choice((0, 1, 2, 2))), (small, rng.choice((0, 1, 2)))):
            while count:
                pick = rng.choices(group, weights=[weights[p] for p in group])[0]
                if pick not in picks:
                    picks.append(pick)
                    count -= 1
        if not picks:
            picks = [rng.choice(large)]
        moment = start + timedelta(days=rng.randrange(10), seconds=rng.randrange(13 * 3600))
        cast_at = moment.isoformat()
        paper = rng.random() < 0.10
        plan.append(("paper" if paper else "ballot", voter, picks, cast_at, rng.choice(POINTS)))
        ballots.append(len(plan) - 1)
        expected.update(picks)
        if rng.random() < 0.01:
            plan.append(("spoiled", rng.choice(POINTS), cast_at))
        if rng.random() < 0.005 and len(ballots) > 10:
            target = ballots.pop(rng.randrange(len(ballots) - 5))
            expected.subtract(plan[target][2])
            plan.append(("void", target, plan[target][1]))
    return plan, +expected, len(ballots)


def _sign(job: tuple[str, int, int, Plan]) -> list[tuple[str, Envelope, list[str]]]:
    """Sign plan items ``first..`` in a worker: (role, envelope, tags) in plan order."""
    election, first, offset, items = job
    signers = keys()
    voter_key = b"bench-voter-key-" * 2

    def token(voter: int) -> str:
        return voter_token(voter_key, election, f"{voter + 1:010d}")

    out: list[tuple[str, Envelope, list[str]]] = []
    for index, item in enumerate(items, start=first):
        nonce = str(uuid.UUID(int=random.Random(index).getrandbits(128), version=4))
        kind = item[0]
        if kind in ("ballot", "paper"):
            _, voter, picks, cast_at, point = item
            payload: dict[str, Any] = {
                "type": "ballot" if kind == "ballot" else "paper-ballot",
                "election": election,
                "voter": token(voter),
                "projects": picks,
                "cast_at": cast_at,
                "nonce": nonce,
            }
            tags = [voter_tag(payload["voter"]), nonce_tag(nonce), *map(project_tag, picks)]
            if kind == "paper":
                payload["polling_point"] = point
                tags.append(point_tag(point))
                signer, role = signers[f"clerk:{point}"], "clerk"
            else:
                signer, role = signers["site"], "site"
            envelope = sign_envelope(payload, signer)
            tags.append(receipt_tag(receipt_code(Envelope.parse(envelope).sig)))
        elif kind == "spoiled":
            _, point, cast_at = item
            payload = {
                "type": "spoiled-ballot",
                "election": election,
                "polling_point": point,
                "reason": "unreadable",
                "cast_at": cast_at,
                "nonce": nonce,
            }
            tags = [nonce_tag(nonce), point_tag(point)]
            signer, role = signers[f"clerk:{point}"], "clerk"
            envelope = sign_envelope(payload, signer)
        else:
            target = item[1]
            payload = {
                "type": "void",
                "election": election,
                "entry": offset + target,
                "reason": "entered by mistake",
                "nonce": nonce,
            }
            tags = [void_tag(offset + target), nonce_tag(nonce), voter_tag(token(item[2]))]
            signer, role = signers["supervisor"], "supervisor"
            envelope = sign_envelope(payload, signer)
        out.append((role, Envelope.parse(envelope), tags))
    return out


async def build_log(url: str, election: str, plan: Plan, workers: int) -> int:
    """Write the election through the ledger; returns the log size."""
    signers = keys()
    store = PostgresStore(url, max_size=8)
    await store.open()
    ledger = Ledger(store, election, log_signer=signers["log"], max_batch=4096)
    await ledger.open()
    try:
        registrations: list[tuple[SignerKey, str, str | None]] = [
            (signers["site"], "site", None),
            (signers["supervisor"], "supervisor", None),
        ]
        registrations += [(signers[f"clerk:{p}"], "clerk", p) for p in POINTS]
        await create_election(
            Casting(ledger),
            election_from_dict(definition(election)),
            signers["admin"],
            b"bench-voter-key-" * 2,
            registrations,
        )
        # The fixture's ballots are pre-signed on worker processes with their tags, then
        # appended as they are: a generator of known-valid entries, not a write path.
        offset = await ledger.size()
        chunk = 20_000
        jobs = [(election, s, offset, plan[s : s + chunk]) for s in range(0, len(plan), chunk)]
        started = time.perf_counter()
        with ProcessPoolExecutor(workers) as pool:
            for number, signed in enumerate(pool.map(_sign, jobs)):
                base = offset + number * chunk
                appended = await asyncio.gather(
                    *(
                        ledger.append_verified(VerifiedEnvelope(envelope, role), tags=tags)
                        for role, envelope, tags in signed
                    )
                )
                positions = [a.position for a in appended]
                if positions != list(range(base, base + len(signed))):
                    raise RuntimeError("entries were not sequenced in plan order")
                done = base + len(signed) - offset
                rate = done / (time.perf_counter() - started)
                progress(f"  {done:,} of {len(plan):,} entries written ({rate:,.0f}/s)")
        return await ledger.size()
    finally:
        await ledger.close()
        await store.close()


# --------------------------------------------------------------------------- the runs


async def rebuild(url: str, election: str) -> tuple[float, float, Any]:
    """Entries per second of wall time and of this process's CPU time, and the tally."""
    store = PostgresStore(url, max_size=4)
    await store.open()
    try:
        started, cpu = time.perf_counter(), time.process_time()
        tally, size, _ = await replay_tally(store, election)
        tally.votes  # noqa: B018 - the totals, as results would read them
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await store.close()
    return size / elapsed, size / cpu, tally


async def raw_scan(url: str, election: str, size: int) -> tuple[float, float]:
    """Rows per second of wall time and of this process's CPU time."""
    conn = await asyncpg.connect(url)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        rows = 0
        async with conn.transaction(readonly=True):
            cursor = await conn.cursor(
                "SELECT data FROM uchast_entries WHERE log=$1"
                " AND position >= $2 AND position < $3 ORDER BY position",
                election,
                0,
                size,
            )
            while chunk := await cursor.fetch(5000):
                rows += len(chunk)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await conn.close()
    assert rows == size
    return rows / elapsed, rows / cpu


async def existing_size(url: str, election: str) -> int | None:
    try:
        conn = await asyncpg.connect(url)
    except asyncpg.InvalidCatalogNameError:
        return None
    try:
        size = await conn.fetchval("SELECT size FROM uchast_logs WHERE id=$1", election)
        return None if size is None else int(size)
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await conn.close()


async def recreate_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200_000, help="ballots in the log")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, best kept")
    parser.add_argument("--db-name", default="uchast_bench_projection")
    parser.add_argument("--rebuild", action="store_true", help="write the log again")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="signers")
    parser.add_argument("--seed", type=int, default=2018)
    parser.add_argument("--profile", action="store_true", help="cProfile one rebuild")
    args = parser.parse_args()

    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + args.db_name
    election = f"bench-projection-{args.n}-{args.seed}"
    plan, expected, counted = make_plan(args.n, args.seed)
    wanted = 6 + len(plan)
    size = asyncio.run(existing_size(url, election))
    if args.rebuild or size != wanted:
        progress(f"writing {len(plan):,} entries ({args.n:,} ballots) into {args.db_name} ...")
        asyncio.run(recreate_database(args.db_name))
        size = asyncio.run(build_log(url, election, plan, args.workers))
        assert size == wanted, (size, wanted)
    else:
        progress(f"reusing {args.db_name}: {election}, {size:,} entries")

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        asyncio.run(rebuild(url, election))
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)

    ours: list[tuple[float, float]] = []
    baseline: list[tuple[float, float]] = []
    for run in range(args.repeat):
        rate, cpu_rate, tally = asyncio.run(rebuild(url, election))
        ours.append((rate, cpu_rate))
        if +tally.votes != expected or tally.ballots["online"] + tally.ballots["paper"] != counted:
            raise SystemExit("the rebuilt tally disagrees with the generator's count")
        baseline.append(asyncio.run(raw_scan(url, election, size)))
        progress(
            f"  run {run + 1}: rebuild {rate:,.0f} entries/s ({cpu_rate:,.0f} per CPU-second), "
            f"raw scan {baseline[-1][0]:,.0f} rows/s ({baseline[-1][1]:,.0f} per CPU-second); "
            f"load {os.getloadavg()[0]:.1f}"
        )
    best, base = max(ours), max(baseline)
    print(
        json.dumps(
            {
                "bench": "projection_rebuild",
                "ours": round(best[0], 1),
                "baseline": round(base[0], 1),
                "ratio": round(best[0] / base[0], 3),
                "unit": "entries/s",
                "n": size,
                "ballots": args.n,
                "repeat": args.repeat,
                "ours_per_cpu_second": round(max(r[1] for r in ours), 1),
                "baseline_per_cpu_second": round(max(r[1] for r in baseline), 1),
                "loadavg": round(os.getloadavg()[0], 2),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
