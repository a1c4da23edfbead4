"""Ingest benchmark: signed ballots with per-voter conditions, appended by concurrent producers.

Ours: each producer submits a pre-signed ballot through the write path every other caller uses
(:class:`ledger.casting.Casting`): signature verified, the voter's entries read (DCB read),
``votes.rules`` decides, the ballot is appended under the condition "no entry of this voter or
nonce after my read"; entries hashed into the Merkle tree, checkpoint signed per batch, all
durable. Baseline, in the same run, on the same
PostgreSQL server and with the same number of producers (threads): eventsourcing's stock
PostgreSQL DCB recorder (psycopg) doing the same cast: read the voter's events, then a conditional
append. Also reports ours on SQLite.

    .venv/bin/python bench/ingest_ledger.py [--n 20000] [--baseline-n 4000] [--concurrency 64]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventsourcing.dcb.api import DCBAppendCondition, DCBEvent, DCBQuery, DCBQueryItem

from ledger.canonical import canonical
from ledger.casting import Casting, create_election
from ledger.keys import SignerKey, sign_envelope
from ledger.log import Ledger
from ledger.store import open_store
from votes.election import Election, parse_election_toml

ELECTION = "bench-2018"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "zhytomyr-2018.toml"
VOTING_DAY = datetime(2018, 10, 3, 12, 0, tzinfo=UTC)
VOTER_KEY = bytes(32)
PG_ADMIN = os.environ.get("UCHAST_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bench_election() -> Election:
    """The Zhytomyr example under the bench's election id."""
    text = EXAMPLE.read_text(encoding="utf-8")
    return parse_election_toml(text.replace('id = "zhytomyr-2018"', f'id = "{ELECTION}"', 1))


def make_ballots(site: SignerKey, n: int) -> list[tuple[str, dict[str, Any]]]:
    ballots = []
    for i in range(n):
        voter = f"{i:064x}"
        payload = {
            "type": "ballot",
            "election": ELECTION,
            "voter": voter,
            "projects": ["L07", "S12"],
            "cast_at": "2018-10-03T10:15:00+03:00",
            "nonce": str(uuid.uuid4()),
        }
        ballots.append((voter, sign_envelope(payload, site)))
    return ballots


def create_database() -> str:
    import psycopg

    name = f"uchast_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


async def run_ours(url: str, ballots: list[tuple[str, dict[str, Any]]], concurrency: int) -> float:
    admin = SignerKey.generate("admin.bench")
    store = open_store(url)
    if url.startswith("postgresql"):
        store = type(store)(url, max_size=concurrency + 4)  # type: ignore[call-arg]
    await store.open()
    ledger = Ledger(
        store,
        ELECTION,
        log_signer=SignerKey.generate("uchast.bench/log"),
        verify_workers=VERIFY_WORKERS,
        max_batch=MAX_BATCH,
    )
    await ledger.open()
    try:
        casting = Casting(ledger, lambda: VOTING_DAY)
        await create_election(casting, bench_election(), admin, VOTER_KEY, [(SITE, "site", None)])
        queue = list(reversed(ballots))

        async def producer() -> None:
            while queue:
                _, envelope = queue.pop()
                await casting.submit(envelope)

        started = time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        assert await ledger.size() == len(ballots) + 2
        assert (await ledger.verified_checkpoint()) is not None
        stats = ledger.sequencer.stats
        progress(f"  {stats.batches} batches, mean {stats.entries / max(1, stats.batches):.0f}")
        return len(ballots) / elapsed
    finally:
        await ledger.close()
        await store.close()


def run_baseline(url: str, ballots: list[tuple[str, dict[str, Any]]], concurrency: int) -> float:
    from eventsourcing.dcb.postgres_tt import PostgresDCBRecorderTT
    from eventsourcing.postgres import PostgresDatastore

    dbname = url.rsplit("/", 1)[1]
    datastore = PostgresDatastore(
        dbname, "127.0.0.1", 5432, "postgres", "", pool_size=concurrency, max_overflow=0
    )
    recorder = PostgresDCBRecorderTT(datastore)
    recorder.create_table()
    work = list(reversed(ballots))
    lock = threading.Lock()
    conflicts = 0

    def producer() -> None:
        nonlocal conflicts
        while True:
            with lock:
                if not work:
                    return
                voter, envelope = work.pop()
            query = DCBQuery([DCBQueryItem(tags=[f"voter:{voter}"])])
            response = recorder.read(query)
            list(response)
            event = DCBEvent(type="ballot", data=canonical(envelope), tags=[f"voter:{voter}"])
            try:
                recorder.append([event], DCBAppendCondition(query, after=response.head))
            except Exception:
                with lock:
                    conflicts += 1

    threads = [threading.Thread(target=producer) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    datastore.close()
    assert conflicts == 0, f"{conflicts} baseline casts failed"
    return len(ballots) / elapsed


SITE = SignerKey.generate("site.bench")
VERIFY_WORKERS: int | None = None
MAX_BATCH = 512


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="ballots for ours")
    parser.add_argument("--baseline-n", type=int, default=4000, help="ballots for the baseline")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent producers")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument(
        "--verify-workers", type=int, default=None, help="processes verifying (0: inline)"
    )
    parser.add_argument("--max-batch", type=int, default=512, help="entries per transaction")
    args = parser.parse_args()
    global VERIFY_WORKERS, MAX_BATCH
    VERIFY_WORKERS = args.verify_workers
    MAX_BATCH = args.max_batch

    progress(f"signing {args.n} ballots ...")
    ballots = make_ballots(SITE, args.n)

    pg_ours = create_database()
    try:
        progress(f"ours on PostgreSQL: {args.n} ballots, {args.concurrency} producers")
        ours = asyncio.run(run_ours(pg_ours, ballots, args.concurrency))
        progress(f"  {ours:,.0f} entries/s")
    finally:
        drop_database(pg_ours)

    pg_base = create_database()
    try:
        progress(f"baseline (eventsourcing PostgresDCBRecorderTT): {args.baseline_n} ballots")
        baseline = run_baseline(pg_base, ballots[: args.baseline_n], args.concurrency)
        progress(f"  {baseline:,.0f} casts/s")
    finally:
        drop_database(pg_base)

    sqlite_rate = None
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            progress(f"ours on SQLite: {args.n} ballots")
            sqlite_rate = asyncio.run(
                run_ours(f"sqlite:///{tmp}/bench.db", ballots, args.concurrency)
            )
            progress(f"  {sqlite_rate:,.0f} entries/s")

    print(
        json.dumps(
            {
                "bench": "ingest_ledger",
                "ours": round(ours, 1),
                "baseline": round(baseline, 1),
                "ratio": round(ours / baseline, 2),
                "unit": "entries/s",
                "sqlite": None if sqlite_rate is None else round(sqlite_rate, 1),
                "n": args.n,
                "baseline_n": args.baseline_n,
                "concurrency": args.concurrency,
            }
        )
    )


if __name__ == "__main__":
    main()
