"""The PostgreSQL store streams a log page by page (by position, each page its own short
statement): every entry once, in order, across page boundaries and from any start, so that no
read of a big log is one statement that could outlast command_timeout. (Seen at 1.36 million
entries: a cursor over the whole range was planned as a sort of all of it, and its first fetch
timed out after 10 s.)"""

from __future__ import annotations

from ledger.postgres import PostgresStore
from ledger.store import open_store
from tests.factories import ELECTION, Keys, opened_ledger
from tests.ledger.conformance import cast


async def test_streams_cross_pages_in_order(pg_url: str) -> None:
    """Pages of 3 over 13 entries: stream and stream_data give positions start..end-1 exactly,
    for starts and ends on and off page boundaries, and nothing for an empty range."""
    keys = Keys()
    async with opened_ledger(pg_url, keys) as ledger:
        for n in range(9):
            await cast(ledger, keys, n)
        size = await ledger.size()
        everything = [e.data for e in await ledger.entries(0, size)]
    store = open_store(pg_url)
    assert isinstance(store, PostgresStore)
    await store.open()
    try:
        for start, end in [(0, size), (1, size), (3, 9), (4, 5), (5, 5), (7, None)]:
            stop = size if end is None else end
            got = [e async for e in store.stream(ELECTION, start, end, chunk=3)]
            assert [e.position for e in got] == list(range(start, stop))
            assert [e.data for e in got] == everything[start:stop]
            pages = [page async for page in store.stream_data(ELECTION, start, end, chunk=3)]
            assert all(0 < len(page) <= 3 for page in pages)
            assert [d for page in pages for d in page] == everything[start:stop]
    finally:
        await store.close()
