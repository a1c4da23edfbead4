"""``--db`` URLs pick their store through :data:`ledger.store.STORES`."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.postgres import PostgresStore
from ledger.sqlite import SQLiteStore
from ledger.store import STORES, open_store


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("sqlite:///uchast.db", SQLiteStore),
        ("postgresql://postgres@127.0.0.1:5432/uchast", PostgresStore),
        ("postgres://postgres@127.0.0.1:5432/uchast", PostgresStore),
    ],
)
def test_url_scheme_picks_the_store(url: str, kind: type[object]) -> None:
    """Each scheme of the table opens its store with the URL as given."""
    store = open_store(url)
    assert type(store) is kind
    assert store.url == url


@pytest.mark.parametrize(
    "url", ["mysql://root@localhost/uchast", "uchast.db", "sqlite:uchast.db", "SQLITE:///x.db", ""]
)
def test_unknown_url_is_refused_naming_both_forms(url: str) -> None:
    """A URL of no known scheme is refused with the forms that work."""
    with pytest.raises(ValueError) as refused:
        open_store(url)
    assert str(refused.value) == (
        f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://..."
    )


def test_every_table_entry_names_a_store_class() -> None:
    """The table's "module:Class" strings resolve (a typo would only show on that URL)."""
    for scheme in STORES:
        url = f"{scheme}:///uchast.db"
        assert open_store(url).url == url


async def test_read_only_store_creates_nothing_and_writes_nothing(
    store_url: str,
) -> None:
    """``read_only`` (serve --read-only): on a database without the schema, open raises
    SchemaMissingError and creates nothing; once the schema is there it reads, sees the log
    grow without LISTEN (a standby has none), and every write fails, nothing written."""
    from ledger.errors import SchemaMissingError, StoreUnavailableError

    reader = open_store(store_url, read_only=True)
    assert reader.read_only
    with pytest.raises(SchemaMissingError):
        await reader.open()
    await reader.close()
    if store_url.startswith("sqlite"):
        assert not Path(SQLiteStore(store_url).path).exists()
    writer = open_store(store_url)
    await writer.open()
    reader = open_store(store_url, read_only=True)
    await reader.open()
    try:
        await writer.create_log("e")
        assert await reader.log_ids() == ["e"]
        assert await reader.wait_for_growth("e", 0, 0.05) == 0
        with pytest.raises(StoreUnavailableError):
            await reader.create_log("other")
        assert await writer.log_ids() == ["e"]
    finally:
        await reader.close()
        await writer.close()
