"""The ballot rules: decide whether a ballot, spoiled ballot or void may join the log.

Mirrored by tally/audit/ballots.py; tests/tally/audit/test_differential.py proves they agree.

Every decision is a pure function of the election, the submitted payload, the relevant part of
the log (``history``) and the clock. The API turns a decision into one conditional append:

1. ``read_tags_for_*(payload)`` names the tags to read; the ledger returns the entries carrying
   any of them, and the head of the log at that read.
2. ``decide_*(...)`` raises a :class:`~votes.errors.VoteRefusedError`, or returns a
   :class:`Decision`.
3. If ``decision.replay_of`` is set the payload repeats an entry already in the log (same nonce,
   identical payload): append nothing and answer with that entry's receipt. Otherwise append the
   entry tagged ``decision.tags`` under the DCB condition "fail if any entry carrying any of
   ``decision.condition_tags`` exists after the head of the read" -- and on failure, read and
   decide again. That condition is what keeps per-voter limits true under concurrency.

What a voter has counted is defined once, by :func:`voter_state`; the limit checks here and the
tally's totals both use it.

Double entry (``election.double_entry``) applies to paper ballots only. Each submission of a
paper ballot is a *keying*; a voter's non-voided keyings, in log order, drive this machine::

    none ──keying k──▶ pending(k)
    pending(p) ──k by another clerk, same voter, projects and polling point──▶ none
                 (p and k together are one counted paper ballot)
    pending(p) ──k differs, or comes from p's clerk──▶ disputed(p, k)
    disputed(...) ──any further keying──▶ disputed(..., k)

A void removes its entry from the sequence and the machine is run again, so voiding the wrong
keying of a dispute leaves the other one pending (a further keying may then confirm it), and
voiding one keying of a confirmed pair makes the other pending again. Live decisions keep the
machine simple: while a voter's paper ballot is disputed every new keying is refused
(:class:`~votes.errors.DisputedPaperBallotError`), and a second keying by the first keying's
clerk is refused (:class:`~votes.errors.SameClerkError`). Pending and disputed keyings never
count, but their projects are held against the voter's limits, so a later confirmation cannot
push the voter over them. Spoiled ballots are single entries whatever the setting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from votes.election import Election
from votes.entries import EntryType
from votes.errors import (
    AlreadyVotedError,
    BadPayloadError,
    DisputedPaperBallotError,
    EmptyBallotError,
    LimitExceededError,
    NonceReusedError,
    OutsideWindowError,
    PaperDeadlinePassedError,
    ProjectRepeatedError,
    SameClerkError,
    UnknownPollingPointError,
    UnknownProjectError,
    VoidRefusedError,
    WrongPollingPointError,
)
from votes.tags import lookup_tag, nonce_tag, point_tag, project_tag, void_tag, voter_tag
from votes.tokens import is_voter_token

__all__ = [
    "SPOILED_REASONS",
    "VOIDABLE",
    "CountedBallot",
    "Decision",
    "Outcome",
    "PaperStatus",
    "PriorEntry",
    "VoterState",
    "check_polling_point",
    "counted_picks",
    "decide_ballot",
    "decide_lookup",
    "decide_spoiled",
    "decide_void",
    "paper_status",
    "read_tags",
    "read_tags_for_ballot",
    "read_tags_for_lookup",
    "read_tags_for_spoiled",
    "read_tags_for_void",
    "voter_state",
]

SPOILED_REASONS = frozenset({"too-many-marks", "unreadable", "other"})
"""Why a paper ballot was spoiled."""

VOIDABLE = frozenset({EntryType.BALLOT, EntryType.PAPER_BALLOT, EntryType.SPOILED_BALLOT})
"""The entry types a supervisor may void."""

_BALLOT_TYPES = frozenset({EntryType.BALLOT, EntryType.PAPER_BALLOT})
_ENTRY_TYPES = {t.value: t for t in EntryType}
_NONCE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
_HAS_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}", re.ASCII)
_MAX_REASON = 1000
_FIELD_NAME = re.compile(r"[a-z_]{1,32}", re.ASCII)

_BALLOT_FIELDS = frozenset({"type", "election", "voter", "projects", "cast_at", "nonce"})
_PAPER_FIELDS = _BALLOT_FIELDS | {"polling_point"}
_SPOILED_FIELDS = frozenset({"type", "election", "polling_point", "reason", "cast_at", "nonce"})
_VOID_FIELDS = frozenset({"type", "election", "entry", "reason", "nonce"})
_LOOKUP_FIELDS = frozenset({"type", "election", "polling_point", "nonce"})


@dataclass(frozen=True)
class PriorEntry:
    """An entry already in the log, as a decision sees it.

    ``key`` is the signer's key id (``name+hex8``); ``payload`` is the signed payload.
    """

    position: int
    type: str
    payload: dict[str, Any] = field(hash=False)
    key: str


class Outcome(StrEnum):
    """What an accepted entry does to the count."""

    COUNTED = "counted"
    """An online ballot, or a paper ballot without double entry: its projects count now."""
    AWAITING_SECOND_KEYING = "awaiting-second-keying"
    """Double entry: the first keying of a paper ballot; nothing counts yet."""
    CONFIRMED = "confirmed"
    """Double entry: the second, identical keying; the paper ballot counts now, once."""
    DISPUTED = "disputed"
    """Double entry: a second keying that differs; neither counts until a supervisor voids one."""
    SPOILED = "spoiled"
    """A spoiled paper ballot: counts for turnout, never as votes."""
    VOIDED = "voided"
    """A void: the target entry stops counting."""
    REPLAYED = "replayed"
    """The payload repeats the entry ``replay_of``: nothing is appended."""
    LOOKED_UP = "looked-up"
    """A clerk's voter lookup: a trace in the log, never a vote."""


