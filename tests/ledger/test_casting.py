"""The one write path: verify, read, decide, append, retry — for every kind of entry."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from eventsourcing.dcb.api import DCBAppendCondition

from ledger.casting import MAX_ATTEMPTS, Casting
from ledger.errors import CastingBusyError, ConditionFailedError
from ledger.keys import SignerKey, sign_envelope
from ledger.log import Appended, Ledger, VerifiedEnvelope
from ledger.store import open_store
from tests.factories import (
    ELECTION,
    Keys,
    ballot_envelope,
    key_envelope,
    opened_ledger,
    voter_token,
)
from votes.admin import amendment_payload
from votes.election import election_from_dict, election_to_dict
from votes.errors import (
    ElectionFrozenError,
    LimitExceededError,
    WrongEntryTypeError,
    WrongPollingPointError,
)
from votes.receipts import receipt_tag
from votes.tags import DEFINITION_TAG

VOTING_DAY = datetime(2018, 10, 3, 12, 0, tzinfo=UTC)
BEFORE_OPENING = datetime(2018, 9, 20, 12, 0, tzinfo=UTC)


def paper(clerk: SignerKey, voter: int, projects: list[str], point: str) -> dict[str, Any]:
    payload = {
        "type": "paper-ballot",
        "election": ELECTION,
        "voter": voter_token(voter),
        "projects": projects,
        "cast_at": "2018-10-03T10:15:00+03:00",
        "nonce": str(uuid.uuid4()),
        "polling_point": point,
    }
    return sign_envelope(payload, clerk)


async def test_ballot_is_tagged_and_a_retry_replays_it(sqlite_url: str) -> None:
    """An accepted ballot carries the voter, nonce, project and receipt tags; the same envelope
    again is a replay of that entry, not a second one."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys) as ledger:
        casting = Casting(ledger, lambda: VOTING_DAY)
        envelope = ballot_envelope(keys.site, voter_token(1), ["L01", "S02"])
        first = await casting.submit(envelope)
        again = await casting.submit(envelope)
        size = await ledger.size()
    assert not first.replay and again.replay
    assert again.entry == first.entry and again.receipt == first.receipt
    assert size == first.position + 1
    assert {f"voter:{voter_token(1)}", "project:L01", "project:S02"} <= set(first.entry.tags)
    assert receipt_tag(first.receipt) in first.entry.tags
    assert not any(first.receipt in tag for tag in first.entry.tags)


async def test_endpoint_types_are_enforced(sqlite_url: str) -> None:
    """A caller that takes only voids is refused a ballot, and nothing is written."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys) as ledger:
        casting = Casting(ledger, lambda: VOTING_DAY)
        size = await ledger.size()
        with pytest.raises(WrongEntryTypeError) as refused:
            await casting.submit(
                ballot_envelope(keys.site, voter_token(1), ["L01"]), types=("void",)
            )
        assert await ledger.size() == size
    assert refused.value.code == "wrong-type"


async def test_concurrent_ballots_of_one_voter_respect_the_limit(sqlite_url: str) -> None:
    """Twelve ballots of one voter at once, one large project each: the losers of each race
    decide again on fresh history, so exactly the category's two are accepted."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys) as ledger:
        casting = Casting(ledger, lambda: VOTING_DAY)
        picks = [f"L{n:02d}" for n in range(1, 13)]
        outcomes = await asyncio.gather(
            *(casting.submit(ballot_envelope(keys.site, voter_token(7), [p])) for p in picks),
            return_exceptions=True,
        )
    accepted = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(accepted) == 2
    assert all(isinstance(o, LimitExceededError | CastingBusyError) for o in refused)


class _AlwaysRaced(Ledger):
    """A ledger on which another writer always got in first."""

    async def append_verified(
        self,
        verified: VerifiedEnvelope,
        *,
        tags: Sequence[str] = (),
        condition: DCBAppendCondition | None = None,
    ) -> Appended:
        raise ConditionFailedError(0)


