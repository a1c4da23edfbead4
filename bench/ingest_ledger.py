"""Ingest benchmark: signed ballots with per-voter conditions, appended by concurrent producers.

Ours: each producer submits a pre-signed ballot through the write path every other caller uses
(:class:`ledger.casting.Casting`): signature verified, the voter's entries read (DCB read),
``votes.rules`` decides, the ballot is appended under the condition "no entry of this voter or
nonce after my read"; entries hashed into the Merkle tree, checkpoint signed per batch, all
durable. Baseline, in the same run, on the same
PostgreSQL server and with the same number of producers (threads): eventsourcing's stock
PostgreSQL DCB recorder (psycopg) doing the same cast: read the voter's events, then a conditional
append. Also reports ours on SQLite.

The ceiling of this path, in the same run (``--skip-ceiling`` leaves it out): the same ballots by
the same producers, each only parsed, its one signature verified (the ledger's
:class:`~ledger.verify.SignatureVerifier`) and its entry, the bytes and tags ours writes, appended
through the same group commit (``bench/ingest_ceiling.py``'s :func:`append_bare`, the handler of
``bench/ingest_http.py``'s ceiling, without HTTP): no DCB read, rules, condition or key registry.
Ours ÷ ceiling is what the decision costs; ceiling ÷ baseline, what the stack allows here.

``--rounds K`` runs ours, the ceiling and the baseline K times in turn, each on a fresh database,
and reports the medians (ratios: the median of each round's ratio, the round's runs being minutes
apart at most), so that a machine whose speed drifts during the run moves both sides alike.

    .venv/bin/python bench/ingest_ledger.py [--n 20000] [--baseline-n 4000] [--concurrency 64]
                                            [--rounds 3] [--skip-ceiling] [--skip-sqlite]

Each rate comes with the CPU it cost per entry, in µs: this process's CPU time over the timed
window (ours: the whole write path in one process, verification threads included; baseline: its C
threads and psycopg), the CPU of the database's PostgreSQL backends over the same window, and the
CPU of one bare Ed25519 verification on this machine (``verify_us``), so that what ours spends
beyond its one signature check can be compared across machines.

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventsourcing.dcb.api import DCBAppendCondition, DCBEvent, DCBQuery, DCBQueryItem

from ledger.canonical import canonical
from ledger.casting import Casting, create_election
from ledger.keys import Envelope, SignerKey, sign_envelope
from ledger.log import Ledger
from ledger.postgres import PostgresStore
from ledger.sequencer import Sequencer
from ledger.store import open_store
from ledger.verify import SignatureVerifier
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


@dataclass(frozen=True)
class Measured:
    """A run's rate and the CPU it cost per entry (µs): this process's, the PostgreSQL
    backends' (0 on SQLite)."""

    rate: float
    cpu_us: float
    postgres_cpu_us: float