@dataclass(frozen=True)
class Decision:
    """How to append an accepted entry.

    ``tags``: the tags of the new entry. ``condition_tags``: append only if no entry carrying any
    of them was committed after the read that produced the history. ``replay_of``: the payload
    repeats the entry at that position -- do not append, answer with that entry's receipt.
    """

    tags: tuple[str, ...]
    condition_tags: tuple[str, ...]
    replay_of: int | None = None
    outcome: Outcome = Outcome.COUNTED


@dataclass(frozen=True)
class CountedBallot:
    """A ballot whose projects count: one entry, or the two keyings of a double-entry ballot."""

    entries: tuple[int, ...]
    channel: str
    projects: frozenset[str]

    @property
    def position(self) -> int:
        """The position of the entry that made the ballot count."""
        return self.entries[-1]


@dataclass(frozen=True)
class PaperStatus:
    """A voter's paper ballots: counted groups of keyings, the pending and the disputed ones.

    Without double entry each counted group is a single entry and nothing is pending or
    disputed.
    """

    counted: tuple[tuple[PriorEntry, ...], ...]
    pending: PriorEntry | None
    disputed: tuple[PriorEntry, ...]


@dataclass(frozen=True)
class VoterState:
    """Everything the log says about one voter: the single definition of what counts.

    ``counted``: per category (every category present), the projects the voter has counted.
    ``ballots``: the counted ballots, in the order they came to count. ``pending`` and
    ``disputed``: double-entry paper keyings that do not count yet. ``spoiled``: the voter's
    spoiled ballots that are not voided. ``voided``: positions voided among the history.
    """

    counted: dict[str, frozenset[str]] = field(hash=False)
    ballots: tuple[CountedBallot, ...]
    pending: PriorEntry | None
    disputed: tuple[PriorEntry, ...]
    spoiled: int
    voided: frozenset[int]

    def held(self, election: Election) -> dict[str, frozenset[str]]:
        """Per category, the projects counted or waiting in a pending or disputed keying.

        New ballots are checked against these, so a keying confirmed later still fits.
        """
        held = {c: set(projects) for c, projects in self.counted.items()}
        waiting = [self.pending] if self.pending is not None else []
        for keying in (*waiting, *self.disputed):
            for project_id in _projects_of(keying):
                project = election.project(project_id)
                if project is not None:
                    held.setdefault(project.category, set()).add(project_id)
        return {c: frozenset(projects) for c, projects in held.items()}

    @property
    def has_ballot(self) -> bool:
        """Whether the voter has a counted ballot or a paper ballot waiting to count."""
        return bool(self.ballots) or self.pending is not None or bool(self.disputed)


