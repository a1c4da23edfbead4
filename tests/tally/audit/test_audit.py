"""The auditor: a clean log passes, its figures match the server's own rules, it stays
independent of the server's code, and its command line answers as documented."""

from __future__ import annotations

import ast
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from api.cli import main as uchast_main
from tally import winners
from tally.audit import (
    AuditReport,
    CheckpointError,
    EntryShapeError,
    SignatureError,
    audit,
    audit_strict,
)
from tally.audit.cli import main as audit_main
from tests.tally.election_log import AuditKeys, election_log, export, standard_log
from votes import rules
from votes.election import election_from_dict

AUDIT_PACKAGE = Path(__file__).resolve().parents[3] / "tally" / "audit"
ALLOWED_ROOTS = {"cryptography", "rfc8785", "tally"}
# The monitor's Prometheus gauges report its alarms; they decide nothing.
ALLOWED_IN = {"monitor.py": {"prometheus_client"}}


async def clean_log(tmp_path: Path, sqlite_url: str, **overrides: Any) -> tuple[Path, AuditKeys]:
    keys = AuditKeys()
    async with election_log(sqlite_url, keys, **overrides) as log:
        await standard_log(log)
    path = tmp_path / "log.jsonl"
    await export(sqlite_url, path)
    return path, keys


def run(path: Path | str, keys: AuditKeys, **options: Any) -> AuditReport:
    options.setdefault("workers", 0)
    return audit(str(path), keys.log.verifier.vkey, keys.admin.verifier.vkey, **options)


