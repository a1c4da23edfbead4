"""Real elections replayed through the signed write path (``uchast import-pabulib``), and
counted ballots exported back to Pabulib (``uchast export pabulib``) and re-imported."""

from __future__ import annotations

import os
import re
import stat
from collections import Counter
from pathlib import Path

import pytest

from api.cli import main
from ledger.store import open_store
from tally.export import pabulib_export, replay_tally
from tally.pabulib import (
    ballots,
    file_totals,
    parse_pabulib,
    selected,
    vote_type,
    voting_method,
)
from tally.pabulib_import import (
    PabulibImportError,
    election_id_from_name,
    import_pabulib,
    map_project_ids,
)
from tally.projection import Tally
from tally.results import results_document
from tests.tally.election_log import AuditKeys, election_log, standard_log

PABULIB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pabulib"

WOLA = "Poland_Warszawa_2023_Wola.pb"
BOERNEROWO = "Poland_Warszawa_2026_Boernerowo_Lotnisko_Fort_Radiowo_Groty.pb"
GDYNIA = "Poland_Gdynia_2021_Babie_Doly__large.pb"
LODZ = "Poland_Lodz_2024_Andrzejow.pb"
CZESTOCHOWA = "Poland_Czestochowa_2024.pb"
BUDAPEST = "Hungary_Budapest_2025_XI_Ujbuda.pb"

# The data README: approval files whose funded set the city's rule reproduces.
REPRODUCIBLE = {WOLA, BOERNEROWO, GDYNIA, LODZ}
# Budapest's comment: strict greedy within four categories with their own budgets (HUF).
BUDAPEST_BUDGETS = {
    "Modern": "40000000",
    "Green": "40000000",
    "Free": "20000000",
    "Care": "20000000",
}
ALL_FILES = sorted({*REPRODUCIBLE, CZESTOCHOWA, BUDAPEST, *(p.name for p in PABULIB.glob("*.pb"))})


def data_file(name: str) -> Path:
    """The real file; a missing one fails under CI and is skipped elsewhere."""
    path = PABULIB / name
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing")
        pytest.skip(f"{path} is missing")
    return path


async def replayed(url: str, election: str) -> tuple[Tally, dict[str, object]]:
    """The tally rebuilt from the stored log, and the results document it gives."""
    store = open_store(url)
    await store.open()
    try:
        tally, size, root = await replay_tally(store, election)
    finally:
        await store.close()
    return tally, results_document(tally, size, root)


def funded_of(document: dict[str, object]) -> set[str]:
    categories = document["categories"]
    assert isinstance(categories, list)
    return {pid for category in categories for pid in category["funded"]}


@pytest.mark.parametrize("name", ALL_FILES)
async def test_real_election_replays_through_the_write_path(name: str, tmp_path: Path) -> None:
    """Every VOTES row is cast as a signed ballot; the log's tally equals the file's votes
    exactly, and the configured rule funds the selected set where the README says it can."""
    path = data_file(name)
    pb = parse_pabulib(path.read_text(encoding="utf-8"))
    url = f"sqlite:///{tmp_path / 'uchast.db'}"
    keys = tmp_path / "keys"
    if vote_type(pb.meta) != "approval":
        with pytest.raises(PabulibImportError) as refused:
            await import_pabulib(path, url, keys)
        message = str(refused.value)
        print(f"\n{name}: refused: {message}")
        assert vote_type(pb.meta) in message and "approval" in message
        assert "nothing was written" in message and "\n" not in message
        assert not keys.exists() and not (tmp_path / "uchast.db").exists()
        return

    report = await import_pabulib(path, url, keys)
    assert report.refused == []
    ids = map_project_ids([p["project_id"] for p in pb.projects])
    tally, document = await replayed(url, report.election)
    expected = {ids[pid]: votes for pid, votes in file_totals(pb).items()}
    assert {pid: tally.votes[pid] for pid in expected} == expected
    assert sum(tally.votes.values()) == sum(expected.values())
    assert tally.voters == len(pb.votes)
    methods = Counter(voting_method(v) for v in pb.votes)
    assert tally.ballots["paper"] == methods["paper"]
    assert tally.ballots["online"] == len(pb.votes) - methods["paper"]

    ours = funded_of(document)
    city = {ids[pid] for pid in selected(pb)}
    print(
        f"\n{name}: {len(pb.votes)} ballots in {report.seconds:.1f} s; totals equal; "
        f"funded {'equals' if ours == city else 'DIFFERS FROM'} selected; "
        f"missing {sorted(city - ours)}, extra {sorted(ours - city)}"
    )
    if name in REPRODUCIBLE:
        assert ours == city
    if name == WOLA:
        assert report.seconds < 60


