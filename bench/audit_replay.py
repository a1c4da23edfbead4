"""Audit benchmark: ``uchast audit`` of a large exported log against raw parallel Ed25519.

Ours: the wall time of ``uchast audit LOG --log-vkey ... --admin-vkey ...`` (a new process, all
checks: framing, canonical form, signatures on every core, key registry, Merkle roots of every
checkpoint, ballot rules, recount and winners) over a log of at least 200,000 signed ballots.
Baseline, in the same run and with the same number of worker processes: verifying the same
signatures (the same messages, signatures and key) with pyca/cryptography in a process pool,
and nothing else. Target: ours / baseline >= 0.8.

The log (Zhytomyr-2018 definition, one site key, ballots within the limits, a checkpoint every
512 entries as the sequencer's batches would give) is generated with the server's own code
(keys, envelopes, canonical entries, MemoryTree, signed checkpoints) and written directly in the
``uchast export log`` format, without a database. ``--log FILE`` reuses (or writes) a log; its
public keys are kept beside it in ``FILE.keys.json``.

``--voting-day`` gives the log the shape of bench/voting_day.py's: a fifth of the voters on
paper (``--paper``), each paper ballot by the clerk key of its polling point (one key
registered per point) and preceded by that clerk's ``voter-lookup`` of the voter's token, and a
checkpoint every 12 entries (``--checkpoint-every``; the x10 voting day's log has 13,110
checkpoints for 163,673 entries, its servers sign one per group commit). The baseline then
verifies every entry's signature (online, paper and lookup, each by its own key); the
checkpoints' signatures, which the audit checks too, are not in it (``checkpoints`` in the JSON
says how many).

    .venv/bin/python bench/audit_replay.py [--ballots 200000] [--log FILE] [--workers N]
                                           [--repeat 3] [--voting-day]
                                           [--paper SHARE] [--checkpoint-every N]

Each side runs ``--repeat`` times, alternating, and the best time of each is kept (other
processes' load comes and goes on a shared machine). Besides the wall-clock rates it reports the
CPU time per entry of both sides (``cpu_ratio``), which load disturbs much less, and the load
average of the machine. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: E402

from ledger.canonical import canonical  # noqa: E402
from ledger.checkpoint import Checkpoint, sign_checkpoint  # noqa: E402
from ledger.entry import entry_encoder  # noqa: E402
from ledger.keys import Envelope, SignerKey, decode_b64, sign_envelope  # noqa: E402
from ledger.merkle import MemoryTree, leaf_hash  # noqa: E402
from votes.election import election_to_dict, parse_election_toml  # noqa: E402
from votes.receipts import receipt_code, receipt_tag  # noqa: E402

ORIGIN_DEPLOYMENT = "bench.uchast"
BATCH = 512
OPENS = datetime(2018, 10, 1, 0, 0, tzinfo=UTC) - timedelta(hours=3)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the log


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


Planned = tuple[int, int, list[str], str | None]
"""A ballot of the plan: (position, voter number, projects, polling point or None: online). A
paper ballot's position is its clerk's voter lookup's; the ballot follows it."""


def _nonce(position: int) -> str:
    return str(uuid.UUID(int=random.Random(position).getrandbits(128), version=4))


def _sign_ballots(job: tuple[str, dict[str, str], str, float, list[Planned]]) -> list[bytes]:
    """Worker: sign and encode the ballots of the plan (and the lookups before paper ones)."""
    skey, clerk_skeys, election, spacing, ballots = job
    site = SignerKey.parse(skey)
    clerks = {point: SignerKey.parse(k) for point, k in clerk_skeys.items()}
    out = []
    for position, voter, projects, point in ballots:
        token = hashlib.sha256(f"bench-voter/{voter}".encode()).hexdigest()
        signer = site if point is None else clerks[point]
        if point is not None:
            looked_up = OPENS + timedelta(seconds=position * spacing)
            lookup = {
                "type": "voter-lookup",
                "election": election,
                "polling_point": point,
                "nonce": _nonce(position),
            }
            envelope = Envelope.parse(sign_envelope(lookup, signer))
            lookup_tags = sorted(
                {f"key:{envelope.key}", f"lookup:{token}", f"nonce:{lookup['nonce']}"}
                | {f"point:{point}"}
            )
            draft = entry_encoder(envelope, lookup_tags, "voter-lookup")
            out.append(draft.encode(_stamp(looked_up + timedelta(milliseconds=250))))
            position += 1
        moment = OPENS + timedelta(seconds=position * spacing)
        payload = {
            "type": "ballot" if point is None else "paper-ballot",
            "election": election,
            "voter": token,
            "projects": projects,
            "cast_at": moment.astimezone(UTC).isoformat(),
            "nonce": _nonce(position),
        }
        if point is not None:
            payload["polling_point"] = point
        envelope = Envelope.parse(sign_envelope(payload, signer))
        tags = {
            f"voter:{payload['voter']}",
            f"nonce:{payload['nonce']}",
            *(f"project:{p}" for p in projects),
            *([f"point:{point}"] if point is not None else []),
            receipt_tag(receipt_code(envelope.sig)),
            f"key:{envelope.key}",
        }
        draft = entry_encoder(envelope, sorted(tags), str(payload["type"]))
        out.append(draft.encode(_stamp(moment + timedelta(milliseconds=250))))
    return out


