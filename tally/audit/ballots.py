"""Mirrors votes/rules.py; tests/tally/audit/test_differential.py proves they agree.

Step 5: the ballot rules, replayed entry by entry in log order.

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

Ballot kinds (``votes/rules.py``'s module docstring): a ballot chooses in ``projects``
(approval, knapsack), ``points`` (cumulative) and ``ranking`` (ordinal). Here a ballot's
choices are its projects in payload order with, when it has points or a ranking, a mark per
project: 1 for ``projects``, the points, or the position in ``ranking`` (1 = first). Limits
hold for the voter's counted and waiting choices together: per category picks (max, min),
total cost (knapsack), points per project and in total (cumulative), one ranking (ordinal),
then each group's number of categories. Two keyings agree when their marks agree (so a
ranking in the same order).

The rules that need no history (payload shape, window, deadline, projects, tags) run on the
workers (:func:`check_stateless`); the main process keeps the history (:class:`BallotRules`):
one small record per voter (their admitted ballot-like entries), the nonces, the voided
positions, and per position a kind byte and a reference to the voter, so voids are judged
without keeping entries.
"""

from __future__ import annotations

import re
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, NamedTuple

__all__ = [
    "FIRST_BALLOT",
    "BallotRules",
    "Category",
    "Definition",
    "Project",
    "Refusal",
    "Ruled",
    "VoterTally",
    "check_stateless",
    "online_ballot_picks",
    "parse_definition",
    "valid_online_ballot",
]

SPOILED_REASONS = frozenset({"too-many-marks", "unreadable", "other"})
MAX_REASON = 1000
METHODS = ("greedy", "greedy-no-skip", "equal-shares")
TIE_BREAKS = ("cost-ascending", "cost-descending", "lottery")
RESULTS_POLICIES = ("open", "sealed-until-close")
KIND_FIELDS = {"approval": "projects", "knapsack": "projects", "cumulative": "points"}
KIND_FIELDS["ordinal"] = "ranking"

_NONCE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
_HAS_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}", re.ASCII)
_TOKEN = re.compile(r"[0-9a-f]{64}", re.ASCII)

_BALLOT_FIELDS = frozenset({"type", "election", "voter", "projects", "cast_at", "nonce"})
_PAPER_FIELDS = _BALLOT_FIELDS | {"polling_point"}
_CHOICES = frozenset({"projects", "points", "ranking"})
_BALLOT_BASE = _BALLOT_FIELDS - {"projects"}
_PAPER_BASE = _PAPER_FIELDS - {"projects"}
_SPOILED_FIELDS = frozenset({"type", "election", "polling_point", "reason", "cast_at", "nonce"})
_VOID_FIELDS = frozenset({"type", "election", "entry", "reason", "nonce"})
_LOOKUP_FIELDS = frozenset({"type", "election", "polling_point", "nonce"})
_LOOKUP_TAG = re.compile(r"lookup:[0-9a-f]{64}")

# Entry kinds, one byte per log position; ADMITTED is or-ed in when the entry passed every check.
OTHER, BALLOT, PAPER, SPOILED, VOID, LOOKUP = 0, 1, 2, 3, 4, 5
ADMITTED = 8
_KINDS = {
    "ballot": BALLOT,
    "paper-ballot": PAPER,
    "spoiled-ballot": SPOILED,
    "void": VOID,
    "voter-lookup": LOOKUP,
}


# --------------------------------------------------------------------------- the definition


@dataclass(frozen=True, slots=True)
class Category:
    """A category: its ballot kind, per-voter limits and budget (kopecks)."""

    id: str
    max_picks: int
    budget: int
    ballot: str = "approval"
    min_picks: int = 0
    max_total_cost: int = 0
    min_total_cost: int = 0
    max_points: int = 0
    max_total_points: int = 0
    min_total_points: int = 0


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
    results: str = "open"
    """``open`` or ``sealed-until-close`` (entries and totals withheld until voting closes)."""
    deadline_stamp: str = ""
    """The paper deadline in the form of ``recorded_at``, so that the two compare as text."""
    fewest_picks: int = 0
    """The smallest per-voter limit of any category: a ballot of no more picks is within all."""
    project_ids: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    """Each project id to itself: one string object per project for every ballot naming it."""
    groups: tuple[tuple[str, tuple[str, ...], int], ...] = ()
    """The category groups: (id, categories, max_categories)."""
    plain: bool = True
    """Every category approval without a minimum, and no groups: the limits are max_picks."""


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
        category = _category(item, where)
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
    for category in list(categories.values()):
        if category.max_picks == 0:  # knapsack, cumulative: at most every project of it
            count = sum(p.category == category.id for p in projects.values())
            categories[category.id] = replace(category, max_picks=count)
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
    results = value.get("results", "open")
    if results not in RESULTS_POLICIES:
        raise ValueError(f"results {results!r} is not one of {', '.join(RESULTS_POLICIES)}")
    deadline = _moment(value.get("paper_deadline"), "paper_deadline")
    groups = []
    for i, item in enumerate(value.get("category_groups", [])):
        where = f"category_groups[{i}]."
        if not isinstance(item, dict):
            raise ValueError(f"category_groups[{i}] is not an object")
        members = _need(item, "categories", list, where)
        if not members or any(m not in categories for m in members):
            raise ValueError(f"{where}categories names no or an unknown category")
        groups.append(
            (
                _need(item, "id", str, where),
                tuple(members),
                _need(item, "max_categories", int, where),
            )
        )
    plain = not groups and all(
        c.ballot == "approval" and c.min_picks == 0 for c in categories.values()
    )
    return Definition(
        id=election_id,
        opens=_moment(value.get("voting_opens"), "voting_opens"),
        closes=_moment(value.get("voting_closes"), "voting_closes"),
        paper_deadline=deadline,
        categories=categories,
        projects=projects,
        points=points,
        method=method,
        min_votes=min_votes,
        tie_break=tie_break,
        seed=seed,
        multiple_ballots=multiple,
        double_entry=double,
        results=results,
        deadline_stamp=deadline.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        fewest_picks=min((c.max_picks for c in categories.values()), default=0) if plain else 0,
        project_ids={p: p for p in projects},
        groups=tuple(groups),
        plain=plain,
    )


