"""The failover trials' stage: an election in its own database on the Patroni cluster, two
`uchast serve` processes reaching it through the multi-host URL, steady load of online and paper
ballots, and around the fault: a watcher saving every checkpoint the servers publish, probes
measuring the time from the fault to the first acknowledged ballot, and the checks every trial
ends with (including `uchast audit --checkpoint` with every checkpoint seen)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.loadgen import Answer, Ballot, Book, Sender, cast_now, watch_checkpoints
from bench.patroni import PatroniCluster
from ledger.keys import sign_envelope
from tests.api.servers import ROOT
from tests.factories import ELECTION
from tests.faults.trial import Server, Trial, run_load, servers, when

VOTERS = 900
# The servers give up on a database statement, and on connecting to one host, after this many
# seconds (options of the --db URL): a hung primary must not hold a request, or the ballot
# writer, for long.
TIMEOUTS = "&connect_timeout=2&command_timeout=2"


@dataclass
class Watch:
    """What the trial saw around the fault."""

    checkpoints: dict[str, float] = field(default_factory=dict)  # note -> when first seen
    fault_at: float = 0.0
    first_ack: float | None = None  # seconds from the fault to the first acknowledged probe
    probe_answers: Counter[str] = field(default_factory=Counter)  # "503 store-unavailable" ...
    retry_after_missing: int = 0  # 503s without Retry-After
    acknowledged_at_fault: int = 0  # load ballots acknowledged when the fault struck

    def since_fault(self) -> float:
        return time.monotonic() - self.fault_at


async def checkpoints_seen(urls: list[str], watch: Watch, stop: asyncio.Event) -> None:
    """Save every distinct checkpoint any server publishes, until ``stop``."""
    async with aiohttp.ClientSession() as session:
        await watch_checkpoints(session, urls, ELECTION, watch.checkpoints, 0.05, stop)


def fresh_ballot(trial: Trial) -> Ballot:
    payload = {
        "type": "ballot",
        "election": ELECTION,
        "voter": uuid.uuid4().hex * 2,
        "projects": ["L01"],
        "cast_at": cast_now(),
        "nonce": str(uuid.uuid4()),
    }
    return Ballot("ballots", sign_envelope(payload, trial.keys.site), ("L01",))


async def probe_until_acknowledged(
    trial: Trial, urls: list[str], book: Book, watch: Watch, every: float = 0.1
) -> None:
    """From the fault on, post a fresh ballot every ``every`` seconds, each once; note every
    answer and the time of the first acknowledgement. A probe without a definitive answer is
    then retried by nonce until it has one (as any client would), so that the book knows
    every ballot that got in."""
    timeout = aiohttp.ClientTimeout(total=30)
    pending: list[asyncio.Task[None]] = []
    acknowledged = asyncio.Event()
    async with aiohttp.ClientSession(timeout=timeout) as session:
        sender = Sender(session, lambda: urls, ELECTION, book)

        async def once(k: int) -> None:
            ballot = fresh_ballot(trial)
            base = urls[k % len(urls)]
            try:
                async with session.post(
                    f"{base}/v1/elections/{ELECTION}/ballots", json=ballot.envelope
                ) as response:
                    status = response.status
                    body = await response.json(content_type=None)
                    retry_after = response.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as exc:
                watch.probe_answers[f"connection {type(exc).__name__}"] += 1
            else:
                watch.probe_answers[f"{status} {body.get('code', '')}"] += 1
                if status == 503 and not retry_after:
                    watch.retry_after_missing += 1
                if status in (200, 201):
                    if watch.first_ack is None:
                        watch.first_ack = watch.since_fault()
                    acknowledged.set()
                    book.record(ballot, Answer(status, body, 1, 0.0))
                    return
                if status < 500 and status != 429:
                    book.record(ballot, Answer(status, body, 1, 0.0))
                    return
            book.record(ballot, await sender.post(ballot.path, ballot.envelope))

        k = 0
        while not acknowledged.is_set():
            pending.append(asyncio.create_task(once(k)))
            k += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(acknowledged.wait(), every)
        await asyncio.gather(*pending)


async def failover_trial(
    cluster: PatroniCluster,
    directory: Path,
    fault: Callable[[Watch, Book], Coroutine[Any, Any, None]],
    *,
    label: str,
) -> tuple[Trial, Book, Watch, list[Server]]:
    """Run ``fault(watch, book)`` once a third of the voters are in, under steady load from
    48 clients against two servers; the fault sets ``watch.fault_at`` when it strikes and
    returns once its outage is over. Probes from the fault on measure the time to the first
    acknowledged ballot. Returns when every voter has a definitive answer."""
    url = await asyncio.to_thread(cluster.create_database)
    trial = await Trial.create(url, directory)
    trial.url = url + TIMEOUTS
    watch = Watch()
    stop = asyncio.Event()
    with servers(trial, count=2) as started:
        urls = [s.url for s in started]
        watcher = asyncio.create_task(checkpoints_seen(urls, watch, stop))

        async def during(book: Book) -> None:
            await when(lambda: len(book.acknowledged) >= VOTERS // 3, timeout=120)
            watch.acknowledged_at_fault = len(book.acknowledged)
            probes = asyncio.create_task(fault_then_probe(book))
            await probes

        async def fault_then_probe(book: Book) -> None:
            striking = asyncio.create_task(fault(watch, book))
            await when(lambda: watch.fault_at > 0, timeout=60)
            await probe_until_acknowledged(trial, urls, book, watch)
            await striking

        try:
            book = await run_load(
                trial, lambda: urls, trial.electorate(paper=0.3), VOTERS, during=during
            )
        except BaseException:
            stop.set()
            for log in cluster.root.glob("*.log"):
                shutil.copy(log, trial.dir)
            print(f"the cluster's logs (whole, in {trial.dir}):\n{cluster.tail(80)}")
            raise
        # A checkpoint of the final size, so the audit compares the last one too.
        await asyncio.sleep(0.5)
        stop.set()
        await watcher
        print(
            f"{label}: kill to first acknowledged ballot {watch.first_ack:.2f} s;"
            f" probes {dict(watch.probe_answers)}; {len(watch.checkpoints)} checkpoints;"
            f" {book.summary()}"
        )
        await check(trial, book, watch, started)
        return trial, book, watch, started


# asyncpg's "Failed to restore the pool connection floor" record: the message, then its chained
# tracebacks (indented frames, "The above exception..." lines, exception lines).
_TRACEBACK = r"Traceback \(most recent call last\):\n(?: .*\n)*[A-Za-z_][\w.]*(?:: .*)?\n"
POOL_FLOOR = re.compile(
    r"Failed to restore the pool connection floor; retrying\n"
    + _TRACEBACK
    + r"(?:\n(?:The above exception|During handling).*\n\n"
    + _TRACEBACK
    + ")*"
)


async def check(trial: Trial, book: Book, watch: Watch, started: list[Server]) -> None:
    """The trial's verdict: nothing but 503 while it lasted (no 500), 503s carried
    Retry-After, every acknowledged ballot in the log once, nothing unacknowledged in it,
    totals exact on both servers (same processes as before the fault), checkpoints seen before
    the fault and after the recovery, and the audit passes with every checkpoint seen."""
    # Every answer short of a definitive one was a 503 store-unavailable: no 500, no other
    # 5xx, no dropped connection, no request left hanging past the clients' timeout.
    assert set(book.transient) <= {"503 store-unavailable"}, book.transient
    assert set(watch.probe_answers) <= {"503 store-unavailable", "201 ", "200 "}, (
        watch.probe_answers
    )
    assert watch.retry_after_missing == 0
    assert watch.first_ack is not None
    assert book.ballots["online"] > 0 and book.ballots["paper"] > 0, book.ballots
    for server in started:
        assert server.process is not None and server.process.poll() is None, "a server died"
        # asyncpg's pool logs, with a traceback, each failed attempt to reconnect: expected
        # while there is no primary; any other traceback is a bug.
        output = POOL_FLOOR.sub("", server.output())
        assert "Traceback" not in output, output[-3000:]
    await trial.check(book, [s.url for s in started])
    assert watch.first_ack is not None
    recovered = watch.fault_at + watch.first_ack
    seen = watch.checkpoints.values()
    assert any(t < watch.fault_at for t in seen), "no checkpoint seen before the fault"
    assert any(t > recovered for t in seen), "no checkpoint seen after the recovery"
    audit_with_checkpoints(trial, list(watch.checkpoints))


def audit_with_checkpoints(trial: Trial, notes: list[str]) -> None:
    """`uchast audit` of the exported log with every checkpoint seen passed as --checkpoint:
    each must be consistent with the final log."""
    assert notes, "no checkpoint was seen"
    folder = trial.dir / "checkpoints"
    folder.mkdir(exist_ok=True)
    args: list[str] = []
    for n, note in enumerate(notes):
        path = folder / f"{n:04d}.txt"
        path.write_text(note)
        args += ["--checkpoint", str(path)]
    out = trial.dir / "export.jsonl"  # written by trial.check's audit
    audit = subprocess.run(
        [
            sys.executable,
            "-m",
            "api.cli",
            "audit",
            str(out),
            "--log-vkey",
            trial.keys.log.verifier.vkey,
            "--admin-vkey",
            trial.keys.admin.verifier.vkey,
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert audit.returncode == 0, (audit.stdout + audit.stderr)[-3000:]
