"""Ballot, spoiled-ballot and void decisions: each refusal, the tags, and what counts."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from api.messages import render
from tests.votes.factories import (
    CLERK_OLENA,
    DURING,
    KYIV,
    Log,
    ballot,
    paper_ballot,
    spoiled_ballot,
    token,
    void,
    zhytomyr,
    zhytomyr_with,
)
from votes import errors
from votes.errors import (
    AlreadyVotedError,
    BadPayloadError,
    EmptyBallotError,
    LimitExceededError,
    OutsideWindowError,
    PaperDeadlinePassedError,
    ProjectRepeatedError,
    UnknownPollingPointError,
    UnknownProjectError,
    VoidRefusedError,
    VoteRefusedError,
)
from votes.rules import (
    Outcome,
    PriorEntry,
    counted_picks,
    decide_ballot,
    decide_spoiled,
    decide_void,
    read_tags,
    read_tags_for_ballot,
    read_tags_for_spoiled,
    read_tags_for_void,
    voter_state,
)

VOTER = token(0xA1)
OTHER = token(0xB2)
AFTER_DEADLINE = datetime(2018, 10, 12, 0, 0, tzinfo=KYIV)


def status(error: VoteRefusedError) -> int:
    """The HTTP status the API answers ``error`` with (its row in api/messages.py)."""
    rendered = render(error)
    assert rendered is not None
    return rendered.status


def new_log(**changes: Any) -> Log:
    return Log(zhytomyr_with(**changes) if changes else zhytomyr())


# -- accepted ballots ---------------------------------------------------------------------------


def test_online_ballot_is_counted_and_tagged() -> None:
    """An online ballot is tagged with voter, nonce and projects; its condition is voter+nonce."""
    payload = ballot(VOTER, ["L07", "S12"])
    decision = decide_ballot(zhytomyr(), payload, [], now=DURING)
    assert decision.outcome is Outcome.COUNTED and decision.replay_of is None
    assert decision.tags == (
        f"voter:{VOTER}",
        f"nonce:{payload['nonce']}",
        "project:L07",
        "project:S12",
    )
    assert decision.condition_tags == (f"voter:{VOTER}", f"nonce:{payload['nonce']}")


def test_paper_ballot_is_also_tagged_with_its_point() -> None:
    """A paper ballot carries the polling point's tag too."""
    decision = decide_ballot(
        zhytomyr(), paper_ballot(VOTER, ["L07"], point="bohunskyi-council"), [], now=DURING
    )
    assert decision.tags[-1] == "point:bohunskyi-council"


def test_picks_add_up_across_ballots_and_channels() -> None:
    """One large online and one large on paper make the voter's two large picks."""
    log = new_log()
    log.submit_ballot(ballot(VOTER, ["L01", "S01"]))
    log.submit_ballot(paper_ballot(VOTER, ["L02"]), key=CLERK_OLENA)
    picks = counted_picks(zhytomyr(), log.history_of(VOTER))
    assert picks == {"large": frozenset({"L01", "L02"}), "small": frozenset({"S01"})}


def test_window_edges_are_inclusive() -> None:
    """Ballots cast exactly at opening and at closing count."""
    election = zhytomyr()
    for moment in (election.voting_opens, election.voting_closes):
        decide_ballot(election, ballot(VOTER, ["L01"], cast_at=moment), [], now=DURING)


def test_online_ballot_is_judged_by_cast_at_not_arrival() -> None:
    """An online ballot cast in the window is accepted even if it arrives after the deadline."""
    decision = decide_ballot(zhytomyr(), ballot(VOTER, ["L01"]), [], now=AFTER_DEADLINE)
    assert decision.outcome is Outcome.COUNTED


def test_other_voters_do_not_affect_the_limit() -> None:
    """Limits are per voter: another voter's picks are not held against this one."""
    log = new_log()
    log.submit_ballot(ballot(OTHER, ["L01", "L02"]))
    log.submit_ballot(ballot(VOTER, ["L01", "L02"]))
    assert counted_picks(zhytomyr(), log.history_of(VOTER))["large"] == {"L01", "L02"}


# -- each refusal -------------------------------------------------------------------------------


