"""Fault trials' stage: an election on a real store, `uchast serve` processes one can kill and
restart, the load of bench/loadgen.py, and the checks every trial ends with."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp

from bench.loadgen import (
    Answer,
    Ballot,
    Book,
    Electorate,
    Sender,
    Signers,
    cast_now,
    check_log,
    export_and_audit,
    trial_window,
)
from bench.loadgen import served_votes as served_votes
from ledger.casting import Casting
from ledger.keys import SignerKey, sign_envelope
from tests.api.servers import ROOT, free_port, wait_until_up
from tests.factories import ELECTION, Keys, example_definition, key_envelope, opened_ledger

VOTER_KEY = bytes(range(100, 132))


@dataclass
class Trial:
    """The example election on ``url``, a clerk for each polling point, keys saved in ``dir``."""

    url: str
    dir: Path
    keys: Keys
    signers: Signers

    @classmethod
    async def create(cls, url: str, directory: Path) -> Trial:
        keys = Keys()
        definition = trial_window(example_definition())
        points = [p["id"] for p in definition["polling_points"]]
        clerks = {point: SignerKey.generate(f"clerk.{point}.trial") for point in points}
        async with opened_ledger(url, keys, definition=definition) as ledger:
            for point, clerk in clerks.items():
                await Casting(ledger).submit(
                    key_envelope(keys, clerk, "clerk", polling_point=point)
                )
        keys.log.save(directory / "log.key")
        (directory / "log.vkey").write_text(keys.log.verifier.vkey)
        (directory / "admin.vkey").write_text(keys.admin.verifier.vkey)
        (directory / "voter.key").write_text(VOTER_KEY.hex())
        signers = Signers.for_definition(definition, keys.site, clerks, VOTER_KEY)
        return cls(url, directory, keys, signers)

    def electorate(self, **options: Any) -> Electorate:
        return Electorate(self.signers, **options)

    def audit(self) -> None:
        """Export the log and audit it with `uchast audit`: every check must pass."""
        run = export_and_audit(
            self.url,
            ELECTION,
            self.dir / "export.jsonl",
            self.keys.log.verifier.vkey,
            self.keys.admin.verifier.vkey,
        )
        assert run.ok, run.output[-3000:]

    async def check(self, book: Book, servers: Sequence[str]) -> None:
        """No surprise answers; every acknowledged ballot in the log once, at its receipt's
        position, nothing unacknowledged; every server's /results equal to the generator's
        totals; the audit passes."""
        assert not book.surprises, book.surprises[:5]
        log = await check_log(self.url, ELECTION, book)
        assert log.ok, (log.duplicates[:3], log.unacknowledged[:3], log.lost[:3])
        assert log.ballots == len(book.acknowledged)
        async with aiohttp.ClientSession() as session:
            for base in servers:
                assert await served_votes(session, base, ELECTION, log.size) == +book.votes
        self.audit()


class Server:
    """One `uchast serve` process on a fixed port, which can be killed and started again."""

    def __init__(self, trial: Trial, args: Sequence[str] = ()) -> None:
        self.trial = trial
        self.port = free_port()
        self.args = list(args)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = trial.dir / f"server-{self.port}.log"
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        command = [
            sys.executable,
            "-m",
            "api.cli",
            "serve",
            "--db",
            self.trial.url,
            "--log-key",
            str(self.trial.dir / "log.key"),
            "--voter-key",
            str(self.trial.dir / "voter.key"),
            "--port",
            str(self.port),
            # The trials' clerks and supervisors work at machine speed: no per-key limits (a
            # trial's own args come after, and win).
            *("--rate-limit-role", "site=0", "--rate-limit-role", "clerk=0"),
            *("--rate-limit-role", "supervisor=0"),
            *self.args,
        ]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=self._log, stderr=self._log)
        wait_until_up(self.url, self.process)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush, no goodbye."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def servers(trial: Trial, count: int = 1, args: Sequence[str] = ()) -> Iterator[list[Server]]:
    """``count`` started servers on the trial's database, stopped afterwards."""
    started = [Server(trial, args) for _ in range(count)]
    try:
        for server in started:
            server.start()
        yield started
    finally:
        for server in started:
            server.stop()


async def run_load(
    trial: Trial,
    urls: Callable[[], Sequence[str]],
    electorate: Electorate,
    voters: int,
    *,
    concurrency: int = 48,
    during: Callable[[Book], Awaitable[None]] | None = None,
    clerks: Sequence[SignerKey] = (),
    first: int = 0,
    book: Book | None = None,
) -> Book:
    """Cast the ballots of voters ``first`` to ``first + voters`` (each voter's in order) from
    ``concurrency`` clients; run ``during(book)`` alongside (the fault); return the generator's
    book (``book``, if given, continued)."""
    book = book if book is not None else Book()
    queue = iter(range(first, first + voters))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        sender = Sender(session, urls, ELECTION, book, clerks=clerks)

        async def client(k: int) -> None:
            for n in queue:
                # A voter's successive ballots go to successive servers.
                for i, ballot in enumerate(electorate.voter(n)):
                    await sender.cast(ballot, start=k + i)

        clients = asyncio.gather(*(client(k) for k in range(concurrency)))
        if during is None:
            await clients
        else:
            await asyncio.gather(clients, during(book))
    return book


async def when(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)


async def probe(trial: Trial, server: Server, book: Book) -> tuple[int, dict[str, Any], str | None]:
    """One fresh ballot posted once, without retrying; if it gets in, it goes in the book."""
    payload = {
        "type": "ballot",
        "election": ELECTION,
        "voter": uuid.uuid4().hex * 2,
        "projects": ["L01"],
        "cast_at": cast_now(),
        "nonce": str(uuid.uuid4()),
    }
    ballot = Ballot("ballots", sign_envelope(payload, trial.keys.site), ("L01",))
    url = f"{server.url}/v1/elections/{ELECTION}/ballots"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=ballot.envelope) as response,
    ):
        answer = Answer(response.status, await response.json(), 1, 0.0)
        if answer.status in (200, 201):
            book.record(ballot, answer)
        return answer.status, answer.body, response.headers.get("Retry-After")
