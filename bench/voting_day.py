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

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
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

from bench.ingest_ledger import create_database, drop_database  # noqa: E402
from bench.loadgen import (  # noqa: E402
    Book,
    Electorate,
    Sender,
    Signers,
    check_log,
    export_and_audit,
    served_votes,
    wait_until_serving,
)
from ledger.keys import SignerKey, sign_envelope  # noqa: E402
from votes.election import election_to_dict, parse_election_toml  # noqa: E402

EXAMPLE = ROOT / "examples" / "zhytomyr-2018.toml"
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


def _voters(span: tuple[int, int]) -> list[list[Request]]:
    assert _electorate is not None
    election = _electorate.signers.election
    voters = []
    for n in range(*span):
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


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


async def trial(args: argparse.Namespace, directory: Path, db: str) -> dict[str, Any]:
    vkeys = set_up(directory, db)
    election = parse_election_toml((directory / "election.toml").read_text(encoding="utf-8"))
    total = max(1, round(VOTERS_2018 * args.scale))
    servers = start_servers(directory, db, args.servers, args.serve_arg)
    urls = [s.url for s in servers]
    progress(f"{total:,} voters against {len(urls)} servers on {db.rsplit('/', 1)[1]}")
    book = Book()
    reports: list[PhaseReport] = []
    rss: dict[str, list[float]] = {s.url: [] for s in servers}
    context = multiprocessing.get_context("fork")
    workers = max(1, args.signers)
    with context.Pool(
        workers, initializer=_load, initargs=(str(directory), args.seed, args.paper)
    ) as pool:
        first = 0
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            sender = Sender(session, lambda: urls, election.id, book, timeout=60)
            for k, phase in enumerate(PHASES):
                count = total - first if k == len(PHASES) - 1 else round(total * phase.share)
                began = time.monotonic()
                voters = [
                    v for chunk in pool.imap(_voters, spans(first, first + count)) for v in chunk
                ]
                progress(
                    f"{phase.name}: {count:,} voters signed in {time.monotonic() - began:.1f}s"
                )
                first += count
                report = PhaseReport(phase.name, count)
                if phase.paced is None:  # the machine's speed now (it may be shared)
                    report.echo = await calibrate(args.concurrency)
                    progress(f"{phase.name}: echo server {report.echo:,.0f} requests/s")
                rate = None
                if phase.paced is not None and reports:
                    morning = reports[0]
                    report.target_rate = phase.paced * morning.ballots / morning.seconds
                    rate = phase.paced * morning.voters / morning.seconds
                await send_phase(
                    report,
                    voters,
                    sender,
                    phase.concurrency or args.concurrency,
                    rate,
                )
                del voters
                reports.append(report)
                for server in servers:
                    rss[server.url].append(rss_mib(server.process.pid))
                progress(f"{phase.name}: {json.dumps(report.summary())}")
    progress(f"book: {json.dumps(book.summary())}")

    log = await check_log(db, election.id, book)
    progress(f"log: {log.size:,} entries, {log.ballots:,} ballots, ok={log.ok}")
    async with aiohttp.ClientSession() as session:
        served = [await served_votes(session, url, election.id, log.size, 300) for url in urls]
    totals_match = all(votes == +book.votes for votes in served)
    progress(f"totals match the generator's on every server: {totals_match}")
    for server in servers:
        server.process.terminate()
        server.process.wait(timeout=30)

    audit = None
    if not args.no_audit:
        progress("exporting and auditing the log ...")
        run_ = export_and_audit(
            db, election.id, directory / "log.jsonl", vkeys["log"], vkeys["admin"]
        )
        audit = {
            "ok": run_.ok,
            "export_seconds": round(run_.export_seconds, 1),
            "audit_seconds": round(run_.audit_seconds, 1),
            "entries_per_s": round(log.size / run_.audit_seconds) if run_.audit_seconds else 0,
        }
        progress(run_.output.splitlines()[0] if run_.output else "(no audit output)")
        if not run_.ok:
            progress(run_.output[-3000:])
    peak = [r for r in reports if r.target_rate is None]
    all_peak = sum(r.ballots for r in peak) / sum(r.seconds for r in peak)
    return {
        "bench": "voting_day",
        "scale": args.scale,
        "voters": total,
        "servers": len(urls),
        "concurrency": args.concurrency,
        "ballots_sent": sum(r.ballots for r in reports),
        "acknowledged": len(book.acknowledged),
        "refused": dict(Counter(book.refused.values())),
        "paper_ballots": book.ballots["paper"],
        "online_ballots": book.ballots["online"],
        "votes": sum(book.votes.values()),
        "replays": book.replays,
        "transient": dict(book.transient),
        "surprises": len(book.surprises),
        "phases": {r.name: r.summary() for r in reports},
        "peak_ballots_per_s": round(all_peak, 1),
        "log": {"size": log.size, "ballots": log.ballots, "ok": log.ok},
        "totals_match": totals_match,
        "server_rss_mib": rss,
        "audit": audit,
        "ok": bool(
            log.ok and totals_match and not book.surprises and (audit is None or audit["ok"])
        ),
    }


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
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="uchast-voting-day-"))
    db = create_database()
    try:
        result = asyncio.run(trial(args, directory, db))
    finally:
        if args.keep:
            progress(f"kept {db} and {directory}")
        else:
            drop_database(db)
            subprocess.run(["rm", "-rf", str(directory)], check=False)
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