def test_limit_exceeded_on_one_ballot() -> None:
    """Three large projects on one ballot exceed the limit of two."""
    with pytest.raises(LimitExceededError) as caught:
        decide_ballot(zhytomyr(), ballot(VOTER, ["L01", "L02", "L03"]), [], now=DURING)
    error = caught.value
    assert (error.category, error.limit, error.already, error.adding) == ("large", 2, 0, 3)
    assert error.code == "limit-exceeded" and status(error) == 409


def test_limit_exceeded_across_channels() -> None:
    """A paper ballot cannot add two large projects to a voter who has one online."""
    log = new_log()
    log.submit_ballot(ballot(VOTER, ["L01"]))
    with pytest.raises(LimitExceededError) as caught:
        log.submit_ballot(paper_ballot(VOTER, ["L02", "L03"]), key=CLERK_OLENA)
    assert (caught.value.already, caught.value.adding) == (1, 2)


def test_project_repeated_on_the_ballot() -> None:
    """A ballot naming a project twice is refused."""
    with pytest.raises(ProjectRepeatedError) as caught:
        decide_ballot(zhytomyr(), ballot(VOTER, ["L01", "S01", "L01"]), [], now=DURING)
    assert caught.value.project == "L01" and caught.value.code == "project-repeated"


def test_project_repeated_against_counted_picks() -> None:
    """A voter who supports L01 online cannot support it again on paper."""
    log = new_log()
    log.submit_ballot(ballot(VOTER, ["L01"]))
    with pytest.raises(ProjectRepeatedError):
        log.submit_ballot(paper_ballot(VOTER, ["L01"]), key=CLERK_OLENA)


@pytest.mark.parametrize("shift", [timedelta(seconds=-1), timedelta(days=10)])
def test_outside_window(shift: timedelta) -> None:
    """A ballot cast before opening or after closing is refused."""
    election = zhytomyr()
    cast_at = election.voting_opens + shift
    with pytest.raises(OutsideWindowError) as caught:
        decide_ballot(election, ballot(VOTER, ["L01"], cast_at=cast_at), [], now=DURING)
    assert caught.value.code == "outside-window" and status(caught.value) == 403
    assert caught.value.opens == election.voting_opens


def test_unknown_project() -> None:
    """A ballot naming a project not on the ballot is refused."""
    with pytest.raises(UnknownProjectError) as caught:
        decide_ballot(zhytomyr(), ballot(VOTER, ["L01", "L41"]), [], now=DURING)
    assert caught.value.project == "L41" and caught.value.code == "unknown-project"


def test_already_voted_when_one_ballot_per_voter() -> None:
    """With multiple_ballots = false a second ballot is refused even within the limits."""
    log = new_log(multiple_ballots=False)
    log.submit_ballot(ballot(VOTER, ["L01"]))
    with pytest.raises(AlreadyVotedError) as caught:
        log.submit_ballot(paper_ballot(VOTER, ["S01"]), key=CLERK_OLENA)
    assert caught.value.code == "already-voted"


def test_voided_ballot_frees_the_voter() -> None:
    """After the voter's only ballot is voided, the voter may vote again."""
    log = new_log(multiple_ballots=False)
    log.submit_ballot(ballot(VOTER, ["L01", "L02"]))
    log.submit_void(void(log.last.position))
    log.submit_ballot(ballot(VOTER, ["L01", "L02"]))
    assert counted_picks(log.election, log.history_of(VOTER))["large"] == {"L01", "L02"}


def test_empty_ballot() -> None:
    """A ballot with no project is refused."""
    with pytest.raises(EmptyBallotError) as caught:
        decide_ballot(zhytomyr(), ballot(VOTER, []), [], now=DURING)
    assert caught.value.code == "empty-ballot"


def test_unknown_polling_point() -> None:
    """A paper ballot from an undefined polling point is refused."""
    with pytest.raises(UnknownPollingPointError) as caught:
        decide_ballot(zhytomyr(), paper_ballot(VOTER, ["L01"], point="school-5"), [], now=DURING)
    assert caught.value.point == "school-5" and caught.value.code == "unknown-polling-point"


def test_paper_deadline_passed() -> None:
    """A paper ballot entered after the paper deadline is refused."""
    with pytest.raises(PaperDeadlinePassedError) as caught:
        decide_ballot(zhytomyr(), paper_ballot(VOTER, ["L01"]), [], now=AFTER_DEADLINE)
    assert caught.value.code == "paper-deadline-passed" and status(caught.value) == 403


