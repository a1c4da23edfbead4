"""The ledger conformance suite on PostgreSQL (a fresh database per test)."""

from __future__ import annotations

import pytest

from ledger import postgres
from tests.factories import ELECTION, Keys, opened_ledger
from tests.ledger.conformance import LedgerConformance


class TestPostgresLedger(LedgerConformance):
    @pytest.fixture
    def url(self, pg_url: str) -> str:
        return pg_url


async def test_many_projection_items_are_written_in_several_statements_of_one_save(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A save of more items than one statement takes (all of a rebuilt tally's voters) writes
    them all, in statements that each stay within command_timeout, in one transaction."""
    monkeypatch.setattr(postgres, "ITEMS_PER_STATEMENT", 3)
    keys = Keys()
    async with opened_ledger(pg_url, keys) as ledger:
        store = ledger.store
        items = {f"voter-{n}": n for n in range(10)}
        assert await store.save_projection(ELECTION, "tally", 5, b"five", None, items)
        assert not await store.save_projection(ELECTION, "tally", 5, b"5", None, {"x": 1})
        saved = await store.load_projection(ELECTION, "tally", with_items=True)
        assert saved is not None and saved.items == items