def _category(item: Mapping[str, Any], where: str) -> Category:
    """A category of the definition, with the limits of its ballot kind. A limit the signed
    definition leaves out takes the default ``votes/election.py`` gives it (``uchast`` writes
    them all, a definition posted by other means may not): ``max_picks`` 0 here for knapsack
    and cumulative, which :func:`parse_definition` turns into the category's project count."""
    ballot = item.get("ballot", "approval")
    if ballot not in KIND_FIELDS:
        raise ValueError(f"{where}ballot {ballot!r} is not one of {', '.join(KIND_FIELDS)}")
    budget = _need(item, "budget_kopecks", int, where)
    counted = ballot in ("knapsack", "cumulative") and "max_picks" not in item
    category = Category(
        _need(item, "id", str, where),
        0 if counted else _need(item, "max_picks", int, where),
        budget,
        ballot,
        _optional(item, "min_picks", 0, where),
    )
    if ballot == "knapsack":
        category = replace(
            category,
            max_total_cost=_optional(item, "max_total_cost_kopecks", budget, where),
            min_total_cost=_optional(item, "min_total_cost_kopecks", 0, where),
        )
    elif ballot == "cumulative":
        total = _need(item, "max_total_points", int, where)
        category = replace(
            category,
            max_points=_optional(item, "max_points", total, where),
            max_total_points=total,
            min_total_points=_optional(item, "min_total_points", 0, where),
        )
    return category


def _optional(item: Mapping[str, Any], key: str, default: int, where: str) -> int:
    """An integer of the definition that may be left out (``default``)."""
    return default if key not in item else int(_need(item, key, int, where))


# --------------------------------------------------------------------------- stateless checks

Refusal = tuple[str, str, str]
"""A rule an entry breaks: (check name, expected, found)."""


class _Refused(Exception):
    def __init__(self, check: str, expected: str, found: object) -> None:
        super().__init__(check)
        self.refusal: Refusal = (check, expected, _short(found))


class Ruled(NamedTuple):
    """What the stateful replay needs of a ballot, paper ballot, spoiled ballot or void, once
    its stateless rules are checked (on a worker).

    ``refusal``: the first stateless rule it breaks, if any. ``alone``: for ballots, the limit
    it breaks even for a voter with no history. ``tag_voters``: for voids, the voters its tags
    name (the main process knows whose entry the target is). ``point``: the polling point a
    paper or spoiled ballot names, even when refused (the clerk key's point is checked first).
    ``marks``: for a ballot with points or a ranking, one mark per project (see the module
    docstring); None when every choice is in ``projects``.
    """

    type: str
    key: str
    sig: bool | None
    refusal: Refusal | None
    voter: str | None
    nonce: str
    projects: tuple[str, ...]
    point: str | None
    target: int
    alone: Refusal | None
    tag_voters: tuple[str, ...]
    marks: tuple[int, ...] | None = None


_NO_STRINGS: tuple[str, ...] = ()


def _fields(
    payload: Mapping[str, Any], required: frozenset[str], optional: frozenset[str] = frozenset()
) -> None:
    keys = payload.keys()
    if keys == required:
        return
    missing = sorted(required - keys)
    extra = sorted(keys - required - optional)
    if missing or extra:
        raise _Refused(
            "payload-fields",
            "fields " + ", ".join(sorted(required)),
            f"missing {missing}, extra {extra}",
        )


def _nonce(payload: Mapping[str, Any]) -> str:
    nonce = payload.get("nonce")
    if not isinstance(nonce, str) or _NONCE.fullmatch(nonce) is None:
        raise _Refused("nonce-format", "a lowercase UUID", nonce)
    return nonce


def _voter(payload: Mapping[str, Any]) -> str:
    voter = payload.get("voter")
    if type(voter) is not str or _TOKEN.fullmatch(voter) is None:
        raise _Refused("voter-token", "64 lowercase hex digits", voter)
    return voter