def _ballot_plan(
    count: int, first: int = 2, paper: float = 0.0, points: tuple[str, ...] = ()
) -> list[Planned]:
    """The ballots from position ``first`` on: every tenth voter votes twice, large then
    small; a share ``paper`` of the voters votes on paper at one of ``points``."""
    rng = random.Random(2018)
    large = [f"L{i:02d}" for i in range(1, 41)]
    small = [f"S{i:02d}" for i in range(1, 41)]
    plan: list[tuple[int, list[str]]] = []
    seconds: list[int] = []  # voters whose second ballot comes a little later
    voter = 0
    while len(plan) < count:
        if len(seconds) > 20 or (seconds and len(plan) + len(seconds) >= count):
            plan.append((seconds.pop(0), rng.sample(small, rng.randint(1, 2))))
            continue
        if voter % 10 == 0:
            plan.append((voter, rng.sample(large, rng.randint(1, 2))))
            seconds.append(voter)
        else:
            picks = rng.sample(large, rng.randint(0, 2)) or ["L01"]
            plan.append((voter, picks + rng.sample(small, rng.randint(0, 2))))
        voter += 1
    on_paper = random.Random(2019)  # its own draws: the online plan is the same as without
    point_of: dict[int, str | None] = {}
    planned: list[Planned] = []
    position = first
    for v, projects in plan[:count]:
        if v not in point_of:
            chosen = points and on_paper.random() < paper
            point_of[v] = on_paper.choice(points) if chosen else None
        point = point_of[v]
        planned.append((position, v, projects, point))
        position += 1 if point is None else 2
    return planned


