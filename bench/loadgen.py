"""Load for trials: voters' ballots signed as the voting site and the clerks sign them, sent over
HTTP with retries by nonce, and the generator's own book of what was acknowledged.

Used by the fault trials (tests/faults/) and the voting-day trial (bench/voting_day.py). The
generator knows exactly what it sent and what each answer was, so after any fault it can say
what the totals must be, and check the log for lost or doubled ballots.

A client retries a ballot with the *same envelope* (so the same nonce) after a connection
failure, a timeout, a 5xx or a 429, on the next server in its list, until it gets a definitive
answer: 201 (accepted), 200 (a replay of an accepted one: same receipt) or another 4xx (refused,
with a code). That is what a voting site must do, and what makes "acknowledged" exact.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from ledger.entry import entry_payload
from ledger.keys import SignerKey, sign_envelope
from ledger.store import open_store
from votes.tokens import voter_token

ROOT = Path(__file__).resolve().parents[1]
BALLOT_TYPES = ("ballot", "paper-ballot")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_serving(
    urls: Sequence[str],
    processes: Sequence[subprocess.Popen[bytes]],
    path: str = "/healthz",
    timeout: float = 30,
) -> None:
    """Return once every server answers ``path``; if one exits or time runs out, kill them all
    (none may be left running on a database about to be dropped) and raise RuntimeError."""
    try:
        for url, process in zip(urls, processes, strict=True):
            deadline = time.monotonic() + timeout
            while True:
                try:
                    urllib.request.urlopen(f"{url}{path}", timeout=1).read()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"server at {url} did not start") from None
                    time.sleep(0.1)
    except BaseException:
        for process in processes:
            process.kill()
            process.wait()
        raise


@dataclass(frozen=True)
class Signers:
    """What the load needs to sign like the voting site and the clerks do."""

    election: str
    site: SignerKey
    clerks: dict[str, SignerKey]  # polling point -> clerk key
    voter_key: bytes
    projects: dict[str, list[str]]  # category -> project ids
    max_picks: dict[str, int]  # category -> most distinct projects per voter

    @classmethod
    def for_definition(
        cls,
        definition: dict[str, Any],
        site: SignerKey,
        clerks: dict[str, SignerKey],
        voter_key: bytes,
    ) -> Signers:
        """From an election definition as ``election_to_dict`` writes it."""
        projects: dict[str, list[str]] = {c["id"]: [] for c in definition["categories"]}
        for project in definition["projects"]:
            projects[project["category"]].append(project["id"])
        return cls(
            election=definition["id"],
            site=site,
            clerks=clerks,
            voter_key=voter_key,
            projects=projects,
            max_picks={c["id"]: c["max_picks"] for c in definition["categories"]},
        )


def trial_window(definition: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The definition with its voting window moved to contain ``now`` (default: the real now):
    opened a day ago, closing in nine, paper accepted a day longer.

    Trials run on the real clock rather than ``serve --clock``: entries record real time, and
    the auditor checks paper ballots' recorded times against the paper deadline.
    """
    now = now or datetime.now(UTC)
    opens = now.replace(microsecond=0) - timedelta(days=1)
    closes = opens + timedelta(days=10, seconds=-1)
    return {
        **definition,
        "voting_opens": opens.isoformat(),
        "voting_closes": closes.isoformat(),
        "paper_deadline": (closes + timedelta(days=1)).isoformat(),
    }


