"""Receipt look-ups per second through nginx's proxy cache against straight to the service.

Setup: a fresh PostgreSQL database with the example election (`uchast init`, a site key and a
supervisor key added with `uchast keys add`), one `uchast serve` process on it, N online ballots
of distinct voters cast through it (bench/ingest_http.py's ballots); their receipt codes are the
look-ups. The working set is K of them (`--receipts`): voters checking their receipts, some more
than once, while the log keeps growing.

Three kinds of run, in turn for `--rounds` rounds (the machine's other load falls on all alike;
each kind's median counts), each `--seconds` long after a 1 s warm-up, each with the same load
generator (bench/loadgen.py `read_load`: C keep-alive clients walking the K receipt URLs in
their own shuffled orders):

* baseline: straight to the service (`GET /v1/elections/{e}/receipts/{code}`);
* proxy: through nginx, deploy/nginx/nginx.conf rewritten for here as tests/deploy do, without
  a cache (what the proxy alone costs; reported, not in the ratio);
* ours: the same nginx with the receipt micro-cache deploy/nginx/nginx.conf holds (README:
  "How reads scale"): an answer is reused for at most 1 s, one request per receipt goes to the
  service at a time, the others get the stale copy meanwhile.

Both nginx runs drop the config's per-address `limit_req` (here every request comes from one
address; in production it stays, and applies to hits too). Every answer must be 200 and name
the receipt asked for. Then the staleness bound: a receipt of the working set is voided
(`uchast void`, supervisor) and the bench times how long the cache keeps answering "counted";
it must say "voided" within the cache's validity plus a second.

    .venv/bin/python bench/receipt_cache.py [--n 2000] [--receipts 100] [--concurrency 32]
                                            [--seconds 5] [--rounds 3]

The last line printed is one JSON object: ours = look-ups/s through the cache, baseline =
look-ups/s straight to the service, ratio = ours / baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest_http import (
    HttpConnection,
    make_ballots,
    percentile,
    post_request,
    progress,
    set_up_election,
    start_servers,
    uchast,
)
from bench.ingest_ledger import create_database, drop_database
from bench.loadgen import ReadRun, free_port, read_load, wait_until_serving

ROOT = Path(__file__).resolve().parents[1]
NGINX = "/usr/sbin/nginx"

# deploy/nginx/nginx.conf holds the receipt micro-cache (README: "How reads scale").
RECEIPT_CACHE = "proxy_cache receipts;"


def nginx_config(tmp: Path, backend: int, listen: int, cache: bool) -> Path:
    """deploy/nginx/nginx.conf pointed at one local uchast (both upstreams: the primary's
    servers and the read one), listening on ``listen``, its pid, temporary files and cache under
    ``tmp``, without the per-address request limits; without ``cache``, its receipt micro-cache
    turned off."""
    text = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    servers = re.findall(r"(?m)^\s*server uchast-\d+:8080.*\n", text)
    upstreams = re.findall(r"(?m)^\s*upstream \w+ \{\n", text)
    if not servers or len(upstreams) != 2 or RECEIPT_CACHE not in text:
        raise RuntimeError("deploy/nginx/nginx.conf: not the two upstreams and the cache expected")
    for server in servers:
        text = text.replace(server, "", 1)
    for upstream in upstreams:
        text = text.replace(upstream, f"{upstream}        server 127.0.0.1:{backend};\n", 1)
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    text = text.replace("pid /tmp/nginx.pid;", f"pid {tmp}/nginx.pid;")
    text = re.sub(r"(?m)^\s*access_log /dev/stdout.*\n", "", text)
    text = re.sub(r"(?m)^\s*error_log .*\n", f"error_log {tmp}/error.log warn;\n", text)
    cache_dir = tmp / ("cache" if cache else "cache-unused")  # the two may run at once
    text = text.replace("proxy_cache_path /var/cache/nginx-uchast", f"proxy_cache_path {cache_dir}")
    if not cache:
        text = text.replace(RECEIPT_CACHE, "proxy_cache off;")
    text = re.sub(r"(?m)^\s*limit_req zone=.*\n", "", text)
    paths = [f"client_body_temp_path {tmp}/body;", f"proxy_temp_path {tmp}/proxy;"]
    # One client address holds C connections for the whole run (nginx closes one after 1000
    # requests by default, which the lean client does not follow).
    paths += ["access_log off;", "keepalive_requests 10000000;"]
    text = text.replace("http {", "http {\n    " + "\n    ".join(paths), 1)
    path = tmp / ("nginx-cache.conf" if cache else "nginx.conf")
    path.write_text(text)
    return path


class Nginx:
    """A real nginx on a config, started and stopped (by its own pid)."""

    def __init__(self, config: Path, port: int) -> None:
        self.config = config
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Nginx:
        check = subprocess.run([NGINX, "-t", "-c", str(self.config)], capture_output=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t: {check.stderr.decode().strip()}")
        self.process = subprocess.Popen(
            [NGINX, "-c", str(self.config), "-g", "daemon off;"], stderr=subprocess.DEVNULL
        )
        wait_until_serving([self.url], [self.process], "/nginx-healthz")
        return self

    def __exit__(self, *_: object) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGQUIT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def cast(url: str, election: str, bodies: list[bytes]) -> list[dict[str, Any]]:
    """POST every ballot (16 keep-alive clients); their receipts, in order."""
    path = f"/v1/elections/{election}/ballots"
    answers: list[dict[str, Any]] = [{} for _ in bodies]
    todo = iter(range(len(bodies)))

    async def client() -> None:
        connection = await HttpConnection.open(url)
        try:
            for i in todo:
                status, body = await connection.request(post_request(url, path, bodies[i]))
                if status != 201:
                    raise RuntimeError(f"ballot {i}: {status} {body[:200]!r}")
                answers[i] = json.loads(body)
        finally:
            await connection.close()

    await asyncio.gather(*(client() for _ in range(16)))
    return answers


def check_answers(run: ReadRun, codes: dict[str, str], what: str) -> None:
    """Every answer 200, and each path's answer names its receipt."""
    if set(run.statuses) != {200}:
        raise RuntimeError(f"{what}: answers {dict(run.statuses)}")
    for path, body in run.bodies.items():
        if json.loads(body)["receipt"] != codes[path]:
            raise RuntimeError(f"{what}: {path} answered another receipt")


