"""Threat: a tag that would corrupt the stored tag lists (they are joined with U+001F on the way
to PostgreSQL) or an empty one. The sequencer refuses both before anything is queued."""

from __future__ import annotations

import pytest

from tests.factories import Keys, ballot_envelope, opened_ledger, voter_token


@pytest.mark.parametrize("tags", [["a\x1fb"], [""], ["ok", "\x1f"], ["ok", ""], ["\x1f\x1f"]])
async def test_tags_with_the_separator_or_empty_are_refused(
    sqlite_url: str, tags: list[str]
) -> None:
    """Appends carrying such a tag fail with ValueError and write nothing."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys) as ledger:
        size = await ledger.size()
        with pytest.raises(ValueError, match="U\\+001F"):
            await ledger.append(ballot_envelope(keys.site, voter_token(1), ["L01"]), tags=tags)
        assert await ledger.size() == size
        appended = await ledger.append(
            ballot_envelope(keys.site, voter_token(1), ["L01"]), tags=["a", "b:c d"]
        )
        assert {"a", "b:c d"} <= set(appended.entry.tags)