def cast_now(_rng: random.Random | None = None) -> str:
    """The moment of casting: now (seconds), with UTC offset."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Ballot:
    """One request: where it goes, its signed envelope, and what the generator expects."""

    path: str  # "ballots" or "paper-ballots"
    envelope: dict[str, Any]
    projects: tuple[str, ...]
    refusal: str | None = None  # the code it must be refused with; None: must be accepted
    identity: str | None = None  # paper: the number the clerk types (for voter-tokens)

    @property
    def nonce(self) -> str:
        return str(self.envelope["payload"]["nonce"])

    @property
    def channel(self) -> str:
        return "paper" if self.path == "paper-ballots" else "online"

    @property
    def voter(self) -> str:
        return str(self.envelope["payload"]["voter"])


class Counted(Protocol):
    """What the book needs to know of a ballot it records."""

    @property
    def nonce(self) -> str: ...
    @property
    def voter(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def projects(self) -> tuple[str, ...]: ...
    @property
    def refusal(self) -> str | None: ...


class Electorate:
    """Voters and their ballots, reproducible from a seed.

    About ``paper`` of voters vote on paper at a random polling point, the rest online; each
    picks 0-max projects per category (at least one in all), popular projects more often; some
    split their picks over two ballots, and some try one pick too many afterwards (which must be
    refused ``limit-exceeded``).
    """

    def __init__(
        self,
        signers: Signers,
        *,
        seed: int = 2018,
        paper: float = 0.2,
        split: float = 0.1,
        over_limit: float = 0.03,
        cast_at: Callable[[random.Random], str] | None = None,
    ) -> None:
        self.signers = signers
        self.seed = seed
        self.paper = paper
        self.split = split
        self.over_limit = over_limit
        self.cast_at = cast_at or cast_now
        rng = random.Random(seed)
        self.weights = {
            category: [rng.paretovariate(1.2) for _ in ids]
            for category, ids in signers.projects.items()
        }

    def identity(self, n: int) -> str:
        """Voter n's identity number (10 digits, distinct for n below 10^9)."""
        return f"{3_000_000_000 + (n * 7919) % 1_000_000_007:010d}"

    def _picks(self, rng: random.Random) -> dict[str, list[str]]:
        picks: dict[str, list[str]] = {}
        while not any(picks.values()):
            for category, ids in self.signers.projects.items():
                most = min(self.signers.max_picks[category], len(ids))
                count = rng.choices(range(most + 1), weights=[1] + [3] * most)[0]
                chosen: list[str] = []
                while len(chosen) < count:
                    pick = rng.choices(ids, weights=self.weights[category])[0]
                    if pick not in chosen:
                        chosen.append(pick)
                picks[category] = chosen
        return picks

    def voter(self, n: int) -> list[Ballot]:
        """Voter n's ballots, in the order the voter casts them."""
        rng = random.Random(self.seed * 1_000_003 + n)
        s = self.signers
        identity = self.identity(n)
        token = voter_token(s.voter_key, s.election, identity)
        picks = self._picks(rng)
        flat = [p for ids in picks.values() for p in ids]
        parts = [flat[:1], flat[1:]] if len(flat) > 1 and rng.random() < self.split else [flat]
        extra: list[str] = []
        if rng.random() < self.over_limit:
            full = [c for c, ids in picks.items() if len(ids) >= s.max_picks[c]]
            if full:
                category = rng.choice(full)
                spare = [p for p in s.projects[category] if p not in picks[category]]
                if spare:
                    extra = [rng.choice(spare)]
        on_paper = rng.random() < self.paper and bool(s.clerks)
        point = rng.choice(sorted(s.clerks)) if on_paper else None
        ballots = []
        for projects, refusal in [*((p, None) for p in parts), *([(extra, "limit-exceeded")])]:
            if not projects:
                continue
            payload: dict[str, Any] = {
                "type": "ballot",
                "election": s.election,
                "voter": token,
                "projects": list(projects),
                "cast_at": self.cast_at(rng),
                "nonce": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            }
            if point is not None:
                payload["type"] = "paper-ballot"
                payload["polling_point"] = point
                envelope = sign_envelope(payload, s.clerks[point])
                ballots.append(
                    Ballot("paper-ballots", envelope, tuple(projects), refusal, identity)
                )
            else:
                envelope = sign_envelope(payload, s.site)
                ballots.append(Ballot("ballots", envelope, tuple(projects), refusal))
        return ballots