# -- the single definition of what counts -------------------------------------------------------


def _projects_of(entry: PriorEntry) -> list[str]:
    projects = entry.payload.get("projects", [])
    return [p for p in projects if isinstance(p, str)] if isinstance(projects, list) else []


def _same_keying(a: PriorEntry, b: PriorEntry) -> bool:
    return (
        a.payload.get("voter") == b.payload.get("voter")
        and a.payload.get("polling_point") == b.payload.get("polling_point")
        and set(_projects_of(a)) == set(_projects_of(b))
    )


def _ordered(
    history: Sequence[PriorEntry], voter: str | None
) -> tuple[list[PriorEntry], frozenset[int]]:
    """The voter's ballot-like entries in log order (duplicates dropped), and voided positions."""
    by_position: dict[int, PriorEntry] = {}
    voided: set[int] = set()
    for entry in history:
        if entry.type == EntryType.VOID:
            target = entry.payload.get("entry")
            if isinstance(target, int) and not isinstance(target, bool):
                voided.add(target)
        elif voter is None or entry.payload.get("voter") == voter:
            by_position[entry.position] = entry
    return [by_position[p] for p in sorted(by_position)], frozenset(voided)


def _paper_machine(
    election: Election, keyings: Sequence[PriorEntry]
) -> tuple[list[tuple[PriorEntry, ...]], PriorEntry | None, list[PriorEntry]]:
    if not election.double_entry:
        return [(k,) for k in keyings], None, []
    counted: list[tuple[PriorEntry, ...]] = []
    pending: PriorEntry | None = None
    disputed: list[PriorEntry] = []
    for keying in keyings:
        if disputed:
            disputed.append(keying)
        elif pending is None:
            pending = keying
        elif keying.key != pending.key and _same_keying(pending, keying):
            counted.append((pending, keying))
            pending = None
        else:
            disputed = [pending, keying]
            pending = None
    return counted, pending, disputed


def paper_status(
    election: Election, history: Sequence[PriorEntry], voter: str | None = None
) -> PaperStatus:
    """The state of the voter's paper ballots (see the module docstring's machine).

    ``history`` holds the voter's entries and the voids naming them; with ``voter`` given,
    entries of other voters are ignored.
    """
    entries, voided = _ordered(history, voter)
    keyings = [e for e in entries if e.type == EntryType.PAPER_BALLOT and e.position not in voided]
    counted, pending, disputed = _paper_machine(election, keyings)
    return PaperStatus(tuple(counted), pending, tuple(disputed))


