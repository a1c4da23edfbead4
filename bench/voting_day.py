"""Voting-day trial: the Zhytomyr 2018 election scaled up, cast through the HTTP API of real
`uchast serve` processes on PostgreSQL, in a morning peak, a quiet midday and an evening peak.

Set up as an operator would (uchast keygen, init, keys add; the example election with its
window moved to today, since entries record real time and the auditor checks it), then N server
processes on one fresh PostgreSQL database. The voters are the 2018 turnout times ``--scale``
(default ×100: 1,252,700 voters), about 20% on paper at the three polling points (each paper
ballot preceded by the clerk's voter-token request, as the /clerk page does), the rest online
through the site key; some split their picks over two ballots, some try one pick too many
(refused ``limit-exceeded``). Ballots are signed by worker processes before each phase, so the
timed part is the service (the client still shares the machine).

Phases: ``morning-peak`` and ``evening-peak`` send as fast as ``--concurrency`` clients can;
``quiet`` is paced at a fifth of the morning's rate with few clients. Each reports ballots/s and
the p50/p99 latency of a ballot from its first attempt to its definitive answer (retries
included). Before each peak the same client measures a trivial echo server (answers every POST
at once, no work): ``requests_vs_echo`` is the phase's request rate as a fraction of that, so
that figures from a busy or shared machine can still be compared. At the end: every server's
/results equal the generator's totals, the log holds each acknowledged ballot once and nothing
else, and `uchast audit` passes on the exported log.

    .venv/bin/python bench/voting_day.py --scale 10          # 125,270 voters
    .venv/bin/python bench/voting_day.py                     # x100: 1,252,700 voters
    .venv/bin/python bench/voting_day.py --work /var/tmp/vd  # state kept in /var/tmp/vd
    .venv/bin/python bench/voting_day.py --resume /var/tmp/vd

A run is resumable: its work directory (``--work``, else a temporary one) holds the database
URL, the keys, the election and the state, saved after every ``--chunk`` voters and every phase
and stage. Interrupted (Ctrl-C, kill, ``--stop-after``), it prints the command that continues it
on the same database: the servers are started again, the chunk that was in flight is sent again
whole (answered as replays), then the checks and the audit. The database is dropped once the
run completes (unless ``--keep``). Peak memory is each process's VmHWM, per phase and overall.

``--failover SECONDS`` puts the election on a Patroni cluster of its own (``bench/patroni.py``:
etcd, a primary and a synchronous standby on this machine, PostgreSQL crash-safe and set as
``deploy/`` sets it, Patroni on the failover trials' quick timings) instead of
``UCHAST_BENCH_PG``, the servers reaching it through the multi-host URL, and SIGKILLs the
primary's postmaster that many seconds after the morning peak's casting began (``--cluster-nodes
3``: with a third node). The checks are the same, plus: the time from the kill to the standby's
promotion and to the first acknowledged probe (fresh ballots sent from the kill on), and
``uchast audit`` given every checkpoint the servers published while voting (each read as they
were, every 0.25 s), so that each must be consistent with the final log. Such a run is one
sitting: its cluster goes with it (no ``--resume``).

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import pickle
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import yaml  # noqa: E402

from bench.ingest_ledger import create_database, drop_database  # noqa: E402
from bench.loadgen import (  # noqa: E402
    Book,
    Electorate,
    Sender,
    Signers,
    cast_now,
    check_log,
    export_and_audit,
    served_votes,
    wait_until_serving,
    watch_checkpoints,
)
from bench.patroni import PatroniCluster, cluster_root  # noqa: E402
from ledger.keys import SignerKey, sign_envelope  # noqa: E402
from votes.election import election_to_dict, parse_election_toml  # noqa: E402

EXAMPLE = ROOT / "examples" / "zhytomyr-2018.toml"
RESULTS_EVERY = 2.0  # seconds between reads of each server's /results while voting
VOTERS_2018 = 12_527
KYIV = ZoneInfo("Europe/Kyiv")
CLI = [sys.executable, "-m", "api.cli"]


def progress(message: str) -> None:
    print(f"[voting-day] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Phase:
    name: str
    share: float  # of all voters
    paced: float | None  # fraction of the morning peak's rate; None: as fast as possible
    concurrency: int | None  # None: --concurrency


PHASES = [
    Phase("morning-peak", 0.35, None, None),
    Phase("quiet", 0.15, 0.2, 16),
    Phase("evening-peak", 0.50, None, None),
]


# Setting up, as an operator would.


def run(*args: str) -> str:
    done = subprocess.run([*CLI, *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"uchast {' '.join(args[:2])}: {done.stderr.strip()}")
    return done.stdout.strip()


def trial_toml(now: datetime) -> str:
    """The example election, its window moved to contain ``now`` (local Kyiv times)."""
    opens = (now.astimezone(KYIV) - timedelta(hours=1)).replace(microsecond=0, tzinfo=None)
    times = {
        "voting_opens": opens,
        "voting_closes": opens + timedelta(days=10),
        "paper_deadline": opens + timedelta(days=11),
    }
    text = EXAMPLE.read_text(encoding="utf-8")
    for name, value in times.items():
        text, count = re.subn(rf"(?m)^{name} = .*$", f"{name} = {value.isoformat()}", text)
        assert count == 1, name
    return text


def set_up(directory: Path, db: str) -> dict[str, str]:
    """Keys and the election, through the CLI. Returns the public keys (vkeys) by name."""
    election = parse_election_toml(EXAMPLE.read_text(encoding="utf-8"))
    (directory / "election.toml").write_text(trial_toml(datetime.now(KYIV)), encoding="utf-8")
    vkeys = {
        "admin": run("keygen", "admin.zhytomyr", "--out", str(directory / "admin.key")),
        "log": run("keygen", "uchast.trial/log", "--out", str(directory / "log.key")),
        "site": run("keygen", "site.e-dem", "--out", str(directory / "site.key")),
        "supervisor": run("keygen", "supervisor.trial", "--out", str(directory / "sup.key")),
    }
    run(
        "init",
        str(directory / "election.toml"),
        "--db",
        db,
        "--admin-key",
        str(directory / "admin.key"),
        "--voter-key",
        str(directory / "voter.key"),
    )
    admin = ["--db", db, "--admin-key", str(directory / "admin.key")]
    run("keys", "add", *admin, "--role", "site", "--vkey", vkeys["site"])
    run("keys", "add", *admin, "--role", "supervisor", "--vkey", vkeys["supervisor"])
    for point in election.polling_points:
        name = f"clerk.{point.id}.trial"
        vkeys[name] = run("keygen", name, "--out", str(directory / f"clerk-{point.id}.key"))
        run("keys", "add", *admin, "--role", "clerk", "--polling-point", point.id,
            "--vkey", vkeys[name])  # fmt: skip
    return vkeys


# The voters, signed by worker processes.


@dataclass(slots=True)
class Request:
    """One ballot ready to send: its JSON, the clerk's voter-token request before it (paper),
    and what the book needs."""

    path: str
    body: bytes
    token_body: bytes | None
    nonce: str
    voter: str
    projects: tuple[str, ...]
    refusal: str | None

    @property
    def channel(self) -> str:
        return "paper" if self.path == "paper-ballots" else "online"


_electorate: Electorate | None = None
_clerks: dict[str, SignerKey] = {}


def _load(directory: str, seed: int, paper: float) -> None:
    global _electorate
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the generator stops its workers itself
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    path = Path(directory)
    text = (path / "election.toml").read_text(encoding="utf-8")
    definition = election_to_dict(parse_election_toml(text))
    clerks = {
        p["id"]: SignerKey.load(path / f"clerk-{p['id']}.key") for p in definition["polling_points"]
    }
    _clerks.update({str(k.verifier.key_id): k for k in clerks.values()})
    voter_key = bytes.fromhex((path / "voter.key").read_text().strip())
    signers = Signers.for_definition(
        definition, SignerKey.load(path / "site.key"), clerks, voter_key
    )
    _electorate = Electorate(signers, seed=seed, paper=paper, split=0.1, over_limit=0.02)


def _voters(work: tuple[int, int, str]) -> list[list[Request]]:
    """Voters ``low`` to ``high`` (excluded), their ballots cast at ``cast_at``: the same
    ballots each time (a chunk sent again after an interruption is a replay)."""
    low, high, cast_at = work
    assert _electorate is not None
    _electorate.cast_at = lambda _rng: cast_at
    election = _electorate.signers.election
    voters = []
    for n in range(low, high):
        requests = []
        for ballot in _electorate.voter(n):
            token_body = None
            if ballot.identity is not None:
                lookup = {
                    "type": "voter-lookup",
                    "election": election,
                    "polling_point": ballot.envelope["payload"]["polling_point"],
                    "nonce": str(uuid.uuid4()),
                }
                clerk = _clerks[str(ballot.envelope["key"])]
                body = {"envelope": sign_envelope(lookup, clerk), "identity": ballot.identity}
                token_body = json.dumps(body).encode()
            requests.append(
                Request(
                    ballot.path,
                    json.dumps(ballot.envelope).encode(),
                    token_body,
                    ballot.nonce,
                    ballot.voter,
                    ballot.projects,
                    ballot.refusal,
                )
            )
        voters.append(requests)
    return voters


def spans(start: int, stop: int, size: int = 2000) -> Iterator[tuple[int, int]]:
    for low in range(start, stop, size):
        yield low, min(low + size, stop)


# Sending.


@dataclass
class PhaseReport:
    name: str
    voters: int
    ballots: int = 0
    requests: int = 0
    seconds: float = 0.0
    latencies: array[float] = field(default_factory=lambda: array("d"))
    target_rate: float | None = None
    client_cpu: float = 0.0  # seconds of CPU the generator's process spent in the phase
    echo: float | None = None  # requests/s of a trivial echo server just before the phase

    def add(self, other: PhaseReport) -> None:
        """Another chunk of the same phase."""
        self.voters += other.voters
        self.ballots += other.ballots
        self.requests += other.requests
        self.seconds += other.seconds
        self.latencies.extend(other.latencies)
        self.client_cpu += other.client_cpu

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def pct(p: float) -> float:
            return round(1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1)

        return {
            "voters": self.voters,
            "ballots": self.ballots,
            "requests": self.requests,
            "seconds": round(self.seconds, 2),
            "ballots_per_s": round(self.ballots / self.seconds, 1) if self.seconds else 0,
            "requests_per_s": round(self.requests / self.seconds, 1) if self.seconds else 0,
            "p50_ms": pct(0.50) if ordered else None,
            "p99_ms": pct(0.99) if ordered else None,
            "max_ms": round(1000 * ordered[-1], 1) if ordered else None,
            "client_cpu_share": round(self.client_cpu / self.seconds, 2) if self.seconds else 0,
            **(
                {
                    "echo_requests_per_s": round(self.echo, 1),
                    "requests_vs_echo": round(self.requests / self.seconds / self.echo, 2),
                }
                if self.echo and self.seconds
                else {}
            ),
            **({"target_ballots_per_s": round(self.target_rate, 1)} if self.target_rate else {}),
        }


async def send_phase(
    phase: PhaseReport,
    voters: list[list[Request]],
    sender: Sender,
    concurrency: int,
    voter_rate: float | None,
) -> None:
    """Every voter's ballots in order, ``concurrency`` voters at a time, optionally paced."""
    queue = iter(enumerate(voters))
    began = time.monotonic()
    cpu = time.process_time()

    async def client(k: int) -> None:
        for i, requests in queue:
            if voter_rate:
                delay = began + i / voter_rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            for j, request in enumerate(requests):
                start = k + j
                if request.token_body is not None:
                    await sender.post("voter-tokens", request.token_body, start)
                    phase.requests += 1
                answer = await sender.post(request.path, request.body, start)
                sender.book.record(request, answer)
                phase.latencies.append(answer.seconds)
                phase.requests += 1
                phase.ballots += 1

    await asyncio.gather(*(client(k) for k in range(concurrency)))
    phase.seconds = time.monotonic() - began
    phase.client_cpu = time.process_time() - cpu