@dataclass
class Answer:
    """The definitive answer to one ballot, after however many attempts."""

    status: int
    body: dict[str, Any]
    attempts: int
    seconds: float  # from the first attempt to the definitive answer


@dataclass
class Book:
    """What the generator knows: every definitive answer, and what went wrong on the way."""

    acknowledged: dict[str, int] = field(default_factory=dict)  # nonce -> log position
    refused: dict[str, str] = field(default_factory=dict)  # nonce -> code
    votes: Counter[str] = field(default_factory=Counter)
    voters: set[str] = field(default_factory=set)
    ballots: Counter[str] = field(default_factory=Counter)  # channel -> accepted ballots
    replays: int = 0  # acknowledged by a 200: the first attempt had got in after all
    transient: Counter[str] = field(default_factory=Counter)  # "503 store-unavailable", ...
    surprises: list[str] = field(default_factory=list)  # answers other than expected

    def summary(self) -> dict[str, Any]:
        """The book's figures, for reports."""
        return {
            "acknowledged": len(self.acknowledged),
            "refused": dict(Counter(self.refused.values())),
            "replays": self.replays,
            "votes": sum(self.votes.values()),
            "voters": len(self.voters),
            "ballots": dict(self.ballots),
            "transient": dict(self.transient),
            "surprises": len(self.surprises),
        }

    def record(self, ballot: Counted, answer: Answer) -> None:
        """Count a definitive answer. A ballot acknowledged again (sent again after an
        interruption: the service answers its nonce with the original receipt) is counted once."""
        code = str(answer.body.get("code", ""))
        if answer.status in (200, 201):
            if answer.status == 200:
                self.replays += 1
            if ballot.nonce in self.acknowledged:
                if self.acknowledged[ballot.nonce] != int(answer.body["position"]):
                    self.surprises.append(f"{ballot.nonce}: acknowledged at two positions")
                return
            self.acknowledged[ballot.nonce] = int(answer.body["position"])
            if ballot.refusal is not None:
                self.surprises.append(f"{ballot.nonce}: accepted, expected {ballot.refusal}")
            self.votes.update(ballot.projects)
            self.voters.add(ballot.voter)
            self.ballots[ballot.channel] += 1
        else:
            self.refused[ballot.nonce] = code
            if code != ballot.refusal:
                self.surprises.append(
                    f"{ballot.nonce}: {answer.status} {code}, expected {ballot.refusal or 'OK'}"
                )

    def merge(self, other: Book) -> None:
        """Add another book's answers (of other ballots: a trial's next chunk of voters)."""
        self.acknowledged.update(other.acknowledged)
        self.refused.update(other.refused)
        self.votes.update(other.votes)
        self.voters |= other.voters
        self.ballots.update(other.ballots)
        self.replays += other.replays
        self.transient.update(other.transient)
        self.surprises.extend(other.surprises)


def _body(body: Any) -> dict[str, Any]:
    """aiohttp arguments for a body: bytes are sent as they are (already JSON)."""
    if isinstance(body, bytes):
        return {"data": body, "headers": {"Content-Type": "application/json"}}
    return {"json": body}