def voter_state(
    election: Election, history: Sequence[PriorEntry], voter: str | None = None
) -> VoterState:
    """What counts for the voter whose entries (and the voids naming them) are ``history``.

    Online ballots count unless voided; paper ballots count unless voided, and with double
    entry only as confirmed pairs of keyings. With ``voter`` given, entries of other voters in
    ``history`` are ignored.
    """
    entries, voided = _ordered(history, voter)
    live = [e for e in entries if e.position not in voided]
    paper = [e for e in live if e.type == EntryType.PAPER_BALLOT]
    groups, pending, disputed = _paper_machine(election, paper)
    ballots = [
        CountedBallot((e.position,), "online", frozenset(_projects_of(e)))
        for e in live
        if e.type == EntryType.BALLOT
    ]
    ballots += [
        CountedBallot(tuple(k.position for k in group), "paper", frozenset(_projects_of(group[0])))
        for group in groups
    ]
    ballots.sort(key=lambda b: b.position)
    counted: dict[str, set[str]] = {c.id: set() for c in election.categories}
    for ballot in ballots:
        for project_id in ballot.projects:
            project = election.project(project_id)
            if project is not None:
                counted[project.category].add(project_id)
    return VoterState(
        counted={c: frozenset(p) for c, p in counted.items()},
        ballots=tuple(ballots),
        pending=pending,
        disputed=tuple(disputed),
        spoiled=sum(1 for e in live if e.type == EntryType.SPOILED_BALLOT),
        voided=voided,
    )


def counted_picks(
    election: Election, history: Sequence[PriorEntry], voter: str | None = None
) -> dict[str, frozenset[str]]:
    """Per category, the projects the voter currently has counted (see :func:`voter_state`)."""
    return voter_state(election, history, voter).counted


# -- payload shape ------------------------------------------------------------------------------


def _object(payload: object) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise BadPayloadError("payload", "must be a JSON object")
    return payload


def _fields(
    payload: Mapping[str, Any], required: frozenset[str], optional: frozenset[str] = frozenset()
) -> None:
    if len(payload) == len(required) and payload.keys() >= required:
        return  # exactly the required fields: the usual case, checked in C
    for name in sorted(required):
        if name not in payload:
            raise BadPayloadError(name, "is required")
    for name in payload:
        if name not in required and name not in optional:
            if isinstance(name, str) and _FIELD_NAME.fullmatch(name):
                raise BadPayloadError(name, f"is not a field of a {payload['type']} payload")
            # Named only when it cannot carry text of the sender's choosing back to a page.
            allowed = ", ".join(sorted(required | optional))
            raise BadPayloadError(
                "payload", f"has a field a {payload['type']} payload does not take ({allowed})"
            )


def _type(payload: Mapping[str, Any], allowed: frozenset[EntryType]) -> EntryType:
    kind = payload.get("type")
    if kind not in allowed:
        expected = " or ".join(sorted(allowed))
        raise BadPayloadError("type", f"must be {expected}")
    return _ENTRY_TYPES[kind]


def _election(payload: Mapping[str, Any], election: Election) -> None:
    if payload["election"] != election.id:
        raise BadPayloadError("election", f"names another election; this is {election.id!r}")


def _voter(payload: Mapping[str, Any]) -> str:
    voter = payload.get("voter")
    if not is_voter_token(voter):
        raise BadPayloadError("voter", "must be a voter token: 64 lowercase hex digits")
    assert isinstance(voter, str)
    return voter


def _nonce(payload: Mapping[str, Any]) -> str:
    nonce = payload.get("nonce")
    if not isinstance(nonce, str) or _NONCE.fullmatch(nonce) is None:
        raise BadPayloadError("nonce", "must be a UUID in lowercase hex with dashes")
    return nonce


def _cast_at(payload: Mapping[str, Any]) -> datetime:
    text = payload["cast_at"]
    problem = "must be an ISO 8601 date and time with an offset, like 2018-10-03T10:15:00+03:00"
    if not isinstance(text, str) or _HAS_TIME.match(text) is None:
        raise BadPayloadError("cast_at", problem)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadPayloadError("cast_at", problem) from None
    if moment.utcoffset() is None:
        raise BadPayloadError("cast_at", problem)
    return moment


def _text(payload: Mapping[str, Any], name: str) -> str:
    value = payload[name]
    if not isinstance(value, str) or not value.strip():
        raise BadPayloadError(name, "must be non-empty text")
    return value


