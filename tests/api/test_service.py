"""The service's live tally: saved with its position, restored at start, every entry counted
once (on both stores)."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from typing import Any

import asyncpg
import pytest

from api.service import TALLY_PROJECTION, Service, ServiceConfig
from ledger.casting import Casting
from ledger.store import SavedProjection, open_store
from tally.export import replay_tally
from tally.projection import Tally
from tests.api.conftest import VOTER_KEY, VOTING_DAY
from tests.factories import ELECTION, Keys, ballot_envelope, opened_ledger, voter_token
from tests.tally.test_projection import older_format, views


async def cast(service: Service, keys: Keys, voters: range) -> None:
    casting = await service.casting(ELECTION)
    for n in voters:
        await casting.submit(
            ballot_envelope(keys.site, voter_token(n), ["L01", "S0" + str(n % 3 + 1)])
        )


async def replayed(url: str) -> Tally:
    store = open_store(url)
    await store.open()
    try:
        tally, _, _ = await replay_tally(store, ELECTION)
    finally:
        await store.close()
    return tally


@pytest.fixture
async def keys(store_url: str) -> Keys:
    keys = Keys()
    async with opened_ledger(store_url, keys):
        pass
    return keys


def config(url: str, keys: Keys, **changes: Any) -> ServiceConfig:
    return ServiceConfig(url, keys.log, voter_key=VOTER_KEY, clock=lambda: VOTING_DAY, **changes)


async def test_restart_resumes_from_the_saved_view(store_url: str, keys: Keys) -> None:
    """At shutdown the tally is saved with its position; the next start takes it up there
    (not from 0), counts what came after exactly once, and equals a replay from 0."""
    service = Service(config(store_url, keys))
    await service.open()
    await cast(service, keys, range(30))
    first = await service.caught_up_tally(ELECTION)
    size = first.position
    await service.close()

    service = Service(config(store_url, keys))
    await service.open()
    try:
        saved = await service.store.load_projection(ELECTION, TALLY_PROJECTION)
        assert saved is not None and saved.position == size
        restored = await service.tally(ELECTION)
        assert restored.position == size  # before its follower has read a single entry
        await cast(service, keys, range(30, 45))
        tally = await service.caught_up_tally(ELECTION)
        assert tally is restored and tally.position == size + 15
        assert views(tally) == views(await replayed(store_url))
        assert tally.votes["L01"] == 45
    finally:
        await service.close()


async def test_the_follower_saves_while_running(store_url: str, keys: Keys) -> None:
    """With a short save interval the view is saved as the log grows, not only at shutdown."""
    service = Service(config(store_url, keys, projection_save_interval=0.0))
    await service.open()
    try:
        await cast(service, keys, range(5))
        tally = await service.caught_up_tally(ELECTION)
        saved = await saved_at(service, tally.position)
        assert views(Tally.restore(tally.election, saved.state, saved.items)) == views(tally)
    finally:
        await service.close()


@pytest.mark.parametrize("damage", ["unreadable", "beyond the log"])
async def test_a_bad_saved_view_is_replaced_by_a_replay(
    store_url: str, keys: Keys, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A saved view that cannot be read, or claims more entries than the log has (a database
    restored from an older backup), is not trusted: the tally replays from 0 and says why."""
    service = Service(config(store_url, keys))
    await service.open()
    await cast(service, keys, range(10))
    size = (await service.caught_up_tally(ELECTION)).position
    await service.close()

    async with opened_ledger(store_url, keys) as ledger:  # the log grows while no one follows
        for n in range(10, 15):
            await Casting(ledger).submit(ballot_envelope(keys.site, voter_token(n), ["L02"]))
    store = open_store(store_url)
    await store.open()
    try:
        if damage == "unreadable":  # saved after the last save, within the log
            state, position = b'{"format": 1, "votes": "all for L01"}', size + 1
        else:
            state, position = (await replayed(store_url)).snapshot(), size + 100
            state = state.replace(f'"position":{size}'.encode(), f'"position":{position}'.encode())
        assert await store.save_projection(ELECTION, TALLY_PROJECTION, position, state)
    finally:
        await store.close()

    service = Service(config(store_url, keys))
    await service.open()
    try:
        with caplog.at_level(logging.WARNING, logger="uchast.service"):
            tally = await service.tally(ELECTION)
        assert tally.position == 0
        assert ("unreadable" if damage == "unreadable" else "beyond the log") in caplog.text
        assert "replaying from 0" in caplog.text
        tally = await service.caught_up_tally(ELECTION)
        assert views(tally) == views(await replayed(store_url))
    finally:
        await service.close()