ECHO_SERVER = """
import sys
from aiohttp import web
async def receipt(request):
    await request.read()
    return web.json_response({"receipt": "X", "position": 0, "type": "ballot"}, status=201)
app = web.Application()
app.router.add_post("/v1/elections/{e}/{kind}", receipt)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


async def calibrate(concurrency: int, requests: int = 2000) -> float:
    """Requests/s of this client against a trivial aiohttp server that answers every ballot
    at once, on this machine, now: the ceiling the trial's figures are relative to."""
    port = 18_390 + os.getpid() % 9
    echo = subprocess.Popen([sys.executable, "-c", ECHO_SERVER, str(port)])
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=1)
            except urllib.error.HTTPError:
                break  # it answers (404 for GET /)
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the calibration server did not start") from None
                time.sleep(0.05)
        body = json.dumps({"payload": {"type": "ballot", "pad": "x" * 400}}).encode()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            sender = Sender(session, lambda: [url], "calibration", Book())
            todo = iter(range(requests))

            async def client() -> None:
                for _ in todo:
                    await sender.post("ballots", body)

            began = time.monotonic()
            await asyncio.gather(*(client() for _ in range(concurrency)))
            return requests / (time.monotonic() - began)
    finally:
        echo.terminate()
        echo.wait()


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str