def _project_ids(payload: Mapping[str, Any]) -> list[str]:
    projects = payload["projects"]
    if not isinstance(projects, list):
        raise BadPayloadError("projects", "must be a list of project ids")
    if not projects:
        raise EmptyBallotError()
    for i, project in enumerate(projects):
        if not isinstance(project, str) or not project:
            raise BadPayloadError(f"projects[{i}]", "must be a project id (non-empty text)")
    return projects


def _aware(now: datetime) -> datetime:
    if now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    return now


def _replay(nonce: str, payload: Mapping[str, Any], history: Sequence[PriorEntry]) -> int | None:
    """The position of the entry ``payload`` repeats, None if the nonce is new; raises
    NonceReusedError if the nonce belongs to a different payload."""
    for entry in history:
        if entry.payload.get("nonce") == nonce:
            if entry.payload == payload:
                return entry.position
            raise NonceReusedError(nonce)
    return None


def _replayed(position: int) -> Decision:
    return Decision(tags=(), condition_tags=(), replay_of=position, outcome=Outcome.REPLAYED)


def _in_window(election: Election, cast_at: datetime) -> None:
    if not election.voting_opens <= cast_at <= election.voting_closes:
        raise OutsideWindowError(cast_at, election.voting_opens, election.voting_closes)


def _before_paper_deadline(election: Election, now: datetime) -> None:
    if now > election.paper_deadline:
        raise PaperDeadlinePassedError(election.paper_deadline)


def _known_point(election: Election, payload: Mapping[str, Any]) -> str:
    point = payload["polling_point"]
    if not isinstance(point, str):
        raise BadPayloadError("polling_point", "must be a polling point id (text)")
    if election.polling_point(point) is None:
        raise UnknownPollingPointError(point)
    return point


def check_polling_point(registered: str | None, payload: Mapping[str, Any]) -> None:
    """A clerk key registered for polling point ``registered`` enters paper and spoiled ballots
    for that point only (:class:`~votes.errors.WrongPollingPointError`)."""
    if registered is not None and payload.get("polling_point") != registered:
        raise WrongPollingPointError(registered)


# -- ballots ------------------------------------------------------------------------------------


def read_tags_for_ballot(payload: Mapping[str, Any]) -> tuple[str, ...]:
    """The tags whose entries :func:`decide_ballot` needs: the voter's and the nonce's.

    Raises :class:`~votes.errors.BadPayloadError` if the voter or nonce is malformed.
    """
    payload = _object(payload)
    return (voter_tag(_voter(payload)), nonce_tag(_nonce(payload)))


def _fits(
    election: Election,
    picks: Sequence[str],
    held: Mapping[str, frozenset[str]],
) -> None:
    """Refuse ``picks`` if one is already held or a category would exceed its limit."""
    adding: dict[str, int] = {}
    for project_id in picks:
        project = election.project(project_id)
        assert project is not None  # checked by the caller
        if project_id in held.get(project.category, frozenset()):
            raise ProjectRepeatedError(project_id)
        adding[project.category] = adding.get(project.category, 0) + 1
    for category in election.categories:
        already = len(held.get(category.id, frozenset()))
        new = adding.get(category.id, 0)
        if new and already + new > category.max_picks:
            raise LimitExceededError(category.id, category.max_picks, already, new)