def _window(d: Definition, payload: Mapping[str, Any]) -> None:
    text = payload.get("cast_at")
    try:
        cast_at = _moment(text, "cast_at")
    except ValueError:
        raise _Refused("cast-at", "an ISO 8601 time with an offset", text) from None
    if not d.opens <= cast_at <= d.closes:
        raise _Refused(
            "window", f"cast between {d.opens.isoformat()} and {d.closes.isoformat()}", text
        )


def _paper(d: Definition, payload: Mapping[str, Any], recorded_at: str) -> str:
    if recorded_at > d.deadline_stamp:
        raise _Refused("paper-deadline", f"recorded by {d.deadline_stamp}", recorded_at)
    point = payload.get("polling_point")
    if not isinstance(point, str) or point not in d.points:
        raise _Refused("polling-point", "a polling point of the election", point)
    return point


def _tags(expected: set[str], tags: Sequence[str]) -> None:
    found = {t for t in tags if not t.startswith("receipt:")}
    if found != expected:
        missing, extra = sorted(expected - found), sorted(found - expected)
        raise _Refused("tags", "the tags the rules give", f"missing {missing}, extra {extra}")


Held = Mapping[str, Mapping[str, int]]
"""Per category, the projects a voter holds and their marks."""


def _fits(
    d: Definition,
    picks: Sequence[str],
    held: Held | None,
    marks: Sequence[int] | None = None,
) -> Refusal | None:
    """The limit or repeat ``picks`` (with ``marks``) break on top of what the voter ``held``
    (None: nothing)."""
    if not d.plain:
        return _fits_kinds(d, picks, marks, held)
    adding: dict[str, int] = {}
    projects = d.projects
    for project_id in picks:
        category_id = projects[project_id].category
        if held is not None and project_id in held.get(category_id, ()):
            return ("project-repeated", "a project the voter has not chosen yet", project_id)
        adding[category_id] = adding.get(category_id, 0) + 1
    if held is None and all(n <= d.categories[c].max_picks for c, n in adding.items()):
        return None
    for c in d.categories.values():  # the first category over its limit, in definition order
        n = adding.get(c.id, 0)
        a = len(held.get(c.id, ())) if held is not None and n else 0
        if n and a + n > c.max_picks:
            return ("limit", f"at most {c.max_picks} in {c.id}", f"{a} held + {n} new")
    return None


def _fits_kinds(
    d: Definition, picks: Sequence[str], marks: Sequence[int] | None, held: Held | None
) -> Refusal | None:
    """:func:`_fits` for any ballot kinds and groups, in ``votes/rules.py``'s order: each
    choice (a second ranking, a repeat), each category touched in definition order (picks max
    and min, total cost max and min, points per project, total points max and min), each
    group."""
    touched: dict[str, dict[str, int]] = {}
    projects, categories = d.projects, d.categories
    for i, project_id in enumerate(picks):
        category_id = projects[project_id].category
        before = held.get(category_id) if held is not None else None
        if before:
            if categories[category_id].ballot == "ordinal":
                return ("ranking-exists", f"one ranking in {category_id}", "a second ranking")
            if project_id in before:
                return ("project-repeated", "a project the voter has not chosen yet", project_id)
        touched.setdefault(category_id, {})[project_id] = marks[i] if marks is not None else 1
    for c in categories.values():
        new = touched.get(c.id)
        if not new:
            continue
        before = (held.get(c.id) if held is not None else None) or {}
        n = len(before) + len(new)
        if n > c.max_picks:
            found = f"{len(before)} held + {len(new)} new"
            return ("limit", f"at most {c.max_picks} in {c.id}", found)
        if n < c.min_picks:
            return ("too-few-picks", f"at least {c.min_picks} in {c.id}", f"{n} chosen")
        if c.ballot == "knapsack":
            cost = sum(projects[p].cost for p in (*before, *new))
            if cost > c.max_total_cost:
                return ("over-cost-limit", f"at most {c.max_total_cost} in {c.id}", str(cost))
            if cost < c.min_total_cost:
                return ("under-cost-minimum", f"at least {c.min_total_cost} in {c.id}", str(cost))
        elif c.ballot == "cumulative":
            for project_id, points in new.items():
                if points > c.max_points:
                    return (
                        "too-many-points-for-project",
                        f"at most {c.max_points} points per project in {c.id}",
                        f"{points} for {project_id}",
                    )
            total = sum(before.values()) + sum(new.values())
            if total > c.max_total_points:
                return ("too-many-points", f"at most {c.max_total_points} in {c.id}", str(total))
            if total < c.min_total_points:
                return ("too-few-points", f"at least {c.min_total_points} in {c.id}", str(total))
    for group, members, limit in d.groups:
        if any(m in touched for m in members):
            taking = [m for m in members if m in touched or (held is not None and held.get(m))]
            if len(taking) > limit:
                return ("too-many-categories", f"at most {limit} of {group}", _short(taking))
    return None


