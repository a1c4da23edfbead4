"""Proof benchmark: inclusion and consistency proofs of a 10,000,000-entry log on PostgreSQL.

DESIGN.md §5 asks for inclusion and consistency proofs at 10M entries in at most 5 ms. Ours: the
path ``GET .../log/proof/inclusion`` and ``.../consistency`` take, ``Ledger.inclusion_proof`` /
``Ledger.consistency_proof`` (the proof planned as stored complete-subtree nodes, all fetched in
one query, then folded), for random leaves and sizes of a log of ``--n`` entries, one request at
a time; every proof is checked against the tree's root (not timed). Baseline, in the same run
through the same store: fetching one stored node by its key (``store.nodes`` with one id), the
cheapest read a proof could possibly cost. Reported: p50 and p99 per kind; ``ours`` is the worse
p99 of the two kinds, ``ratio`` ours / baseline p50.

The log is synthetic: entries ``{"n": i}`` (the proof path never reads an entry's bytes, only
its leaf hash), with every complete subtree's hash stored as the sequencer stores them, loaded by
COPY. It is kept in the database ``--db-name`` and reused while it has ``--n`` entries; building
10M takes a few minutes and about 4 GB of disk.

    .venv/bin/python bench/proofs.py [--n 10000000] [--samples 2000] [--rebuild]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from bench.projection_rebuild import existing_size, recreate_database  # noqa: E402
from ledger import merkle  # noqa: E402
from ledger.log import Ledger  # noqa: E402
from ledger.postgres import PostgresStore  # noqa: E402

PG_ADMIN = os.environ.get("UCHAST_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
LOG = "bench-proofs"
CHUNK = 500_000


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def build(url: str, name: str, n: int) -> None:
    await recreate_database(name)
    store = PostgresStore(url)
    await store.open()  # the schema
    await store.create_log(LOG)
    await store.close()
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        level: list[bytes] = []
        for start in range(0, n, CHUNK):
            rows: list[tuple[str, int, str, list[str], bytes, bytes]] = []
            for position in range(start, min(start + CHUNK, n)):
                data = b'{"n":%d}' % position
                leaf = merkle.leaf_hash(data)
                level.append(leaf)
                rows.append((LOG, position, "bench", [], data, leaf))
            await conn.copy_records_to_table(
                "uchast_entries",
                records=rows,
                columns=["log", "position", "type", "tags", "data", "leaf_hash"],
            )
            progress(
                f"  {start + len(rows):,} of {n:,} entries ({time.perf_counter() - started:.0f} s)"
            )
        height = 0
        while len(level) > 1:
            height += 1
            level = [merkle.node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            for start in range(0, len(level), CHUNK):
                await conn.copy_records_to_table(
                    "uchast_nodes",
                    records=[
                        (LOG, height, idx, level[idx])
                        for idx in range(start, min(start + CHUNK, len(level)))
                    ],
                    columns=["log", "level", "idx", "hash"],
                )
            progress(
                f"  level {height}: {len(level):,} nodes ({time.perf_counter() - started:.0f} s)"
            )
        await conn.execute("UPDATE uchast_logs SET size=$2 WHERE id=$1", LOG, n)
        await conn.execute("VACUUM ANALYZE uchast_entries")
        await conn.execute("VACUUM ANALYZE uchast_nodes")
    finally:
        await conn.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(url: str, n: int, samples: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    store = PostgresStore(url)
    await store.open()
    ledger = Ledger(store, LOG, verify_workers=0)  # reads only: no sequencer started
    roots: dict[int, bytes] = {}

    async def root(size: int) -> bytes:
        if size not in roots:
            roots[size] = await ledger.root(size)
        return roots[size]

    try:
        inclusion: list[float] = []
        consistency: list[float] = []
        single: list[float] = []
        for _ in range(samples):
            size = n if rng.random() < 0.5 else rng.randint(n // 2, n)
            index = rng.randrange(size)
            started = time.perf_counter()
            proof = await ledger.inclusion_proof(index, size)
            inclusion.append(time.perf_counter() - started)
            leaf = merkle.leaf_hash(b'{"n":%d}' % index)
            merkle.verify_inclusion(leaf, index, size, proof, await root(size))

            old = rng.randint(1, size - 1)
            started = time.perf_counter()
            proof = await ledger.consistency_proof(old, size)
            consistency.append(time.perf_counter() - started)
            merkle.verify_consistency(old, size, await root(old), await root(size), proof)

            node = (rng.randint(1, 20), 0)
            node = (node[0], rng.randrange(max(1, n >> node[0])))
            started = time.perf_counter()
            await store.nodes(LOG, [node])
            single.append(time.perf_counter() - started)
            if len(roots) > 64:
                roots.clear()
    finally:
        await ledger.close()
        await store.close()
    ms = 1000.0
    return {
        "inclusion_p50_ms": round(statistics.median(inclusion) * ms, 3),
        "inclusion_p99_ms": round(percentile(inclusion, 0.99) * ms, 3),
        "consistency_p50_ms": round(statistics.median(consistency) * ms, 3),
        "consistency_p99_ms": round(percentile(consistency, 0.99) * ms, 3),
        "single_node_p50_ms": round(statistics.median(single) * ms, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000_000, help="entries in the log")
    parser.add_argument("--samples", type=int, default=2000, help="proofs of each kind")
    parser.add_argument("--db-name", default="uchast_bench_proofs")
    parser.add_argument("--rebuild", action="store_true", help="write the log again")
    parser.add_argument("--seed", type=int, default=9162)
    args = parser.parse_args()
    if args.n < 2:
        parser.error("--n must be at least 2")

    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + args.db_name
    if args.rebuild or asyncio.run(existing_size(url, LOG)) != args.n:
        progress(f"writing a {args.n:,}-entry tree into {args.db_name} ...")
        asyncio.run(build(url, args.db_name, args.n))
    else:
        progress(f"reusing {args.db_name}: {args.n:,} entries")
    figures = asyncio.run(measure(url, args.n, args.samples, args.seed))
    ours = max(figures["inclusion_p99_ms"], figures["consistency_p99_ms"])
    baseline = figures["single_node_p50_ms"]
    print(
        json.dumps(
            {
                "bench": "proofs",
                "ours": ours,
                "baseline": baseline,
                "ratio": round(ours / baseline, 2),
                "unit": "ms (p99 of a proof; baseline: p50 of one stored node)",
                **figures,
                "n": args.n,
                "samples": args.samples,
                "target_ms": 5,
                "loadavg": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