def start_servers(directory: Path, db: str, count: int, extra: list[str]) -> list[Server]:
    servers = []
    for k in range(count):
        port = 18_400 + k + (os.getpid() % 500) * 4
        log = open(directory / f"server-{k}.log", "wb")  # noqa: SIM115
        command = [
            *CLI,
            "serve",
            "--db",
            db,
            "--log-key",
            str(directory / "log.key"),
            "--voter-key",
            str(directory / "voter.key"),
            "--deployment",
            "uchast.trial",
            "--port",
            str(port),
            # The generator's clerks and supervisor type at machine speed.
            "--rate-limit-role",
            "clerk=0",
            "--rate-limit-role",
            "supervisor=0",
            "--lookup-limit",
            "0/0",
            *extra,
        ]
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        servers.append(Server(process, f"http://127.0.0.1:{port}"))
    try:
        wait_until_serving(
            [s.url for s in servers], [s.process for s in servers], "/healthz", timeout=60
        )
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    return servers


# --failover: the election on a Patroni cluster of its own, its primary killed while voting.


def cluster_settings() -> dict[str, str]:
    """PostgreSQL's parameters as ``deploy/patroni/`` bootstraps them for voting day (room
    between checkpoints, synchronous commit), crash-safe where the failover trials turn fsync
    off, and PostgreSQL's own default shared_buffers where the trials shrink it."""
    layout = yaml.safe_load((ROOT / "deploy" / "patroni" / "db1.yml").read_text())
    parameters = layout["bootstrap"]["dcs"]["postgresql"]["parameters"]
    return {**{k: str(v) for k, v in parameters.items()}, "fsync": "on", "shared_buffers": "128MB"}


# The servers give up on a statement, and on connecting to one host, after this many seconds
# (as in the failover trials): a dead or hung primary must not hold a request for long.
SERVE_TIMEOUTS = "&connect_timeout=2&command_timeout=2"
CHECKPOINTS_EVERY = 0.25  # seconds between reads of each server's checkpoint while voting


PROBE_EVERY = 0.05  # seconds between two fresh ballots sent after the kill