def ballot_scores(
    d: Definition, projects: Sequence[str], marks: Sequence[int] | None
) -> dict[str, int]:
    """What a counted ballot adds to each project's score: 1 (approval, knapsack), its points
    (cumulative), ``max_picks - rank + 1`` by its rank among the category's ranked projects
    (ordinal)."""
    if marks is None:
        return dict.fromkeys(projects, 1)
    scores: dict[str, int] = {}
    ranked: dict[str, list[tuple[int, str]]] = {}
    for project_id, mark in zip(projects, marks, strict=True):
        category = d.categories[d.projects[project_id].category]
        if category.ballot == "cumulative":
            scores[project_id] = mark
        elif category.ballot == "ordinal":
            ranked.setdefault(category.id, []).append((mark, project_id))
        else:
            scores[project_id] = 1
    for category_id, order in ranked.items():
        top = d.categories[category_id].max_picks
        for rank, (_, project_id) in enumerate(sorted(order), start=1):
            scores[project_id] = top - rank + 1
    return scores


_HEX = "0123456789abcdef"
_STR = {str}


def online_ballot_picks(
    d: Definition, listed: list[str], cast_at: str
) -> tuple[tuple[str, ...], Refusal | None] | None:
    """The window and projects of an online ballot whose form is known to be right (voter token,
    nonce, a non-empty list of project ids, a date and time beginning ``cast_at``, the tags):
    its picks and the limit they break on their own (None: none), or None when it breaks a
    stateless rule (then the full check names which)."""
    try:
        # A time without an offset does not compare with the window's (TypeError).
        if not d.opens <= datetime.fromisoformat(cast_at) <= d.closes:
            return None
    except (ValueError, TypeError):
        return None
    try:
        picks = tuple(map(d.project_ids.__getitem__, listed))  # shared strings, pickled once
    except KeyError:
        return None
    if len(set(picks)) != len(picks):
        return None
    if not d.plain:
        projects, categories = d.projects, d.categories
        if any(KIND_FIELDS[categories[projects[p].category].ballot] != "projects" for p in picks):
            return None
    return picks, None if len(picks) <= d.fewest_picks else _fits(d, picks, None)


def valid_online_ballot(
    d: Definition,
    key: str,
    voter: Any,
    nonce: Any,
    listed: list[str],
    cast_at: Any,
    tags: Sequence[str],
    sig: bool | None,
) -> tuple[Any, ...] | None:
    """The short path of :func:`check_stateless` for an online ballot whose payload has exactly
    the ballot's fields and a list of strings as projects: its :class:`Ruled` fields when it
    breaks no stateless rule, else None (then the full check names what it breaks)."""
    if not (
        type(voter) is str
        and len(voter) == 64
        and not voter.strip(_HEX)
        and type(nonce) is str
        and _NONCE.fullmatch(nonce) is not None
        and listed
        and type(cast_at) is str
        and _HAS_TIME.match(cast_at) is not None
        and len(tags) == len(listed) + 4
    ):
        return None
    # Exactly the tags the rules give, and one receipt, in sorted order; anything else takes
    # the full comparison, which names what is missing or extra.
    expected = ["key:" + key, "nonce:" + nonce]
    expected += sorted(["project:" + p for p in listed])
    expected += [tags[-2], "voter:" + voter]
    if tags != expected or not tags[-2].startswith("receipt:"):
        return None
    ruled = online_ballot_picks(d, listed, cast_at)
    if ruled is None:
        return None
    picks, alone = ruled
    return ("ballot", key, sig, None, voter, nonce, picks, None, -1, alone, (), None)


def check_stateless(
    d: Definition,
    entry_type: str,
    payload: Mapping[str, Any],
    key: str,
    tags: Sequence[str],
    recorded_at: str,
    index: int,
    sig: bool | None,
) -> tuple[Any, ...]:
    """The rules that need no history, for the entry at ``index``. Returns the fields of a
    :class:`Ruled`, as a plain tuple (cheaper to send between processes).

    An online ballot that passes every check takes a short path (most of a log is these); any
    other entry, or one that fails, takes :func:`_check_stateless`, which names the first rule
    broken in ``votes/rules.py``'s order.
    """
    if entry_type == "ballot" and payload.keys() == _BALLOT_FIELDS:
        listed = payload["projects"]
        if type(listed) is list and set(map(type, listed)) <= _STR:
            fast = valid_online_ballot(
                d, key, payload["voter"], payload["nonce"], listed, payload["cast_at"], tags, sig
            )
            if fast is not None:
                return fast
    return _check_stateless(d, entry_type, payload, key, tags, recorded_at, index, sig)


