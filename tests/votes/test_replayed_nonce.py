"""Threat: a replayed or reused nonce. Retries return the original receipt and never count twice;
a nonce can never be reused for different content."""

from __future__ import annotations

import copy
import uuid
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.messages import render
from tests.votes.factories import (
    CLERK_OLENA,
    KYIV,
    Log,
    ballot,
    paper_ballot,
    spoiled_ballot,
    token,
    void,
    zhytomyr,
)
from votes.errors import NonceReusedError, VoteRefusedError
from votes.rules import Outcome, voter_state

VOTER = token(0xF1)
OTHER = token(0xF2)
LATE = datetime(2018, 11, 1, tzinfo=KYIV)


def status(error: VoteRefusedError) -> int:
    """The HTTP status the API answers ``error`` with (its row in api/messages.py)."""
    rendered = render(error)
    assert rendered is not None
    return rendered.status


def test_identical_retry_replays_the_original() -> None:
    """Resubmitting the same ballot returns replay_of the first entry and appends nothing."""
    log = Log(zhytomyr())
    payload = ballot(VOTER, ["L01", "S01"])
    log.submit_ballot(payload)
    original = log.last.position
    decision = log.submit_ballot(copy.deepcopy(payload))
    assert decision.replay_of == original and decision.outcome is Outcome.REPLAYED
    assert decision.tags == () and decision.condition_tags == ()
    assert len(log.entries) == original + 1
    assert len(voter_state(log.election, log.history_of(VOTER)).ballots) == 1


def test_retry_after_limit_reached_still_replays() -> None:
    """A retry of the ballot that used up the voter's limit is a replay, not a limit refusal."""
    log = Log(zhytomyr())
    payload = ballot(VOTER, ["L01", "L02"])
    log.submit_ballot(payload)
    assert log.submit_ballot(payload).replay_of == log.last.position


def test_late_retry_still_replays() -> None:
    """A retry arriving after the window and paper deadline returns the original receipt."""
    log = Log(zhytomyr())
    payload = paper_ballot(VOTER, ["L01"])
    log.submit_ballot(payload, key=CLERK_OLENA)
    assert log.submit_ballot(payload, key=CLERK_OLENA, now=LATE).replay_of == log.last.position


def test_retry_of_a_voided_ballot_does_not_revive_it() -> None:
    """Retrying a voided ballot replays the voided entry; it still does not count."""
    log = Log(zhytomyr())
    payload = ballot(VOTER, ["L01"])
    log.submit_ballot(payload)
    voided = log.last.position
    log.submit_void(void(voided))
    assert log.submit_ballot(payload).replay_of == voided
    assert voter_state(log.election, log.history_of(VOTER)).ballots == ()


@pytest.mark.parametrize(
    "change",
    [
        {"projects": ["L01", "S02"]},
        {"projects": ["S01", "L01"]},
        {"cast_at": "2018-10-03T10:16:00+03:00"},
        {"voter": OTHER},
        {"type": "paper-ballot", "polling_point": "city-council"},
    ],
)
def test_same_nonce_different_payload_is_refused(change: dict[str, Any]) -> None:
    """Any difference under a used nonce -- even project order -- is nonce-reused."""
    log = Log(zhytomyr())
    payload = ballot(VOTER, ["L01", "S01"])
    log.submit_ballot(payload)
    with pytest.raises(NonceReusedError) as caught:
        log.submit_ballot({**payload, **change}, key=CLERK_OLENA)
    assert caught.value.nonce == payload["nonce"] and status(caught.value) == 409


def test_nonce_of_a_void_cannot_carry_a_ballot() -> None:
    """Nonces are unique across entry types."""
    log = Log(zhytomyr())
    log.submit_ballot(ballot(VOTER, ["L01"]))
    cancel = void(log.last.position)
    log.submit_void(cancel)
    with pytest.raises(NonceReusedError):
        log.submit_ballot(ballot(VOTER, ["L02"], nonce=cancel["nonce"]))


def test_spoiled_and_void_retries_replay() -> None:
    """Spoiled ballots and voids are idempotent under their nonces too."""
    log = Log(zhytomyr())
    spoiled = spoiled_ballot(voter=VOTER)
    log.submit_spoiled(spoiled)
    assert log.submit_spoiled(spoiled).replay_of == log.last.position
    cancel = void(log.last.position)
    log.submit_void(cancel)
    assert log.submit_void(cancel).replay_of == log.last.position
    with pytest.raises(NonceReusedError):
        log.submit_void({**cancel, "reason": "another reason"})
    with pytest.raises(NonceReusedError):
        log.submit_spoiled({**spoiled, "reason": "unreadable"})


submissions = st.lists(
    st.tuples(
        st.sampled_from([VOTER, OTHER]),
        st.lists(st.sampled_from(["L01", "L02", "L03", "S01", "S02"]), min_size=1, unique=True),
        st.integers(0, 10**6),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(submissions)
def test_retries_never_count_twice(steps: list[tuple[str, list[str], int]]) -> None:
    """Submitting new ballots and retrying earlier ones in any order counts each nonce once."""
    log = Log(zhytomyr())
    sent: list[dict[str, Any]] = []
    for voter, picks, choice in steps:
        if sent and choice % 3 == 0:
            payload = copy.deepcopy(sent[choice % len(sent)])
        else:
            payload = ballot(voter, picks, nonce=str(uuid.UUID(int=choice + len(sent) * 10**7)))
            sent.append(payload)
        try:
            log.submit_ballot(payload)
        except NonceReusedError:
            raise
        except VoteRefusedError:
            pass  # limits and repeats: not this test's concern
    nonces = [e.payload["nonce"] for e, _ in log.entries[1:]]
    assert len(nonces) == len(set(nonces))
    for voter in (VOTER, OTHER):
        for counted in voter_state(log.election, log.history_of(voter)).ballots:
            assert len(counted.entries) == 1
