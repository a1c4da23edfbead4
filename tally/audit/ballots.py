"""Step 5: the ballot rules, replayed entry by entry in log order.

This mirrors ``votes/rules.py`` (read there, re-implemented here): for every ballot, paper
ballot, spoiled ballot and void the auditor asks whether the server should have accepted it given
the log before it, with the entry's ``recorded_at`` standing for the server's clock. An entry that
breaks a rule is reported and then treated as refused: it takes no part in what follows.

What counts, per voter (``voter_state`` in ``votes/rules.py``): online ballots unless voided;
paper ballots unless voided and, with double entry, only as confirmed pairs of keyings. A voter's
non-voided paper keyings drive this machine, in log order::

    none ──keying k──▶ pending(k)
    pending(p) ──k by another clerk, same voter, projects and polling point──▶ none  (p+k count)
    pending(p) ──k differs, or comes from p's clerk──▶ disputed(p, k)
    disputed(...) ──any further keying──▶ disputed(..., k)

Pending and disputed keyings never count but hold their projects against the voter's limits.

Memory: one small record per voter (their admitted ballot-like entries), a set of nonces, the
voided positions, and two bytes-per-entry arrays (entry kind and owner) so voids can be judged
without keeping entries.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tally.audit.errors import Violation

__all__ = ["BallotRules", "Category", "Definition", "Project", "VoterTally", "parse_definition"]

SPOILED_REASONS = frozenset({"too-many-marks", "unreadable", "other"})
MAX_REASON = 1000
METHODS = ("greedy", "greedy-no-skip", "equal-shares")
TIE_BREAKS = ("cost-ascending", "cost-descending", "lottery")

_NONCE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
_HAS_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}", re.ASCII)
_TOKEN = re.compile(r"[0-9a-f]{64}", re.ASCII)

_BALLOT_FIELDS = frozenset({"type", "election", "voter", "projects", "cast_at", "nonce"})
_PAPER_FIELDS = _BALLOT_FIELDS | {"polling_point"}
_SPOILED_FIELDS = frozenset({"type", "election", "polling_point", "reason", "cast_at", "nonce"})
_VOID_FIELDS = frozenset({"type", "election", "entry", "reason", "nonce"})

# Entry kinds, one byte per log position; ADMITTED is or-ed in when the entry passed every check.
OTHER, BALLOT, PAPER, SPOILED, VOID = 0, 1, 2, 3, 4
ADMITTED = 8
_KINDS = {"ballot": BALLOT, "paper-ballot": PAPER, "spoiled-ballot": SPOILED, "void": VOID}


# --------------------------------------------------------------------------- the definition


@dataclass(frozen=True, slots=True)
class Category:
    """A category: its per-voter limit and budget (kopecks)."""

    id: str
    max_picks: int
    budget: int


@dataclass(frozen=True, slots=True)
class Project:
    """A project on the ballot: its category and cost (kopecks)."""

    id: str
    category: str
    cost: int


@dataclass(frozen=True)
class Definition:
    """What the rules and the recount need of the election entry's ``definition``."""

    id: str
    opens: datetime
    closes: datetime
    paper_deadline: datetime
    categories: dict[str, Category]
    projects: dict[str, Project]
    points: frozenset[str]
    method: str
    min_votes: int
    tie_break: tuple[str, ...]
    seed: str
    multiple_ballots: bool
    double_entry: bool

    @property
    def deadline_stamp(self) -> str:
        """The paper deadline in the form of ``recorded_at``, so the two compare as text."""
        return self.paper_deadline.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _need(table: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = table.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ValueError(f"{where}{key} is missing or not {getattr(kind, '__name__', kind)}")
    return value


def _moment(text: object, where: str) -> datetime:
    if not isinstance(text, str) or _HAS_TIME.match(text) is None:
        raise ValueError(f"{where} is not an ISO 8601 date and time")
    moment = datetime.fromisoformat(text)
    if moment.utcoffset() is None:
        raise ValueError(f"{where} has no offset")
    return moment


def parse_definition(value: object) -> Definition:
    """Read the ``definition`` of an election entry (``votes.election.election_to_dict``'s
    form: money in ``*_kopecks``, datetimes with offsets); :class:`ValueError` says what is
    wrong."""
    if not isinstance(value, dict):
        raise ValueError("the definition is not an object")
    election_id = _need(value, "id", str, "")
    categories: dict[str, Category] = {}
    for i, item in enumerate(_need(value, "categories", list, "")):
        where = f"categories[{i}]."
        if not isinstance(item, dict):
            raise ValueError(f"categories[{i}] is not an object")
        category = Category(
            _need(item, "id", str, where),
            _need(item, "max_picks", int, where),
            _need(item, "budget_kopecks", int, where),
        )
        if category.id in categories:
            raise ValueError(f"{where}id {category.id!r} is repeated")
        categories[category.id] = category
    projects: dict[str, Project] = {}
    for i, item in enumerate(_need(value, "projects", list, "")):
        where = f"projects[{i}]."
        if not isinstance(item, dict):
            raise ValueError(f"projects[{i}] is not an object")
        project = Project(
            _need(item, "id", str, where),
            _need(item, "category", str, where),
            _need(item, "cost_kopecks", int, where),
        )
        if project.id in projects or project.category not in categories:
            raise ValueError(f"{where}id is repeated or its category unknown")
        projects[project.id] = project
    points = frozenset(
        _need(p, "id", str, f"polling_points[{i}].") if isinstance(p, dict) else ""
        for i, p in enumerate(value.get("polling_points", []))
    )
    rule = _need(value, "rule", dict, "")
    method = rule.get("method")
    if method not in METHODS:
        raise ValueError(f"rule.method {method!r} is not one of {', '.join(METHODS)}")
    tie_break = tuple(rule.get("tie_break", ()))
    if any(t not in TIE_BREAKS for t in tie_break):
        raise ValueError(f"rule.tie_break {tie_break!r} names an unknown criterion")
    min_votes = rule.get("min_votes", 0)
    seed = rule.get("seed", "")
    if isinstance(min_votes, bool) or not isinstance(min_votes, int) or not isinstance(seed, str):
        raise ValueError("rule.min_votes or rule.seed has the wrong type")
    multiple = value.get("multiple_ballots", True)
    double = value.get("double_entry", False)
    if not isinstance(multiple, bool) or not isinstance(double, bool):
        raise ValueError("multiple_ballots and double_entry must be true or false")
    return Definition(
        id=election_id,
        opens=_moment(value.get("voting_opens"), "voting_opens"),
        closes=_moment(value.get("voting_closes"), "voting_closes"),
        paper_deadline=_moment(value.get("paper_deadline"), "paper_deadline"),
        categories=categories,
        projects=projects,
        points=points,
        method=method,
        min_votes=min_votes,
        tie_break=tie_break,
        seed=seed,
        multiple_ballots=multiple,
        double_entry=double,
    )


# --------------------------------------------------------------------------- voter state


@dataclass(frozen=True, slots=True)
class Keying:
    """An admitted ballot-like entry of a voter, as the rules see it later."""

    position: int
    kind: int
    key: str
    projects: frozenset[str]
    point: str | None


@dataclass(slots=True)
class VoterTally:
    """What counts for one voter (``VoterState`` in ``votes/rules.py``)."""

    counted: dict[str, set[str]]
    ballots: list[tuple[int, frozenset[str]]]  # (position that made it count, projects)
    pending: Keying | None
    disputed: list[Keying]

    def held(self, definition: Definition) -> dict[str, set[str]]:
        """Counted projects plus those of pending or disputed keyings, per category."""
        held = {c: set(p) for c, p in self.counted.items()}
        waiting = [self.pending] if self.pending is not None else []
        for keying in (*waiting, *self.disputed):
            for project_id in keying.projects:
                project = definition.projects.get(project_id)
                if project is not None:
                    held.setdefault(project.category, set()).add(project_id)
        return held

    @property
    def has_ballot(self) -> bool:
        return bool(self.ballots) or self.pending is not None or bool(self.disputed)


def _same(a: Keying, b: Keying) -> bool:
    return a.point == b.point and a.projects == b.projects


def voter_tally(
    definition: Definition, keyings: Sequence[Keying], voided: set[int] | frozenset[int]
) -> VoterTally:
    """Run the voter's admitted, non-voided entries through the rules' state machine."""
    ballots: list[tuple[int, frozenset[str]]] = []
    pending: Keying | None = None
    disputed: list[Keying] = []
    for k in keyings:
        if k.position in voided:
            continue
        if k.kind == BALLOT:
            ballots.append((k.position, k.projects))
        elif k.kind != PAPER:
            continue
        elif not definition.double_entry:
            ballots.append((k.position, k.projects))
        elif disputed:
            disputed.append(k)
        elif pending is None:
            pending = k
        elif k.key != pending.key and _same(pending, k):
            ballots.append((k.position, pending.projects))
            pending = None
        else:
            disputed = [pending, k]
            pending = None
    counted: dict[str, set[str]] = {c: set() for c in definition.categories}
    for _, projects in ballots:
        for project_id in projects:
            project = definition.projects.get(project_id)
            if project is not None:
                counted[project.category].add(project_id)
    return VoterTally(counted, ballots, pending, disputed)


# --------------------------------------------------------------------------- the replay


class _Refused(Exception):
    def __init__(self, check: str, expected: str, found: object) -> None:
        super().__init__(check)
        self.check, self.expected, self.found = check, expected, found


class BallotRules:
    """The rules' replay over one log (see the module docstring)."""

    def __init__(self, definition: Definition) -> None:
        self.definition = definition
        self.deadline = definition.deadline_stamp
        self.voters: dict[str, list[Keying]] = {}
        self.nonces: set[str] = set()
        self.voided: set[int] = set()
        self.kinds = bytearray()
        self.owner_names: list[str] = []
        self._owner_index: dict[str, int] = {}
        self.owners = array("l")
        self.spoiled = 0

    # The log's positions advance one by one; every entry gets a kind and an owner.
    def skip(self, entry_type: str | None, payload: Mapping[str, Any] | None) -> None:
        """Record an entry that takes no part in the rules (or was refused before them)."""
        kind = _KINDS.get(entry_type or "", OTHER)
        voter = payload.get("voter") if payload is not None else None
        self.kinds.append(kind)
        self.owners.append(self._owner(voter) if isinstance(voter, str) else -1)

    def _owner(self, voter: str) -> int:
        index = self._owner_index.get(voter)
        if index is None:
            index = self._owner_index[voter] = len(self.owner_names)
            self.owner_names.append(voter)
        return index

    def admit(
        self,
        index: int,
        entry_type: str,
        payload: dict[str, Any],
        key: str,
        tags: Sequence[str],
        recorded_at: str,
        clerk_point: str | None,
    ) -> Violation | None:
        """Check the entry at ``index`` (its position) against the rules; apply it if it
        passes. Returns the first rule it breaks, else None."""
        try:
            if entry_type in ("ballot", "paper-ballot"):
                apply = self._ballot(
                    index, entry_type, payload, key, tags, recorded_at, clerk_point
                )
            elif entry_type == "spoiled-ballot":
                apply = self._spoiled(payload, key, tags, recorded_at, clerk_point)
            else:
                apply = self._void(index, payload, key, tags)
        except _Refused as refused:
            self.skip(entry_type, payload)
            return Violation(5, refused.check, refused.expected, _short(refused.found), entry=index)
        apply()
        return None

    # -- shared checks

    def _fields(
        self,
        payload: Mapping[str, Any],
        required: frozenset[str],
        optional: frozenset[str] = frozenset(),
    ) -> None:
        missing = sorted(required - payload.keys())
        extra = sorted(payload.keys() - required - optional)
        if missing or extra:
            raise _Refused(
                "payload-fields",
                "fields " + ", ".join(sorted(required)),
                f"missing {missing}, extra {extra}",
            )

    def _nonce(self, payload: Mapping[str, Any]) -> str:
        nonce = payload.get("nonce")
        if not isinstance(nonce, str) or _NONCE.fullmatch(nonce) is None:
            raise _Refused("nonce-format", "a lowercase UUID", nonce)
        if nonce in self.nonces:
            # The server answers an exact replay with the first receipt and appends nothing,
            # and refuses a different payload under a used nonce: either way, never twice.
            raise _Refused("nonce-reused", "a nonce not used before in this election", nonce)
        return nonce

    def _voter(self, payload: Mapping[str, Any]) -> str:
        voter = payload.get("voter")
        if not isinstance(voter, str) or _TOKEN.fullmatch(voter) is None:
            raise _Refused("voter-token", "64 lowercase hex digits", voter)
        return voter

    def _window(self, payload: Mapping[str, Any]) -> None:
        text = payload.get("cast_at")
        try:
            cast_at = _moment(text, "cast_at")
        except ValueError:
            raise _Refused("cast-at", "an ISO 8601 time with an offset", text) from None
        d = self.definition
        if not d.opens <= cast_at <= d.closes:
            raise _Refused(
                "window", f"cast between {d.opens.isoformat()} and {d.closes.isoformat()}", text
            )

    def _paper(self, payload: Mapping[str, Any], recorded_at: str, clerk_point: str | None) -> str:
        if recorded_at > self.deadline:
            raise _Refused("paper-deadline", f"recorded by {self.deadline}", recorded_at)
        point = payload.get("polling_point")
        if not isinstance(point, str) or point not in self.definition.points:
            raise _Refused("polling-point", "a polling point of the election", point)
        if clerk_point is not None and point != clerk_point:
            raise _Refused("clerk-polling-point", f"the clerk key's point {clerk_point}", point)
        return point

    def _tags(self, expected: set[str], tags: Sequence[str]) -> None:
        found = {t for t in tags if not t.startswith("receipt:")}
        if found != expected:
            missing, extra = sorted(expected - found), sorted(found - expected)
            raise _Refused("tags", "the tags the rules give", f"missing {missing}, extra {extra}")

    # -- ballots and paper ballots

    def _ballot(
        self,
        index: int,
        entry_type: str,
        payload: dict[str, Any],
        key: str,
        tags: Sequence[str],
        recorded_at: str,
        clerk_point: str | None,
    ) -> Any:
        d = self.definition
        paper = entry_type == "paper-ballot"
        self._fields(payload, _PAPER_FIELDS if paper else _BALLOT_FIELDS)
        voter = self._voter(payload)
        picks = payload.get("projects")
        if not isinstance(picks, list) or not all(isinstance(p, str) and p for p in picks):
            raise _Refused("projects", "a list of project ids", picks)
        if not picks:
            raise _Refused("empty-ballot", "at least one project", "none")
        nonce = self._nonce(payload)
        self._window(payload)
        point = self._paper(payload, recorded_at, clerk_point) if paper else None
        seen: set[str] = set()
        for project_id in picks:
            if project_id not in d.projects:
                raise _Refused("unknown-project", "a project on the ballot", project_id)
            if project_id in seen:
                raise _Refused("project-repeated", "each project once", project_id)
            seen.add(project_id)
        expected = {f"voter:{voter}", f"nonce:{nonce}", f"key:{key}"}
        expected.update(f"project:{p}" for p in picks)
        if point is not None:
            expected.add(f"point:{point}")
        self._tags(expected, tags)

        keyings = self.voters.get(voter)
        state = voter_tally(d, keyings, self.voided) if keyings else None
        if paper and d.double_entry:
            self._keying(picks, key, point, state)
        elif state is not None:
            if state.has_ballot and not d.multiple_ballots:
                raise _Refused("already-voted", "one ballot per voter", "a second ballot")
            self._fits(picks, state.held(d))
        else:
            self._fits(picks, {})
        keying = Keying(index, PAPER if paper else BALLOT, key, frozenset(picks), point)

        def apply() -> None:
            self.nonces.add(nonce)
            self.kinds.append(keying.kind | ADMITTED)
            self.owners.append(self._owner(voter))
            if keyings is None:
                self.voters[voter] = [keying]
            else:
                keyings.append(keying)

        return apply

    def _keying(
        self, picks: list[str], key: str, point: str | None, state: VoterTally | None
    ) -> None:
        d = self.definition
        if state is None:
            self._fits(picks, {})
            return
        if state.disputed:
            raise _Refused(
                "disputed",
                "no keying while the voter's paper ballot is disputed",
                [k.position for k in state.disputed],
            )
        pending = state.pending
        if pending is None:
            if state.has_ballot and not d.multiple_ballots:
                raise _Refused("already-voted", "one ballot per voter", "a second ballot")
            self._fits(picks, state.held(d))
            return
        if pending.key == key:
            raise _Refused("same-clerk", "a second keying by another clerk", key)
        if state.ballots and not d.multiple_ballots:
            raise _Refused("already-voted", "one ballot per voter", "a second ballot")
        self._fits(picks, state.counted)

    def _fits(self, picks: Sequence[str], held: Mapping[str, set[str]]) -> None:
        d = self.definition
        adding: dict[str, int] = {}
        for project_id in picks:
            category_id = d.projects[project_id].category
            if project_id in held.get(category_id, ()):
                raise _Refused(
                    "project-repeated", "a project the voter has not chosen yet", project_id
                )
            adding[category_id] = adding.get(category_id, 0) + 1
        for category in d.categories.values():
            already = len(held.get(category.id, ()))
            new = adding.get(category.id, 0)
            if new and already + new > category.max_picks:
                raise _Refused(
                    "limit",
                    f"at most {category.max_picks} in {category.id}",
                    f"{already} held + {new} new",
                )

    # -- spoiled ballots

    def _spoiled(
        self,
        payload: dict[str, Any],
        key: str,
        tags: Sequence[str],
        recorded_at: str,
        clerk_point: str | None,
    ) -> Any:
        self._fields(payload, _SPOILED_FIELDS, frozenset({"voter"}))
        voter = self._voter(payload) if "voter" in payload else None
        nonce = self._nonce(payload)
        self._window(payload)
        reason = payload.get("reason")
        if reason not in SPOILED_REASONS:
            raise _Refused("spoiled-reason", ", ".join(sorted(SPOILED_REASONS)), reason)
        point = self._paper(payload, recorded_at, clerk_point)
        expected = {f"nonce:{nonce}", f"point:{point}", f"key:{key}"}
        if voter is not None:
            expected.add(f"voter:{voter}")
        self._tags(expected, tags)

        def apply() -> None:
            self.nonces.add(nonce)
            self.spoiled += 1
            self.kinds.append(SPOILED | ADMITTED)
            self.owners.append(self._owner(voter) if voter is not None else -1)

        return apply

    # -- voids

    def _void(self, index: int, payload: dict[str, Any], key: str, tags: Sequence[str]) -> Any:
        self._fields(payload, _VOID_FIELDS)
        target = payload.get("entry")
        if isinstance(target, bool) or not isinstance(target, int) or target < 0:
            raise _Refused("void-target", "the position of an entry", target)
        nonce = self._nonce(payload)
        reason = payload.get("reason")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
            raise _Refused(
                "void-reason", f"non-empty text of at most {MAX_REASON} characters", reason
            )
        if target >= index:
            raise _Refused("void-target", f"an entry before {index}", target)
        kind = self.kinds[target]
        if kind & 7 == VOID:
            raise _Refused("void-of-void", "a ballot, paper or spoiled ballot", "a void")
        if kind & 7 == OTHER:
            raise _Refused("void-target", "a ballot, paper or spoiled ballot", "another entry")
        if target in self.voided:
            raise _Refused("already-voided", "an entry not voided before", target)
        owner = self.owners[target]
        expected = {f"void-of:{target}", f"nonce:{nonce}", f"key:{key}"}
        if owner >= 0:
            expected.add(f"voter:{self.owner_names[owner]}")
        self._tags(expected, tags)

        def apply() -> None:
            self.nonces.add(nonce)
            self.voided.add(target)
            if kind == SPOILED | ADMITTED:
                self.spoiled -= 1
            self.kinds.append(VOID | ADMITTED)
            self.owners.append(-1)

        return apply

    # -- the count

    def tallies(self) -> dict[str, VoterTally]:
        """Every voter's count as of now."""
        d = self.definition
        return {
            voter: voter_tally(d, keyings, self.voided) for voter, keyings in self.voters.items()
        }


def _short(value: object, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