def test_the_auditor_imports_only_the_standard_library_cryptography_and_rfc8785() -> None:
    """Every import in tally/audit (and tally/__init__) is stdlib, cryptography, rfc8785 or the
    auditor's own modules: nothing of the server."""
    files = [*sorted(AUDIT_PACKAGE.glob("*.py")), AUDIT_PACKAGE.parent / "__init__.py"]
    assert len(files) > 5
    for file in files:
        tree = ast.parse(file.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{file.name}: relative import"
                names = [node.module or ""]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                if root == "tally":
                    assert name == "tally.audit" or name.startswith("tally.audit."), (
                        f"{file.name} imports {name}"
                    )
                    continue
                allowed = ALLOWED_ROOTS | ALLOWED_IN.get(file.name, set())
                assert root in sys.stdlib_module_names or root in allowed, (
                    f"{file.name} imports {name}"
                )


MIRRORED = {
    "votes/rules.py": "tally/audit/ballots.py",
    "tally/winners.py": "tally/audit/recount.py",
    "tally/projection.py": "tally/audit/ballots.py",
    "tally/results.py": "tally/audit/recount.py",
}


def test_each_auditor_module_names_what_it_mirrors_and_is_named_back() -> None:
    """Every tally/audit module's docstring opens with the server files it mirrors (which
    exist), and the server's rules, tally, results and winners name their mirror."""
    root = AUDIT_PACKAGE.parents[1]
    for file in sorted(AUDIT_PACKAGE.glob("*.py")):
        docstring = ast.get_docstring(ast.parse(file.read_text(encoding="utf-8"))) or ""
        first = docstring.splitlines()[0] if docstring else ""
        assert first.startswith("Mirrors "), f"{file.name}: {first!r}"
        for named in re.findall(r"[\w*.-]+/[\w*./-]+\.py", first):
            assert list(root.glob(named)), f"{file.name} names {named}, which does not exist"
    for server, mirror in MIRRORED.items():
        said = ast.get_docstring(ast.parse((root / server).read_text(encoding="utf-8"))) or ""
        assert f"Mirrored by {mirror}" in said, server
        assert "tests/tally/audit/test_differential.py" in said, server


async def test_a_clean_log_passes_with_the_servers_own_count(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Every check passes on an honest log, and the recount equals what votes.rules and
    tally.winners make of the same entries."""
    path, keys = await clean_log(tmp_path, sqlite_url)
    report = run(path, keys)
    assert report.ok, report.summary()
    lines = path.read_bytes().splitlines()
    header = json.loads(lines[0])
    assert report.entries == header["size"] > 25
    assert report.checkpoints >= 1

    # The server's definition of what counts, applied to the exported entries.
    entries = [json.loads(line)["entry"] for line in lines[1 : 1 + header["size"]]]
    election = election_from_dict(entries[0]["envelope"]["payload"]["definition"])
    history: dict[str, list[rules.PriorEntry]] = defaultdict(list)
    voids: list[rules.PriorEntry] = []
    for position, entry in enumerate(entries):
        payload = entry["envelope"]["payload"]
        prior = rules.PriorEntry(position, entry["type"], payload, entry["envelope"]["key"])
        if entry["type"] == "void":
            voids.append(prior)
        elif "voter" in payload:
            history[payload["voter"]].append(prior)
    totals = dict.fromkeys(report.totals, 0)
    ballots = voters = 0
    for voter, seen in history.items():
        state = rules.voter_state(election, [*seen, *voids], voter)
        ballots += len(state.ballots)
        voters += bool(state.ballots)
        for ballot in state.ballots:
            for project in ballot.projects:
                totals[project] += 1
    assert (report.ballots, report.voters, report.spoiled) == (ballots, voters, 1)
    assert report.totals == totals
    for category in election.categories:
        candidates = [
            winners.Candidate(p.id, p.cost, totals[p.id]) for p in election.projects_in(category.id)
        ]
        expected = winners.greedy(
            candidates, category.budget, tie_break=election.rule.tie_break, seed=election.rule.seed
        )
        assert report.winners[category.id] == list(expected.funded)


async def test_parallel_and_inline_audits_agree(tmp_path: Path, sqlite_url: str) -> None:
    """Worker processes and small chunks give the same report as one process."""
    path, keys = await clean_log(tmp_path, sqlite_url)
    inline = run(path, keys)
    parallel = run(path, keys, workers=2, chunk_size=3)
    assert parallel.ok and inline.ok
    assert (parallel.entries, parallel.root, parallel.totals, parallel.winners) == (
        inline.entries,
        inline.root,
        inline.totals,
        inline.winners,
    )


async def test_the_command_exits_0_on_a_clean_log_and_1_on_a_tampered_one(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``uchast audit`` prints a summary, one line per violation, and its verdict as status."""
    path, keys = await clean_log(tmp_path, sqlite_url)
    argv = [
        "audit",
        str(path),
        "--log-vkey",
        keys.log.verifier.vkey,
        "--admin-vkey",
        keys.admin.verifier.vkey,
        "--workers",
        "0",
    ]
    assert uchast_main(argv) == 0
    out = capsys.readouterr().out
    assert "PASSED" in out and "winners in large" in out

    data = path.read_bytes().replace(b'"projects":["L01","S01"]', b'"projects":["L01","S02"]', 1)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_bytes(data)
    assert audit_main([str(tampered), *argv[2:]]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out
    assert any(line.startswith("entry ") and "signature" in line for line in out.splitlines())


async def test_bad_arguments_and_missing_sources_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed vkey or an unreadable source is one line on stderr and status 2."""
    keys = AuditKeys()
    good = keys.log.verifier.vkey
    assert audit_main([str(tmp_path / "x"), "--log-vkey", "nonsense", "--admin-vkey", good]) == 2
    assert "uchast audit:" in capsys.readouterr().err
    assert (
        audit_main(
            [
                str(tmp_path / "missing.jsonl"),
                "--log-vkey",
                good,
                "--admin-vkey",
                keys.admin.verifier.vkey,
            ]
        )
        == 2
    )


async def test_results_file_is_compared(tmp_path: Path, sqlite_url: str) -> None:
    """--results: matching published results pass; a changed vote count or winner fails."""
    path, keys = await clean_log(tmp_path, sqlite_url)
    clean = run(path, keys)
    lines = path.read_bytes().splitlines()
    definition = json.loads(lines[1])["entry"]["envelope"]["payload"]["definition"]
    published: dict[str, Any] = {
        "election": "test-2018",
        "log": {"size": clean.entries, "root": clean.root},
        "categories": [
            {
                "id": c["id"],
                "budget": c["budget_kopecks"],
                "projects": [
                    {
                        "id": p["id"],
                        "cost": p["cost_kopecks"],
                        "votes": clean.totals[p["id"]],
                        "funded": p["id"] in clean.winners[c["id"]],
                    }
                    for p in definition["projects"]
                    if p["category"] == c["id"]
                ],
            }
            for c in definition["categories"]
        ],
    }
    results = tmp_path / "results.json"
    results.write_text(json.dumps(published))
    report = run(path, keys, results=str(results))
    assert report.ok and report.results_compared, report.summary()

    published["categories"][0]["projects"][0]["votes"] += 1
    results.write_text(json.dumps(published))
    report = run(path, keys, results=str(results))
    assert [v.check for v in report.violations] == ["votes:L01"]
    assert all(v.step == 6 for v in report.violations)

    published["categories"][0]["projects"][0]["votes"] -= 1
    published["log"]["size"] = clean.entries - 1
    results.write_text(json.dumps(published))
    report = run(path, keys, results=str(results))
    assert "results-root" in report.violation_counts


async def test_strict_audit_raises_the_error_of_the_failed_step(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The strict variant stops at the first violation and raises its step's error type."""
    path, keys = await clean_log(tmp_path, sqlite_url)
    report = audit_strict(str(path), keys.log.verifier.vkey, keys.admin.verifier.vkey, workers=0)
    assert report.ok
    with pytest.raises(SignatureError) as raised:
        audit_strict(str(path), keys.log.verifier.vkey, keys.site.verifier.vkey, workers=0)
    assert raised.value.violation.entry == 0
    with pytest.raises(CheckpointError):
        audit_strict(str(path), keys.site.verifier.vkey, keys.admin.verifier.vkey, workers=0)
    lines = path.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b'"index":2,"entry":{', b'"index":2,"entry":{ ', 1)
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b"\n".join(lines))
    with pytest.raises(EntryShapeError):
        audit_strict(str(broken), keys.log.verifier.vkey, keys.admin.verifier.vkey, workers=0)
