"""Double entry: a paper ballot counts once two different clerks keyed the same content."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.votes.factories import (
    CLERK_IRYNA,
    CLERK_OLENA,
    CLERK_PETRO,
    DURING,
    Log,
    ballot,
    paper_ballot,
    token,
    void,
    zhytomyr,
    zhytomyr_with,
)
from votes.errors import (
    AlreadyVotedError,
    DisputedPaperBallotError,
    LimitExceededError,
    SameClerkError,
    VoteRefusedError,
)
from votes.rules import Outcome, decide_ballot, paper_status, voter_state

VOTER = token(0xD1)


def double_entry_log(**changes: Any) -> Log:
    return Log(zhytomyr_with(double_entry=True, **changes))


def test_first_keying_is_recorded_but_not_counted() -> None:
    """The first keying awaits a second one and counts nothing, but holds its picks."""
    log = double_entry_log()
    decision = log.submit_ballot(paper_ballot(VOTER, ["L01", "S01"]), key=CLERK_OLENA)
    assert decision.outcome is Outcome.AWAITING_SECOND_KEYING
    assert decision.tags[0] == f"voter:{VOTER}"
    state = voter_state(log.election, log.history_of(VOTER))
    assert state.counted == {"large": frozenset(), "small": frozenset()}
    assert state.pending == log.last and state.ballots == ()
    assert state.held(log.election)["large"] == {"L01"}


def test_identical_second_keying_by_another_clerk_confirms_once() -> None:
    """Two clerks keying the same projects (in any order) make one counted paper ballot."""
    log = double_entry_log()
    log.submit_ballot(paper_ballot(VOTER, ["L01", "S01"]), key=CLERK_OLENA)
    first = log.last.position
    decision = log.submit_ballot(paper_ballot(VOTER, ["S01", "L01"]), key=CLERK_PETRO)
    assert decision.outcome is Outcome.CONFIRMED
    state = voter_state(log.election, log.history_of(VOTER))
    assert len(state.ballots) == 1
    assert state.ballots[0].entries == (first, log.last.position)
    assert state.ballots[0].channel == "paper"
    assert state.counted == {"large": frozenset({"L01"}), "small": frozenset({"S01"})}
    assert state.pending is None and state.disputed == ()


def test_second_keying_by_the_same_clerk_is_refused() -> None:
    """The clerk who keyed the first copy cannot confirm it."""
    log = double_entry_log()
    log.submit_ballot(paper_ballot(VOTER, ["L01"]), key=CLERK_OLENA)
    with pytest.raises(SameClerkError) as caught:
        log.submit_ballot(paper_ballot(VOTER, ["L01"]), key=CLERK_OLENA)
    assert caught.value.key == CLERK_OLENA and caught.value.code == "same-clerk"


def test_differing_keying_disputes_until_a_void() -> None:
    """A differing second keying is recorded, nothing counts, and more keyings wait for a void."""
    log = double_entry_log()
    log.submit_ballot(paper_ballot(VOTER, ["L01", "S01"]), key=CLERK_OLENA)
    right = log.last.position
    decision = log.submit_ballot(paper_ballot(VOTER, ["L02", "S01"]), key=CLERK_PETRO)
    wrong = log.last.position
    assert decision.outcome is Outcome.DISPUTED
    state = voter_state(log.election, log.history_of(VOTER))
    assert state.ballots == () and [e.position for e in state.disputed] == [right, wrong]

    with pytest.raises(DisputedPaperBallotError) as caught:
        log.submit_ballot(paper_ballot(VOTER, ["L01", "S01"]), key=CLERK_IRYNA)
    assert caught.value.positions == (right, wrong)

    log.submit_void(void(wrong))
    status = paper_status(log.election, log.history_of(VOTER))
    assert status.pending is not None and status.pending.position == right
    assert (
        log.submit_ballot(paper_ballot(VOTER, ["L01", "S01"]), key=CLERK_IRYNA).outcome
        is Outcome.CONFIRMED
    )
    assert voter_state(log.election, log.history_of(VOTER)).counted["large"] == {"L01"}


def test_other_polling_point_is_different_content() -> None:
    """Keyings that name different polling points disagree."""
    log = double_entry_log()
    log.submit_ballot(paper_ballot(VOTER, ["L01"]), key=CLERK_OLENA)
    decision = log.submit_ballot(
        paper_ballot(VOTER, ["L01"], point="bohunskyi-council"), key=CLERK_PETRO
    )
    assert decision.outcome is Outcome.DISPUTED


def test_voiding_one_keying_of_a_confirmed_pair_uncounts_it() -> None:
    """Voiding a keying of a confirmed ballot leaves the other pending, not counted."""
    log = double_entry_log()
    log.submit_ballot(paper_ballot(VOTER, ["L01"]), key=CLERK_OLENA)
    first = log.last.position
    log.submit_ballot(paper_ballot(VOTER, ["L01"]), key=CLERK_PETRO)
    log.submit_void(void(log.last.position))
    state = voter_state(log.election, log.history_of(VOTER))
    assert state.ballots == () and state.pending is not None and state.pending.position == first


def test_online_ballots_are_unaffected() -> None:
    """With double entry an online ballot still counts at once."""
    log = double_entry_log()
    assert log.submit_ballot(ballot(VOTER, ["L01"])).outcome is Outcome.COUNTED
    assert voter_state(log.election, log.history_of(VOTER)).counted["large"] == {"L01"}


def test_pending_keying_holds_the_limit() -> None:
    """While a paper ballot awaits its second keying, online ballots cannot take its room."""
    log = double_entry_log()
    log.submit_ballot(paper_ballot(VOTER, ["L01", "L02"]), key=CLERK_OLENA)
    with pytest.raises(LimitExceededError):
        log.submit_ballot(ballot(VOTER, ["L03"]))
    log.submit_ballot(ballot(VOTER, ["S01"]))
    assert (
        log.submit_ballot(paper_ballot(VOTER, ["L01", "L02"]), key=CLERK_PETRO).outcome
        is Outcome.CONFIRMED
    )


def test_mistyped_second_keying_over_the_limit_is_refused() -> None:
    """A second keying that is invalid on its own is refused at once, not recorded as dispute."""
    log = double_entry_log()
    log.submit_ballot(paper_ballot(VOTER, ["L01", "L02"]), key=CLERK_OLENA)
    with pytest.raises(LimitExceededError):
        log.submit_ballot(paper_ballot(VOTER, ["L01", "L02", "L03"]), key=CLERK_PETRO)


def test_pending_paper_counts_as_having_voted() -> None:
    """With one ballot per voter, a pending paper ballot blocks an online one."""
    log = double_entry_log(multiple_ballots=False)
    log.submit_ballot(paper_ballot(VOTER, ["L01"]), key=CLERK_OLENA)
    with pytest.raises(AlreadyVotedError):
        log.submit_ballot(ballot(VOTER, ["S01"]))
    log.submit_ballot(paper_ballot(VOTER, ["L01"]), key=CLERK_PETRO)


def test_double_entry_needs_the_signer_key() -> None:
    """Deciding a double-entry paper ballot without the signer's key is a programming error."""
    election = zhytomyr_with(double_entry=True)
    with pytest.raises(ValueError, match="key"):
        decide_ballot(election, paper_ballot(VOTER, ["L01"]), [], now=DURING)