def build_log(
    path: Path,
    ballots: int,
    workers: int,
    *,
    paper: float = 0.0,
    checkpoint_every: int = BATCH,
) -> dict[str, str]:
    """Write an exported log of the Zhytomyr-2018 election with ``ballots`` ballots: online,
    or a share ``paper`` of the voters on paper (each ballot after its clerk's lookup), and a
    checkpoint every ``checkpoint_every`` entries."""
    admin = SignerKey.generate("admin.zhytomyr")
    log_key = SignerKey.generate(f"{ORIGIN_DEPLOYMENT}/log")
    site = SignerKey.generate("site.e-dem")
    election = parse_election_toml((ROOT / "examples" / "zhytomyr-2018.toml").read_text())
    points = tuple(p.id for p in election.polling_points) if paper > 0 else ()
    clerks = {point: SignerKey.generate(f"clerk.{point}") for point in points}
    origin = f"{ORIGIN_DEPLOYMENT}/{election.id}"
    created = OPENS - timedelta(days=7)
    head = [
        sign_envelope(
            {
                "type": "election",
                "election": election.id,
                "admin_key": admin.verifier.vkey,
                "voter_key_id": "0" * 16,
                "definition": election_to_dict(election),
            },
            admin,
        ),
        sign_envelope(
            {
                "type": "key-registered",
                "election": election.id,
                "vkey": site.verifier.vkey,
                "role": "site",
            },
            admin,
        ),
        *(
            sign_envelope(
                {
                    "type": "key-registered",
                    "election": election.id,
                    "vkey": clerk.verifier.vkey,
                    "role": "clerk",
                    "polling_point": point,
                },
                admin,
            )
            for point, clerk in clerks.items()
        ),
    ]
    entries = []
    for i, submitted in enumerate(head):
        envelope = Envelope.parse(submitted)
        tags = sorted({f"key:{envelope.key}", *(["definition"] if i == 0 else [])})
        draft = entry_encoder(envelope, tags, envelope.payload["type"])
        entries.append(draft.encode(_stamp(created + timedelta(seconds=i))))

    plan = _ballot_plan(ballots, len(entries), paper, points)
    size = len(entries) + len(plan) + sum(1 for *_, point in plan if point is not None)
    step = 5000
    spacing = min(3.0, 9 * 86400 / size)  # all inside the ten days of voting
    clerk_skeys = {point: clerk.skey for point, clerk in clerks.items()}
    jobs = [
        (site.skey, clerk_skeys, election.id, spacing, plan[i : i + step])
        for i in range(0, len(plan), step)
    ]
    progress(f"signing {len(plan):,} ballots on {workers} processes ...")
    tree = MemoryTree()
    checkpoints: list[str] = []
    with path.open("wb") as out, ProcessPoolExecutor(workers) as pool:
        header = {"format": "uchast-log/1", "election": election.id, "size": size, "origin": origin}
        out.write(json.dumps(header).encode() + b"\n")

        def write(batch: list[bytes]) -> None:
            for data in batch:
                out.write(b'{"index":%d,"entry":%s}\n' % (tree.size, data))
                tree.extend_hashes([leaf_hash(data)])
                if tree.size % checkpoint_every == 0 or tree.size == size:
                    body = Checkpoint(origin, tree.size, tree.root())
                    checkpoints.append(sign_checkpoint(body, log_key))

        write(entries)
        for batch in pool.map(_sign_ballots, jobs):
            write(batch)
        for note in checkpoints:
            line = {"checkpoint": {"size": int(note.split("\n")[1]), "note": note}}
            out.write(json.dumps(line).encode() + b"\n")
    keys = {"log_vkey": log_key.verifier.vkey, "admin_vkey": admin.verifier.vkey}
    Path(f"{path}.keys.json").write_text(json.dumps(keys))
    return keys


# --------------------------------------------------------------------------- the baseline


SIGNED_BY_KEYS = ("ballot", "paper-ballot", "voter-lookup")

Signed = tuple[bytes, bytes, bytes]
"""(public key, message, signature)"""


def signatures_of(path: Path) -> tuple[list[Signed], int, int]:
    """Every ballot's, paper ballot's and lookup's (public key, message, signature), the number
    of checkpoints and that of paper ballots, read from the log (untimed)."""
    publics: dict[str, bytes] = {}
    signed = []
    checkpoints = paper_ballots = 0
    with path.open("rb") as f:
        f.readline()
        for line in f:
            if line.startswith(b'{"checkpoint"'):
                checkpoints += 1
                continue
            entry = json.loads(line)["entry"]
            envelope = entry["envelope"]
            payload = envelope["payload"]
            if payload["type"] == "key-registered":
                name, key_hash, key = payload["vkey"].split("+", 2)
                publics[f"{name}+{key_hash}"] = decode_b64(key)[1:]
            paper_ballots += payload["type"] == "paper-ballot"
            if payload["type"] in SIGNED_BY_KEYS:
                message = b"uchast/v1\n" + canonical(payload)
                signed.append((publics[envelope["key"]], message, decode_b64(envelope["sig"])))
    return signed, checkpoints, paper_ballots


def _verify_chunk(signed: list[Signed]) -> int:
    keys: dict[bytes, Ed25519PublicKey] = {}
    for public, message, signature in signed:
        key = keys.get(public)
        if key is None:
            key = keys[public] = Ed25519PublicKey.from_public_bytes(public)
        key.verify(signature, message)
    return len(signed)


def raw_verify(signed: list[Signed], workers: int) -> float:
    """Seconds to verify every signature on ``workers`` processes (pool start included, as for
    the audit)."""
    chunks = [signed[i : i + 2000] for i in range(0, len(signed), 2000)]
    started = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        verified = sum(pool.map(_verify_chunk, chunks))
    seconds = time.perf_counter() - started
    assert verified == len(signed)
    return seconds