RECEIPT_ROUTE = 'method="GET",route="/v1/elections/{election}/receipts/{code}",status="200"'


def served_receipts(service: str) -> float:
    """Receipts uchast has answered so far (its /metrics)."""
    with urllib.request.urlopen(f"{service}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("uchast_http_responses_total{") and RECEIPT_ROUTE in line:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


async def measure(
    url: str,
    service: str,
    paths: list[str],
    codes: dict[str, str],
    args: argparse.Namespace,
    what: str,
) -> tuple[ReadRun, float]:
    """One timed run after a warm-up; the run and the share of its look-ups uchast answered."""
    await read_load(url, paths, concurrency=args.concurrency, seconds=1.0)  # warm-up
    before = served_receipts(service)
    run = await read_load(url, paths, concurrency=args.concurrency, seconds=args.seconds)
    share = (served_receipts(service) - before) / sum(run.statuses.values())
    check_answers(run, codes, what)
    progress(
        f"  {what}: {run.rate:,.0f} look-ups/s, p50 {percentile(run.latencies, 50) * 1000:.2f} ms,"
        f" p99 {percentile(run.latencies, 99) * 1000:.2f} ms, {share:.0%} answered by uchast"
    )
    return run, share


def median(runs: list[ReadRun]) -> ReadRun:
    """The run of median rate."""
    return sorted(runs, key=lambda r: r.rate)[len(runs) // 2]


def receipt_status(url: str, path: str) -> str:
    with urllib.request.urlopen(f"{url}{path}", timeout=10) as response:
        return str(json.loads(response.read())["status"])


async def staleness(
    cached: str, server: str, path: str, position: int, directory: Path, election: str
) -> float:
    """Void the entry at ``position`` while ``path`` is being read through the cache; seconds
    from the void's acknowledgement until the cache answers "voided"."""
    ends = time.monotonic() + 5
    while time.monotonic() < ends:  # keep it hot in the cache
        if receipt_status(cached, path) != "counted":
            raise RuntimeError(f"{path} is not counted before the void")
        await asyncio.sleep(0.05)
    await asyncio.to_thread(
        uchast, "void", str(position), "--reason", "bench: staleness of the receipt cache",
        "--key", str(directory / "supervisor.key"), "--server", server, "--election", election,
    )  # fmt: skip
    voided = time.monotonic()
    while receipt_status(cached, path) != "voided":
        if time.monotonic() - voided > 10:
            raise RuntimeError("the cache still says counted 10 s after the void")
        await asyncio.sleep(0.01)
    return time.monotonic() - voided


def run(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    db = create_database()
    try:
        election, site, voter_key = set_up_election(db, directory)
        vkey = uchast("keygen", "supervisor.bench", "--out", str(directory / "supervisor.key"))
        uchast(
            "keys", "add", "--db", db, "--admin-key", str(directory / "admin.key"),
            "--role", "supervisor", "--vkey", vkey.strip(),
        )  # fmt: skip
        urls, processes = start_servers(db, directory, 1)
        service = urls[0]
        try:
            progress(f"casting {args.n} ballots")
            ballots = make_ballots(election, site, voter_key, args.n)
            bodies = [json.dumps(envelope).encode() for _, envelope in ballots]
            receipts = asyncio.run(cast(service, election.id, bodies))
            chosen = receipts[: args.receipts]
            prefix = f"/v1/elections/{election.id}/receipts/"
            codes = {prefix + r["receipt"]: r["receipt"] for r in chosen}
            paths = list(codes)
            positions = {prefix + r["receipt"]: int(r["position"]) for r in chosen}
            progress(
                f"{len(paths)} receipts, {args.concurrency} clients, {args.seconds:.0f} s each"
            )
            backend = int(service.rsplit(":", 1)[1])
            plain, cache = free_port(), free_port()
            runs: dict[str, list[ReadRun]] = {"direct": [], "proxy": [], "cached": []}
            shares: list[float] = []  # of the cached runs' look-ups, those uchast answered
            with (
                Nginx(nginx_config(directory, backend, plain, cache=False), plain) as proxy,
                Nginx(nginx_config(directory, backend, cache, cache=True), cache) as cached,
            ):
                targets = {"direct": service, "proxy": proxy.url, "cached": cached.url}
                # Rounds of the three, in turn: the machine's other load falls on all alike.
                for round_ in range(1, args.rounds + 1):
                    progress(f" round {round_}")
                    for kind, url in targets.items():
                        measured, share = asyncio.run(
                            measure(url, service, paths, codes, args, kind)
                        )
                        runs[kind].append(measured)
                        if kind == "cached":
                            shares.append(share)
                stale = asyncio.run(
                    staleness(
                        cached.url, service, paths[0], positions[paths[0]], directory, election.id
                    )
                )
            progress(f"  a void showed through the cache after {stale:.2f} s (validity 1 s)")
            if stale > 2.0:
                raise RuntimeError(f"the cache answered a stale status for {stale:.2f} s")
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=30)
        best = {kind: median(runs[kind]) for kind in runs}
        return {
            **{kind: r.rate for kind, r in best.items()},
            "p50_ms": {kind: percentile(r.latencies, 50) * 1000 for kind, r in best.items()},
            "rates": {kind: [round(r.rate) for r in rs] for kind, rs in runs.items()},
            "void_visible_s": stale,
            "service_share": max(shares),
        }
    finally:
        drop_database(db)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="ballots cast before the look-ups")
    parser.add_argument("--receipts", type=int, default=100, help="receipts looked up (K)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each kind, in turn")
    args = parser.parse_args()
    if not os.access(NGINX, os.X_OK):
        sys.exit(f"{NGINX} is not installed (apt-get install nginx-light)")
    if args.receipts > args.n:
        sys.exit("--receipts cannot exceed --n")
    with tempfile.TemporaryDirectory(prefix="uchast-bench-") as tmp:
        os.chmod(tmp, 0o755)  # nginx's workers (nobody, when started as root) read the cache
        result = run(args, Path(tmp))
    print(
        json.dumps(
            {
                "bench": "receipt_cache",
                "ours": round(result["cached"]),
                "baseline": round(result["direct"]),
                "ratio": round(result["cached"] / result["direct"], 2),
                "unit": "receipt look-ups/s",
                "proxy_without_cache": round(result["proxy"]),
                "p50_ms": {k: round(v, 3) for k, v in result["p50_ms"].items()},
                "void_visible_s": round(result["void_visible_s"], 2),
                "cached_share_answered_by_service": round(result["service_share"], 3),
                "receipts": args.receipts,
                "concurrency": args.concurrency,
                "seconds": args.seconds,
                "rounds": args.rounds,
                "rates": result["rates"],
                "load_average": round(os.getloadavg()[0], 1),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
