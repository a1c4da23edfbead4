"""HTTP ingest benchmark: signed online ballots through `uchast serve` on PostgreSQL.

Ours: a fresh PostgreSQL database with the example election (`uchast init
examples/zhytomyr-2018.toml`, a site key added with `uchast keys add`), one or more `uchast serve`
processes on it (`--clock 2018-10-05T12:00:00+03:00`, `--voter-key`), and N online ballots of
distinct voters (each 1-4 valid picks, at most 2 large and 2 small, cast_at inside 1-10 October
2018, Kyiv) signed by the site key *before* timing starts, then POSTed by C concurrent clients
(client i talks to server i mod S over one keep-alive connection). Every ballot must answer 201
with a fresh receipt at a distinct position; the log must hold all of them at the end.

The clients are deliberately lean (asyncio streams, requests prebuilt as bytes, answers framed by
their status line and Content-Length, see :class:`HttpConnection`): the load generator runs on
the same 2 cores as the server and the database, and an aiohttp client spent about 0.1 ms of CPU
per request there, CPU the server then lacked.

Baseline, in the same run, on the same PostgreSQL server, on a fresh database, with C threads:
the stock eventsourcing DCB cast of bench/ingest_ledger.py (`run_baseline`: read the voter's
events, conditional append, psycopg).

    .venv/bin/python bench/ingest_http.py [--n 20000] [--baseline-n 4000] [--concurrency 64]
                                          [--servers 1] [--profile DIR] [--cumulative F]
                                          [--skip-ceiling] [--group K]

`--cumulative F` (0 to 1, default 0) mixes ballot kinds in the one run: the election is the
example plus a cumulative category "points" (20 projects; at most 3 points a project, 7 in all,
Toulouse 2019's limits), and a share F of the N ballots, spread evenly through the stream, are
cumulative ballots (`"points"`, 1-4 projects, 1-3 points each, at most 7), the rest the approval
ballots above; the same clients send both, and p50/p99 latency is also reported per kind.

Ceiling, in the same run, on a fresh database of the same PostgreSQL server, driven by the same
clients (:func:`send_all`, same C, the same signed ballots): bench/ingest_ceiling.py, a bare
aiohttp handler that verifies the ballot's one Ed25519 signature and appends the same entry
through the ledger's own batched PostgreSQL write (``ledger.sequencer.Sequencer`` on
``ledger.postgres.PostgresStore``), with no DCB read, rules or condition. The JSON line's
``ceiling_ratio`` is ours / ceiling (aim: at least 0.8); ``ratio`` stays ours / the stock cast.
`--skip-ceiling` leaves it out.

`--group K` (default 1): ours sends the ballots K at a time, each request one batch of K signed
envelopes to ``POST /v1/elections/{e}/ballot-batches`` (as a voting site forwarding ballots in
groups would; each envelope still its own nonce and receipt), from C/K clients (rounded up), so
that as many ballots are in flight as with C clients sending one each; a ballot's latency is its
batch's. The ceiling and the baseline are unchanged (one ballot a request, C clients).

Each server is started and waited for through /readyz, so its live tally follows the log during
the run, as it does under a readiness probe in production.

Reports throughput (ballots/s over the timed window), p50/p99 request latency, the peak RSS of
each server process (VmHWM), the CPU time per ballot spent by the servers, the database's
backends and this client (on a 2-core machine these three share the cores, so their sum bounds
the rate: 2 cores / (CPU ms per ballot)), each server's mean sequencer batch (requests, ms in its
transaction) and the machine's load average after the run (other work on the machine shows
there; compare CPU per ballot across runs, not only rates). `--profile DIR` records each server
with py-spy (`--gil`, folded stacks). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest_ledger import create_database, drop_database, run_baseline
from bench.loadgen import wait_until_serving
from ledger.keys import SignerKey, sign_envelope
from votes.election import Election, parse_election_toml
from votes.tokens import voter_token

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "zhytomyr-2018.toml"
CLOCK = "2018-10-05T12:00:00+03:00"
KYIV = ZoneInfo("Europe/Kyiv")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def uchast(*args: str) -> str:
    """Run the CLI as an operator would; its standard output."""
    run = subprocess.run(
        [sys.executable, "-m", "api.cli", *args], cwd=ROOT, capture_output=True, text=True
    )
    if run.returncode != 0:
        raise RuntimeError(f"uchast {args[0]} failed: {run.stderr.strip()}")
    return run.stdout


POINTS_CATEGORY = """
[[categories]]
id = "points"
title = { uk = "Проєкти за балами", en = "Projects by points" }
ballot = "cumulative"
max_points = 3
max_total_points = 7
budget = "3 000 000.00"
max_cost = "500 000.00"
"""
POINTS_PROJECT = """
[[projects]]
id = "P{n:02d}"
category = "points"
title = {{ uk = "Проєкт за балами {n}", en = "Points project {n}" }}
cost = "{uah} 000.00"
district = "Koroliovskyi"
"""


def mixed_definition() -> str:
    """The example with a cumulative category of 20 projects beside its two approval ones."""
    source = EXAMPLE.read_text(encoding="utf-8")
    # The top-level budget is the sum of the categories': without it the sum is taken.
    source = re.sub(r'(?m)^budget = "15 219 100.73"\n', "", source, count=1)
    return (
        source
        + POINTS_CATEGORY
        + "".join(POINTS_PROJECT.format(n=n, uah=100 + 17 * n) for n in range(1, 21))
    )


def set_up_election(
    db: str, directory: Path, mixed: bool = False
) -> tuple[Election, SignerKey, bytes]:
    """`uchast init` the example (``mixed``: with a cumulative category) and `uchast keys add` a
    site key; returns (election, site key, voter key)."""
    text = mixed_definition() if mixed else EXAMPLE.read_text(encoding="utf-8")
    definition = directory / "election.toml"
    definition.write_text(text, encoding="utf-8")
    election = parse_election_toml(text)
    admin = directory / "admin.key"
    uchast("keygen", "admin.zhytomyr-2018.bench", "--out", str(admin))
    uchast("keygen", "uchast.bench/log", "--out", str(directory / "log.key"))
    site_vkey = uchast("keygen", "site.e-dem.bench", "--out", str(directory / "site.key")).strip()
    voter_key = directory / "voter.key"
    uchast(
        "init",
        str(definition),
        "--db",
        db,
        "--admin-key",
        str(admin),
        "--voter-key",
        str(voter_key),
    )
    uchast(
        "keys", "add", "--db", db, "--admin-key", str(admin), "--role", "site", "--vkey", site_vkey
    )
    site = SignerKey.load(directory / "site.key")
    return election, site, bytes.fromhex(voter_key.read_text().strip())


def is_cumulative(i: int, n: int, share: float) -> bool:
    """Whether ballot ``i`` of ``n`` is a cumulative one: a share ``share`` of them, evenly
    spread through the stream (so both kinds are in flight together all along)."""
    return int((i + 1) * share) > int(i * share)


def make_ballots(
    election: Election,
    site: SignerKey,
    voter_key: bytes,
    n: int,
    seed: int = 2018,
    cumulative: float = 0.0,
) -> list[tuple[str, dict[str, Any]]]:
    """``n`` signed online ballots of distinct voters: (voter token, envelope); a share
    ``cumulative`` of them give points in the cumulative category, the rest pick projects in the
    approval ones."""
    rng = random.Random(seed)
    by_category: dict[str, list[str]] = {}
    for project in election.projects:
        by_category.setdefault(project.category, []).append(project.id)
    kinds = {c.id: c.ballot for c in election.categories}
    approval = {c: p for c, p in by_category.items() if kinds[c] == "approval"}
    points_category = next((c for c, kind in kinds.items() if kind == "cumulative"), None)
    limits = {c.id: c.max_picks for c in election.categories}
    opens = datetime(2018, 10, 1, tzinfo=KYIV)
    ballots: list[tuple[str, dict[str, Any]]] = []
    for i in range(n):
        token = voter_token(voter_key, election.id, f"{1_000_000_000 + i:010d}")
        choice: dict[str, Any]
        if cumulative and is_cumulative(i, n, cumulative):
            assert points_category is not None
            chosen = rng.sample(by_category[points_category], rng.randint(1, 4))
            points: dict[str, int] = {}
            left = 7
            for chosen_id in chosen:
                # At least a point left for each project still to come.
                given = rng.randint(1, min(3, left - (len(chosen) - len(points) - 1)))
                points[chosen_id] = given
                left -= given
            choice = {"points": points}
        else:
            picks: list[str] = []
            while not picks:
                for category, projects in approval.items():
                    picks += rng.sample(projects, rng.randint(0, limits[category]))
            choice = {"projects": picks}
        moment = opens + timedelta(seconds=rng.randrange(10 * 24 * 3600))
        payload = {
            "type": "ballot",
            "election": election.id,
            "voter": token,
            **choice,
            "cast_at": moment.isoformat(),
            "nonce": str(uuid.uuid4()),
        }
        ballots.append((token, sign_envelope(payload, site)))
    return ballots


def start_servers(
    db: str, directory: Path, count: int
) -> tuple[list[str], list[subprocess.Popen[bytes]]]:
    ports = []
    for _ in range(count):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(int(s.getsockname()[1]))
    processes = []
    for port in ports:
        log = open(directory / f"server-{port}.log", "wb")  # noqa: SIM115
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "api.cli",
                    "serve",
                    "--db",
                    db,
                    "--log-key",
                    str(directory / "log.key"),
                    "--voter-key",
                    str(directory / "voter.key"),
                    "--port",
                    str(port),
                    "--clock",
                    CLOCK,
                    # One site key carries every ballot here, far above its default rate.
                    "--rate-limit-role",
                    "site=0",
                ],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    wait_until_serving(urls, processes, "/readyz")
    return urls, processes


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_pids(db: str) -> list[int]:
    """PostgreSQL backends connected to the benchmark's database."""
    import psycopg

    from bench.ingest_ledger import PG_ADMIN

    name = db.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [name])
        return [int(r[0]) for r in rows]


