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

Ballot kinds (DESIGN.md §3b; :class:`~votes.election.Category`): a ballot names its choices in
``projects`` (approval and knapsack categories), ``points`` (``{"P1": 3}``, cumulative) and
``ranking`` (most preferred first, ordinal); any of the three may be absent, not all. Each
project is named once, in the field of its category's kind. Every limit holds for the voter's
counted ballots together, across channels: after the ballot, the voter's choices in each
category it touches must satisfy the category's limits, minimums included (``min_picks``,
``min_total_cost``, ``min_total_points``), and the categories the voter takes part in must
satisfy every group's ``max_categories``. Ballots combine by union: a project chosen once is
never chosen again (:class:`~votes.errors.ProjectRepeatedError`, so a project's points come from
one ballot), and the points of a category add up across ballots. Rankings do not combine: a
ballot ranking projects of an ordinal category where the voter already has a ranking is refused
(:class:`~votes.errors.RankingExistsError`); to replace a ranking a supervisor voids it first.

Double entry (``election.double_entry``) applies to paper ballots only. Each submission of a
paper ballot is a *keying*; a voter's non-voided keyings, in log order, drive this machine::

    none ──keying k──▶ pending(k)
    pending(p) ──k by another clerk, same voter, choices and polling point──▶ none
                 (p and k together are one counted paper ballot)
    pending(p) ──k differs, or comes from p's clerk──▶ disputed(p, k)
    disputed(...) ──any further keying──▶ disputed(..., k)

A void removes its entry from the sequence and the machine is run again, so voiding the wrong
keying of a dispute leaves the other one pending (a further keying may then confirm it), and
voiding one keying of a confirmed pair makes the other pending again. Live decisions keep the
machine simple: while a voter's paper ballot is disputed every new keying is refused
(:class:`~votes.errors.DisputedPaperBallotError`), and a second keying by the first keying's
clerk is refused (:class:`~votes.errors.SameClerkError`). Pending and disputed keyings never
count, but their choices are held against the voter's limits, so a later confirmation cannot
push the voter over them. Two keyings have the same choices when their projects are the same set,
their points the same, and their rankings the same list (order matters). Spoiled ballots are
single entries whatever the setting.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from votes.election import Category, Election
from votes.entries import EntryType
from votes.errors import (
    AlreadyVotedError,
    BadPayloadError,
    CostLimitExceededError,
    CostTooLowError,
    DisputedPaperBallotError,
    EmptyBallotError,
    GroupLimitExceededError,
    LimitExceededError,
    NonceReusedError,
    OutsideWindowError,
    PaperDeadlinePassedError,
    PointsLimitExceededError,
    ProjectPointsExceededError,
    ProjectRepeatedError,
    RankingExistsError,
    SameClerkError,
    TooFewPicksError,
    TooFewPointsError,
    UnknownPollingPointError,
    UnknownProjectError,
    VoidRefusedError,
    WrongBallotFieldError,
    WrongPollingPointError,
)
from votes.tags import lookup_tag, nonce_tag, point_tag, project_tag, void_tag, voter_tag
from votes.tokens import is_voter_token