def decide_ballot(
    election: Election,
    payload: Mapping[str, Any],
    history: Sequence[PriorEntry],
    *,
    now: datetime,
    key: str | None = None,
) -> Decision:
    """Decide an online ``ballot`` or a clerk's ``paper-ballot``.

    ``history``: the entries carrying the tags of :func:`read_tags_for_ballot` (the voter's
    ballots, paper and spoiled ballots, the voids naming them, and the nonce's entry). ``now``:
    the server's aware clock. ``key``: the signer's key id -- required for paper ballots when the
    election uses double entry, ignored otherwise.

    Checks, in order: payload shape; nonce (an identical repeat is a replay, anything else under
    the same nonce is refused); window (``cast_at`` within voting; paper also ``now`` before the
    paper deadline); polling point; projects known and not repeated on the ballot; then against
    the voter's state: one ballot only unless ``multiple_ballots``, double-entry state, projects
    not already held, per-category limits across both channels.
    """
    payload = _object(payload)
    kind = _type(payload, _BALLOT_TYPES)
    paper = kind == EntryType.PAPER_BALLOT
    _fields(payload, _PAPER_FIELDS if paper else _BALLOT_FIELDS)
    _election(payload, election)
    voter = _voter(payload)
    nonce = _nonce(payload)
    cast_at = _cast_at(payload)
    picks = _project_ids(payload)
    now = _aware(now)

    replay_of = _replay(nonce, payload, history)
    if replay_of is not None:
        return _replayed(replay_of)

    _in_window(election, cast_at)
    point = None
    if paper:
        _before_paper_deadline(election, now)
        point = _known_point(election, payload)

    seen: set[str] = set()
    for project_id in picks:
        if election.project(project_id) is None:
            raise UnknownProjectError(project_id)
        if project_id in seen:
            raise ProjectRepeatedError(project_id)
        seen.add(project_id)

    outcome = Outcome.COUNTED
    if paper and election.double_entry:
        if key is None:
            raise ValueError("double entry needs the signer's key id to decide a paper ballot")
        outcome = _decide_keying(election, payload, voter_state(election, history, voter), key)
    elif not history:
        _fits(election, picks, {})  # the voter's first entry: nothing held, no ballot yet
    else:
        state = voter_state(election, history, voter)
        if state.has_ballot and not election.multiple_ballots:
            raise AlreadyVotedError()
        _fits(election, picks, state.held(election))

    tags = [voter_tag(voter), nonce_tag(nonce), *(project_tag(p) for p in picks)]
    if point is not None:
        tags.append(point_tag(point))
    return Decision(
        tags=tuple(tags),
        condition_tags=(voter_tag(voter), nonce_tag(nonce)),
        outcome=outcome,
    )


def _decide_keying(
    election: Election, payload: Mapping[str, Any], state: VoterState, key: str
) -> Outcome:
    """The double-entry step for a new keying (picks already known and distinct)."""
    picks: list[str] = payload["projects"]
    if state.disputed:
        raise DisputedPaperBallotError(tuple(e.position for e in state.disputed))
    pending = state.pending
    if pending is None:
        if state.has_ballot and not election.multiple_ballots:
            raise AlreadyVotedError()
        _fits(election, picks, state.held(election))
        return Outcome.AWAITING_SECOND_KEYING
    if pending.key == key:
        raise SameClerkError(key)
    # The second keying is checked as a ballot in its own right, against what counts without
    # the keying it is compared with: a mistyped over-limit keying is refused at once.
    if state.ballots and not election.multiple_ballots:
        raise AlreadyVotedError()
    _fits(election, picks, state.counted)
    keying = PriorEntry(-1, EntryType.PAPER_BALLOT, dict(payload), key)
    if _same_keying(pending, keying):
        return Outcome.CONFIRMED
    return Outcome.DISPUTED


# -- spoiled ballots ----------------------------------------------------------------------------


def read_tags_for_spoiled(payload: Mapping[str, Any]) -> tuple[str, ...]:
    """The tags whose entries :func:`decide_spoiled` needs: the nonce's."""
    return (nonce_tag(_nonce(_object(payload))),)


