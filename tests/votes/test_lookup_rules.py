"""The voter-lookup rule: a clerk's lookup of a token is a trace in the log, given only inside the
paper window, once per nonce, and only for a voter a ballot can still follow."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.votes.factories import (
    CLERK_OLENA,
    CLERK_PETRO,
    DURING,
    Log,
    ballot,
    paper_ballot,
    token,
    zhytomyr,
    zhytomyr_with,
)
from votes.election import Election
from votes.errors import (
    AlreadyVotedError,
    BadPayloadError,
    LimitExceededError,
    NonceReusedError,
    OutsideWindowError,
    PaperDeadlinePassedError,
    UnknownPollingPointError,
)
from votes.rules import Decision, Outcome, decide_lookup, read_tags_for_lookup

ELECTION = zhytomyr()


def lookup(nonce: str | None = None, **fields: Any) -> dict[str, Any]:
    payload = {
        "type": "voter-lookup",
        "election": "zhytomyr-2018",
        "polling_point": "city-council",
        "nonce": nonce or str(uuid.uuid4()),
    }
    payload.update(fields)
    return payload


def submit_lookup(
    log: Log, payload: dict[str, Any], voter: str, now: datetime = DURING
) -> Decision:
    history = log.read(read_tags_for_lookup(payload, voter))
    decision = decide_lookup(log.election, payload, history, now=now, token=voter)
    log._apply(payload, decision, CLERK_OLENA)
    return decision


def test_a_lookup_is_tagged_with_the_token_never_as_the_voter() -> None:
    payload = lookup()
    decision = submit_lookup(Log(ELECTION), payload, token(1))
    assert decision.outcome == Outcome.LOOKED_UP
    assert set(decision.tags) == {
        f"lookup:{token(1)}",
        f"nonce:{payload['nonce']}",
        "point:city-council",
    }
    assert decision.condition_tags == (f"nonce:{payload['nonce']}",)


@given(
    name=st.from_regex(r"[a-z_]{1,32}", fullmatch=True).filter(
        lambda n: n not in {"type", "election", "polling_point", "nonce"}
    ),
    value=st.one_of(st.text(max_size=12), st.integers()),
)
def test_any_extra_field_is_refused(name: str, value: object) -> None:
    """Nothing rides in a lookup beside the four fields: no number, no token, no note."""
    with pytest.raises(BadPayloadError):
        decide_lookup(ELECTION, {**lookup(), name: value}, [], now=DURING, token=token(1))


@given(offset=st.integers(min_value=-10_000_000, max_value=10_000_000))
def test_the_window_is_voting_opens_to_the_paper_deadline(offset: int) -> None:
    """By the server's clock: refused before voting opens and after the paper deadline,
    answered in between (after voting closes too, while paper ballots may still be entered)."""
    election = ELECTION
    for edge in (election.voting_opens, election.paper_deadline):
        now = edge + timedelta(seconds=offset)
        try:
            decide_lookup(election, lookup(), [], now=now, token=token(1))
        except OutsideWindowError:
            assert now < election.voting_opens
        except PaperDeadlinePassedError:
            assert now > election.paper_deadline
        else:
            assert election.voting_opens <= now <= election.paper_deadline


@given(voter=st.integers(min_value=1, max_value=50))
def test_a_nonce_is_answered_once(voter: int) -> None:
    """A replay of an answered lookup, with the same or any other number beside it, is refused:
    the number is not signed, so an identical payload is no proof of the same question."""
    log = Log(ELECTION)
    payload = lookup()
    submit_lookup(log, payload, token(voter))
    for again in (token(voter), token(voter + 1)):
        with pytest.raises(NonceReusedError):
            submit_lookup(log, dict(payload), again)


def test_an_unknown_point_is_refused() -> None:
    with pytest.raises(UnknownPollingPointError):
        decide_lookup(ELECTION, lookup(polling_point="nowhere"), [], now=DURING, token=token(1))


def test_a_voter_at_every_limit_gets_no_token() -> None:
    log = Log(ELECTION)
    log.submit_ballot(ballot(token(1), ["L01", "L02", "S01", "S02"]))
    with pytest.raises(LimitExceededError):
        submit_lookup(log, lookup(), token(1))
    log.submit_ballot(ballot(token(2), ["L01", "S01"]))
    submit_lookup(log, lookup(), token(2))  # room left: the token may go


def test_one_ballot_elections_refuse_a_voter_who_voted() -> None:
    log = Log(zhytomyr_with(multiple_ballots=False))
    log.submit_ballot(ballot(token(1), ["L01"]))
    with pytest.raises(AlreadyVotedError):
        submit_lookup(log, lookup(), token(1))


def test_double_entry_gives_the_token_for_the_second_keying() -> None:
    election: Election = zhytomyr_with(multiple_ballots=False, double_entry=True)
    log = Log(election)
    first = paper_ballot(token(1), ["L01", "L02", "S01", "S02"])
    log.submit_ballot(first, key=CLERK_OLENA)
    submit_lookup(log, lookup(), token(1))  # the second clerk needs it to key the same ballot
    second = {**first, "nonce": str(uuid.uuid4())}
    log.submit_ballot(second, key=CLERK_PETRO)
    with pytest.raises(AlreadyVotedError):
        submit_lookup(log, lookup(), token(1))