__all__ = [
    "FIELD_OF_KIND",
    "SPOILED_REASONS",
    "VOIDABLE",
    "CountedBallot",
    "Decision",
    "Outcome",
    "PaperStatus",
    "PriorEntry",
    "VoterState",
    "ballot_marks",
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

_CHOICE_FIELDS = frozenset({"projects", "points", "ranking"})
_BALLOT_FIELDS = frozenset({"type", "election", "voter", "cast_at", "nonce"})
_PAPER_FIELDS = _BALLOT_FIELDS | {"polling_point"}
_USUAL_BALLOT = _BALLOT_FIELDS | {"projects"}
_USUAL_PAPER = _PAPER_FIELDS | {"projects"}
FIELD_OF_KIND: dict[str, str] = {
    "approval": "projects",
    "knapsack": "projects",
    "cumulative": "points",
    "ordinal": "ranking",
}
"""The payload field that carries the choices of each ballot kind."""
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
    """A ballot whose projects count: one entry, or the two keyings of a double-entry ballot.

    ``projects``: every project it chooses, whatever the field. ``marks``: per chosen project,
    1 for ``projects``, the points for ``points``, the rank within its category (1 = most
    preferred) for ``ranking`` (see :func:`ballot_marks`).
    """

    entries: tuple[int, ...]
    channel: str
    projects: frozenset[str]
    marks: Mapping[str, int] = field(default_factory=dict, hash=False)

    @property
    def position(self) -> int:
        """The position of the entry that made the ballot count."""
        return self.entries[-1]

    def scores(self, election: Election) -> dict[str, int]:
        """What the ballot adds to each chosen project's ``score`` (DESIGN.md §3b): 1 for
        approval and knapsack, the points for cumulative, ``max_picks - rank + 1`` for ordinal
        (k, k-1, ..., 1 with k = ``max_picks``)."""
        scores: dict[str, int] = {}
        for project_id in self.projects:
            mark = self.marks.get(project_id, 1)
            project = election.project(project_id)
            category = election.category(project.category) if project is not None else None
            if category is not None and category.ballot == "ordinal":
                scores[project_id] = category.max_picks - mark + 1
            elif category is not None and category.ballot == "cumulative":
                scores[project_id] = mark
            else:
                scores[project_id] = 1
        return scores


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
        return {c: frozenset(marks) for c, marks in self.held_marks(election).items()}

    def counted_marks(self, election: Election) -> dict[str, dict[str, int]]:
        """Per category (every category present), the counted projects and their marks."""
        return _marks_by_category(election, (b.marks for b in self.ballots))

    def held_marks(self, election: Election) -> dict[str, dict[str, int]]:
        """:meth:`held` with each project's mark (points, rank; 1 for a plain pick)."""
        waiting = [self.pending] if self.pending is not None else []
        return _marks_by_category(
            election,
            (
                *(b.marks for b in self.ballots),
                *(ballot_marks(election, k.payload) for k in (*waiting, *self.disputed)),
            ),
        )

    @property
    def has_ballot(self) -> bool:
        """Whether the voter has a counted ballot or a paper ballot waiting to count."""
        return bool(self.ballots) or self.pending is not None or bool(self.disputed)


# -- the single definition of what counts -------------------------------------------------------


def _projects_of(entry: PriorEntry) -> list[str]:
    projects = entry.payload.get("projects", [])
    return [p for p in projects if isinstance(p, str)] if isinstance(projects, list) else []


def _points_of(payload: Mapping[str, Any]) -> dict[str, int]:
    points = payload.get("points", {})
    if not isinstance(points, Mapping):
        return {}
    return {
        p: n
        for p, n in points.items()
        if isinstance(p, str) and isinstance(n, int) and not isinstance(n, bool)
    }


def _ranking_of(payload: Mapping[str, Any]) -> list[str]:
    ranking = payload.get("ranking", [])
    return [p for p in ranking if isinstance(p, str)] if isinstance(ranking, list) else []


def ballot_marks(election: Election, payload: Mapping[str, Any]) -> dict[str, int]:
    """Every project a ballot payload chooses, in payload order (``projects``, ``points``,
    ``ranking``), with its mark: 1 for ``projects``, the points for ``points``, and for
    ``ranking`` the rank among the ranked projects of the same category (1 = most preferred).
    Projects not on the ballot are left out."""
    marks: dict[str, int] = {}
    projects = payload.get("projects")
    if isinstance(projects, list):
        for project_id in projects:
            if isinstance(project_id, str):
                marks[project_id] = 1
    if "points" in payload:
        marks.update(_points_of(payload))
    if "ranking" in payload:
        ranks: dict[str, int] = {}
        for project_id in _ranking_of(payload):
            project = election.project(project_id)
            if project is not None:
                ranks[project.category] = ranks.get(project.category, 0) + 1
                marks[project_id] = ranks[project.category]
    return {p: m for p, m in marks.items() if election.project(p) is not None}


def _marks_by_category(
    election: Election, ballots: Iterable[Mapping[str, int]]
) -> dict[str, dict[str, int]]:
    by_category: dict[str, dict[str, int]] = {c.id: {} for c in election.categories}
    for marks in ballots:
        for project_id, mark in marks.items():
            project = election.project(project_id)
            if project is not None:
                by_category[project.category][project_id] = mark
    return by_category


def _same_keying(a: PriorEntry, b: PriorEntry) -> bool:
    """Two keyings of one paper ballot: same voter, polling point, projects (as a set), points,
    and ranking (in order)."""
    return (
        a.payload.get("voter") == b.payload.get("voter")
        and a.payload.get("polling_point") == b.payload.get("polling_point")
        and set(_projects_of(a)) == set(_projects_of(b))
        and _points_of(a.payload) == _points_of(b.payload)
        and _ranking_of(a.payload) == _ranking_of(b.payload)
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
    ballots = [_counted((e,), "online", election) for e in live if e.type == EntryType.BALLOT]
    ballots += [_counted(group, "paper", election) for group in groups]
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


def _counted(group: Sequence[PriorEntry], channel: str, election: Election) -> CountedBallot:
    marks = ballot_marks(election, group[0].payload)
    return CountedBallot(tuple(k.position for k in group), channel, frozenset(marks), marks)


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


def _id_list(payload: Mapping[str, Any], name: str) -> list[str]:
    listed = payload[name]
    if not isinstance(listed, list):
        raise BadPayloadError(name, "must be a list of project ids")
    for i, project in enumerate(listed):
        if not isinstance(project, str) or not project:
            raise BadPayloadError(f"{name}[{i}]", "must be a project id (non-empty text)")
    return listed


def _choices(payload: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """The ballot's choices in payload order, as (field, project id, points), their form
    checked; raises :class:`~votes.errors.EmptyBallotError` if there are none."""
    choices: list[tuple[str, str, int]] = []
    if "projects" in payload:
        choices += [("projects", p, 1) for p in _id_list(payload, "projects")]
    if "points" in payload:
        points = payload["points"]
        if not isinstance(points, Mapping) or not all(
            isinstance(p, str) and p and type(n) is int and n > 0 for p, n in points.items()
        ):
            raise BadPayloadError(
                "points", "must map project ids to whole numbers of points, each at least 1"
            )
        choices += [("points", p, n) for p, n in points.items()]
    if "ranking" in payload:
        choices += [("ranking", p, 1) for p in _id_list(payload, "ranking")]
    if not choices:
        raise EmptyBallotError()
    return choices


def _marks(election: Election, choices: Sequence[tuple[str, str, int]]) -> dict[str, int]:
    """The ballot's marks (see :func:`ballot_marks`): each project known, named once, in the
    field of its category's kind."""
    marks: dict[str, int] = {}
    ranks: dict[str, int] = {}
    plain = election.only_max_picks
    for name, project_id, points in choices:
        project = election.project(project_id)
        if project is None:
            raise UnknownProjectError(project_id)
        if project_id in marks:
            raise ProjectRepeatedError(project_id)
        if plain and name == "projects":
            marks[project_id] = 1
            continue
        category = election.category(project.category)
        assert category is not None
        expected = FIELD_OF_KIND[category.ballot]
        if name != expected:
            raise WrongBallotFieldError(project_id, name, category.id, category.ballot, expected)
        if name == "ranking":
            ranks[category.id] = ranks.get(category.id, 0) + 1
            points = ranks[category.id]
        marks[project_id] = points
    return marks


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


_NOTHING: Mapping[str, int] = {}


def _fits(
    election: Election,
    marks: Mapping[str, int],
    held: Mapping[str, Mapping[str, int]],
) -> None:
    """Refuse the ballot's ``marks`` on top of what the voter ``held`` (per category, project
    to mark), checking in this order: each choice, in payload order (a ranking where the voter
    has one, a project already chosen); then each category the ballot touches, in definition
    order (picks max and min, total cost max and min, points per project, total points max and
    min); then each group, in definition order."""
    if election.only_max_picks:
        _fits_max_picks(election, marks, held)
        return
    touched: dict[str, dict[str, int]] = {}
    for project_id, mark in marks.items():
        project = election.project(project_id)
        assert project is not None  # checked by the caller
        before = held.get(project.category)
        if before:
            category = election.category(project.category)
            assert category is not None
            if category.ballot == "ordinal":
                raise RankingExistsError(category.id)
            if project_id in before:
                raise ProjectRepeatedError(project_id)
        touched.setdefault(project.category, {})[project_id] = mark
    for category in election.categories:
        new = touched.get(category.id)
        if new:
            _within(election, category, held.get(category.id) or _NOTHING, new)
    for group in election.category_groups:
        if any(c in touched for c in group.categories):
            taking = tuple(c for c in group.categories if c in touched or held.get(c))
            if len(taking) > group.max_categories:
                raise GroupLimitExceededError(group.id, group.max_categories, taking)


def _fits_max_picks(
    election: Election, marks: Mapping[str, int], held: Mapping[str, Mapping[str, int]]
) -> None:
    """:func:`_fits` where the only limits are ``max_picks`` (approval, no minimum, no group)."""
    adding: dict[str, int] = {}
    for project_id in marks:
        project = election.project(project_id)
        assert project is not None  # checked by the caller
        if project_id in held.get(project.category, _NOTHING):
            raise ProjectRepeatedError(project_id)
        adding[project.category] = adding.get(project.category, 0) + 1
    for category in election.categories:
        new = adding.get(category.id, 0)
        already = len(held.get(category.id, _NOTHING)) if new else 0
        if new and already + new > category.max_picks:
            raise LimitExceededError(category.id, category.max_picks, already, new)


def _within(
    election: Election, category: Category, before: Mapping[str, int], new: Mapping[str, int]
) -> None:
    """Refuse if the category's choices ``before`` and ``new`` together break a limit."""
    already, adding = len(before), len(new)
    if already + adding > category.max_picks:
        raise LimitExceededError(category.id, category.max_picks, already, adding)
    if already + adding < category.min_picks:
        raise TooFewPicksError(category.id, category.min_picks, already + adding)
    if category.ballot == "knapsack":
        assert category.max_total_cost is not None
        total = 0
        for project_id in (*before, *new):
            project = election.project(project_id)
            assert project is not None
            total += project.cost
        if total > category.max_total_cost:
            raise CostLimitExceededError(category.id, category.max_total_cost, total)
        if total < category.min_total_cost:
            raise CostTooLowError(category.id, category.min_total_cost, total)
    elif category.ballot == "cumulative":
        assert category.max_points is not None and category.max_total_points is not None
        for project_id, points in new.items():
            if points > category.max_points:
                raise ProjectPointsExceededError(
                    category.id, project_id, category.max_points, points
                )
        given = sum(before.values())
        total = given + sum(new.values())
        if total > category.max_total_points:
            raise PointsLimitExceededError(category.id, category.max_total_points, given, total)
        if total < category.min_total_points:
            raise TooFewPointsError(category.id, category.min_total_points, total)


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
    if payload.keys() != (_USUAL_PAPER if paper else _USUAL_BALLOT):
        _fields(payload, _PAPER_FIELDS if paper else _BALLOT_FIELDS, _CHOICE_FIELDS)
        if not payload.keys() & _CHOICE_FIELDS:
            raise BadPayloadError("projects", "is required")
    _election(payload, election)
    voter = _voter(payload)
    nonce = _nonce(payload)
    cast_at = _cast_at(payload)
    choices = _choices(payload)
    now = _aware(now)

    replay_of = _replay(nonce, payload, history)
    if replay_of is not None:
        return _replayed(replay_of)

    _in_window(election, cast_at)
    point = None
    if paper:
        _before_paper_deadline(election, now)
        point = _known_point(election, payload)

    marks = _marks(election, choices)

    outcome = Outcome.COUNTED
    if paper and election.double_entry:
        if key is None:
            raise ValueError("double entry needs the signer's key id to decide a paper ballot")
        state = voter_state(election, history, voter)
        outcome = _decide_keying(election, payload, marks, state, key)
    elif not history:
        _fits(election, marks, {})  # the voter's first entry: nothing held, no ballot yet
    else:
        state = voter_state(election, history, voter)
        if state.has_ballot and not election.multiple_ballots:
            raise AlreadyVotedError()
        _fits(election, marks, state.held_marks(election))

    tags = [voter_tag(voter), nonce_tag(nonce), *(project_tag(p) for p in marks)]
    if point is not None:
        tags.append(point_tag(point))
    return Decision(
        tags=tuple(tags),
        condition_tags=(voter_tag(voter), nonce_tag(nonce)),
        outcome=outcome,
    )


def _decide_keying(
    election: Election,
    payload: Mapping[str, Any],
    marks: Mapping[str, int],
    state: VoterState,
    key: str,
) -> Outcome:
    """The double-entry step for a new keying (its choices already checked: ``marks``)."""
    if state.disputed:
        raise DisputedPaperBallotError(tuple(e.position for e in state.disputed))
    pending = state.pending
    if pending is None:
        if state.has_ballot and not election.multiple_ballots:
            raise AlreadyVotedError()
        _fits(election, marks, state.held_marks(election))
        return Outcome.AWAITING_SECOND_KEYING
    if pending.key == key:
        raise SameClerkError(key)
    # The second keying is checked as a ballot in its own right, against what counts without
    # the keying it is compared with: a mistyped over-limit keying is refused at once.
    if state.ballots and not election.multiple_ballots:
        raise AlreadyVotedError()
    _fits(election, marks, state.counted_marks(election))
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
    where the election allows one (:class:`~votes.errors.AlreadyVotedError`), or every category
    closed to the voter: picks or points used up, a ranking held, no project left within the cost
    cap, or a group's number of categories reached (:class:`~votes.errors.LimitExceededError`,
    naming the first category) -- so the token leaves the server only where a ballot can follow.
    The entry is tagged ``lookup:<token>``, never ``voter:``: a lookup
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
        held = state.counted_marks(election) if second_keying else state.held_marks(election)
        if all(_closed(election, c, held) for c in election.categories):
            category = election.categories[0]
            raise LimitExceededError(
                category.id, category.max_picks, len(held.get(category.id, _NOTHING))
            )

    return Decision(
        tags=(lookup_tag(token), nonce_tag(nonce), point_tag(point)),
        condition_tags=(nonce_tag(nonce),),
        outcome=Outcome.LOOKED_UP,
    )


def _closed(election: Election, category: Category, held: Mapping[str, Mapping[str, int]]) -> bool:
    """Whether no further choice in ``category`` can fit what the voter ``held``: its picks,
    projects or points are used up, it holds a ranking, no project left fits the cost cap, or
    a group of the category already has its number of other categories."""
    before = held.get(category.id) or _NOTHING
    if len(before) >= category.max_picks or (category.ballot == "ordinal" and before):
        return True
    if all(p.id in before for p in election.projects_in(category.id)):
        return True
    if category.ballot == "cumulative":
        assert category.max_total_points is not None
        return sum(before.values()) >= category.max_total_points
    if category.ballot == "knapsack":
        assert category.max_total_cost is not None
        room = category.max_total_cost - sum(_cost(election, p) for p in before)
        if all(p.id in before or p.cost > room for p in election.projects_in(category.id)):
            return True
    if not before:
        for group in election.groups_of(category.id):
            if sum(1 for c in group.categories if held.get(c)) >= group.max_categories:
                return True
    return False


def _cost(election: Election, project_id: str) -> int:
    project = election.project(project_id)
    return project.cost if project is not None else 0


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