@dataclass
class Failover:
    """A --failover run's cluster, and what was seen around its fault.

    The load's own ballots cannot time the outage: when the primary dies every client is
    retrying a ballot sent before, at the pace of its back-off. So from the kill on, as in the
    failover trials, a probe sends a fresh online ballot every :data:`PROBE_EVERY` seconds (each
    retried until it has a definitive answer, recorded in the book like any other) until one is
    acknowledged."""

    cluster: PatroniCluster
    after: float  # seconds after the morning peak's casting began
    killed: str = ""  # the node whose postmaster was killed
    killed_at: float | None = None  # time.monotonic() of the kill
    promoted_s: float | None = None  # from the kill to the standby promoted and writable
    first_ack_s: float | None = None  # from the kill to the first probe acknowledged
    probes: Book = field(default_factory=Book)
    checkpoints: dict[str, float] = field(default_factory=dict)  # note -> when first seen
    task: asyncio.Task[None] | None = None

    def start(self, sender: Sender, site: SignerKey, project: str) -> None:
        """Set the fault off: ``after`` seconds from now (at the morning peak's start)."""
        at = time.monotonic() + self.after
        self.task = asyncio.create_task(self._strike(at, sender, site, project))

    async def _strike(self, at: float, sender: Sender, site: SignerKey, project: str) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        primary, standby = await asyncio.to_thread(self.cluster.wait_healthy, 30)
        self.cluster.kill_postmaster(primary)
        self.killed_at, self.killed = time.monotonic(), primary.name
        progress(f"failover: SIGKILL to {primary.name}'s postmaster (the primary)")
        probing = asyncio.create_task(self._probe(sender, site, project))
        await asyncio.to_thread(self.cluster.wait_promoted, standby, 120)
        self.promoted_s = time.monotonic() - self.killed_at
        progress(f"failover: {standby.name} promoted {self.promoted_s:.1f} s after the kill")
        await probing
        progress(f"failover: first ballot acknowledged {self.first_ack_s:.1f} s after the kill")

    async def _probe(self, sender: Sender, site: SignerKey, project: str) -> None:
        async def one() -> None:
            voter, nonce = uuid.uuid4().hex * 2, str(uuid.uuid4())
            payload = {
                "type": "ballot",
                "election": sender.election,
                "voter": voter,
                "projects": [project],
                "cast_at": cast_now(),
                "nonce": nonce,
            }
            envelope = json.dumps(sign_envelope(payload, site)).encode()
            probe = Request("ballots", envelope, None, nonce, voter, (project,), None)
            answer = await sender.post(probe.path, probe.body)
            self.probes.record(probe, answer)
            if answer.status < 300 and self.first_ack_s is None and self.killed_at is not None:
                self.first_ack_s = time.monotonic() - self.killed_at

        sent = []
        while self.first_ack_s is None:
            sent.append(asyncio.create_task(one()))
            await asyncio.sleep(PROBE_EVERY)
        await asyncio.gather(*sent)

    async def finish(self) -> None:
        """Voting is over: a fault still waiting is called off (it never struck); one that
        struck is waited for, and its failure raised."""
        if self.task is None:
            return
        if self.killed_at is None:
            self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    def save_checkpoints(self, directory: Path) -> None:
        folder = directory / "checkpoints"
        folder.mkdir(exist_ok=True)
        for k, note in enumerate(self.checkpoints):
            (folder / f"{k:06d}.txt").write_text(note, encoding="utf-8")

    def summary(self) -> dict[str, Any]:
        return {
            "after_s": self.after,
            "struck": self.killed_at is not None,
            "killed": self.killed or None,
            "promoted_s": None if self.promoted_s is None else round(self.promoted_s, 2),
            "first_ack_s": None if self.first_ack_s is None else round(self.first_ack_s, 2),
            "probes": len(self.probes.acknowledged) + len(self.probes.refused),
            "nodes": len(self.cluster.nodes),
            "checkpoints_seen": len(self.checkpoints),
        }


def start_cluster(nodes: int) -> PatroniCluster:
    cluster = PatroniCluster(cluster_root(), cluster_settings(), nodes=nodes)
    progress(f"starting a Patroni cluster (etcd, {nodes} PostgreSQL nodes) in {cluster.root}")
    try:
        cluster.start()
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def stop_cluster(cluster: PatroniCluster) -> None:
    cluster.stop()
    shutil.rmtree(cluster.root, ignore_errors=True)


# Peak memory: VmHWM, the resident set's high-water mark, reset at each phase's start.