async def test_budapest_with_its_categories_differs_only_by_the_top_up(tmp_path: Path) -> None:
    """Budapest under its four category budgets and strict greedy: totals equal; every project
    we fund was selected; the ones we miss are the city's global top-up, which no rule here has."""
    path = data_file(BUDAPEST)
    pb = parse_pabulib(path.read_text(encoding="utf-8"))
    url = f"sqlite:///{tmp_path / 'uchast.db'}"
    report = await import_pabulib(
        path, url, tmp_path / "keys", category_budgets=BUDAPEST_BUDGETS, rule_name="greedy-no-skip"
    )
    tally, document = await replayed(url, report.election)
    assert dict(tally.votes) == {pid: n for pid, n in file_totals(pb).items() if n}
    categories = {c.id: (c.budget, c.max_picks) for c in tally.election.categories}
    assert categories == {
        "modern": (40_000_000_00, 1),
        "green": (40_000_000_00, 1),
        "free": (20_000_000_00, 1),
        "care": (20_000_000_00, 1),
    }
    ours, city = funded_of(document), set(selected(pb))
    top_up = city - ours
    print(f"\n{BUDAPEST} by category: funded {sorted(ours)}; not funded here {sorted(top_up)}")
    assert ours <= city
    assert top_up == {"2", "14", "34", "38"}