def backend_cpu(url: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to ``url``'s database."""
    if not url.startswith("postgresql"):
        return {}
    from bench.ingest_http import backend_pids, cpu_seconds

    return {pid: cpu_seconds(pid) for pid in backend_pids(url)}


def backend_cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def verify_cost_us(samples: int = 3000) -> float:
    """CPU µs of one bare Ed25519 verification (pyca/cryptography, one thread) here."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    message = b"uchast/v1\n" + bytes(200)
    signature = key.sign(message)
    started = time.thread_time()
    for _ in range(samples):
        public.verify(signature, message)
    return (time.thread_time() - started) * 1e6 / samples


async def run_ours(url: str, ballots: list[tuple[str, dict[str, Any]]], concurrency: int) -> float:
    """Ours: entries per second."""
    return (await run_ours_measured(url, ballots, concurrency)).rate


async def timed(url: str, n: int, producers: list[Awaitable[None]]) -> Measured:
    """Run ``producers`` together: their rate over ``n`` entries and the CPU it cost."""
    backends = backend_cpu(url)
    cpu = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*producers)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    postgres = backend_cpu_spent(backends, backend_cpu(url))
    return Measured(n / elapsed, cpu * 1e6 / n, postgres * 1e6 / n)


async def run_ours_measured(
    url: str, ballots: list[tuple[str, dict[str, Any]]], concurrency: int
) -> Measured:
    admin = SignerKey.generate("admin.bench")
    store = open_store(url)
    if url.startswith("postgresql"):
        store = PostgresStore(url, max_size=concurrency + 4)
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

        measured = await timed(url, len(ballots), [producer() for _ in range(concurrency)])
        assert await ledger.size() == len(ballots) + 2
        assert (await ledger.verified_checkpoint()) is not None
        stats = ledger.sequencer.stats
        progress(f"  {stats.batches} batches, mean {stats.entries / max(1, stats.batches):.0f}")
        return measured
    finally:
        await ledger.close()
        await store.close()


async def run_ceiling_measured(
    url: str, ballots: list[tuple[str, dict[str, Any]]], concurrency: int
) -> Measured:
    """The ceiling of the path (module docstring): entries per second, on PostgreSQL."""
    from bench.ingest_ceiling import append_bare

    store = PostgresStore(url, max_size=concurrency + 4)
    await store.open()
    await store.create_log(ELECTION)
    sequencer = Sequencer(
        store,
        ELECTION,
        origin=f"uchast.local/{ELECTION}",  # the origin ours signs, so checkpoints weigh the same
        signer=SignerKey.generate("uchast.bench/log"),
        max_batch=MAX_BATCH,
    )
    verifier = SignatureVerifier(VERIFY_WORKERS)
    await sequencer.start()
    try:
        queue = list(reversed(ballots))

        async def producer() -> None:
            while queue:
                _, submitted = queue.pop()
                await append_bare(sequencer, verifier, SITE.verifier, Envelope.parse(submitted))

        measured = await timed(url, len(ballots), [producer() for _ in range(concurrency)])
        assert await store.size(ELECTION) == len(ballots)
        return measured
    finally:
        await sequencer.stop()
        await verifier.close()
        await store.close()


def run_baseline(url: str, ballots: list[tuple[str, dict[str, Any]]], concurrency: int) -> float:
    """The stock eventsourcing cast: casts per second."""
    return run_baseline_measured(url, ballots, concurrency).rate


def run_baseline_measured(
    url: str, ballots: list[tuple[str, dict[str, Any]]], concurrency: int
) -> Measured:
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
    backends = backend_cpu(url)
    cpu = time.process_time()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    postgres = backend_cpu_spent(backends, backend_cpu(url))
    datastore.close()
    assert conflicts == 0, f"{conflicts} baseline casts failed"
    n = len(ballots)
    return Measured(n / elapsed, cpu * 1e6 / n, postgres * 1e6 / n)


SITE = SignerKey.generate("site.bench")
VERIFY_WORKERS: int | None = None
MAX_BATCH = 512


def on_fresh_database(
    run: Callable[[str, list[tuple[str, dict[str, Any]]], int], Coroutine[Any, Any, Measured]],
    ballots: list[tuple[str, dict[str, Any]]],
    concurrency: int,
) -> Measured:
    url = create_database()
    try:
        return asyncio.run(run(url, ballots, concurrency))
    finally:
        drop_database(url)


def median_of(runs: list[Measured]) -> Measured:
    return Measured(
        statistics.median(r.rate for r in runs),
        statistics.median(r.cpu_us for r in runs),
        statistics.median(r.postgres_cpu_us for r in runs),
    )


def median_ratio(tops: list[Measured], bottoms: list[Measured]) -> float:
    """The median over rounds of each round's ratio of rates."""
    return statistics.median(t.rate / b.rate for t, b in zip(tops, bottoms, strict=True))


def cpu_line(measured: Measured) -> str:
    return (
        f"{measured.rate:,.0f}/s; CPU per entry {measured.cpu_us:.0f} µs here, "
        f"{measured.postgres_cpu_us:.0f} µs in PostgreSQL"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="ballots for ours")
    parser.add_argument("--baseline-n", type=int, default=4000, help="ballots for the baseline")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent producers")
    parser.add_argument("--rounds", type=int, default=1, help="ours, ceiling, baseline in turn")
    parser.add_argument("--skip-ceiling", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument(
        "--verify-workers", type=int, default=None, help="threads verifying (0: inline)"
    )
    parser.add_argument("--max-batch", type=int, default=512, help="entries per transaction")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    global VERIFY_WORKERS, MAX_BATCH
    VERIFY_WORKERS = args.verify_workers
    MAX_BATCH = args.max_batch

    progress(f"signing {args.n} ballots ...")
    ballots = make_ballots(SITE, args.n)
    verify_us = verify_cost_us()
    progress(f"one Ed25519 verification: {verify_us:.1f} µs of CPU")

    ours_runs: list[Measured] = []
    ceiling_runs: list[Measured] = []
    baseline_runs: list[Measured] = []
    for round_ in range(1, args.rounds + 1):
        if args.rounds > 1:
            progress(f"round {round_} of {args.rounds}")
        progress(f"ours on PostgreSQL: {args.n} ballots, {args.concurrency} producers")
        ours_runs.append(on_fresh_database(run_ours_measured, ballots, args.concurrency))
        progress(f"  {cpu_line(ours_runs[-1])}")
        if not args.skip_ceiling:
            progress(f"ceiling (verify and append, nothing decided): {args.n} ballots")
            ceiling_runs.append(on_fresh_database(run_ceiling_measured, ballots, args.concurrency))
            progress(f"  {cpu_line(ceiling_runs[-1])}")
        progress(f"baseline (eventsourcing PostgresDCBRecorderTT): {args.baseline_n} ballots")
        url = create_database()
        try:
            baseline_runs.append(
                run_baseline_measured(url, ballots[: args.baseline_n], args.concurrency)
            )
        finally:
            drop_database(url)
        progress(f"  {cpu_line(baseline_runs[-1])}")

    on_sqlite = None
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            progress(f"ours on SQLite: {args.n} ballots")
            on_sqlite = asyncio.run(
                run_ours_measured(f"sqlite:///{tmp}/bench.db", ballots, args.concurrency)
            )
            progress(f"  {on_sqlite.rate:,.0f} entries/s; CPU per entry {on_sqlite.cpu_us:.0f} µs")

    ours, baseline = median_of(ours_runs), median_of(baseline_runs)
    ceiling = median_of(ceiling_runs) if ceiling_runs else None
    ceilings: list[Measured | None] = [*ceiling_runs] if ceiling_runs else [None] * len(ours_runs)
    print(
        json.dumps(
            {
                "bench": "ingest_ledger",
                "ours": round(ours.rate, 1),
                "baseline": round(baseline.rate, 1),
                "ratio": round(median_ratio(ours_runs, baseline_runs), 2),
                "unit": "entries/s",
                "ceiling": None if ceiling is None else round(ceiling.rate, 1),
                "ceiling_ratio": (
                    None if ceiling is None else round(median_ratio(ours_runs, ceiling_runs), 2)
                ),
                "ceiling_vs_baseline": (
                    None if ceiling is None else round(median_ratio(ceiling_runs, baseline_runs), 2)
                ),
                "sqlite": None if on_sqlite is None else round(on_sqlite.rate, 1),
                "cpu_us_per_entry": {
                    "ours": round(ours.cpu_us, 1),
                    "ours_postgres": round(ours.postgres_cpu_us, 1),
                    "ceiling": None if ceiling is None else round(ceiling.cpu_us, 1),
                    "ceiling_postgres": (
                        None if ceiling is None else round(ceiling.postgres_cpu_us, 1)
                    ),
                    "baseline": round(baseline.cpu_us, 1),
                    "baseline_postgres": round(baseline.postgres_cpu_us, 1),
                    "sqlite": None if on_sqlite is None else round(on_sqlite.cpu_us, 1),
                },
                "per_round": [
                    [round(o.rate), round(c.rate) if c else None, round(b.rate)]
                    for o, c, b in zip(ours_runs, ceilings, baseline_runs, strict=True)
                ],
                "verify_us": round(verify_us, 1),
                "load_average": round(os.getloadavg()[0], 1),
                "n": args.n,
                "baseline_n": args.baseline_n,
                "concurrency": args.concurrency,
                "rounds": args.rounds,
            }
        )
    )


if __name__ == "__main__":
    main()