def peak_rss_mib(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def reset_peak_rss(pid: int | str = "self") -> None:
    # "5": reset the high-water mark to the current resident set (Linux 4.0+); where refused,
    # each phase's figure is the peak since the process started.
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


# The run's state in its work directory, so that an interrupted run can be resumed.
#
# state.json (small, rewritten by rename after every chunk of voters, phase and stage): the
# arguments, the database, the stages done, the next voter, each phase's casting time, echo
# rate and pace, the peaks of memory, and the outcomes of the final checks. Each completed chunk
# of voters has its own file chunk-<first voter>.pickle (written, by rename, before state.json
# names it): its book (answers, votes, replays, surprises) and its PhaseReport with the
# latencies. A chunk not yet named in state.json is sent again whole on resume: the service
# answers an already-cast ballot with its original receipt ("replay"), which the chunk's fresh
# book counts once. Voters are regenerated from the seed and their index (Electorate), signed
# with the phase's recorded casting time, so a ballot sent again is the same payload.

RESUMABLE = ("scale", "servers", "concurrency", "paper", "seed", "signers", "serve_arg",
             "no_audit", "chunk", "failover", "cluster_nodes")  # fmt: skip


class Stopped(Exception):
    """--stop-after reached: the state is saved, the run can be resumed."""


@dataclass
class State:
    directory: Path
    args: dict[str, Any]
    db: str
    total: int
    done: list[str] = field(default_factory=list)  # "setup", the phases, "log", "totals", ...
    next_voter: int = 0
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)  # cast_at, echo, rates
    chunks: list[str] = field(default_factory=list)
    rss: dict[str, dict[str, float]] = field(default_factory=dict)  # phase/stage -> process -> MiB
    vkeys: dict[str, str] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)  # "log", "totals", "audit"
    servers: list[int] = field(default_factory=list)  # pids, to stop leftovers of a killed run
    sittings: int = 1
    activity: str = ""  # what the generator is doing: where the slowest /results read fell

    def save(self) -> None:
        data = {k: v for k, v in self.__dict__.items() if k != "directory"}
        temporary = self.directory / "state.json.tmp"
        temporary.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(temporary, self.directory / "state.json")

    @classmethod
    def load(cls, directory: Path) -> State:
        data = json.loads((directory / "state.json").read_text(encoding="utf-8"))
        return cls(directory=directory, **data)

    def save_chunk(self, first: int, report: PhaseReport, book: Book) -> str:
        """Write a completed chunk's file (``first`` -1: the failover's probes); it counts once
        state.json names it."""
        name = f"chunk-{first:09d}.pickle" if first >= 0 else "chunk-failover-probes.pickle"
        temporary = self.directory / f"{name}.tmp"
        with open(temporary, "wb") as out:
            pickle.dump((report, book), out, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, self.directory / name)
        return name

    def load_chunks(self) -> tuple[dict[str, PhaseReport], Book]:
        reports: dict[str, PhaseReport] = {}
        book = Book()
        for name in self.chunks:
            with open(self.directory / name, "rb") as chunk:
                report, part = pickle.load(chunk)  # this run's own files
            if report.name in reports:
                reports[report.name].add(report)
            else:
                reports[report.name] = report
            book.merge(part)
        return reports, book

    def peak(self, stage: str, name: str, mib: float) -> None:
        self.rss.setdefault(stage, {})
        self.rss[stage][name] = max(self.rss[stage].get(name, 0.0), mib)

    def resume_command(self) -> str:
        return shlex.join(
            [sys.executable, str(Path(__file__).resolve()), "--resume", str(self.directory)]
        )


def phase_bounds(total: int) -> list[tuple[Phase, int, int]]:
    bounds = []
    first = 0
    for k, phase in enumerate(PHASES):
        count = total - first if k == len(PHASES) - 1 else round(total * phase.share)
        bounds.append((phase, first, first + count))
        first += count
    return bounds


def stop_leftovers(state: State) -> None:
    """Stop servers a killed sitting left running on this run's database."""
    for pid in state.servers:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(state.directory / "log.key").encode() in command:
            progress(f"stopping server {pid} left by the interrupted sitting")
            os.kill(pid, signal.SIGTERM)
            for _ in range(300):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.1)


def stop_servers(servers: list[Server]) -> None:
    for server in servers:
        if server.process.poll() is None:
            server.process.terminate()
    for server in servers:
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def set_up_stage(state: State) -> None:
    if "setup" in state.done:
        return
    directory = state.directory
    for leftover in [*directory.glob("*.key"), directory / "election.toml"]:
        leftover.unlink(missing_ok=True)  # an interrupted set-up starts over on a fresh database
    if state.vkeys or (directory / "started").exists():
        drop_database(state.db)
        state.db = create_database()
    (directory / "started").touch()
    state.save()
    state.vkeys = set_up(directory, state.db)
    state.done.append("setup")
    state.save()


async def phases_stage(
    state: State,
    servers: list[Server],
    reports: dict[str, PhaseReport],
    book: Book,
    stop_after: str | None,
    interrupt_after: int | None,
    failover: Failover | None,
) -> None:
    args = state.args
    directory = state.directory
    election = parse_election_toml((directory / "election.toml").read_text(encoding="utf-8"))
    urls = [s.url for s in servers]
    context = multiprocessing.get_context("fork")
    with context.Pool(
        max(1, args["signers"]),
        initializer=_load,
        initargs=(str(directory), args["seed"], args["paper"]),
    ) as pool:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            sender = Sender(session, lambda: urls, election.id, Book(), timeout=60)
            # As on a real voting day, the results page is open all along: each server's live
            # tally follows the log from the start (it starts on the first read) and its
            # memory counts in the peaks.
            state.activity = "starting"
            reader = asyncio.create_task(read_results(session, urls, election.id, state))
            watchers = [reader]
            if failover is not None:
                seen = failover.checkpoints
                watch = watch_checkpoints(session, urls, election.id, seen, CHECKPOINTS_EVERY)
                watchers.append(asyncio.create_task(watch))
            try:
                await _cast_phases(
                    state,
                    servers,
                    book,
                    stop_after,
                    interrupt_after,
                    pool,
                    sender,
                    reports,
                    failover,
                )
                if failover is not None:
                    await failover.finish()
            finally:
                for watcher in watchers:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher
            if failover is not None:
                failover.save_checkpoints(directory)
                if failover.probes.acknowledged or failover.probes.refused:
                    probes = PhaseReport("failover-probes", 0)
                    state.chunks.append(state.save_chunk(-1, probes, failover.probes))
                    book.merge(failover.probes)
                state.results["failover"] = failover.summary()
                state.save()
                progress(f"failover: {json.dumps(state.results['failover'])}")


def _signed(pool: Any, work: list[tuple[int, int, str]]) -> list[Any]:
    """The voters of ``work``'s spans with their signed ballots, from the signing pool."""
    return [v for chunk in pool.imap(_voters, work) for v in chunk]


