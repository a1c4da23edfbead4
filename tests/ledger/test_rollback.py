"""Threat: someone with the database but not the log key rolls the log back (deletes the
entries from position 6 on, with their tags, tree nodes and checkpoints, and sets the log's size
back to 6) or forks it (writes other entries at the same positions), and the server restarts.
Before the checkpoint journal it signed the shorter or other history as if nothing had happened;
now it refuses to sign or append, and still answers reads."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from ledger.checkpoint import CheckpointJournal, verify_checkpoint
from ledger.errors import LogRolledBackError
from ledger.log import Ledger
from ledger.store import open_store
from tests.factories import ELECTION, Keys, ballot_envelope, opened_ledger, voter_token
from tests.ledger.conformance import cast

KEPT = 6  # the attacker keeps the first six entries (definition, three keys, two ballots)
BALLOTS = 8  # the log had 4 + 8 = 12 entries when it was rolled back


async def roll_back(url: str, keep: int = KEPT) -> None:
    """What the attacker did: every row from position ``keep`` on deleted (entries, tags, tree
    nodes, signed and cosigned checkpoints), size set back."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        with conn:
            conn.execute("DELETE FROM entries WHERE position >= ?", (keep,))
            conn.execute("DELETE FROM entry_tags WHERE position >= ?", (keep,))
            conn.execute("DELETE FROM nodes WHERE ((idx + 1) << level) > ?", (keep,))
            conn.execute("DELETE FROM checkpoints WHERE size > ?", (keep,))
            conn.execute("DELETE FROM cosigned_checkpoints WHERE size > ?", (keep,))
            conn.execute("UPDATE logs SET size = ?", (keep,))
        conn.close()
        return
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute("DELETE FROM uchast_entries WHERE position >= $1", keep)
            await conn.execute("DELETE FROM uchast_entry_tags WHERE position >= $1", keep)
            await conn.execute(
                "DELETE FROM uchast_nodes WHERE ((idx + 1) << level::int) > $1", keep
            )
            await conn.execute("DELETE FROM uchast_checkpoints WHERE size > $1", keep)
            await conn.execute("DELETE FROM uchast_cosigned_checkpoints WHERE size > $1", keep)
            await conn.execute("UPDATE uchast_logs SET size = $1", keep)
    finally:
        await conn.close()


async def fork(url: str, keys: Keys, ballots: int) -> None:
    """After a rollback, other entries at the deleted positions, written as `uchast init` and
    `keys add` write (no log key, so no checkpoint): the tree and its nodes are consistent,
    only not with what was published."""
    store = open_store(url)
    await store.open()
    ledger = Ledger(store, ELECTION)
    await ledger.open()
    try:
        for n in range(ballots):
            voter = voter_token(1000 + n)
            await ledger.append(ballot_envelope(keys.site, voter, ["L02"]), tags=[f"voter:{voter}"])
    finally:
        await ledger.close()
        await store.close()


async def served_log(url: str, keys: Keys, journal: Path) -> int:
    """Serve the election with the journal and cast the ballots; the log's size."""
    async with opened_ledger(url, keys, journal=CheckpointJournal(journal)) as ledger:
        for n in range(BALLOTS):
            await cast(ledger, keys, n)
        assert ledger.rolled_back is None
        return await ledger.size()


async def test_rolled_back_log_refuses_to_sign_and_append(store_url: str, tmp_path: Path) -> None:
    """After the rollback and a restart, the log says why it refuses, every append is refused
    with log-rolled-back, nothing is written or signed, and reads still answer."""
    keys = Keys()
    journal = tmp_path / "log.key.checkpoints"
    published = await served_log(store_url, keys, journal)
    assert published == 4 + BALLOTS
    await roll_back(store_url)

    async with opened_ledger(store_url, keys, journal=CheckpointJournal(journal)) as ledger:
        refusal = ledger.rolled_back
        assert refusal is not None
        assert refusal.code == "log-rolled-back" and refusal.election == ELECTION
        assert (refusal.published, refusal.size, refusal.reason) == (published, KEPT, "shorter")
        with pytest.raises(LogRolledBackError):
            await cast(ledger, keys, 100)
        assert await ledger.size() == KEPT
        stored = await ledger.latest_checkpoint()
        assert stored is not None and stored.size <= KEPT  # nothing newly signed
        assert len(await ledger.entries(0, KEPT)) == KEPT  # the evidence can be read
        checkpoint = verify_checkpoint(stored.note, keys.log.verifier)
        assert checkpoint.root == await ledger.root(checkpoint.size)