def decide_spoiled(
    election: Election,
    payload: Mapping[str, Any],
    history: Sequence[PriorEntry],
    *,
    now: datetime,
) -> Decision:
    """Decide a clerk's ``spoiled-ballot``: counted for turnout, never as votes.

    Payload: ``type``, ``election``, ``polling_point``, ``reason`` (one of
    :data:`SPOILED_REASONS`), ``cast_at``, ``nonce``, and optionally ``voter``. A spoiled ballot
    never blocks nor is blocked by the voter's ballots; it is refused only for its shape, its
    nonce, the window and the paper deadline, or an unknown polling point.
    """
    payload = _object(payload)
    _type(payload, frozenset({EntryType.SPOILED_BALLOT}))
    _fields(payload, _SPOILED_FIELDS, frozenset({"voter"}))
    _election(payload, election)
    voter = _voter(payload) if "voter" in payload else None
    nonce = _nonce(payload)
    cast_at = _cast_at(payload)
    reason = payload["reason"]
    if not isinstance(reason, str) or reason not in SPOILED_REASONS:
        raise BadPayloadError("reason", f"must be one of {', '.join(sorted(SPOILED_REASONS))}")
    now = _aware(now)

    replay_of = _replay(nonce, payload, history)
    if replay_of is not None:
        return _replayed(replay_of)
    _in_window(election, cast_at)
    _before_paper_deadline(election, now)
    point = _known_point(election, payload)

    tags = [nonce_tag(nonce), point_tag(point)]
    if voter is not None:
        tags.insert(0, voter_tag(voter))
    return Decision(tags=tuple(tags), condition_tags=(nonce_tag(nonce),), outcome=Outcome.SPOILED)


# -- voter lookups ------------------------------------------------------------------------------


def read_tags_for_lookup(payload: Mapping[str, Any], token: str) -> tuple[str, ...]:
    """The tags whose entries :func:`decide_lookup` needs: the voter's (the token the server
    derived from the number typed beside the payload) and the nonce's."""
    if not is_voter_token(token):
        raise ValueError("a lookup is read for a voter token")
    return (voter_tag(token), nonce_tag(_nonce(_object(payload))))


def decide_lookup(
    election: Election,
    payload: Mapping[str, Any],
    history: Sequence[PriorEntry],
    *,
    now: datetime,
    token: str,
) -> Decision:
    """Decide a clerk's ``voter-lookup``: whether the voter token of the number typed at a
    polling point may leave the server, and the trace it leaves in the log.

    Payload: exactly ``type``, ``election``, ``polling_point``, ``nonce`` -- never the number nor
    the token (the number travels beside the signed payload and is never stored; ``token`` is
    the one the server derived from it). ``history``: the entries carrying the tags of
    :func:`read_tags_for_lookup`. ``now``: the server's aware clock.

    Refused: a malformed payload; a nonce already in the log, even for an identical payload (the
    number beside a replayed envelope is not signed, so a replay is never answered again); ``now``
    before voting opens (:class:`~votes.errors.OutsideWindowError`) or after the paper deadline;
    an unknown polling point; and a voter to whom no ballot can be added -- one ballot already
    where the election allows one (:class:`~votes.errors.AlreadyVotedError`), or every category at
    its limit (:class:`~votes.errors.LimitExceededError`) -- so the token leaves the server only
    where a ballot can follow. The entry is tagged ``lookup:<token>``, never ``voter:``: a lookup
    is no part of the voter's history.
    """
    payload = _object(payload)
    _type(payload, frozenset({EntryType.VOTER_LOOKUP}))
    _fields(payload, _LOOKUP_FIELDS)
    _election(payload, election)
    nonce = _nonce(payload)
    now = _aware(now)
    if not is_voter_token(token):
        raise ValueError("a lookup is decided for a voter token")

    for entry in history:
        if entry.payload.get("nonce") == nonce:
            raise NonceReusedError(nonce)
    if now < election.voting_opens:
        raise OutsideWindowError(now, election.voting_opens, election.voting_closes)
    _before_paper_deadline(election, now)
    point = _known_point(election, payload)

    if history:
        state = voter_state(election, history, token)
        if state.disputed:
            raise DisputedPaperBallotError(tuple(e.position for e in state.disputed))
        # Double entry: the second keying of a pending paper ballot needs the token again, and
        # is checked against what counts without the keying it confirms.
        second_keying = election.double_entry and state.pending is not None
        if not election.multiple_ballots and (
            state.ballots or (state.has_ballot and not second_keying)
        ):
            raise AlreadyVotedError()
        held = state.counted if second_keying else state.held(election)
        if all(len(held.get(c.id, frozenset())) >= c.max_picks for c in election.categories):
            category = election.categories[0]
            raise LimitExceededError(
                category.id, category.max_picks, len(held.get(category.id, frozenset()))
            )

    return Decision(
        tags=(lookup_tag(token), nonce_tag(nonce), point_tag(point)),
        condition_tags=(nonce_tag(nonce),),
        outcome=Outcome.LOOKED_UP,
    )


