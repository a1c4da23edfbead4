"""``--db`` URLs pick their store through :data:`ledger.store.STORES`."""

from __future__ import annotations

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