class Sender:
    """Posts ballots to a list of servers, retrying by nonce until a definitive answer.

    ``servers`` is called before each attempt, so a trial can change the list (a server killed
    and restarted elsewhere). Attempt k goes to server (start + k) mod n.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        servers: Callable[[], Sequence[str]],
        election: str,
        book: Book,
        *,
        timeout: float = 10.0,
        give_up_after: float = 120.0,
        clerks: Sequence[SignerKey] = (),
    ) -> None:
        self.session = session
        # With the clerks' keys, a paper ballot first asks for its voter token, as /clerk does.
        self.clerks: dict[str, SignerKey] = {str(k.verifier.key_id): k for k in clerks}
        self.servers = servers
        self.election = election
        self.book = book
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.give_up_after = give_up_after

    async def post(self, path: str, body: Any, start: int = 0) -> Answer:
        """POST ``body`` until a definitive answer; raise TimeoutError after give_up_after."""
        began = time.monotonic()
        attempt = 0
        backoff = 0.05
        while True:
            servers = self.servers()
            base = servers[(start + attempt) % len(servers)]
            attempt += 1
            url = f"{base}/v1/elections/{self.election}/{path}"
            try:
                async with self.session.post(url, timeout=self.timeout, **_body(body)) as response:
                    data = await response.json(content_type=None)
                    status = response.status
                    retry_after = response.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
                self.book.transient[f"connection {type(exc).__name__}"] += 1
            else:
                if status < 500 and status != 429:
                    return Answer(status, data, attempt, time.monotonic() - began)
                code = data.get("code") if isinstance(data, dict) else None
                self.book.transient[f"{status} {code}"] += 1
                if retry_after and retry_after.isdigit():
                    backoff = max(backoff, min(float(retry_after), 2.0))
            if time.monotonic() - began > self.give_up_after:
                raise TimeoutError(f"no definitive answer for {path} after {attempt} attempts")
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, 1.0)

    async def cast(self, ballot: Ballot, start: int = 0) -> Answer:
        """Send one ballot (asking for the voter token first, as a clerk's page does, if
        ``ballot.identity`` is set) and record its definitive answer in the book."""
        signer = self.clerks.get(str(ballot.envelope["key"]))
        if ballot.identity is not None and signer is not None:
            lookup = {
                "type": "voter-lookup",
                "election": self.election,
                "polling_point": ballot.envelope["payload"]["polling_point"],
                "nonce": str(uuid.uuid4()),
            }
            body = {"envelope": sign_envelope(lookup, signer), "identity": ballot.identity}
            token = await self.post("voter-tokens", body, start)
            if token.body.get("voter") != ballot.envelope["payload"]["voter"]:
                self.book.surprises.append(f"voter token: {token.status} {token.body}")
        answer = await self.post(ballot.path, ballot.envelope, start)
        self.book.record(ballot, answer)
        return answer


async def watch_checkpoints(
    session: aiohttp.ClientSession,
    urls: Sequence[str],
    election: str,
    seen: dict[str, float],
    every: float,
    stop: asyncio.Event | None = None,
) -> None:
    """Keep in ``seen`` (note -> when first seen) every distinct checkpoint any of ``urls``
    publishes, reading each every ``every`` seconds, until ``stop`` is set or the task is
    cancelled: the checkpoints a watcher (or a witness) saw, for ``uchast audit --checkpoint``."""
    timeout = aiohttp.ClientTimeout(total=5)
    while stop is None or not stop.is_set():
        for base in urls:
            try:
                address = f"{base}/v1/elections/{election}/log/checkpoint"
                async with session.get(address, timeout=timeout) as response:
                    if response.status == 200:
                        seen.setdefault(await response.text(), time.monotonic())
            except (aiohttp.ClientError, TimeoutError):
                pass
        await asyncio.sleep(every)


# Checking the outcome.


@dataclass
class LogCheck:
    """What the log itself holds, against the book."""

    size: int
    ballots: int
    duplicates: list[str]  # nonces logged more than once
    unacknowledged: list[str]  # logged, yet the generator never got an acknowledgement
    lost: list[str]  # acknowledged, yet not in the log (or at another position)

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.unacknowledged or self.lost)


async def check_log(db_url: str, election: str, book: Book) -> LogCheck:
    """Read every entry from the store: each acknowledged ballot is there once, at the position
    its receipt named, and nothing else of the generator's is."""
    store = open_store(db_url)
    await store.open()
    logged: dict[str, list[int]] = {}
    try:
        size = await store.size(election)
        async for entry in store.stream(election, 0, size):
            if entry.type in BALLOT_TYPES:
                nonce = entry_payload(entry.data)["nonce"]
                logged.setdefault(nonce, []).append(entry.position)
    finally:
        await store.close()
    duplicates = sorted(n for n, positions in logged.items() if len(positions) > 1)
    unacknowledged = sorted(n for n in logged if n not in book.acknowledged)
    lost = sorted(
        n for n, position in book.acknowledged.items() if logged.get(n, [None])[0] != position
    )
    return LogCheck(size, sum(len(p) for p in logged.values()), duplicates, unacknowledged, lost)