# -- voids --------------------------------------------------------------------------------------


def _void_target(payload: Mapping[str, Any]) -> int:
    position = payload.get("entry")
    if isinstance(position, bool) or not isinstance(position, int) or position < 0:
        raise BadPayloadError("entry", "must be the log position of an entry (an integer ≥ 0)")
    return position


def read_tags_for_void(payload: Mapping[str, Any]) -> tuple[str, ...]:
    """The tags whose entries :func:`decide_void` needs: earlier voids of the same entry, and
    the nonce's. The API also reads the target entry by position."""
    payload = _object(payload)
    return (void_tag(_void_target(payload)), nonce_tag(_nonce(payload)))


def decide_void(
    election: Election,
    payload: Mapping[str, Any],
    target: PriorEntry | None,
    history: Sequence[PriorEntry],
    *,
    now: datetime,
) -> Decision:
    """Decide a supervisor's ``void`` of the entry at ``payload["entry"]``.

    ``target``: that entry, or None if the log has no such position. ``history``: the entries
    carrying the tags of :func:`read_tags_for_void`. A void may come at any time; it is refused
    for a void, an unknown entry, an entry already voided, or an election, key or results entry.
    The void is tagged with the voided entry's voter, so the voter's history sees it.
    """
    payload = _object(payload)
    _type(payload, frozenset({EntryType.VOID}))
    _fields(payload, _VOID_FIELDS)
    _election(payload, election)
    position = _void_target(payload)
    nonce = _nonce(payload)
    reason = _text(payload, "reason")
    if len(reason) > _MAX_REASON:
        raise BadPayloadError("reason", f"must be at most {_MAX_REASON} characters")
    _aware(now)

    replay_of = _replay(nonce, payload, history)
    if replay_of is not None:
        return _replayed(replay_of)
    if target is None:
        raise VoidRefusedError(position, "unknown-entry")
    if target.position != position:
        raise ValueError(f"target is entry {target.position}, the void names {position}")
    if target.type == EntryType.VOID:
        raise VoidRefusedError(position, "void-of-void")
    if target.type not in VOIDABLE:
        raise VoidRefusedError(position, "not-voidable")
    for entry in history:
        if entry.type == EntryType.VOID and entry.payload.get("entry") == position:
            raise VoidRefusedError(position, "already-voided")

    tags = [void_tag(position), nonce_tag(nonce)]
    target_voter = target.payload.get("voter")
    if is_voter_token(target_voter):
        assert isinstance(target_voter, str)
        tags.append(voter_tag(target_voter))
    return Decision(
        tags=tuple(tags),
        condition_tags=(void_tag(position), nonce_tag(nonce)),
        outcome=Outcome.VOIDED,
    )


def read_tags(payload: Mapping[str, Any]) -> tuple[str, ...]:
    """The tags to read before deciding ``payload``, chosen by its ``type``."""
    payload = _object(payload)
    kind = payload.get("type")
    if kind in _BALLOT_TYPES:
        return read_tags_for_ballot(payload)
    if kind == EntryType.SPOILED_BALLOT:
        return read_tags_for_spoiled(payload)
    if kind == EntryType.VOID:
        return read_tags_for_void(payload)
    raise BadPayloadError("type", "must be ballot, paper-ballot, spoiled-ballot or void")