def _check_stateless(
    d: Definition,
    entry_type: str,
    payload: Mapping[str, Any],
    key: str,
    tags: Sequence[str],
    recorded_at: str,
    index: int,
    sig: bool | None,
) -> tuple[Any, ...]:
    """:func:`check_stateless` in full, in ``votes/rules.py``'s order: shape, nonce form,
    window, paper deadline and point, projects, tags."""
    voter: str | None = None
    nonce = ""
    picks: tuple[str, ...] = _NO_STRINGS
    point: str | None = None
    target = -1
    alone: Refusal | None = None
    tag_voters = _NO_STRINGS
    marks: tuple[int, ...] | None = None
    try:
        if entry_type == "ballot" or entry_type == "paper-ballot":
            paper = entry_type == "paper-ballot"
            point = _claimed_point(payload) if paper else None
            if payload.keys() != (_PAPER_FIELDS if paper else _BALLOT_FIELDS):
                _fields(payload, _PAPER_BASE if paper else _BALLOT_BASE, _CHOICES)
                if not payload.keys() & _CHOICES:
                    raise _Refused("payload-fields", "projects, points or ranking", "none")
            voter = _voter(payload)
            fields_of, listed, marked = _choices(payload)
            marks = marked
            nonce = _nonce(payload)
            _window(d, payload)
            point = _paper(d, payload, recorded_at) if paper else None
            distinct = set(listed)
            if (
                len(distinct) != len(listed)
                or not distinct <= d.projects.keys()
                or not d.plain
                or marks is not None  # points or a ranking: their fields are checked
            ):
                seen: set[str] = set()
                for field_name, project_id in zip(fields_of, listed, strict=True):
                    if project_id not in d.projects:
                        raise _Refused("unknown-project", "a project on the ballot", project_id)
                    if project_id in seen:
                        raise _Refused("project-repeated", "each project once", project_id)
                    seen.add(project_id)
                    ballot = d.categories[d.projects[project_id].category].ballot
                    if KIND_FIELDS[ballot] != field_name:
                        raise _Refused(
                            "wrong-ballot-field",
                            f"{project_id} under {KIND_FIELDS[ballot]}",
                            f"under {field_name}",
                        )
            expected = [f"key:{key}", f"nonce:{nonce}", f"voter:{voter}"]
            expected += ["project:" + p for p in listed]
            if point is not None:
                expected.append(f"point:{point}")
            expected.sort()
            found = [t for t in tags if not t.startswith("receipt:")]
            if found != expected:  # tags are sorted (step 2), so lists compare
                _tags(set(expected), tags)
            picks = tuple(listed)
            alone = _fits(d, picks, None, marks)
        elif entry_type == "spoiled-ballot":
            point = _claimed_point(payload)
            _fields(payload, _SPOILED_FIELDS, frozenset({"voter"}))
            voter = _voter(payload) if "voter" in payload else None
            nonce = _nonce(payload)
            _window(d, payload)
            reason = payload.get("reason")
            if reason not in SPOILED_REASONS:
                raise _Refused("spoiled-reason", ", ".join(sorted(SPOILED_REASONS)), reason)
            point = _paper(d, payload, recorded_at)
            spoiled_tags = {f"nonce:{nonce}", f"point:{point}", f"key:{key}"}
            if voter is not None:
                spoiled_tags.add(f"voter:{voter}")
            _tags(spoiled_tags, tags)
        elif entry_type == "voter-lookup":
            # A clerk's lookup of a token: a trace, never a vote. No number or token in the
            # payload; the token only in its lookup: tag; between voting opens and the paper
            # deadline by the time the log recorded it.
            point = _claimed_point(payload)
            _fields(payload, _LOOKUP_FIELDS)
            nonce = _nonce(payload)
            try:  # the form was checked (step 2), not that it names a real day
                recorded = _moment(recorded_at.replace("Z", "+00:00"), "recorded_at")
            except ValueError:
                raise _Refused(
                    "recorded-at", "a real date and time, YYYY-MM-DDTHH:MM:SS.ffffffZ", recorded_at
                ) from None
            if recorded < d.opens:
                raise _Refused("window", f"recorded from {d.opens.isoformat()}", recorded_at)
            point = _paper(d, payload, recorded_at)
            lookups = [t for t in tags if t.startswith("lookup:")]
            if len(lookups) != 1 or _LOOKUP_TAG.fullmatch(lookups[0]) is None:
                raise _Refused("tags", "one lookup:<64 hex> tag", _short(lookups))
            _tags({f"nonce:{nonce}", f"point:{point}", f"key:{key}", lookups[0]}, tags)
            tag_voters = (lookups[0].removeprefix("lookup:"),)  # the token looked up
        else:
            _fields(payload, _VOID_FIELDS)
            position = payload.get("entry")
            if isinstance(position, bool) or not isinstance(position, int) or position < 0:
                raise _Refused("void-target", "the position of an entry", position)
            target = position
            nonce = _nonce(payload)
            reason = payload.get("reason")
            if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
                raise _Refused(
                    "void-reason", f"non-empty text of at most {MAX_REASON} characters", reason
                )
            if target >= index:
                raise _Refused("void-target", f"an entry before {index}", target)
            void_tags = {f"void-of:{target}", f"nonce:{nonce}", f"key:{key}"}
            named = tuple(t for t in tags if t.startswith("voter:"))
            _tags(void_tags, [t for t in tags if not t.startswith("voter:")])
            tag_voters = tuple(t[6:] for t in named)
    except _Refused as refused:
        return (
            entry_type,
            key,
            sig,
            refused.refusal,
            voter,
            nonce,
            picks,
            point,
            target,
            None,
            tag_voters,
            marks,
        )
    return (
        entry_type,
        key,
        sig,
        None,
        voter,
        nonce,
        picks,
        point,
        target,
        alone,
        tag_voters,
        marks,
    )