async def read_results(
    session: aiohttp.ClientSession, urls: list[str], election: str, state: State
) -> None:
    """GET each server's /results every RESULTS_EVERY seconds (the results page refreshes
    itself), counting the reads and the slowest answer, with what the generator was doing."""
    reads = state.results.setdefault("results_reads", {"requests": 0, "max_ms": 0.0})
    while True:
        for url in urls:
            began = time.monotonic()
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with session.get(f"{url}/v1/elections/{election}/results") as response:
                    await response.read()
                reads["requests"] += 1
                took = round(1000 * (time.monotonic() - began))
                if took > reads["max_ms"]:
                    reads["max_ms"], reads["slowest_during"] = took, state.activity
        await asyncio.sleep(RESULTS_EVERY)


async def _cast_phases(
    state: State,
    servers: list[Server],
    book: Book,
    stop_after: str | None,
    interrupt_after: int | None,
    pool: Any,
    sender: Sender,
    reports: dict[str, PhaseReport],
    failover: Failover | None,
) -> None:
    args = state.args
    sent = 0
    for phase, first, last in phase_bounds(state.total):
        if phase.name in state.done:
            continue
        meta = state.phases.get(phase.name)
        if meta is None:
            meta = {"cast_at": cast_now()}
            if phase.paced is None:  # the machine's speed now (it may be shared)
                state.activity = f"{phase.name}: echo server"
                meta["echo"] = await calibrate(args["concurrency"])
                progress(f"{phase.name}: echo server {meta['echo']:,.0f} requests/s")
            else:
                morning = reports[PHASES[0].name]
                meta["target_rate"] = phase.paced * morning.ballots / morning.seconds
                meta["voter_rate"] = phase.paced * morning.voters / morning.seconds
            state.phases[phase.name] = meta
            state.save()
        start = max(first, state.next_voter)
        began = time.monotonic()
        work = [(low, high, meta["cast_at"]) for low, high in spans(start, last)]
        state.activity = f"{phase.name}: signing"
        # In a thread, so that this event loop goes on reading /results meanwhile (blocked, it
        # held a read begun before the signing for all of it: 18.8 s in a x100 run).
        voters = await asyncio.to_thread(_signed, pool, work)
        state.activity = f"{phase.name}: casting"
        progress(f"{phase.name}: {last - start:,} voters signed in {time.monotonic() - began:.1f}s")
        for process in [*(str(s.process.pid) for s in servers), "self"]:
            reset_peak_rss(process)
        if failover is not None and failover.task is None:  # the morning peak's casting begins
            text = (state.directory / "election.toml").read_text(encoding="utf-8")
            project = parse_election_toml(text).projects[0].id
            failover.start(sender, SignerKey.load(state.directory / "site.key"), project)
        for low in range(start, last, args["chunk"]):
            high = min(low + args["chunk"], last)
            part = PhaseReport(phase.name, high - low)
            part.echo = meta.get("echo")
            part.target_rate = meta.get("target_rate")
            sender.book = Book()
            todo = voters[low - start : high - start]
            if interrupt_after is not None and sent + len(todo) > interrupt_after:
                todo = todo[: max(0, interrupt_after - sent)]  # test hook: then Ctrl-C
            await send_phase(
                part,
                todo,
                sender,
                phase.concurrency or args["concurrency"],
                meta.get("voter_rate"),
            )
            sent += len(todo)
            if interrupt_after is not None and sent >= interrupt_after:
                progress(f"interrupting after {sent} voters (--interrupt-after-voters)")
                raise KeyboardInterrupt
            name = state.save_chunk(low, part, sender.book)
            if phase.name in reports:
                reports[phase.name].add(part)
            else:
                reports[phase.name] = part
            book.merge(sender.book)
            state.chunks.append(name)
            state.next_voter = high
            for k, server in enumerate(servers):
                state.peak(phase.name, f"server-{k}", peak_rss_mib(server.process.pid))
            state.peak(phase.name, "generator", peak_rss_mib())
            state.save()
            progress(f"{phase.name}: {high - first:,} of {last - first:,} voters")
        del voters
        state.done.append(phase.name)
        state.save()
        progress(f"{phase.name}: {json.dumps(reports[phase.name].summary())}")
        if stop_after == phase.name:
            raise Stopped(phase.name)


async def checks_stage(
    state: State, servers: list[Server], book: Book, stop_after: str | None
) -> None:
    """The log holds each acknowledged ballot once; every server's totals are the book's."""
    election = parse_election_toml(
        (state.directory / "election.toml").read_text(encoding="utf-8")
    ).id
    if "log" not in state.done:
        progress("checking the log against the book ...")
        began = time.monotonic()
        log = await check_log(state.db, election, book)
        state.results["log"] = {
            "size": log.size,
            "ballots": log.ballots,
            "duplicates": len(log.duplicates),
            "unacknowledged": len(log.unacknowledged),
            "lost": len(log.lost),
            "ok": log.ok,
            "seconds": round(time.monotonic() - began, 1),
        }
        state.done.append("log")
        state.save()
        progress(f"log: {json.dumps(state.results['log'])}")
        if stop_after == "log":
            raise Stopped("log")
    if "totals" not in state.done:
        size = state.results["log"]["size"]
        async with aiohttp.ClientSession() as session:
            served = [await served_votes(session, s.url, election, size, 300) for s in servers]
        state.results["totals"] = {
            "servers": len(served),
            "match": all(votes == +book.votes for votes in served),
        }
        for k, server in enumerate(servers):
            state.peak("checks", f"server-{k}", peak_rss_mib(server.process.pid))
        state.peak("checks", "generator", peak_rss_mib())
        state.done.append("totals")
        state.save()
        progress(f"totals match the generator's on every server: {state.results['totals']}")
        if stop_after == "totals":
            raise Stopped("totals")


