"""A receipt's status agrees with the live tally: the ballots whose receipts say ``counted`` are
exactly the ballots the tally counts (property test over random logs, with and without double
entry, voids included)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tally.projection import Tally
from tests.tally.test_projection import replay
from tests.tally.test_results import build, operation
from votes.entries import EntryType
from votes.receipts import ReceiptStatus, receipt_status


@settings(max_examples=150, deadline=None)
@given(st.booleans(), st.lists(operation, max_size=30))
def test_counted_receipts_are_what_the_tally_counts(
    double_entry: bool, operations: list[tuple[Any, ...]]
) -> None:
    log = build(double_entry, operations)
    tally = Tally(log.election)
    asyncio.run(replay(log, tally))
    # Twice the votes: a double-entry paper ballot is two keyings, each receipt saying counted.
    doubled: Counter[str] = Counter()
    for entry, _ in log.entries:
        if entry.type not in (EntryType.BALLOT, EntryType.PAPER_BALLOT):
            continue
        voter = entry.payload["voter"]
        status = receipt_status(log.election, log.history_of(voter), entry.position, voter)
        if status is ReceiptStatus.COUNTED:
            pair = double_entry and entry.type == EntryType.PAPER_BALLOT
            for project in entry.payload["projects"]:
                doubled[project] += 1 if pair else 2
        else:
            assert status in ReceiptStatus
    assert doubled == Counter({p: 2 * n for p, n in tally.votes.items() if n})