def test_cumulative_file_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`uchast import-pabulib` on cumulative ballots exits 2 with one clear line, writing
    nothing."""
    path = data_file(CZESTOCHOWA)
    db = tmp_path / "u.db"
    status = main(["import-pabulib", str(path), "--db", f"sqlite:///{db}", "--dir", "k"])
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and "cumulative" in err and "nothing was written" in err
    assert not db.exists() and not (tmp_path / "k").exists()


async def test_keys_are_private_files_and_registered_in_the_log(tmp_path: Path) -> None:
    """The generated keys are mode-0600 files; site and clerk keys are registered, the clerk for
    its polling point."""
    path = data_file(BOERNEROWO)
    url = f"sqlite:///{tmp_path / 'uchast.db'}"
    report = await import_pabulib(path, url, tmp_path / "keys")
    files = sorted(p.name for p in (tmp_path / "keys").iterdir())
    assert files == ["admin.key", "clerk-paper.key", "log.key", "site.key", "voter.key"]
    for file in (tmp_path / "keys").iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    store = open_store(url)
    await store.open()
    try:
        entries = await store.read(report.election, 0, 3)
    finally:
        await store.close()
    assert [e.type for e in entries] == ["election", "key-registered", "key-registered"]
    assert b'"polling_point":"paper"' in entries[2].data and b'"role":"clerk"' in entries[2].data


def test_ids_follow_the_documented_mapping() -> None:
    """File names slug to election ids; invalid project ids map to distinct valid ones."""
    assert election_id_from_name(WOLA) == "poland-warszawa-2023-wola"
    assert election_id_from_name("Łódź_Śródmieście 2024.pb") == "lodz-srodmiescie-2024"
    assert election_id_from_name("X.pb") == "pb-x"
    mapping = map_project_ids(["BAD/0018", "BAD-0018", "BAD 0018", "307", "_x"])
    assert mapping == {
        "BAD/0018": "BAD-0018-2",
        "BAD-0018": "BAD-0018",
        "BAD 0018": "BAD-0018-3",
        "307": "307",
        "_x": "x",
    }


# --- export pabulib ------------------------------------------------------------------------------


async def export_text(url: str, election: str) -> str:
    store = open_store(url)
    await store.open()
    try:
        text, _ = await pabulib_export(store, election)
    finally:
        await store.close()
    return text


@pytest.mark.parametrize("name", [BOERNEROWO, GDYNIA])
async def test_exported_real_election_imports_back_to_the_same_totals(
    name: str, tmp_path: Path
) -> None:
    """Import, export pabulib, import again: the same totals, channels and funded set."""
    first_url = f"sqlite:///{tmp_path / 'first.db'}"
    report = await import_pabulib(data_file(name), first_url, tmp_path / "k1")
    exported = tmp_path / "exported.pb"
    exported.write_text(await export_text(first_url, report.election), encoding="utf-8")
    second_url = f"sqlite:///{tmp_path / 'second.db'}"
    again = await import_pabulib(exported, second_url, tmp_path / "k2")
    assert again.election == "exported"
    (tally1, doc1), (tally2, doc2) = [
        await replayed(url, e)
        for url, e in ((first_url, report.election), (second_url, again.election))
    ]
    assert +tally2.votes == +tally1.votes
    assert tally2.ballots == tally1.ballots and tally2.voters == tally1.voters
    assert funded_of(doc2) == funded_of(doc1) == again.selected
    assert tally2.election.rule.method == tally1.election.rule.method
    assert tally2.election.rule.min_votes == tally1.election.rule.min_votes


@pytest.mark.parametrize("double_entry", [False, True])
async def test_export_holds_counted_ballots_only_one_row_per_voter(
    double_entry: bool, tmp_path: Path
) -> None:
    """Voided, spoiled and unconfirmed ballots are left out, a voter's ballots are merged,
    no token leaves the log, and the file imports back with both categories and their totals."""
    url = f"sqlite:///{tmp_path / 'uchast.db'}"
    async with election_log(url, AuditKeys(), double_entry=double_entry) as log:
        await standard_log(log)
        if double_entry:
            # Confirm voter 100's paper ballot; voter 101's and 102's stay single keyings.
            await log.paper(100, ["L01", "S02"], clerk=log.keys.clerk2)
        election = log.election.id
    text = await export_text(url, election)
    pb = parse_pabulib(text)
    assert re.search(r"[0-9a-f]{64}", text) is None  # no voter token, no signature
    assert [v["voter_id"] for v in pb.votes] == [str(n) for n in range(1, len(pb.votes) + 1)]
    tally, document = await replayed(url, election)
    assert file_totals(pb) == {p.id: tally.votes[p.id] for p in tally.election.projects}
    assert len(pb.votes) == tally.voters
    rows = {frozenset(b.projects) for b in ballots(pb)}
    assert frozenset({"L01", "S01", "L03"}) in rows  # voter 0: two online ballots, merged
    assert (frozenset({"L01", "S02"}) in rows) is True  # voter 100: counted (confirmed)
    assert (frozenset({"S03"}) in rows) is False  # voter 102's voided keying
    assert pb.meta["vote_type"] == "approval" and pb.meta["rule"] == "greedy"
    assert pb.meta["budget_by_category"] == "large:300000,small:100000"
    assert pb.meta["max_length_by_category"] == "large:2,small:2"
    assert {p["project_id"] for p in pb.projects if p["selected"] == "1"} == funded_of(document)

    exported = tmp_path / "round.pb"
    exported.write_text(text, encoding="utf-8")
    again_url = f"sqlite:///{tmp_path / 'again.db'}"
    report = await import_pabulib(exported, again_url, tmp_path / "keys")
    again, again_document = await replayed(again_url, report.election)
    assert +again.votes == +tally.votes
    assert [(c.id, c.budget, c.max_picks) for c in again.election.categories] == [
        (c.id, c.budget, c.max_picks) for c in tally.election.categories
    ]
    assert funded_of(again_document) == funded_of(document)


def test_export_commands_write_results_and_ballots(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`uchast export results` (JSON and CSV) and `export pabulib` write the replayed log."""
    import asyncio
    import json

    db = f"sqlite:///{tmp_path / 'u.db'}"
    status = main(["import-pabulib", str(data_file(GDYNIA)), "--db", db, "--dir", str(tmp_path)])
    out, _ = capsys.readouterr()
    assert status == 0 and "all 12 projects equal" in out and "the same 1 project as" in out
    election = "poland-gdynia-2021-babie-doly-large"
    assert main(["export", "results", "--db", db]) == 0
    document = json.loads(capsys.readouterr().out)
    _, expected = asyncio.run(replayed(db, election))
    annexes = [c.pop("equal_shares_annex") for c in document["categories"]]
    assert all(isinstance(a["funded"], list) for a in annexes)  # the comparison annex
    assert document == json.loads(json.dumps(expected))
    assert main(["export", "results", "--db", db, "--format", "csv"]) == 0
    csv_text = capsys.readouterr().out
    assert csv_text.startswith("category,project,cost_kopecks,votes") and "BAD-0018" in csv_text
    out_file = tmp_path / "g.pb"
    assert main(["export", "pabulib", "--db", db, "--out", str(out_file)]) == 0
    assert parse_pabulib(out_file.read_text(encoding="utf-8")).meta["rule"] == "greedy-no-skip"


def test_new_subcommands_have_help(capsys: pytest.CaptureFixture[str]) -> None:
    """`--help` works for import-pabulib, export results and export pabulib."""
    from api.cli import build_parser

    for command in (["import-pabulib"], ["export", "results"], ["export", "pabulib"]):
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args([*command, "--help"])
        assert exit_.value.code == 0
        assert "usage: uchast" in capsys.readouterr().out


def test_imported_election_passes_the_independent_audit(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An imported election (online and paper ballots) passes `uchast audit` of its log with
    the keys the import printed."""
    import asyncio

    from tally.audit.cli import main as audit_main

    url = f"sqlite:///{tmp_path / 'uchast.db'}"
    report = asyncio.run(import_pabulib(data_file(BOERNEROWO), url, tmp_path / "keys"))
    log = tmp_path / "log.jsonl"
    assert main(["export", "log", "--db", url, "--out", str(log)]) == 0
    capsys.readouterr()
    args = [str(log), "--log-vkey", report.log_vkey, "--admin-vkey", report.admin_vkey]
    assert audit_main(args) == 0
    assert "PASSED" in capsys.readouterr().out