def _choices(
    payload: Mapping[str, Any],
) -> tuple[tuple[str, ...], list[str], tuple[int, ...] | None]:
    """A ballot's choices in payload order: the field of each, the project ids, and their marks
    (None when all are in ``projects``); their form checked, and at least one."""
    fields_of: list[str] = []
    listed: list[str] = []
    marks: list[int] = []
    if "projects" in payload:
        projects = payload["projects"]
        if type(projects) is not list or not set(map(type, projects)) <= {str} or "" in projects:
            raise _Refused("projects", "a list of project ids", projects)
        listed += projects
        fields_of += ["projects"] * len(projects)
        marks += [1] * len(projects)
    plain = True
    if "points" in payload:
        points = payload["points"]
        if type(points) is not dict or not all(
            type(p) is str and p and type(n) is int and n > 0 for p, n in points.items()
        ):
            raise _Refused("points", "project ids to points of at least 1", points)
        listed += points
        fields_of += ["points"] * len(points)
        marks += points.values()
        plain = plain and not points
    if "ranking" in payload:
        ranking = payload["ranking"]
        if type(ranking) is not list or not set(map(type, ranking)) <= {str} or "" in ranking:
            raise _Refused("ranking", "a list of project ids", ranking)
        listed += ranking
        fields_of += ["ranking"] * len(ranking)
        marks += range(1, len(ranking) + 1)
        plain = plain and not ranking
    if not listed:
        raise _Refused("empty-ballot", "at least one project", "none")
    return tuple(fields_of), listed, None if plain else tuple(marks)


# --------------------------------------------------------------------------- voter state


class Keying(NamedTuple):
    """An admitted ballot-like entry of a voter, as the rules see it later."""

    position: int
    kind: int
    key: str
    projects: tuple[str, ...]
    point: str | None
    marks: tuple[int, ...] | None = None


Counted = tuple[int, tuple[str, ...], tuple[int, ...] | None]
"""A counted ballot: the position that made it count, its projects, their marks."""


class VoterTally:
    """What counts for one voter (``VoterState`` in ``votes/rules.py``): the counted ballots
    (position that made each count, projects), a pending keying, disputed keyings."""

    __slots__ = ("_counted", "ballots", "definition", "disputed", "pending")

    def __init__(
        self,
        definition: Definition,
        ballots: list[Counted],
        pending: Keying | None = None,
        disputed: list[Keying] | None = None,
    ) -> None:
        self.definition = definition
        self.ballots = ballots
        self.pending = pending
        self.disputed = disputed if disputed is not None else []
        self._counted: dict[str, dict[str, int]] | None = None

    @property
    def counted(self) -> dict[str, dict[str, int]]:
        """Per category (every category present), the projects the voter has counted, each
        with its mark."""
        if self._counted is None:
            projects = self.definition.projects
            counted: dict[str, dict[str, int]] = {c: {} for c in self.definition.categories}
            for _, picks, marks in self.ballots:
                for i, project_id in enumerate(picks):
                    project = projects.get(project_id)
                    if project is not None:
                        counted[project.category][project_id] = marks[i] if marks else 1
            self._counted = counted
        return self._counted

    def held(self, definition: Definition) -> dict[str, dict[str, int]]:
        """Counted projects plus those of pending or disputed keyings, per category, with
        their marks."""
        held = {c: dict(p) for c, p in self.counted.items()}
        waiting = [self.pending] if self.pending is not None else []
        for keying in (*waiting, *self.disputed):
            for i, project_id in enumerate(keying.projects):
                project = definition.projects.get(project_id)
                if project is not None:
                    mark = keying.marks[i] if keying.marks else 1
                    held.setdefault(project.category, {})[project_id] = mark
        return held

    @property
    def has_ballot(self) -> bool:
        return bool(self.ballots) or self.pending is not None or bool(self.disputed)


def _same(a: Keying, b: Keying) -> bool:
    if a.point != b.point:
        return False
    if a.marks is None and b.marks is None:
        return set(a.projects) == set(b.projects)
    return _marked(a) == _marked(b)


def _marked(k: Keying) -> dict[str, int]:
    return dict(zip(k.projects, k.marks or (1,) * len(k.projects), strict=True))


def voter_tally(
    definition: Definition, keyings: Sequence[Keying], voided: set[int] | frozenset[int]
) -> VoterTally:
    """Run the voter's admitted, non-voided entries through the rules' state machine."""
    if len(keyings) == 1:  # most voters: one online ballot
        k = keyings[0]
        if k.kind == BALLOT and k.position not in voided:
            return VoterTally(definition, [(k.position, k.projects, k.marks)])
    ballots: list[Counted] = []
    pending: Keying | None = None
    disputed: list[Keying] = []
    for k in keyings:
        if k.position in voided:
            continue
        if k.kind == BALLOT:
            ballots.append((k.position, k.projects, k.marks))
        elif k.kind != PAPER:
            continue
        elif not definition.double_entry:
            ballots.append((k.position, k.projects, k.marks))
        elif disputed:
            disputed.append(k)
        elif pending is None:
            pending = k
        elif k.key != pending.key and _same(pending, k):
            ballots.append((k.position, pending.projects, pending.marks))
            pending = None
        else:
            disputed = [pending, k]
            pending = None
    return VoterTally(definition, ballots, pending, disputed)


# --------------------------------------------------------------------------- the replay

