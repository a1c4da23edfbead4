"""Threat (issue 12): with the database but not the log key, the entries from position 6 on are
deleted (their tags, tree nodes and checkpoints too) and the log's size set back to 6. What is
left is a well-formed, fully signed log of 6 entries: an audit of it alone passes. A checkpoint
of the longer log saved elsewhere (a voter, a witness, a newspaper) exposes it: ``uchast audit
--checkpoint FILE`` fails and names the file."""

from __future__ import annotations

from pathlib import Path

from tests.factories import ELECTION, Keys
from tests.ledger.test_rollback import KEPT, roll_back
from tests.tally.audit.served_log import (
    DEFINED,
    audit_cli,
    cast,
    checkpoint,
    prepared,
    served,
    tiles,
)
from tests.tally.audit.served_log import vkeys as trusted
from tests.tally.election_log import export

BALLOTS = 8


async def test_an_audit_with_a_saved_checkpoint_fails_on_the_rolled_back_log(
    store_url: str, tmp_path: Path
) -> None:
    """Before the rollback the saved checkpoint agrees with the exported log (exit 0); after it,
    the log alone still passes, but with --checkpoint the audit exits 1 saying the log is
    shorter than that file's checkpoint: rolled back or truncated."""
    keys = Keys()
    await prepared(store_url, keys, tmp_path)
    with served(store_url, tmp_path) as base:
        await cast(base, keys, range(BALLOTS))
        saved = tmp_path / "saved.note"
        saved.write_text(checkpoint(base))
    published = DEFINED + BALLOTS
    assert saved.read_text().splitlines()[1] == str(published)

    honest = tmp_path / "honest.jsonl"
    await export(store_url, honest)
    good = audit_cli(str(honest), *trusted(keys), "--checkpoint", str(saved), "--workers", "0")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "PASSED" in good.stdout

    await roll_back(store_url)
    rolled = tmp_path / "rolled-back.jsonl"
    await export(store_url, rolled)

    alone = audit_cli(str(rolled), *trusted(keys), "--workers", "0")
    assert alone.returncode == 0, alone.stdout  # what the attacker counts on
    assert f"entries: {KEPT} " in alone.stdout

    # The exported file, and the same log as static tiles (`uchast export tiles`).
    await tiles(store_url, tmp_path / "tiles")
    for source in (rolled, tmp_path / "tiles"):
        caught = audit_cli(
            str(source), *trusted(keys), "--checkpoint", str(saved), "--workers", "0"
        )
        assert caught.returncode == 1, caught.stdout + caught.stderr
        assert "FAILED (1 violations)" in caught.stdout
        assert (
            f"checkpoint file {saved}: step 4 rolled-back: expected a log of at least "
            f"{published} entries; found {KEPT}: the log is shorter than checkpoint {saved} "
            f"({published} entries): rolled back or truncated"
        ) in caught.stdout


async def test_the_rolled_back_server_fails_the_audit_naming_the_checkpoint(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Audited over HTTP from the restarted server (which serves the 6 entries left), the
    saved checkpoint is named the same way; an older checkpoint saved before the rollback's
    cut (of 5 entries) is consistent and not named."""
    keys = Keys()
    await prepared(sqlite_url, keys, tmp_path)
    older = tmp_path / "older.note"
    saved = tmp_path / "saved.note"
    with served(sqlite_url, tmp_path) as base:
        await cast(base, keys, range(1))
        older.write_text(checkpoint(base))
        await cast(base, keys, range(1, BALLOTS))
        saved.write_text(checkpoint(base))
    assert older.read_text().splitlines()[1] == str(KEPT - 1)
    await roll_back(sqlite_url)
    with served(sqlite_url, tmp_path) as base:
        caught = audit_cli(
            f"{base}/v1/elections/{ELECTION}",
            *trusted(keys),
            *("--checkpoint", str(older), "--checkpoint", str(saved), "--workers", "0"),
        )
    assert caught.returncode == 1, caught.stdout + caught.stderr
    assert f"checkpoint file {saved}: step 4 rolled-back" in caught.stdout
    assert str(older) not in caught.stdout