async def served_votes(
    session: aiohttp.ClientSession, base: str, election: str, size: int, wait: float = 60.0
) -> Counter[str]:
    """Per-project votes from ``/results`` once they are stamped with at least ``size``."""
    deadline = time.monotonic() + wait
    while True:
        async with session.get(f"{base}/v1/elections/{election}/results") as response:
            results = await response.json()
        if results["log"]["size"] >= size or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    votes: Counter[str] = Counter()
    for category in results["categories"]:
        for project in category["projects"]:
            if project["votes"]:
                votes[project["id"]] = project["votes"]
    return votes


@dataclass
class AuditRun:
    ok: bool
    export_seconds: float
    audit_seconds: float
    output: str


def export_and_audit(
    db_url: str,
    election: str,
    out: Path,
    log_vkey: str,
    admin_vkey: str,
    checkpoints: Sequence[Path] = (),
) -> AuditRun:
    """``uchast export log`` then ``uchast audit`` on the file, as an operator would, given
    ``checkpoints`` (files of checkpoints published before) to check against the log too."""
    cli = [sys.executable, "-m", "api.cli"]
    began = time.monotonic()
    export = subprocess.run(
        [*cli, "export", "log", "--db", db_url, "--election", election, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    exported = time.monotonic()
    if export.returncode != 0:
        return AuditRun(False, exported - began, 0.0, export.stderr)
    audit = subprocess.run(
        [
            *cli,
            "audit",
            str(out),
            "--log-vkey",
            log_vkey,
            "--admin-vkey",
            admin_vkey,
            *(arg for path in checkpoints for arg in ("--checkpoint", str(path))),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return AuditRun(
        audit.returncode == 0,
        exported - began,
        time.monotonic() - exported,
        (audit.stdout + audit.stderr).strip(),
    )


@dataclass
class ReadRun:
    """What :func:`read_load` measured: answers by status, latencies, one body per path."""

    seconds: float
    statuses: Counter[int]
    latencies: list[float]
    bodies: dict[str, bytes]

    @property
    def rate(self) -> float:
        """Answers per second over the timed window."""
        return sum(self.statuses.values()) / self.seconds


async def read_load(
    url: str, paths: Sequence[str], *, concurrency: int, seconds: float, seed: int = 2018
) -> ReadRun:
    """GET ``paths`` from ``url`` for ``seconds``: ``concurrency`` clients, each over one
    keep-alive connection, each walking the paths in its own shuffled order, round and round.

    The client is bench/ingest_http.py's lean one (requests prebuilt as bytes, answers framed by
    Content-Length): it shares the cores with what it measures, so it spends as little as it can.
    """
    from bench.ingest_http import HttpConnection  # it imports this module

    host = url.removeprefix("http://")
    raw = {path: f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode() for path in paths}
    rng = random.Random(seed)
    orders = [rng.sample(list(paths), len(paths)) for _ in range(concurrency)]
    connections = [await HttpConnection.open(url) for _ in range(concurrency)]
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    bodies: dict[str, bytes] = {}
    deadline = 0.0

    async def client(order: list[str], connection: HttpConnection) -> None:
        clock = time.perf_counter
        i = 0
        while clock() < deadline:
            path = order[i % len(order)]
            i += 1
            started = clock()
            status, body = await connection.request(raw[path])
            latencies.append(clock() - started)
            statuses[status] += 1
            bodies.setdefault(path, body)

    started = time.perf_counter()
    deadline = started + seconds
    try:
        await asyncio.gather(*(client(o, c) for o, c in zip(orders, connections, strict=True)))
    finally:
        for connection in connections:
            await connection.close()
    return ReadRun(time.perf_counter() - started, statuses, latencies, bodies)