def test_paper_deadline_edge_is_inclusive() -> None:
    """A paper ballot entered exactly at the deadline is accepted."""
    election = zhytomyr()
    decide_ballot(election, paper_ballot(VOTER, ["L01"]), [], now=election.paper_deadline)


def test_naive_clock_is_a_programming_error() -> None:
    """Deciding with a naive ``now`` raises ValueError, not a refusal."""
    with pytest.raises(ValueError, match="aware"):
        decide_ballot(zhytomyr(), ballot(VOTER, ["L01"]), [], now=datetime(2018, 10, 3))


Breakage = Callable[[dict[str, Any]], None]


def _without(name: str) -> Breakage:
    return lambda payload: payload.pop(name)


def _with(name: str, value: Any) -> Breakage:
    return lambda payload: payload.__setitem__(name, value)


BAD_BALLOTS: list[tuple[str, Breakage, str]] = [
    ("voter missing", _without("voter"), "voter"),
    ("voter uppercase", _with("voter", VOTER.upper()), "voter"),
    ("voter short", _with("voter", "ab12"), "voter"),
    ("nonce missing", _without("nonce"), "nonce"),
    ("nonce not uuid", _with("nonce", "retry-1"), "nonce"),
    ("nonce uppercase", _with("nonce", "0F8FAD5B-D9CB-469F-A165-70867728950E"), "nonce"),
    ("cast_at missing", _without("cast_at"), "cast_at"),
    ("cast_at naive", _with("cast_at", "2018-10-03T10:15:00"), "cast_at"),
    ("cast_at date", _with("cast_at", "2018-10-03"), "cast_at"),
    ("cast_at number", _with("cast_at", 1538550900), "cast_at"),
    ("cast_at nonsense", _with("cast_at", "2018-10-03T99:15:00+03:00"), "cast_at"),
    ("projects text", _with("projects", "L01"), "projects"),
    ("projects item", _with("projects", ["L01", 7]), "projects[1]"),
    ("projects empty id", _with("projects", [""]), "projects[0]"),
    ("unknown field", _with("identity", "3012345678"), "identity"),
    ("other election", _with("election", "kyiv-2018"), "election"),
    ("type", _with("type", "ballots"), "type"),
    ("polling point on online ballot", _with("polling_point", "city-council"), "polling_point"),
]


@pytest.mark.parametrize(
    ("breakage", "field"), [(b, f) for _, b, f in BAD_BALLOTS], ids=[n for n, _, _ in BAD_BALLOTS]
)
def test_bad_ballot_payload_names_its_field(breakage: Breakage, field: str) -> None:
    """A malformed ballot is refused with bad-payload naming the field."""
    payload = ballot(VOTER, ["L01"])
    breakage(payload)
    with pytest.raises(BadPayloadError) as caught:
        decide_ballot(zhytomyr(), payload, [], now=DURING)
    assert caught.value.field == field
    assert caught.value.code == "bad-payload" and status(caught.value) == 422


def test_paper_ballot_needs_its_polling_point() -> None:
    """A paper ballot without a polling point is a bad payload."""
    payload = paper_ballot(VOTER, ["L01"])
    del payload["polling_point"]
    with pytest.raises(BadPayloadError) as caught:
        decide_ballot(zhytomyr(), payload, [], now=DURING)
    assert caught.value.field == "polling_point"


def test_payload_must_be_an_object() -> None:
    """A payload that is not a JSON object is a bad payload."""
    with pytest.raises(BadPayloadError) as caught:
        decide_ballot(zhytomyr(), ["ballot"], [], now=DURING)  # type: ignore[arg-type]
    assert caught.value.field == "payload"


# -- spoiled ballots ----------------------------------------------------------------------------


def test_spoiled_ballot_counts_for_turnout_only() -> None:
    """A spoiled ballot is recorded, counts in the voter's spoiled total and holds no picks."""
    log = new_log(multiple_ballots=False)
    decision = log.submit_spoiled(spoiled_ballot(voter=VOTER))
    assert decision.outcome is Outcome.SPOILED
    assert decision.tags[0] == f"voter:{VOTER}" and decision.tags[-1] == "point:city-council"
    log.submit_ballot(paper_ballot(VOTER, ["L01", "L02"]), key=CLERK_OLENA)
    state = voter_state(log.election, log.history_of(VOTER))
    assert state.spoiled == 1
    assert state.counted["large"] == {"L01", "L02"}


