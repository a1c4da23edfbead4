"""``uchast demo``: a fresh embedded database with the Zhytomyr-2018 example, the 2018 turnout
simulated through the real HTTP API, then the service keeps running for the pages.

The simulation is invented (the report gives only 12,527 voters and "over 32,000 votes"): online
and paper ballots mixed about 4:1, project popularity skewed, some voters spreading their picks
over two ballots, a few spoiled paper ballots and a few voids. The generator keeps its own count
of what it sent, and the demo checks the service's totals against it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import shutil
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from tqdm import tqdm

from api.app import create_app
from api.keys import SERVICE
from api.service import ServiceConfig
from ledger.casting import Casting, create_election
from ledger.keydir import new_voter_key, private_directory
from ledger.keys import SignerKey, sign_envelope
from ledger.log import Ledger
from ledger.store import open_store
from votes.election import Election, parse_election_toml
from votes.tokens import voter_token

KYIV = ZoneInfo("Europe/Kyiv")
SIMULATED_ROLES = (("clerk", 0.0), ("supervisor", 0.0))
"""Per-key rates of the roles the simulation plays (0: no limit)."""
SIMULATED_LOOKUPS = (0, 0.0)
"""The simulated clerks' voter lookups: no limit (a burst of 0)."""
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "zhytomyr-2018.toml"


@dataclass
class DemoKeys:
    """The demo election's keys, kept as files in a private directory."""

    admin: SignerKey
    log: SignerKey
    site: SignerKey
    supervisor: SignerKey
    clerks: dict[str, SignerKey]  # polling point -> clerk key
    voter_key: bytes

    @classmethod
    def create(cls, directory: Path, election: Election) -> DemoKeys:
        """New keys as files of mode 0600 in ``directory`` (made 0700 if new)."""
        private_directory(directory)

        def make(name: str, file: str) -> SignerKey:
            signer = SignerKey.generate(name)
            signer.save(directory / file, overwrite=True)
            return signer

        clerks = {
            point.id: make(f"clerk.{point.id}.demo", f"clerk-{point.id}.key")
            for point in election.polling_points
        }
        (directory / "voter.key").unlink(missing_ok=True)
        voter_key = new_voter_key(directory / "voter.key")
        return cls(
            admin=make("admin.zhytomyr-2018.demo", "admin.key"),
            log=make("uchast.demo/log", "log.key"),
            site=make("site.e-dem.demo", "site.key"),
            supervisor=make("supervisor.demo", "supervisor.key"),
            clerks=clerks,
            voter_key=voter_key,
        )


@dataclass
class Expected:
    """What the generator sent and the service accepted."""

    votes: Counter[str] = field(default_factory=Counter)
    voters: set[str] = field(default_factory=set)
    ballots: Counter[str] = field(default_factory=Counter)
    spoiled: int = 0
    voided: int = 0
    receipts: list[str] = field(default_factory=list)


def _cast_at(rng: random.Random, election: Election) -> str:
    """A moment inside the voting window and not in the future."""
    start = election.voting_opens
    end = min(election.voting_closes, datetime.now(KYIV))
    span = max(1, int((end - start).total_seconds()))
    return (start + timedelta(seconds=rng.randrange(span))).astimezone(KYIV).isoformat()


def _picks(rng: random.Random, election: Election, weights: dict[str, float]) -> list[str]:
    chosen: list[str] = []
    counts = {"large": [0.10, 0.45, 0.45], "small": [0.15, 0.50, 0.35]}
    for category in election.categories:
        projects = [p.id for p in election.projects if p.category == category.id]
        spread = counts.get(category.id, [0.1, 0.5, 0.4])
        n = rng.choices(
            range(min(3, category.max_picks + 1)), weights=spread[: category.max_picks + 1]
        )[0]
        while n and len(chosen) < 99:
            pick = rng.choices(projects, weights=[weights[p] for p in projects])[0]
            if pick not in chosen:
                chosen.append(pick)
                n -= 1
    if not chosen:
        chosen.append(election.projects[0].id)
    return chosen