async def test_forked_log_at_the_same_size_is_refused(store_url: str, tmp_path: Path) -> None:
    """Other entries written where the deleted ones were, up to the published size and beyond:
    a different history at that size, refused."""
    keys = Keys()
    journal = tmp_path / "log.key.checkpoints"
    published = await served_log(store_url, keys, journal)
    await roll_back(store_url)
    await fork(store_url, keys, published - KEPT)  # the same size, other entries
    await refused_as_forked(store_url, keys, journal, published, published)
    await fork(store_url, keys, 3)  # and beyond it
    await refused_as_forked(store_url, keys, journal, published, published + 3)


async def refused_as_forked(url: str, keys: Keys, journal: Path, published: int, size: int) -> None:
    async with opened_ledger(url, keys, journal=CheckpointJournal(journal)) as ledger:
        refusal = ledger.rolled_back
        assert refusal is not None
        assert (refusal.published, refusal.size, refusal.reason) == (
            published,
            size,
            "different-history",
        )
        with pytest.raises(LogRolledBackError):
            await cast(ledger, keys, 100)
        assert await ledger.size() == size


async def test_rollback_while_serving_is_refused_at_the_next_write(
    store_url: str, tmp_path: Path
) -> None:
    """The database rolled back under a running server: its next write is refused."""
    keys = Keys()
    journal = tmp_path / "log.key.checkpoints"
    async with opened_ledger(store_url, keys, journal=CheckpointJournal(journal)) as ledger:
        for n in range(BALLOTS):
            await cast(ledger, keys, n)
        await roll_back(store_url)
        with pytest.raises(LogRolledBackError):
            await cast(ledger, keys, 100)
        assert ledger.rolled_back is not None and ledger.rolled_back.size == KEPT
        assert await ledger.size() == KEPT


async def test_an_honest_log_passes(store_url: str, tmp_path: Path) -> None:
    """Restarts, a second process signing with the same key and journal (its checkpoints are
    larger than the first's view, and consistent), and a journal made after the log was (the
    stored checkpoint is adopted): no refusal, and the journal ends at the log's checkpoint."""
    keys = Keys()
    journal = tmp_path / "log.key.checkpoints"
    await served_log(store_url, keys, journal)
    async with (
        opened_ledger(store_url, keys, journal=CheckpointJournal(journal)) as first,
        opened_ledger(store_url, keys, journal=CheckpointJournal(journal)) as second,
    ):
        await asyncio.gather(*(cast(first, keys, n) for n in range(100, 110)))
        await asyncio.gather(*(cast(second, keys, n) for n in range(200, 210)))
        await cast(first, keys, 300)
        assert first.rolled_back is None and second.rolled_back is None
        size = await first.size()
    head = CheckpointJournal(journal).head(f"uchast.local/{ELECTION}")
    assert head is not None and head.size == size

    late = tmp_path / "made-later.checkpoints"
    async with opened_ledger(store_url, keys, journal=CheckpointJournal(late)) as ledger:
        assert ledger.rolled_back is None
        stored = await ledger.latest_checkpoint()
        assert stored is not None
    head = CheckpointJournal(late).head(f"uchast.local/{ELECTION}")
    assert head is not None and head.size == stored.size == size
    assert late.read_text().count("\n") == 1


def test_journal_skips_a_torn_line_and_flags_two_roots_at_one_size(tmp_path: Path) -> None:
    """A line cut short by a crash is skipped and the next one starts on its own line; two
    different roots at one size (a split view already signed) make the head forked."""
    from ledger.checkpoint import Checkpoint

    path = tmp_path / "journal"
    journal = CheckpointJournal(path)
    origin = "uchast.local/test"
    journal.record(origin, "note 1\n", Checkpoint(origin, 1, b"\x01" * 32))
    with open(path, "ab") as file:
        file.write(b'{"origin": "uchast.local/test", "si')
    journal.record(origin, "note 2\n", Checkpoint(origin, 2, b"\x02" * 32))
    fresh = CheckpointJournal(path)
    head = fresh.head(origin)
    assert head is not None and (head.size, head.root, head.forked) == (2, b"\x02" * 32, False)
    journal.record(origin, "note 2'\n", Checkpoint(origin, 2, b"\x03" * 32))
    head = fresh.head(origin)
    assert head is not None and head.forked