async def test_busy_after_the_bounded_retries(sqlite_url: str) -> None:
    """A write that loses every race is refused as busy after MAX_ATTEMPTS decisions, with
    nothing written, so the caller retries with the same nonce."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys) as ledger:
        size = await ledger.size()
    store = open_store(sqlite_url)
    await store.open()
    raced = _AlwaysRaced(store, ELECTION, verify_workers=0)
    await raced.open()
    try:
        casting = Casting(raced, lambda: VOTING_DAY)
        await casting.election()  # the definition is read once, before any decision
        reads = 0
        tagged = raced.tagged

        async def counting(tags: Sequence[str]) -> Any:
            nonlocal reads
            reads += 1
            return await tagged(tags)

        verify_then_read = raced.verify_then_read

        async def counting_first(submitted: object, read_tags: Any) -> Any:
            nonlocal reads  # the first read comes with the verification
            reads += 1
            return await verify_then_read(submitted, read_tags)

        raced.tagged = counting  # type: ignore[method-assign]
        raced.verify_then_read = counting_first  # type: ignore[method-assign]
        with pytest.raises(CastingBusyError):
            await casting.submit(ballot_envelope(keys.site, voter_token(1), ["L01"]))
        assert reads == MAX_ATTEMPTS
        assert await raced.size() == size
    finally:
        await raced.close()
        await store.close()


async def test_clerk_enters_ballots_for_its_own_point_only(sqlite_url: str) -> None:
    """A clerk key registered for a polling point is refused a ballot for another point."""
    keys = Keys()
    clerk = SignerKey.generate("clerk.city-council.anna")
    async with opened_ledger(sqlite_url, keys) as ledger:
        casting = Casting(ledger, lambda: VOTING_DAY)
        await casting.submit(key_envelope(keys, clerk, "clerk", polling_point="city-council"))
        with pytest.raises(WrongPollingPointError) as refused:
            await casting.submit(paper(clerk, 1, ["L01"], "bohunskyi-council"))
        cast = await casting.submit(paper(clerk, 1, ["L01"], "city-council"))
    assert refused.value.point == "city-council"
    assert cast.entry.type == "paper-ballot"


async def test_amendment_before_opening_only(sqlite_url: str) -> None:
    """An amendment is decided against the log's definition: accepted before voting opens
    (and the casting's definition follows it), refused once voting has opened."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys) as ledger:
        election = await Casting(ledger).election()
        amended = election_from_dict(
            {**election_to_dict(election), "title": {"uk": "Змінено", "en": "Amended"}}
        )
        early = Casting(ledger, lambda: BEFORE_OPENING)
        cast = await early.submit(sign_envelope(amendment_payload(amended), keys.admin))
        assert DEFINITION_TAG in cast.entry.tags
        assert (await early.election()).title["en"] == "Amended"
        late = Casting(ledger, lambda: VOTING_DAY)
        with pytest.raises(ElectionFrozenError):
            await late.submit(sign_envelope(amendment_payload(amended), keys.admin))
        assert (await Casting(ledger).election()).title["en"] == "Amended"


async def test_submit_all_answers_each_envelope_in_order(sqlite_url: str) -> None:
    """A batch: each envelope decided on its own (a bad one refuses only itself, one voter's
    envelopes against one limit), answered in order; batch_of refuses what is not a batch."""
    from ledger.casting import MAX_BATCH, Cast, batch_of
    from ledger.errors import BadBatchError, BadSignatureError, BatchTooLargeError

    keys = Keys()
    async with opened_ledger(sqlite_url, keys) as ledger:
        casting = Casting(ledger, lambda: VOTING_DAY)
        good = ballot_envelope(keys.site, voter_token(1), ["S01"])
        forged = ballot_envelope(keys.site, voter_token(2), ["S01"])
        forged["payload"]["projects"] = ["S02"]
        same_voter = [
            ballot_envelope(keys.site, voter_token(3), [p]) for p in ("L01", "L02", "L03")
        ]
        size = await ledger.size()
        outcomes = await casting.submit_all([good, forged, *same_voter, good])
        first, last = outcomes[0], outcomes[5]  # one envelope twice: written once
        assert isinstance(first, Cast) and isinstance(last, Cast)
        assert {first.replay, last.replay} == {False, True} and first.position == last.position
        assert isinstance(outcomes[1], BadSignatureError)
        assert sorted(type(o).__name__ for o in outcomes[2:5]) == [
            "Cast",
            "Cast",
            "LimitExceededError",
        ]
        assert await ledger.size() == size + 3
        assert await casting.submit_all([]) == []
        with pytest.raises(BatchTooLargeError):
            await casting.submit_all([good] * (MAX_BATCH + 1))
    not_batches: tuple[object, ...] = ([], {}, "x", None)
    for not_a_batch in not_batches:
        with pytest.raises(BadBatchError):
            batch_of(not_a_batch)
    with pytest.raises(BatchTooLargeError):
        batch_of([good] * (MAX_BATCH + 1))
    assert batch_of([good]) == [good]