async def simulate(
    base_url: str,
    election: Election,
    keys: DemoKeys,
    *,
    voters: int,
    seed: int = 2018,
    concurrency: int = 32,
    progress: bool = True,
) -> Expected:
    """Cast ``voters`` voters' ballots through the HTTP API; return what was accepted."""
    rng = random.Random(seed)
    weights = {p.id: rng.paretovariate(1.2) for p in election.projects}
    expected = Expected()
    base = f"{base_url}/v1/elections/{election.id}"
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(voters):
        queue.put_nowait(n)
    bar = tqdm(total=voters, desc="voters", unit="voter", disable=not progress, file=sys.stderr)
    points = [p.id for p in election.polling_points]
    voidable: list[tuple[int, list[str], str]] = []

    async def post(session: aiohttp.ClientSession, path: str, body: Any) -> dict[str, Any]:
        async with session.post(f"{base}/{path}", json=body) as response:
            data: dict[str, Any] = await response.json(content_type=None)
            if response.status not in (200, 201):
                raise RuntimeError(f"{path}: {response.status} {data.get('code')}")
            return data

    async def voter(session: aiohttp.ClientSession, n: int, vrng: random.Random) -> None:
        identity = f"{3_000_000_000 + n * 7919 % 999_999_999:010d}"
        picks = _picks(vrng, election, weights)
        if vrng.random() < 0.8:
            # the site holds the voter key too
            token = voter_token(keys.voter_key, election.id, identity)
            parts = [picks] if len(picks) < 2 or vrng.random() > 0.1 else [picks[:1], picks[1:]]
            for part in parts:
                payload = {
                    "type": "ballot",
                    "election": election.id,
                    "voter": token,
                    "projects": part,
                    "cast_at": _cast_at(vrng, election),
                    "nonce": str(uuid.uuid4()),
                }
                receipt = await post(session, "ballots", sign_envelope(payload, keys.site))
                expected.receipts.append(receipt["receipt"])
                expected.ballots["online"] += 1
        else:
            point = vrng.choice(points)
            clerk = keys.clerks[point]
            if vrng.random() < 0.02:
                spoiled = {
                    "type": "spoiled-ballot",
                    "election": election.id,
                    "polling_point": point,
                    "reason": vrng.choice(["too-many-marks", "unreadable"]),
                    "cast_at": _cast_at(vrng, election),
                    "nonce": str(uuid.uuid4()),
                }
                await post(session, "paper-ballots", sign_envelope(spoiled, clerk))
                expected.spoiled += 1
            lookup = {
                "type": "voter-lookup",
                "election": election.id,
                "polling_point": point,
                "nonce": str(uuid.uuid4()),
            }
            body = {"envelope": sign_envelope(lookup, clerk), "identity": identity}
            token = (await post(session, "voter-tokens", body))["voter"]
            payload = {
                "type": "paper-ballot",
                "election": election.id,
                "voter": token,
                "projects": picks,
                "polling_point": point,
                "cast_at": _cast_at(vrng, election),
                "nonce": str(uuid.uuid4()),
            }
            receipt = await post(session, "paper-ballots", sign_envelope(payload, clerk))
            expected.receipts.append(receipt["receipt"])
            if vrng.random() < 0.01:
                voidable.append((receipt["position"], picks, token))
            expected.ballots["paper"] += 1
        expected.votes.update(picks)
        expected.voters.add(token)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            n = queue.get_nowait()
            await voter(session, n, random.Random(seed * 1_000_003 + n))
            bar.update(1)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        # A supervisor voids a few paper entries made by mistake (the voter then votes online).
        for position, picks, token in voidable[:5]:
            void = {
                "type": "void",
                "election": election.id,
                "entry": position,
                "reason": "entered for the wrong person",
                "nonce": str(uuid.uuid4()),
            }
            await post(session, "voids", sign_envelope(void, keys.supervisor))
            expected.votes.subtract(picks)
            expected.voided += 1
            expected.ballots["paper"] -= 1
            expected.voters.discard(token)
    bar.close()
    return expected


