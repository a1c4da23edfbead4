"""bench/ingest_ledger.py's ceiling and rounds: what the ceiling writes, and how rounds are summed.

The ceiling is only a fair bound for ours if, for the same ballots, it writes the same entries
(the database then does the same work) and still checks each signature.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.ingest_ledger import (
    ELECTION,
    SITE,
    Measured,
    make_ballots,
    median_of,
    median_ratio,
    run_ceiling_measured,
    run_ours_measured,
)
from ledger.entry import entry_object
from ledger.errors import BadSignatureError
from ledger.store import StoredEntry, open_store
from tests.conftest import create_pg_database, drop_pg_database, require_postgres


@pytest.fixture
def two_pg_urls() -> Iterator[tuple[str, str]]:
    require_postgres()
    urls = (create_pg_database(), create_pg_database())
    try:
        yield urls
    finally:
        for url in urls:
            drop_pg_database(url)


async def entries_of(url: str, start: int) -> list[StoredEntry]:
    store = open_store(url)
    await store.open()
    try:
        return await store.read(ELECTION, start, await store.size(ELECTION))
    finally:
        await store.close()


async def test_the_ceiling_writes_the_entries_ours_writes(two_pg_urls: tuple[str, str]) -> None:
    ours_url, ceiling_url = two_pg_urls
    ballots = make_ballots(SITE, 12)
    await run_ours_measured(ours_url, ballots, 4)
    await run_ceiling_measured(ceiling_url, ballots, 4)

    ours = [entry_object(e.data) for e in await entries_of(ours_url, 2)]  # after the definition
    bare = [entry_object(e.data) for e in await entries_of(ceiling_url, 0)]  # and the site key
    assert len(ours) == len(bare) == len(ballots)

    def by_nonce(entries: list[dict[str, object]]) -> dict[object, dict[str, object]]:
        return {e["envelope"]["payload"]["nonce"]: e for e in entries}  # type: ignore[index]

    theirs = by_nonce(bare)
    for nonce, entry in by_nonce(ours).items():
        assert theirs[nonce]["envelope"] == entry["envelope"]
        assert theirs[nonce]["tags"] == entry["tags"]
        assert theirs[nonce]["type"] == entry["type"] == "ballot"


async def test_the_ceiling_still_refuses_a_forged_signature(pg_url: str) -> None:
    voter, envelope = make_ballots(SITE, 1)[0]
    sig = envelope["sig"]  # one base64 digit changed mid-way: still 64 bytes, another signature
    forged = {**envelope, "sig": sig[:10] + ("B" if sig[10] == "A" else "A") + sig[11:]}
    with pytest.raises(BadSignatureError):
        await run_ceiling_measured(pg_url, [(voter, forged)], 1)


def test_rounds_report_medians_and_the_median_of_each_rounds_ratio() -> None:
    ours = [Measured(100.0, 10.0, 1.0), Measured(300.0, 30.0, 3.0), Measured(200.0, 20.0, 2.0)]
    baseline = [Measured(10.0, 5.0, 5.0), Measured(60.0, 6.0, 6.0), Measured(25.0, 7.0, 7.0)]
    assert median_of(ours) == Measured(200.0, 20.0, 2.0)
    # Per round 10, 5 and 8: the median of the ratios, not the ratio of the medians (200/25).
    assert median_ratio(ours, baseline) == 8.0