class CpuMeter:
    """CPU seconds spent by the servers, the database's backends and this client in a window."""

    def __init__(self, db: str, servers: list[int]) -> None:
        self.db = db
        self.servers = servers

    def snapshot(self) -> dict[str, dict[int, float]]:
        return {
            "server": {pid: cpu_seconds(pid) for pid in self.servers},
            "postgres": {pid: cpu_seconds(pid) for pid in backend_pids(self.db)},
            "client": {os.getpid(): time.process_time()},
        }

    @staticmethod
    def spent(
        before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
    ) -> dict[str, float]:
        return {
            kind: sum(cpu - before[kind].get(pid, 0.0) for pid, cpu in after[kind].items())
            for kind in after
        }


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set size (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


class HttpConnection:
    """One keep-alive HTTP/1.1 connection that sends prepared requests and reads the answers.

    The load generator shares the 2 cores with the server and PostgreSQL, so it does as little as
    it can: each request is prebuilt bytes, and of the answer it reads the status line and the
    ``Content-Length`` body (every answer from aiohttp carries one). The bodies are kept and
    checked after the timed window.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, url: str) -> HttpConnection:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one complete request; (status, body) of its answer."""
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if not head.startswith(b"HTTP/1.1 ") or at < 0 or b"\r\nconnection: close" in lower:
            raise RuntimeError(f"unexpected answer framing: {head!r}")
        length = int(head[at + 17 : head.index(b"\r\n", at + 2)])
        return int(head[9:12]), await self.reader.readexactly(length)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def post_request(url: str, path: str, body: bytes) -> bytes:
    """A complete HTTP/1.1 POST of a JSON body, as bytes."""
    host = url.removeprefix("http://")
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def send_all(
    urls: list[str],
    election: str,
    bodies: list[bytes],
    concurrency: int,
    meter: CpuMeter,
    endpoint: str = "ballots",
) -> tuple[float, list[float], dict[int, int], list[bytes], dict[str, float], list[int]]:
    """POST every body; returns (elapsed seconds, latencies in seconds, count by status, answer
    bodies, CPU seconds by process kind, the index of the body each latency belongs to).

    Client i sends to server i mod S over one keep-alive connection, opened before timing.
    """
    path = f"/v1/elections/{election}/{endpoint}"
    # Every request built before timing starts, as each ballot was signed before.
    requests = [post_request(urls[i % len(urls)], path, body) for i, body in enumerate(bodies)]
    queues: list[list[tuple[int, bytes]]] = [[] for _ in range(len(urls))]
    for i, raw in enumerate(requests):
        queues[i % len(urls)].append((i, raw))
    for queue in queues:
        queue.reverse()
    latencies: list[float] = []
    which: list[int] = []
    statuses: dict[int, int] = {}
    answers: list[bytes] = []
    connections = [await HttpConnection.open(urls[i % len(urls)]) for i in range(concurrency)]

    async def client(i: int) -> None:
        connection = connections[i]
        queue = queues[i % len(urls)]
        clock = time.perf_counter
        await ready.wait()
        while queue:
            index, raw = queue.pop()
            started = clock()
            status, answer = await connection.request(raw)
            latencies.append(clock() - started)
            which.append(index)
            statuses[status] = statuses.get(status, 0) + 1
            answers.append(answer)

    ready = asyncio.Event()
    tasks = [asyncio.create_task(client(i)) for i in range(concurrency)]
    await asyncio.sleep(0.5)
    cpu_before = meter.snapshot()
    started = time.perf_counter()
    ready.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    cpu = CpuMeter.spent(cpu_before, meter.snapshot())
    for connection in connections:
        await connection.close()
    return elapsed, latencies, statuses, answers, cpu, which


def check_receipts(answers: list[bytes], n: int) -> None:
    """Every answer is a fresh receipt (not a replay), each at its own log position; a batch's
    answer holds one per envelope, each answered 201."""
    receipts = []
    for answer in answers:
        parsed = json.loads(answer)
        if "results" in parsed:
            if any(result["status"] != 201 for result in parsed["results"]):
                raise RuntimeError(f"a batch item was not accepted: {parsed['results']}")
            receipts.extend(parsed["results"])
        else:
            receipts.append(parsed)
    positions = {r["position"] for r in receipts}
    if len(receipts) != n or len(positions) != n or any(r["replay"] for r in receipts):
        raise RuntimeError(
            f"receipts: {len(receipts)} answers, {len(positions)} distinct positions"
        )


def mean_batch(url: str, election: str) -> tuple[float, float]:
    """Mean append requests per sequencer batch and mean batch transaction time (ms), from the
    server's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics") as response:
        text = response.read().decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("election") == election:
                found[sample.name] = sample.value
    batches = max(1.0, found.get("uchast_batch_size_count", 0.0))
    return (
        found.get("uchast_batch_size_sum", 0.0) / batches,
        found.get("uchast_batch_duration_seconds_sum", 0.0) * 1000 / batches,
    )


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def log_size(url: str, election: str) -> int:
    with urllib.request.urlopen(f"{url}/v1/elections/{election}/log/checkpoint") as response:
        return int(response.read().decode().split("\n")[1])


def run_ours(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    db = create_database()
    try:
        election, site, voter_key = set_up_election(db, directory, mixed=args.cumulative > 0)
        progress(f"signing {args.n} ballots (before timing) ...")
        ballots = make_ballots(election, site, voter_key, args.n, cumulative=args.cumulative)
        group = args.group
        if group > 1:
            bodies = [
                json.dumps({"envelopes": [e for _, e in ballots[i : i + group]]}).encode()
                for i in range(0, len(ballots), group)
            ]
        else:
            bodies = [json.dumps(envelope).encode() for _, envelope in ballots]
        endpoint = "ballot-batches" if group > 1 else "ballots"
        clients = -(-args.concurrency // group)  # the same ballots in flight
        urls, processes = start_servers(db, directory, args.servers)
        profilers: list[subprocess.Popen[bytes]] = []
        try:
            before = log_size(urls[0], election.id)
            if args.profile:
                profilers = [
                    subprocess.Popen(
                        [
                            shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
                            "record",
                            "--pid",
                            str(p.pid),
                            "--rate",
                            "200",
                            "--gil",
                            "--format",
                            "raw",
                            "--output",
                            str(Path(args.profile) / f"server-{i}.folded.txt"),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    for i, p in enumerate(processes)
                ]
                time.sleep(1)
            progress(
                f"ours: {args.n} ballots, {clients} clients, {len(urls)} server(s) on "
                "PostgreSQL" + (f", {group} ballots a request" if group > 1 else "")
            )
            meter = CpuMeter(db, [p.pid for p in processes])
            elapsed, latencies, statuses, answers, cpu, which = asyncio.run(
                send_all(urls, election.id, bodies, clients, meter, endpoint)
            )
            for profiler in profilers:
                profiler.send_signal(signal.SIGINT)
            for profiler in profilers:
                profiler.wait(timeout=60)
            rss = [peak_rss_mib(p.pid) for p in processes]
            size = log_size(urls[0], election.id)
            batches = [mean_batch(url, election.id) for url in urls]
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        expected = {201: args.n} if group == 1 else {200: len(bodies)}
        if statuses != expected or size - before != args.n:
            raise RuntimeError(f"not every ballot was accepted: {statuses}, log {before}->{size}")
        check_receipts(answers, args.n)
        rate = args.n / elapsed
        progress(
            f"  {rate:,.0f} ballots/s, p50 {percentile(latencies, 50) * 1000:.1f} ms, "
            f"p99 {percentile(latencies, 99) * 1000:.1f} ms, server peak RSS "
            + ", ".join(f"{r:.0f} MiB" for r in rss)
        )
        progress(
            "  mean sequencer batch: "
            + ", ".join(f"{size:.1f} requests in {ms:.1f} ms" for size, ms in batches)
        )
        by_kind: dict[str, list[float]] = {}
        for index, latency in zip(which, latencies, strict=True):
            # (a batch's latency goes to the kind of its first ballot)
            kind = "cumulative" if "points" in ballots[index * group][1]["payload"] else "approval"
            by_kind.setdefault(kind, []).append(latency)
        kinds = {
            kind: {
                "n": len(values) * group,  # ballots (a batch's latency is each of its ballots')
                "p50_ms": round(percentile(values, 50) * 1000, 2),
                "p99_ms": round(percentile(values, 99) * 1000, 2),
            }
            for kind, values in sorted(by_kind.items())
        }
        if len(kinds) > 1:
            progress(
                "  by kind: "
                + ", ".join(
                    f"{kind} {k['n']} ballots, p50 {k['p50_ms']:.1f} ms, p99 {k['p99_ms']:.1f} ms"
                    for kind, k in kinds.items()
                )
            )
        per_ballot = {kind: seconds * 1000 / args.n for kind, seconds in cpu.items()}
        load = os.getloadavg()[0]
        progress(
            "  CPU per ballot: "
            + ", ".join(f"{kind} {ms:.3f} ms" for kind, ms in per_ballot.items())
            + f" (machine load average {load:.1f})"
        )
        return {
            "load": load,
            "batches": batches,
            "rate": rate,
            "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000,
            "rss": rss,
            "cpu_ms_per_ballot": per_ballot,
            "kinds": kinds,
            "ballots": ballots,
            "election": election.id,
            "site": site,
        }
    finally:
        drop_database(db)


def start_ceiling(
    db: str, directory: Path, election: str, site: SignerKey
) -> tuple[str, subprocess.Popen[bytes]]:
    """Start bench/ingest_ceiling.py on ``db`` (signing checkpoints with the run's log key) and
    wait until it answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    log = open(directory / f"ceiling-{port}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.ingest_ceiling",
            "--db",
            db,
            "--port",
            str(port),
            "--log-key",
            str(directory / "log.key"),
            "--site-vkey",
            site.verifier.vkey,
            "--election",
            election,
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_serving([url], [process], "/readyz")
    return url, process


def run_ceiling(
    args: argparse.Namespace,
    directory: Path,
    election: str,
    site: SignerKey,
    ballots: list[tuple[str, dict[str, Any]]],
) -> dict[str, Any]:
    """The same signed ballots, from the same clients, to the bare server of
    bench/ingest_ceiling.py on a fresh database."""
    db = create_database()
    try:
        bodies = [json.dumps(envelope).encode() for _, envelope in ballots]
        url, process = start_ceiling(db, directory, election, site)
        try:
            progress(f"ceiling (bare aiohttp + Ed25519 + batched write): {args.n} ballots")
            meter = CpuMeter(db, [process.pid])
            elapsed, latencies, statuses, answers, cpu, _ = asyncio.run(
                send_all([url], election, bodies, args.concurrency, meter)
            )
            rss = peak_rss_mib(process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if statuses != {201: args.n}:
            raise RuntimeError(f"the ceiling did not accept every ballot: {statuses}")
        check_receipts(answers, args.n)
        rate = args.n / elapsed
        per_ballot = {kind: seconds * 1000 / args.n for kind, seconds in cpu.items()}
        progress(
            f"  {rate:,.0f} ballots/s, p50 {percentile(latencies, 50) * 1000:.1f} ms, "
            f"p99 {percentile(latencies, 99) * 1000:.1f} ms, peak RSS {rss:.0f} MiB; CPU per "
            "ballot: " + ", ".join(f"{kind} {ms:.3f} ms" for kind, ms in per_ballot.items())
        )
        return {
            "rate": rate,
            "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000,
            "rss": rss,
            "cpu_ms_per_ballot": per_ballot,
        }
    finally:
        drop_database(db)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="ballots for ours")
    parser.add_argument("--baseline-n", type=int, default=4000, help="ballots for the baseline")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent clients/threads")
    parser.add_argument("--servers", type=int, default=1, help="uchast serve processes")
    parser.add_argument("--skip-baseline", action="store_true", help="(for profiling runs)")
    parser.add_argument(
        "--skip-ceiling", action="store_true", help="leave out bench/ingest_ceiling.py's run"
    )
    parser.add_argument("--profile", metavar="DIR", help="py-spy record each server into DIR")
    parser.add_argument(
        "--group",
        type=int,
        default=1,
        metavar="K",
        help="ours: K envelopes a request, through POST .../ballot-batches (1 to 64)",
    )
    parser.add_argument(
        "--cumulative",
        type=float,
        default=0.0,
        metavar="F",
        help="share of cumulative (points) ballots beside the approval ones, 0 to 1",
    )
    args = parser.parse_args()
    if not 0 <= args.cumulative <= 1:
        parser.error("--cumulative takes a share from 0 to 1")
    if not 1 <= args.group <= 64:
        parser.error("--group takes 1 to 64 envelopes a request")

    with tempfile.TemporaryDirectory(prefix="uchast-bench-") as tmp:
        ours = run_ours(args, Path(tmp))
        ceiling = None
        if not args.skip_ceiling:
            election, site = ours["election"], ours["site"]
            ceiling = run_ceiling(args, Path(tmp), election, site, ours["ballots"])

    baseline = None
    if not args.skip_baseline:
        db = create_database()
        try:
            progress(
                f"baseline (eventsourcing PostgresDCBRecorderTT): {args.baseline_n} casts, "
                f"{args.concurrency} threads"
            )
            baseline = run_baseline(db, ours["ballots"][: args.baseline_n], args.concurrency)
            progress(f"  {baseline:,.0f} casts/s")
        finally:
            drop_database(db)

    print(
        json.dumps(
            {
                "bench": "ingest_http",
                "ours": round(ours["rate"], 1),
                "baseline": None if baseline is None else round(baseline, 1),
                "ratio": None if baseline is None else round(ours["rate"] / baseline, 2),
                "unit": "ballots/s",
                "p50_ms": round(ours["p50_ms"], 2),
                "p99_ms": round(ours["p99_ms"], 2),
                "server_peak_rss_mib": round(max(ours["rss"]), 1),
                "cpu_ms_per_ballot": {k: round(v, 3) for k, v in ours["cpu_ms_per_ballot"].items()},
                "batch_requests_ms": [[round(n, 1), round(ms, 2)] for n, ms in ours["batches"]],
                "kinds": ours["kinds"],
                "ceiling": None if ceiling is None else round(ceiling["rate"], 1),
                "ceiling_ratio": None
                if ceiling is None
                else round(ours["rate"] / ceiling["rate"], 2),
                "ceiling_p50_ms": None if ceiling is None else round(ceiling["p50_ms"], 2),
                "ceiling_p99_ms": None if ceiling is None else round(ceiling["p99_ms"], 2),
                "ceiling_cpu_ms_per_ballot": None
                if ceiling is None
                else {k: round(v, 3) for k, v in ceiling["cpu_ms_per_ballot"].items()},
                "ceiling_peak_rss_mib": None if ceiling is None else round(ceiling["rss"], 1),
                "load_average": round(ours["load"], 1),
                "load_average_end": round(os.getloadavg()[0], 1),
                "servers": args.servers,
                "n": args.n,
                "baseline_n": args.baseline_n,
                "concurrency": args.concurrency,
                "group": args.group,
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