def test_single_entry_paper_counts_at_once() -> None:
    """Without double entry each paper ballot counts on its own."""
    log = Log(zhytomyr())
    assert log.submit_ballot(paper_ballot(VOTER, ["L01"]), key=CLERK_OLENA).outcome is (
        Outcome.COUNTED
    )
    status = paper_status(log.election, log.history_of(VOTER))
    assert [len(group) for group in status.counted] == [1]


# -- property -----------------------------------------------------------------------------------

VOTERS = [token(0xE0 + i) for i in range(2)]
CLERKS = [CLERK_OLENA, CLERK_PETRO, CLERK_IRYNA]
PICKABLE = ["L01", "L02", "L03", "S01", "S02", "S03"]

actions = st.one_of(
    st.tuples(
        st.just("paper"),
        st.sampled_from(VOTERS),
        st.lists(st.sampled_from(PICKABLE), min_size=1, max_size=3, unique=True),
        st.sampled_from(CLERKS),
        st.sampled_from(["city-council", "bohunskyi-council"]),
    ),
    st.tuples(
        st.just("online"),
        st.sampled_from(VOTERS),
        st.lists(st.sampled_from(PICKABLE), min_size=1, max_size=3, unique=True),
    ),
    st.tuples(st.just("void"), st.integers(0, 10**6)),
    st.tuples(st.just("retype"), st.integers(0, 10**6), st.sampled_from(CLERKS)),
    st.tuples(st.just("retype"), st.integers(0, 10**6), st.sampled_from(CLERKS)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(actions, max_size=40), st.booleans())
def test_double_entry_invariants(steps: list[tuple[Any, ...]], multiple: bool) -> None:
    """Under any interleaving of keyings, online ballots and voids, counted paper ballots are
    pairs of identical keyings by two clerks, each non-voided keying is in exactly one state,
    and no voter exceeds a limit or counts a project twice."""
    log = double_entry_log(multiple_ballots=multiple)
    election = log.election
    for step in steps:
        try:
            if step[0] == "paper":
                _, voter, picks, clerk, point = step
                log.submit_ballot(paper_ballot(voter, picks, point=point), key=clerk)
            elif step[0] == "online":
                log.submit_ballot(ballot(step[1], step[2]))
            elif step[0] == "void":
                log.submit_void(void(step[1] % len(log.entries)))
            else:
                target = log.at(step[1] % len(log.entries))
                if target is not None and target.type == "paper-ballot":
                    again = paper_ballot(
                        target.payload["voter"],
                        target.payload["projects"],
                        point=target.payload["polling_point"],
                    )
                    log.submit_ballot(again, key=step[2])
        except VoteRefusedError:
            pass

        for voter in VOTERS:
            history = log.history_of(voter)
            state = voter_state(election, history)
            status = paper_status(election, history)
            for category in election.categories:
                assert len(state.counted[category.id]) <= category.max_picks
            picked = [p for b in state.ballots for p in b.projects]
            assert len(picked) == len(set(picked))
            for group in status.counted:
                first, second = group
                assert first.key != second.key
                assert set(first.payload["projects"]) == set(second.payload["projects"])
                assert first.payload["polling_point"] == second.payload["polling_point"]
            live = {
                e.position
                for e in history
                if e.type == "paper-ballot" and e.position not in state.voided
            }
            placed = [e.position for group in status.counted for e in group]
            placed += [e.position for e in status.disputed]
            if status.pending is not None:
                placed.append(status.pending.position)
            assert sorted(placed) == sorted(live)
            if not multiple:
                assert len(state.ballots) <= 1