async def rename_table(url: str, old: str, new: str) -> None:
    """Rename a table of the database behind the service's back (a save touching it fails)."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url[len("sqlite:///") :], timeout=60.0)
        try:
            conn.execute(f"ALTER TABLE {old} RENAME TO {new}")
            conn.commit()
        finally:
            conn.close()
        return
    pg = await asyncpg.connect(url)
    try:
        await pg.execute(f"ALTER TABLE {old} RENAME TO {new}")
    finally:
        await pg.close()


def items_table(url: str) -> str:
    return "projection_items" if url.startswith("sqlite:") else "uchast_projection_items"


async def test_the_saved_row_holds_no_voters_and_its_items_hold_them(
    store_url: str, keys: Keys
) -> None:
    """The row saved at shutdown is the view without its voters (format 3); every voter is an
    item with its packed count, and a restart restores them."""
    service = Service(config(store_url, keys))
    await service.open()
    await cast(service, keys, range(12))
    tally = await service.caught_up_tally(ELECTION)
    expected = views(tally)
    await service.close()

    saved = await saved_view(store_url)
    assert saved is not None
    state = json.loads(saved.state)
    assert state["format"] == 3 and "voters" not in state
    assert saved.items == {voter_token(n): 1 for n in range(12)}
    service = Service(config(store_url, keys))
    await service.open()
    try:
        assert views(await service.tally(ELECTION)) == expected
    finally:
        await service.close()


async def test_a_format_2_saved_view_is_restored_and_written_as_items(
    store_url: str, keys: Keys
) -> None:
    """A view saved with its voters inside (format 2, before items) is restored, not replayed,
    and the next save writes it as format 3 with every voter an item, replacing the items
    stored before (none of a format 2 row is to be trusted)."""
    async with opened_ledger(store_url, keys) as ledger:
        for n in range(10):
            await Casting(ledger).submit(ballot_envelope(keys.site, voter_token(n), ["L01"]))
    before = await replayed(store_url)
    size = before.position
    store = open_store(store_url)
    await store.open()
    try:
        stale = {voter_token(99): 1}
        assert await store.save_projection(
            ELECTION, TALLY_PROJECTION, size, older_format(before), None, stale
        )
    finally:
        await store.close()

    service = Service(config(store_url, keys))
    await service.open()
    try:
        tally = await service.tally(ELECTION)
        assert tally.position == size and tally.unsaved_voters == 10
        await cast(service, keys, range(10, 13))
        await service.caught_up_tally(ELECTION)
    finally:
        await service.close()
    saved = await saved_view(store_url)
    assert saved is not None and saved.position == size + 3
    assert json.loads(saved.state)["format"] == 3
    assert saved.items == {voter_token(n): 1 for n in range(13)}
    restored = Tally.restore(tally.election, saved.state, saved.items)
    assert views(restored) == views(await replayed(store_url))


async def test_a_failed_save_is_written_by_the_next(store_url: str, keys: Keys) -> None:
    """While saves fail (here: the items table is gone), the voters changed meanwhile are kept;
    the first save that succeeds writes them all, and the saved view is the tally's."""
    service = Service(config(store_url, keys, projection_save_interval=0.0))
    await service.open()
    try:
        await cast(service, keys, range(5))
        tally = await service.caught_up_tally(ELECTION)
        await saved_at(service, tally.position)
        await rename_table(store_url, items_table(store_url), "items_away")
        try:
            await cast(service, keys, range(5, 9))
            await service.caught_up_tally(ELECTION)
            await asyncio.sleep(0.3)  # saves tried and failed
            saved = await service.store.load_projection(ELECTION, TALLY_PROJECTION)
            assert saved is not None and saved.position < tally.position
        finally:
            await rename_table(store_url, "items_away", items_table(store_url))
        saved = await saved_at(service, tally.position)
        assert saved.items == {voter_token(n): 1 for n in range(9)}
        assert views(Tally.restore(tally.election, saved.state, saved.items)) == views(tally)
    finally:
        await service.close()


async def saved_at(service: Service, position: int) -> SavedProjection:
    """The saved view once it has reached ``position`` (within a few seconds)."""
    for _ in range(500):
        saved = await service.store.load_projection(ELECTION, TALLY_PROJECTION, with_items=True)
        if saved is not None and saved.position == position:
            return saved
        await asyncio.sleep(0.01)
    raise AssertionError(f"the view was not saved at {position}: {saved}")


async def test_a_read_only_server_saves_nothing_and_holds_no_changes(
    store_url: str, keys: Keys
) -> None:
    """A read-only server's tally follows the log but saves no view, and does not keep the
    voters it saw change (they would grow to every voter, for a save that never comes)."""
    service = Service(config(store_url, keys))
    await service.open()
    await cast(service, keys, range(6))  # no tally read: nothing saved at close
    await service.close()
    replica = Service(
        ServiceConfig(
            store_url,
            keys.log.verifier,
            voter_key=VOTER_KEY,
            clock=lambda: VOTING_DAY,
            read_only=True,
            projection_save_interval=0.0,
        )
    )
    await replica.open()
    try:
        assert (await replica.caught_up_tally(ELECTION)).voters == 6
        writer = Service(config(store_url, keys))
        await writer.open()
        try:
            await cast(writer, keys, range(6, 10))
        finally:
            await writer.close()
        tally = await replica.caught_up_tally(ELECTION)
        assert tally.voters == 10
        for _ in range(300):
            if tally.unsaved_voters == 0:
                break
            await asyncio.sleep(0.01)
        assert tally.unsaved_voters == 0
    finally:
        await replica.close()
    assert await saved_view(store_url) is None


async def saved_view(url: str) -> SavedProjection | None:
    store = open_store(url)
    await store.open()
    try:
        return await store.load_projection(ELECTION, TALLY_PROJECTION, with_items=True)
    finally:
        await store.close()