def audit_stage(state: State) -> None:
    if "audit" in state.done:
        return
    if not state.args["no_audit"]:
        progress("exporting and auditing the log ...")
        election = parse_election_toml(
            (state.directory / "election.toml").read_text(encoding="utf-8")
        ).id
        out = state.directory / "log.jsonl"
        checkpoints = sorted((state.directory / "checkpoints").glob("*.txt"))
        run_ = export_and_audit(
            state.db, election, out, state.vkeys["log"], state.vkeys["admin"], checkpoints
        )
        size = state.results["log"]["size"]
        state.results["audit"] = {
            "ok": run_.ok,
            "export_seconds": round(run_.export_seconds, 1),
            "audit_seconds": round(run_.audit_seconds, 1),
            "entries_per_s": round(size / run_.audit_seconds) if run_.audit_seconds else 0,
            "checkpoints_given": len(checkpoints),
        }
        progress(run_.output.splitlines()[0] if run_.output else "(no audit output)")
        if not run_.ok:
            progress(run_.output[-3000:])
        out.unlink(missing_ok=True)
    state.done.append("audit")
    state.save()


async def trial(
    state: State,
    stop_after: str | None,
    interrupt_after: int | None,
    failover: Failover | None = None,
) -> None:
    set_up_stage(state)
    if stop_after == "setup":
        raise Stopped("setup")
    reports, book = state.load_chunks()
    if "totals" in state.done:
        return
    stop_leftovers(state)
    db = state.db if failover is None else state.db + SERVE_TIMEOUTS
    servers = start_servers(state.directory, db, state.args["servers"], state.args["serve_arg"])
    try:
        state.servers = [s.process.pid for s in servers]
        state.save()
        progress(
            f"{state.total:,} voters against {len(servers)} servers on "
            f"{state.db.rsplit('/', 1)[1].split('?')[0]}, from voter {state.next_voter:,} (sitting "
            f"{state.sittings})"
        )
        await phases_stage(state, servers, reports, book, stop_after, interrupt_after, failover)
        progress(f"book: {json.dumps(book.summary())}")
        await checks_stage(state, servers, book, stop_after)
    finally:  # the state is not saved here: interrupted, it may be half updated
        stop_servers(servers)


def result(state: State) -> dict[str, Any]:
    reports, book = state.load_chunks()
    phases = [reports[p.name] for p in PHASES]
    peak = [r for r in phases if r.target_rate is None]
    all_peak = sum(r.ballots for r in peak) / sum(r.seconds for r in peak)
    overall: dict[str, float] = {}
    for peaks in state.rss.values():
        for name, mib in peaks.items():
            overall[name] = max(overall.get(name, 0.0), mib)
    log = state.results["log"]
    totals_match = state.results["totals"]["match"]
    audit = state.results.get("audit")
    failover = state.results.get("failover")
    return {
        "bench": "voting_day",
        "scale": state.args["scale"],
        "voters": state.total,
        "servers": state.args["servers"],
        "concurrency": state.args["concurrency"],
        "sittings": state.sittings,
        "ballots_sent": sum(r.ballots for r in phases),
        "acknowledged": len(book.acknowledged),
        "refused": dict(Counter(book.refused.values())),
        "paper_ballots": book.ballots["paper"],
        "online_ballots": book.ballots["online"],
        "votes": sum(book.votes.values()),
        "replays": book.replays,
        "transient": dict(book.transient),
        "surprises": len(book.surprises),
        "phases": {r.name: r.summary() for r in phases},
        "peak_ballots_per_s": round(all_peak, 1),
        "log": log,
        "totals_match": totals_match,
        "peak_rss_mib": {"overall": overall, **state.rss},
        "results_reads": state.results.get("results_reads"),
        "audit": audit,
        "failover": failover,
        "ok": bool(
            log["ok"]
            and totals_match
            and not book.surprises
            and (audit is None or audit["ok"])
            and (failover is None or failover["first_ack_s"] is not None)
        ),
    }