def load_example(now: datetime | None = None) -> Election:
    """The Zhytomyr-2018 example with its ten voting days moved to end tomorrow.

    The log records real times and the auditor checks paper entries against the paper deadline
    by them, so a replay of 2018 on 2018's dates would be (rightly) flagged; everything else
    (projects, budgets, limits, rule) is 2018's.
    """
    election = parse_election_toml(EXAMPLE.read_text(encoding="utf-8"))
    today = (
        (now or datetime.now(KYIV))
        .astimezone(KYIV)
        .replace(hour=0, minute=0, second=0, microsecond=0)
    )
    opens = today - timedelta(days=8)
    return dataclasses.replace(
        election,
        voting_opens=opens,
        voting_closes=opens + (election.voting_closes - election.voting_opens),
        paper_deadline=opens + (election.paper_deadline - election.voting_opens),
    )


async def create_demo_election(db: str, election: Election, keys: DemoKeys) -> None:
    """The demo election's definition and keys, through the write path."""
    store = open_store(db)
    await store.open()
    try:
        await store.create_log(election.id)
        ledger = Ledger(store, election.id, verify_workers=0)
        await ledger.open()
        try:
            registrations: list[tuple[SignerKey, str, str | None]] = [
                (keys.site, "site", None),
                (keys.supervisor, "supervisor", None),
                *((clerk, "clerk", point) for point, clerk in keys.clerks.items()),
            ]
            await create_election(
                Casting(ledger), election, keys.admin, keys.voter_key, registrations
            )
        finally:
            await ledger.close()
    finally:
        await store.close()


async def run_demo(
    directory: Path,
    *,
    keys_dir: Path | None = None,
    host: str,
    port: int,
    voters: int,
    exit_after_simulation: bool = False,
) -> int:
    """``uchast demo``: a fresh database in ``directory`` and fresh keys in ``keys_dir``
    (default ``directory/keys``, mode 0700), the simulation, then the service until Ctrl-C (or,
    with ``exit_after_simulation``, until the totals are checked)."""
    keys_dir = keys_dir or directory / "keys"
    for old in (directory, keys_dir):
        if old.exists():
            shutil.rmtree(old)
    private_directory(directory)
    election = load_example()
    keys = DemoKeys.create(keys_dir, election)
    db = f"sqlite:///{directory / 'uchast.db'}"
    await create_demo_election(db, election, keys)
    config = ServiceConfig(
        db_url=db,
        log_key=keys.log,
        deployment="uchast.demo",
        voter_key=keys.voter_key,
        # The simulated clerks and supervisor type at machine speed: their human-speed
        # limits (api/ratelimit.py, api/lookups.py) are lifted for the demo, and only for it.
        role_rate_limits=SIMULATED_ROLES,
        lookup_limit=SIMULATED_LOOKUPS,
    )
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    base = f"http://{host}:{port}"
    try:
        print(f"uchast demo: {election.title['en']}, serving {db} at {base}", file=sys.stderr)
        print(f"simulating {voters} voters through the HTTP API ...", file=sys.stderr)
        expected = await simulate(base, election, keys, voters=voters)
        tally = await app[SERVICE].caught_up_tally(election.id, timeout=60)
        match = +tally.votes == +expected.votes and tally.voters == len(expected.voters)
        votes = sum(expected.votes.values())
        print(
            f"cast: {len(expected.voters)} voters, {votes} votes "
            f"({expected.ballots['online']} online and {expected.ballots['paper']} paper "
            f"ballots, {expected.spoiled} spoiled, {expected.voided} voided); "
            f"service totals {'match' if match else 'DO NOT MATCH'} the generator's",
            file=sys.stderr,
        )
        e = election.id
        print(
            f"""
  results   {base}/results?election={e}
  clerk     {base}/clerk?election={e}   (clerk keys: {keys_dir}/clerk-*.key)
  receipt   {base}/receipt?election={e}   (try code {expected.receipts[0]})
  API       {base}/v1/elections/{e}/results   {base}/v1/elections/{e}/log/checkpoint

  audit it: uchast audit {base} --election {e} \\
              --log-vkey '{keys.log.verifier.vkey}' \\
              --admin-vkey '{keys.admin.verifier.vkey}'

Serving until Ctrl-C.""",
            flush=True,
        )
        if not match:
            return 1
        if exit_after_simulation:
            return 0
        while True:
            await asyncio.sleep(3600)
    finally:
        await runner.cleanup()