def test_spoiled_ballot_without_voter() -> None:
    """An anonymous spoiled ballot is tagged with its nonce and point only."""
    payload = spoiled_ballot(reason="unreadable")
    decision = decide_spoiled(zhytomyr(), payload, [], now=DURING)
    assert decision.tags == (f"nonce:{payload['nonce']}", "point:city-council")
    assert decision.condition_tags == (f"nonce:{payload['nonce']}",)


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (spoiled_ballot(reason="smudged"), BadPayloadError),
        ({**spoiled_ballot(), "reason": ["unreadable"]}, BadPayloadError),
        (spoiled_ballot(point="home"), UnknownPollingPointError),
        (spoiled_ballot(cast_at=datetime(2018, 9, 30, tzinfo=KYIV)), OutsideWindowError),
        ({**spoiled_ballot(), "projects": ["L01"]}, BadPayloadError),
        ({**spoiled_ballot(), "voter": "someone"}, BadPayloadError),
    ],
)
def test_spoiled_ballot_refusals(payload: dict[str, Any], error: type[VoteRefusedError]) -> None:
    """Spoiled ballots are refused for a bad reason, point, time or shape."""
    with pytest.raises(error):
        decide_spoiled(zhytomyr(), payload, [], now=DURING)


def test_spoiled_ballot_after_paper_deadline() -> None:
    """A spoiled ballot entered after the paper deadline is refused."""
    with pytest.raises(PaperDeadlinePassedError):
        decide_spoiled(zhytomyr(), spoiled_ballot(), [], now=AFTER_DEADLINE)


# -- voids --------------------------------------------------------------------------------------


def test_void_stops_a_ballot_counting_and_is_seen_by_the_voter() -> None:
    """A void is tagged with the voter, so the voter's history drops the voided picks."""
    log = new_log()
    log.submit_ballot(ballot(VOTER, ["L01", "L02"]))
    voided = log.last.position
    decision = log.submit_void(void(voided))
    assert decision.outcome is Outcome.VOIDED
    assert f"void-of:{voided}" in decision.tags and f"voter:{VOTER}" in decision.tags
    assert decision.condition_tags[0] == f"void-of:{voided}"
    state = voter_state(log.election, log.history_of(VOTER))
    assert state.counted["large"] == frozenset() and state.voided == {voided}
    log.submit_ballot(ballot(VOTER, ["L01", "L03"]))


def _void_refusal(log: Log, position: int) -> str:
    with pytest.raises(VoidRefusedError) as caught:
        log.submit_void(void(position))
    assert caught.value.code == "void-refused" and status(caught.value) == 409
    assert caught.value.position == position
    return caught.value.reason_code


def test_void_refusals() -> None:
    """Voids of a void, of nothing, of an already voided entry, or of the election are refused."""
    log = new_log()
    log.submit_ballot(ballot(VOTER, ["L01"]))
    ballot_position = log.last.position
    log.submit_void(void(ballot_position))
    void_position = log.last.position
    assert _void_refusal(log, void_position) == "void-of-void"
    assert _void_refusal(log, ballot_position) == "already-voided"
    assert _void_refusal(log, 999) == "unknown-entry"
    assert _void_refusal(log, 0) == "not-voidable"


@pytest.mark.parametrize("kind", ["key-registered", "key-revoked", "election-amended"])
def test_key_and_election_entries_cannot_be_voided(kind: str) -> None:
    """Key and election entries are not voidable."""
    target = PriorEntry(3, kind, {"type": kind}, "admin.test+00000000")
    with pytest.raises(VoidRefusedError) as caught:
        decide_void(zhytomyr(), void(3), target, [], now=DURING)
    assert caught.value.reason_code == "not-voidable"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"entry": -1}, "entry"),
        ({"entry": True}, "entry"),
        ({"entry": "3"}, "entry"),
        ({"reason": " "}, "reason"),
        ({"reason": "x" * 1001}, "reason"),
        ({"nonce": "n"}, "nonce"),
        ({"voter": token(1)}, "voter"),
    ],
)
def test_bad_void_payload_names_its_field(change: dict[str, Any], field: str) -> None:
    """A malformed void is refused naming the field."""
    payload = {**void(1), **change}
    target = PriorEntry(1, "ballot", ballot(VOTER, ["L01"]), "site.e-dem+0a1b2c3d")
    with pytest.raises(BadPayloadError) as caught:
        decide_void(zhytomyr(), payload, target, [], now=DURING)
    assert caught.value.field == field


