"""``uchast import-pabulib`` ballots per second, by ballot kind, in one run.

One real Pabulib file per kind (``../shared/data``): approval (Warszawa 2023 Wola), knapsack
(Warszawa 2017 Aleksandrów, ``max_sum_cost``), cumulative (Częstochowa 2024, 10 points) and
ordinal (Kraków 2018 Czyżyny, three ranked). A file with fewer than ``--min-ballots`` VOTES rows
has its rows repeated under new voter ids (and its ``votes``/``score`` columns recounted) so that
every kind casts about as many ballots. Each is imported into a fresh PostgreSQL database (or
SQLite with ``--store sqlite``) through :func:`tally.pabulib_import.import_pabulib`: every row
signed, verified, decided by the rules and appended under the DCB condition, ``--concurrency``
casts at a time. The rate is the ballots cast divided by the casting time (keys, definition and
the final replay excluded); the report must say that the totals equal the file's columns.

Baseline, same run, same store, same concurrency: each kind's *approval twin*, the same file
with the same ballots (same voters, same projects per ballot) read as approval ballots
(``vote_type`` approval, no points, no score, no cost or points limit), so the ratio isolates
what the kind costs over an approval ballot of the same length. The last line is one JSON
object: ``ours`` is the ballots per second of the three other kinds together (their ballots over
their casting time), ``baseline`` the same of their approval twins; ``by_kind`` has each kind's
rate and its twin's, ``approval`` the rate of the approval file, and ``parse`` the bare
parse-and-plan rate of each file (no signing, no store).

    .venv/bin/python bench/import_pabulib.py [--min-ballots 6000] [--concurrency 64]
        [--store postgresql|sqlite] [--repeat 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tally.pabulib import (  # noqa: E402
    parse_pabulib,
    recount,
    recount_votes,
    vote_type,
    write_pabulib,
)
from tally.pabulib_import import import_pabulib, read_plan  # noqa: E402

PG_ADMIN = os.environ.get("UCHAST_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
DATA = ROOT.parent / "shared" / "data"
FILES = {
    "approval": DATA / "pabulib" / "Poland_Warszawa_2023_Wola.pb",
    "knapsack": DATA / "pabulib-kinds" / "poland_warszawa_2017_aleksandrow.pb",
    "cumulative": DATA / "pabulib" / "Poland_Czestochowa_2024.pb",
    "ordinal": DATA / "pabulib-kinds" / "poland_krakow_2018_czyzyny.pb",
}


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def enlarged(source: Path, minimum: int, out: Path) -> Path:
    """``source`` with its VOTES rows repeated under new voter ids up to ``minimum`` rows, and
    its ``votes``/``score`` columns recounted; ``source`` itself when it has enough rows."""
    pb = parse_pabulib(source.read_text(encoding="utf-8"))
    if len(pb.votes) >= minimum:
        return source
    rows = list(pb.votes)
    copy = 0
    while len(pb.votes) < minimum:
        copy += 1
        pb.votes.extend(
            {**row, "voter_id": f"copy{copy}-{row['voter_id']}"}
            for row in rows[: minimum - len(pb.votes)]
        )
    pb.vote_lines = []
    votes, score = recount_votes(pb), recount(pb)
    for project in pb.projects:
        project["votes"] = str(votes[project["project_id"]])
        if "score" in project:
            project["score"] = str(score[project["project_id"]])
    if "num_votes" in pb.meta:
        pb.meta["num_votes"] = str(len(pb.votes))
    out.write_text(write_pabulib(pb), encoding="utf-8")
    return out


def approval_twin(path: Path, out: Path) -> Path:
    """``path``'s ballots as approval ballots: same rows and picks, no points, score or limits
    other than the lengths."""
    pb = parse_pabulib(path.read_text(encoding="utf-8"))
    pb.meta["vote_type"] = "approval"
    for key in (
        "max_sum_cost",
        "min_sum_cost",
        "max_points",
        "min_points",
        "max_sum_points",
        "min_sum_points",
    ):
        pb.meta.pop(key, None)
    if vote_type(parse_pabulib(path.read_text(encoding="utf-8")).meta) == "ordinal":
        pb.meta.pop("max_length", None)  # a ranking's length limit is scoring, not a pick cap
    pb.projects = [{k: v for k, v in p.items() if k != "score"} for p in pb.projects]
    pb.votes = [{k: v for k, v in row.items() if k != "points"} for row in pb.votes]
    pb.vote_lines = []
    out.write_text(write_pabulib(pb), encoding="utf-8")
    return out


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


def import_rate(path: Path, store: str, concurrency: int, work: Path) -> tuple[float, int]:
    """Ballots per second of one import of ``path`` into a fresh store, and the ballots cast."""
    url = create_database() if store == "postgresql" else f"sqlite:///{work / uuid.uuid4().hex}.db"
    try:
        report = asyncio.run(
            import_pabulib(path, url, work / uuid.uuid4().hex, concurrency=concurrency)
        )
    finally:
        if store == "postgresql":
            drop_database(url)
    cast = sum(report.cast.values())
    if not report.totals_match or report.refused:
        raise SystemExit(f"{path.name}: the import's totals differ or ballots were refused")
    return cast / report.seconds_casting, cast


def parse_rate(path: Path) -> float:
    """Rows per second of reading, parsing and planning ``path`` (no keys, no store)."""
    started = time.perf_counter()
    plan = read_plan(path)
    return len(plan.ballots) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-ballots", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--store", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--repeat", type=int, default=1, help="best of N imports per kind")
    args = parser.parse_args()

    def best_rate(path: Path, work: Path) -> tuple[float, int]:
        runs = [import_rate(path, args.store, args.concurrency, work) for _ in range(args.repeat)]
        return max(runs)

    rates: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    parse: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for kind, source in FILES.items():
            path = enlarged(source, args.min_ballots, work / source.name)
            parse[kind] = max(parse_rate(path) for _ in range(args.repeat))
            rate, counts[kind] = best_rate(path, work)
            rates[kind] = {"ours": rate}
            line = (
                f"import-pabulib {kind:10} {counts[kind]:6} ballots of {source.name}: {rate:,.0f}/s"
            )
            if kind != "approval":
                twin, _ = best_rate(approval_twin(path, work / f"twin-{source.name}"), work)
                rates[kind]["approval_twin"] = twin
                line += f"; the same ballots as approval {twin:,.0f}/s (ratio {rate / twin:.2f})"
            progress(
                f"{line}; parse and plan {parse[kind]:,.0f} rows/s; load {os.getloadavg()[0]:.1f}"
            )
    kinds = [k for k in FILES if k != "approval"]
    total = sum(counts[k] for k in kinds)
    ours = total / sum(counts[k] / rates[k]["ours"] for k in kinds)
    baseline = total / sum(counts[k] / rates[k]["approval_twin"] for k in kinds)
    print(
        json.dumps(
            {
                "bench": "import_pabulib",
                "ours": round(ours, 1),
                "baseline": round(baseline, 1),
                "ratio": round(ours / baseline, 3),
                "unit": "ballots/s",
                "by_kind": {k: {n: round(v, 1) for n, v in r.items()} for k, r in rates.items()},
                "ballots": counts,
                "parse": {k: round(v, 1) for k, v in parse.items()},
                "store": args.store,
                "concurrency": args.concurrency,
                "repeat": args.repeat,
                "loadavg": round(os.getloadavg()[0], 2),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