def print_summary(outcome: dict[str, Any]) -> None:
    progress(
        "phase           ballots   ballots/s  p50 ms  p99 ms  peak RSS MiB (servers; generator)"
    )
    for name, phase in outcome["phases"].items():
        peaks = outcome["peak_rss_mib"].get(name, {})
        servers = ", ".join(f"{v:g}" for k, v in sorted(peaks.items()) if k != "generator")
        progress(
            f"{name:<14} {phase['ballots']:>9,} {phase['ballots_per_s']:>10,.1f}"
            f" {phase['p50_ms']:>7} {phase['p99_ms']:>7}  {servers}; {peaks.get('generator')}"
        )
    audit = outcome["audit"]
    if audit:
        progress(
            f"export {audit['export_seconds']} s, audit {audit['audit_seconds']} s "
            f"({audit['entries_per_s']:,} entries/s), ok={audit['ok']}"
        )
    progress(f"log check {outcome['log']['seconds']} s, ok={outcome['log']['ok']}; "
             f"totals match on every server: {outcome['totals_match']}")  # fmt: skip
    if outcome["failover"]:
        progress(f"failover: {json.dumps(outcome['failover'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=100, help="x 2018 turnout (default 100)")
    parser.add_argument("--servers", type=int, default=2, help="server processes (default 2)")
    parser.add_argument(
        "--concurrency", type=int, default=256, help="clients in the peaks (default 256)"
    )
    parser.add_argument("--paper", type=float, default=0.2, help="share voting on paper")
    parser.add_argument("--seed", type=int, default=2018)
    parser.add_argument("--signers", type=int, default=os.cpu_count() or 2,
                        help="processes signing ballots before each phase")  # fmt: skip
    parser.add_argument(
        "--serve-arg", action="append", default=[], help="extra `uchast serve` argument"
    )
    parser.add_argument("--no-audit", action="store_true", help="skip export and audit")
    parser.add_argument("--keep", action="store_true", help="keep the database and files")
    parser.add_argument("--chunk", type=int, default=20_000,
                        help="voters between saves of the state (default 20,000)")  # fmt: skip
    parser.add_argument("--work", type=Path,
                        help="work directory (new or empty): database, keys, state")  # fmt: skip
    parser.add_argument("--resume", type=Path, metavar="DIR",
                        help="continue the interrupted run in DIR (its own arguments)")  # fmt: skip
    parser.add_argument(
        "--stop-after",
        choices=["setup", *(p.name for p in PHASES), "log", "totals"],
        help="save the state and stop after this phase or stage (resume with --resume)",
    )
    parser.add_argument(
        "--failover",
        type=float,
        metavar="SECONDS",
        help="on a Patroni cluster of its own, SIGKILL the primary this many seconds after the"
        " morning peak's casting began (one sitting: not resumable)",
    )
    parser.add_argument(
        "--cluster-nodes",
        type=int,
        default=2,
        metavar="N",
        help="--failover's PostgreSQL nodes (default 2: a primary and its synchronous standby)",
    )
    parser.add_argument("--interrupt-after-voters", type=int, help=argparse.SUPPRESS)  # tests
    args = parser.parse_args()
    if args.cluster_nodes < 2:
        parser.error("--cluster-nodes takes 2 or more")
    if args.failover is not None and (args.failover < 0 or args.stop_after or args.resume):
        parser.error("--failover takes seconds (0 or more) and runs in one sitting")

    failover: Failover | None = None
    if args.resume is not None:
        state = State.load(args.resume.resolve())
        if state.args.get("failover") is not None:
            raise SystemExit(
                f"{args.resume} is a --failover run: its Patroni cluster ended with its sitting,"
                " so it cannot be resumed; start a new run"
            )
        state.sittings += 1
    else:
        if args.work is not None:
            args.work.mkdir(parents=True, exist_ok=True)
            if any(args.work.iterdir()):
                raise SystemExit(f"{args.work} is not empty (to continue a run: --resume)")
            directory = args.work.resolve()
        else:
            directory = Path(tempfile.mkdtemp(prefix="uchast-voting-day-"))
        saved = {name: getattr(args, name) for name in RESUMABLE}
        total = max(1, round(VOTERS_2018 * args.scale))
        if args.failover is not None:
            failover = Failover(start_cluster(args.cluster_nodes), args.failover)
        try:
            db = create_database() if failover is None else failover.cluster.create_database()
            state = State(directory, saved, db, total)
        except BaseException:
            if failover is not None:
                stop_cluster(failover.cluster)
            raise
    try:
        state.save()
        run_to_the_end(state, args, failover)
    finally:
        if failover is not None:
            stop_cluster(failover.cluster)


def run_to_the_end(state: State, args: argparse.Namespace, failover: Failover | None) -> None:
    """The stages from wherever ``state`` is, the checks and the audit; print the JSON line
    and exit (0 when every check passed)."""

    def terminated(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminated)
    try:
        asyncio.run(trial(state, args.stop_after, args.interrupt_after_voters, failover))
        audit_stage(state)
    except (KeyboardInterrupt, Stopped) as exc:
        how = f"stopped after {exc}" if isinstance(exc, Stopped) else "interrupted"
        if failover is not None:
            progress(f"{how}; a --failover run cannot be resumed (its cluster is gone)")
            print(json.dumps({"bench": "voting_day", "ok": False, "stopped": how}))
            sys.exit(130)
        progress(f"{how}; the state is in {state.directory}; to continue:")
        progress(f"  {state.resume_command()}")
        print(json.dumps({"bench": "voting_day", "ok": False, "stopped": how,
                          "next_voter": state.next_voter, "done": state.done,
                          "resume": state.resume_command()}))  # fmt: skip
        sys.exit(3 if isinstance(exc, Stopped) else 130)
    outcome = result(state)
    print_summary(outcome)
    (state.directory / "result.json").write_text(json.dumps(outcome), encoding="utf-8")
    if failover is not None:  # the database goes with the cluster
        progress(f"result.json and the state stay in {state.directory}")
    elif args.keep:
        progress(f"kept {state.db} and {state.directory}")
    else:
        drop_database(state.db)
        if args.work is None and args.resume is None:
            subprocess.run(["rm", "-rf", str(state.directory)], check=False)
        else:
            progress(f"dropped the database; result.json and the state stay in {state.directory}")
    print(json.dumps(outcome))
    sys.exit(0 if outcome["ok"] else 1)


if __name__ == "__main__":
    main()