# --------------------------------------------------------------------------- main


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ballots", type=int, default=200_000)
    parser.add_argument("--log", help="exported log to reuse (written first if absent)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, best kept")
    parser.add_argument(
        "--voting-day",
        action="store_true",
        help="the voting day's shape: --paper 0.2 --checkpoint-every 12 unless given",
    )
    parser.add_argument(
        "--paper", type=float, default=None, help="share of voters on paper (default 0)"
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        help=f"entries between checkpoints (default {BATCH})",
    )
    args = parser.parse_args()
    paper = args.paper if args.paper is not None else 0.2 if args.voting_day else 0.0
    every = args.checkpoint_every or (12 if args.voting_day else BATCH)

    with tempfile.TemporaryDirectory(prefix="uchast-audit-bench-") as scratch:
        path = Path(args.log) if args.log else Path(scratch) / "log.jsonl"
        if path.exists():
            keys = json.loads(Path(f"{path}.keys.json").read_text())
            progress(f"reusing {path}")
        else:
            started = time.perf_counter()
            keys = build_log(path, args.ballots, args.workers, paper=paper, checkpoint_every=every)
            progress(f"wrote {path} in {time.perf_counter() - started:.1f} s")
        entries = json.loads(path.open("rb").readline())["size"]

        command = [
            sys.executable,
            "-c",
            "import sys; from api.cli import main; sys.exit(main())",
            "audit",
            str(path),
            "--log-vkey",
            keys["log_vkey"],
            "--admin-vkey",
            keys["admin_vkey"],
            "--workers",
            str(args.workers),
        ]
        pairs, checkpoints, paper_ballots = signatures_of(path)
        # Alternate the two, best of --repeat each: on a shared machine the load of other
        # processes comes and goes, and the best run of each is the least disturbed.
        runs: list[tuple[float, float, float, float]] = []
        for run in range(args.repeat):
            progress(
                f"run {run + 1}/{args.repeat}: uchast audit of {entries:,} entries "
                f"(load average {_load()}) ..."
            )
            before = _children_cpu()
            started = time.perf_counter()
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            audit_seconds = time.perf_counter() - started
            audit_cpu = _children_cpu() - before  # the audit process and its workers
            if run == 0:
                print(done.stdout, end="", file=sys.stderr)
            if done.returncode != 0:
                print(done.stdout, done.stderr, file=sys.stderr)
                raise SystemExit(f"the audit failed (exit {done.returncode})")
            progress(f"run {run + 1}/{args.repeat}: raw parallel Ed25519 verification ...")
            before = _children_cpu() + _own_cpu()
            baseline_seconds = raw_verify(pairs, args.workers)
            baseline_cpu = _children_cpu() + _own_cpu() - before
            runs.append((audit_seconds, audit_cpu, baseline_seconds, baseline_cpu))
            progress(
                f"  audit {audit_seconds:.1f} s, raw verify {baseline_seconds:.1f} s, "
                f"ratio {entries / audit_seconds / (len(pairs) / baseline_seconds):.3f}"
            )
        audit_seconds = min(r[0] for r in runs)
        audit_cpu = min(r[1] for r in runs)
        baseline_seconds = min(r[2] for r in runs)
        baseline_cpu = min(r[3] for r in runs)

    ours = entries / audit_seconds
    baseline = len(pairs) / baseline_seconds
    print(
        json.dumps(
            {
                "bench": "audit_replay",
                "ours": round(ours, 1),
                "baseline": round(baseline, 1),
                "ratio": round(ours / baseline, 3),
                "unit": "entries/s",
                "entries": entries,
                "signatures": len(pairs),
                "checkpoints": checkpoints,
                "paper_ballots": paper_ballots,
                "workers": args.workers,
                "audit_seconds": round(audit_seconds, 2),
                "baseline_seconds": round(baseline_seconds, 2),
                # CPU time, all processes: steadier than wall time on a shared machine.
                "ours_cpu_us_per_entry": round(audit_cpu / entries * 1e6, 1),
                "baseline_cpu_us_per_signature": round(baseline_cpu / len(pairs) * 1e6, 1),
                "cpu_ratio": round((baseline_cpu / len(pairs)) / (audit_cpu / entries), 3),
                "runs": args.repeat,
                "cpus": os.cpu_count(),
                # Other processes' load over the last 1, 5 and 15 minutes, as the runs ended.
                "load_average": [round(x, 2) for x in os.getloadavg()],
            }
        )
    )


if __name__ == "__main__":
    main()