FIRST_BALLOT = 4
"""The length of the short record of an online ballot that broke no stateless rule, within
its limits on its own, with a valid signature (most of a log): (key, voter, nonce, projects)."""

_new_keying = tuple.__new__  # a Keying from its fields, without the generated __new__
_ADMITTED_BALLOT = bytes([BALLOT | ADMITTED])
_voter_of = itemgetter(1)  # of a FIRST_BALLOT record


class BallotRules:
    """The stateful rules, replayed in log order (see the module docstring)."""

    def __init__(self, definition: Definition) -> None:
        self.definition = definition
        self.voters: dict[str, list[Keying]] = {}
        self.nonces: set[str] = set()
        self.voided: set[int] = set()
        self.kinds = bytearray()  # per position: OTHER..VOID, | ADMITTED
        self.owners: list[str | None] = []  # per position: the voter of a ballot-like entry
        self.lookups: list[tuple[int, str, str]] = []  # admitted lookups: (position, key, token)
        self.spoiled = 0

    def skip(self, entry_type: str | None, voter: str | None = None) -> None:
        """Record an entry that takes no part in the count (not ruled, or refused)."""
        self.kinds.append(_KINDS.get(entry_type or "", OTHER))
        self.owners.append(voter)

    def admit_first_ballots(
        self, start: int, records: Sequence[Any], offset: int, end: int, signers: Container[str]
    ) -> int:
        """The common case of :meth:`admit`, for a run of entries at once: from
        ``records[offset]`` (the entry at ``start + offset``) on, admit each that is a valid
        online ballot (its stateless rules passed, its picks within the limits on their own:
        the short record ``(key, voter, nonce, projects)``) by one of ``signers``, of a voter
        with no history and with a new nonce. Stops before the first other entry, or at
        ``end``; returns where it stopped."""
        voters, nonces = self.voters, self.nonces
        stop = end
        for at in range(offset, end):
            fields = records[at]
            if fields is None or len(fields) != FIRST_BALLOT:
                stop = at
                break
            key, voter, nonce, projects = fields
            if key not in signers or voter in voters or nonce in nonces:
                stop = at
                break
            nonces.add(nonce)
            voters[voter] = [_new_keying(Keying, (start + at, BALLOT, key, projects, None, None))]
        self.kinds += _ADMITTED_BALLOT * (stop - offset)
        self.owners.extend(map(_voter_of, records[offset:stop]))
        return stop

    def admit(self, index: int, entry: Ruled, clerk_point: str | None) -> Refusal | None:
        """Check the entry at ``index`` against the history; apply it if it passes. Returns
        the first rule it breaks (the stateless ones included), else None."""
        voter = entry.voter
        if (
            entry.type == "ballot"  # most entries: a new voter's valid online ballot
            and entry.refusal is None
            and entry.alone is None
            and voter not in self.voters
            and entry.nonce not in self.nonces
        ):
            assert voter is not None
            self.nonces.add(entry.nonce)
            self.kinds.append(BALLOT | ADMITTED)
            self.owners.append(voter)
            keying = Keying(index, BALLOT, entry.key, entry.projects, None, entry.marks)
            self.voters[voter] = [keying]
            return None
        refusal = self._refusal(index, entry, clerk_point)
        if refusal is not None:
            self.skip(entry.type, entry.voter)
            return refusal
        self.nonces.add(entry.nonce)
        kind = _KINDS[entry.type]
        self.kinds.append(kind | ADMITTED)
        self.owners.append(entry.voter)
        if kind == VOID:
            self.voided.add(entry.target)
            if self.kinds[entry.target] == SPOILED | ADMITTED:
                self.spoiled -= 1
        elif kind == SPOILED:
            self.spoiled += 1
        elif kind == LOOKUP:  # a trace only: no voter's history, no count
            self.lookups.append((index, entry.key, entry.tag_voters[0]))
        else:
            assert entry.voter is not None
            keying = Keying(index, kind, entry.key, entry.projects, entry.point, entry.marks)
            keyings = self.voters.get(entry.voter)
            if keyings is None:
                self.voters[entry.voter] = [keying]
            else:
                keyings.append(keying)
        return None

    def _refusal(self, index: int, entry: Ruled, clerk_point: str | None) -> Refusal | None:
        """The first rule the entry breaks, in the write path's order: the clerk key's point
        (``ledger/casting.py`` checks the signer's registration before any rule), then
        ``votes/rules.py``'s: the payload's shape, the nonce, then window, paper deadline and
        point, projects and void target, then the history."""
        if clerk_point is not None and entry.point != clerk_point and entry.type != "void":
            return (
                "clerk-polling-point",
                f"the clerk key's point {clerk_point}",
                _short(entry.point),
            )
        stateless = entry.refusal
        if stateless is not None and not _after_nonce(stateless, entry):
            return stateless
        if entry.nonce in self.nonces:
            # The server answers an exact replay with the first receipt and appends nothing,
            # and refuses a different payload under a used nonce: either way, never twice.
            return ("nonce-reused", "a nonce not used before in this election", entry.nonce)
        if stateless is not None:
            return stateless
        if entry.type == "void":
            return self._void(entry)
        if entry.type == "spoiled-ballot" or entry.type == "voter-lookup":
            return None
        assert entry.voter is not None
        d = self.definition
        keyings = self.voters.get(entry.voter)
        if not keyings:
            return entry.alone
        state = voter_tally(d, keyings, self.voided)
        if entry.type == "paper-ballot" and d.double_entry:
            return self._keying(entry, state)
        if state.has_ballot and not d.multiple_ballots:
            return ("already-voted", "one ballot per voter", "a second ballot")
        return _fits(d, entry.projects, state.held(d), entry.marks)

    def _keying(self, entry: Ruled, state: VoterTally) -> Refusal | None:
        """Double entry: a new keying against the voter's paper state."""
        d = self.definition
        if state.disputed:
            return (
                "disputed",
                "no keying while the voter's paper ballot is disputed",
                _short([k.position for k in state.disputed]),
            )
        pending = state.pending
        if pending is None:
            if state.has_ballot and not d.multiple_ballots:
                return ("already-voted", "one ballot per voter", "a second ballot")
            return _fits(d, entry.projects, state.held(d), entry.marks)
        if pending.key == entry.key:
            return ("same-clerk", "a second keying by another clerk", entry.key)
        if state.ballots and not d.multiple_ballots:
            return ("already-voted", "one ballot per voter", "a second ballot")
        return _fits(d, entry.projects, state.counted, entry.marks)

    def _void(self, entry: Ruled) -> Refusal | None:
        target = entry.target
        kind = self.kinds[target]
        if kind & 7 == VOID:
            return ("void-of-void", "a ballot, paper or spoiled ballot", "a void")
        if kind & 7 == OTHER or kind & 7 == LOOKUP:
            return ("void-target", "a ballot, paper or spoiled ballot", "another entry")
        if target in self.voided:
            return ("already-voided", "an entry not voided before", str(target))
        owner = self.owners[target]
        expected = (owner,) if owner is not None else _NO_STRINGS
        if entry.tag_voters != expected:
            return ("tags", f"voter tag {owner}", _short(entry.tag_voters))
        return None

    def counted(self) -> list[tuple[tuple[str, ...], ...]]:
        """As of now, per voter with a counted ballot, the projects of each counted ballot."""
        d, voided = self.definition, self.voided
        counted: list[tuple[tuple[str, ...], ...]] = []
        for keyings in self.voters.values():
            if len(keyings) == 1:  # most voters: one online ballot
                position, kind, _, projects, _, _ = keyings[0]
                if kind == BALLOT and position not in voided:
                    counted.append((projects,))
                    continue
            ballots = voter_tally(d, keyings, voided).ballots
            if ballots:
                counted.append(tuple(projects for _, projects, _ in ballots))
        return counted

    def counted_scores(self) -> list[tuple[dict[str, int], ...]]:
        """As :meth:`counted`, each counted ballot as what it adds to each of its projects'
        score (:func:`ballot_scores`): 1 per project for approval and knapsack, the points for
        cumulative, by rank for ordinal."""
        d, voided = self.definition, self.voided
        counted: list[tuple[dict[str, int], ...]] = []
        for keyings in self.voters.values():
            ballots = voter_tally(d, keyings, voided).ballots
            if ballots:
                counted.append(tuple(ballot_scores(d, p, m) for _, p, m in ballots))
        return counted

    def unfollowed_lookups(self) -> dict[str, int]:
        """Per clerk key, its lookups that no later paper ballot of the token followed (a
        statistic for the auditor's reader, not a violation: a voter may walk away)."""
        unfollowed: dict[str, int] = {}
        for position, key, token in self.lookups:
            keyings = self.voters.get(token, ())
            if not any(k.kind == PAPER and k.position > position for k in keyings):
                unfollowed[key] = unfollowed.get(key, 0) + 1
        return unfollowed

    def counted_ballots(self) -> list[tuple[int, tuple[str, ...]]]:
        """As of now, every counted ballot as (the position of the entry that made it count,
        its projects), in log order: ``CountedBallot.position`` in ``votes/rules.py``."""
        d, voided = self.definition, self.voided
        found: list[tuple[int, tuple[str, ...]]] = []
        for keyings in self.voters.values():
            found += [(p, projects) for p, projects, _ in voter_tally(d, keyings, voided).ballots]
        return sorted(found)


_AFTER_NONCE = frozenset(
    {
        "window",
        "paper-deadline",
        "polling-point",
        "unknown-project",
        "project-repeated",
        "wrong-ballot-field",
    }
)


def _after_nonce(refusal: Refusal, entry: Ruled) -> bool:
    """Whether ``votes/rules.py`` checks the stateless rule ``refusal`` names after the nonce
    (a void's target beyond the log is its ``unknown-entry``, a malformed one its shape)."""
    check = refusal[0]
    return check in _AFTER_NONCE or (check == "void-target" and entry.target >= 0)


def _claimed_point(payload: Mapping[str, Any]) -> str | None:
    """The polling point a paper or spoiled ballot names, valid or not (None if no text)."""
    point = payload.get("polling_point")
    return point if isinstance(point, str) else None


def _short(value: object, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