# -- read tags ----------------------------------------------------------------------------------


def test_read_tags() -> None:
    """Each decision reads the voter's and/or nonce's tags, or the void's target tag."""
    b = ballot(VOTER, ["L01"])
    assert read_tags_for_ballot(b) == (f"voter:{VOTER}", f"nonce:{b['nonce']}")
    s = spoiled_ballot(voter=VOTER)
    assert read_tags_for_spoiled(s) == (f"nonce:{s['nonce']}",)
    v = void(5)
    assert read_tags_for_void(v) == ("void-of:5", f"nonce:{v['nonce']}")
    for payload in (b, paper_ballot(VOTER, ["L01"]), s, v):
        assert read_tags(payload)
    with pytest.raises(BadPayloadError):
        read_tags({"type": "election"})
    with pytest.raises(BadPayloadError):
        read_tags_for_ballot({"voter": "nobody", "nonce": b["nonce"]})


# -- the error tree -----------------------------------------------------------------------------


def _refusal_classes() -> list[type[VoteRefusedError]]:
    return [
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type)
        and issubclass(cls, VoteRefusedError)
        and cls is not VoteRefusedError
    ]


SAMPLES: dict[str, tuple[Any, ...]] = {
    "LimitExceededError": ("large", 2, 1, 2),
    "ProjectRepeatedError": ("L01",),
    "OutsideWindowError": (DURING, DURING, DURING),
    "UnknownProjectError": ("L99",),
    "NonceReusedError": ("0f8fad5b-d9cb-469f-a165-70867728950e",),
    "UnknownPollingPointError": ("home",),
    "PaperDeadlinePassedError": (DURING,),
    "VoidRefusedError": (3, "already-voided"),
    "BadPayloadError": ("voter", "is required"),
    "ElectionDefinitionError": ("id", "is required"),
    "ElectionFrozenError": (DURING,),
    "SameClerkError": (CLERK_OLENA,),
    "DisputedPaperBallotError": ((5, 6),),
    "WrongPollingPointError": ("school-5",),
    "WrongEntryTypeError": (("ballot", "paper-ballot"), "void"),
    "TooFewPicksError": ("czyzyny", 3, 2),
    "CostLimitExceededError": ("bemowo", 100_000_000, 120_000_000),
    "CostTooLowError": ("bemowo", 50_000_000, 12_000_000),
    "ProjectPointsExceededError": ("toulouse", "P7", 3, 4),
    "PointsLimitExceededError": ("toulouse", 7, 5, 9),
    "TooFewPointsError": ("gdansk", 5, 3),
    "RankingExistsError": ("czyzyny",),
    "GroupLimitExceededError": ("districts", 1, ("north", "south")),
    "WrongBallotFieldError": ("P7", "projects", "toulouse", "cumulative", "points"),
}


@pytest.mark.parametrize("cls", _refusal_classes(), ids=lambda c: c.__name__)
def test_every_refusal_has_code_status_and_two_messages(cls: type[VoteRefusedError]) -> None:
    """Each error type has its own code and, in the API's table, a 4xx status and English and
    Ukrainian text; it says itself in one line, and pickles."""
    error = cls(*SAMPLES.get(cls.__name__, ()))
    rendered = render(error)
    assert rendered is not None
    assert cls.code != VoteRefusedError.code and rendered.status in (403, 409, 422)
    assert str(error) and "\n" not in str(error)
    assert rendered.en and rendered.uk and rendered.uk != rendered.en
    assert cls.__doc__
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is cls and render(again) == rendered and str(again) == str(error)
    json.dumps(error.data)


def test_codes_are_unique() -> None:
    """No two error types share a problem code."""
    codes = [cls.code for cls in _refusal_classes()]
    assert len(codes) == len(set(codes))
