"""The election definition: categories, projects, polling points, window, allocation rule.

An election is read from a TOML file (:func:`parse_election_toml`) or from its JSON form
(:func:`election_from_dict`); both go through the same validation, and every refusal is an
:class:`~votes.errors.ElectionDefinitionError` naming the offending field by its path
(``projects[12].cost``, ``rule.tie_break[1]``). Build elections through these readers: the
dataclass constructors do not validate.

Money is written in one of two unambiguous ways, never as a bare number:

- ``cost = "1 500 000.00"`` — UAH as a string (see :func:`votes.money.parse_uah`);
- ``cost_kopecks = 150000000`` — integer kopecks, under the key with the ``_kopecks`` suffix.

A field takes exactly one of the two. The same holds for ``budget``, ``max_cost``,
``max_total_cost`` and ``min_total_cost``.

Each category has a ``ballot`` kind (DESIGN.md §3b); ``approval`` when absent, so every older
file and log reads as before:

- ``approval``: ``max_picks`` (required), ``min_picks`` (default 0);
- ``knapsack``: ``max_total_cost`` (default: the category's ``budget``), ``min_total_cost``
  (default 0), ``min_picks``, ``max_picks`` (default: the category's number of projects);
- ``cumulative``: ``max_total_points`` (required), ``max_points`` per project (default:
  ``max_total_points``), ``min_total_points`` (default 0), ``min_picks``, ``max_picks``
  (default: the category's number of projects) -- picks are the projects given points;
- ``ordinal``: ``max_picks`` (required; the first of a ranking scores ``max_picks``, the next
  one less...), ``min_picks``.

A key that belongs to another kind (``max_points`` in a knapsack category) is refused, naming it.
``[[category_groups]]`` (``id``, ``categories``, ``max_categories``): a voter takes part in at
most ``max_categories`` of the group's categories.
:func:`election_to_dict` writes the ``_kopecks`` form, and datetimes as ISO 8601 in UTC.

Datetimes carry an offset (``2018-10-01T00:00:00+03:00``) or are local and read in the
election's ``timezone``; a local time that a clock change makes ambiguous or skips is refused.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, Literal, TypeVar, cast, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from votes.errors import ElectionDefinitionError, ElectionFrozenError
from votes.money import Kopecks, format_uah, parse_uah

__all__ = [
    "BALLOT_KINDS",
    "RESULTS_POLICIES",
    "TIE_BREAKS",
    "VOTER_TOKEN_SCHEMES",
    "AllocationMethod",
    "AllocationRule",
    "BallotKind",
    "Category",
    "CategoryGroup",
    "Election",
    "PollingPoint",
    "Project",
    "ResultsPolicy",
    "check_amendment",
    "election_from_dict",
    "election_to_dict",
    "parse_election_toml",
]

AllocationMethod = Literal["greedy", "greedy-no-skip", "equal-shares"]
TieBreak = Literal["cost-ascending", "cost-descending", "lottery"]
TIE_BREAKS: tuple[str, ...] = get_args(TieBreak)
VOTER_TOKEN_SCHEMES: tuple[str, ...] = ("hmac-sha256",)
ResultsPolicy = Literal["open", "sealed-until-close"]
BallotKind = Literal["approval", "knapsack", "cumulative", "ordinal"]
BALLOT_KINDS: tuple[str, ...] = get_args(BallotKind)
_NO_KOPECKS = Kopecks(0)
RESULTS_POLICIES: tuple[str, ...] = get_args(ResultsPolicy)

_ELECTION_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,62}", re.ASCII)
_ITEM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
# Project ids keep what real files use (Gdynia's "BAD/0018"): still no whitespace, control
# characters, quotes, ':', ';' or ',' (tags, CSV, Pabulib), a letter or digit first (no CSV
# formulas, no absolute paths); wherever an id goes into a URL it is percent-encoded.
_PROJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}", re.ASCII)
_LANGUAGE = re.compile(r"[a-z]{2,3}", re.ASCII)
_HAS_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}", re.ASCII)


@dataclass(frozen=True)
class Project:
    """A project on the ballot, in one category, with its cost."""

    id: str
    title: dict[str, str] = field(hash=False)
    category: str
    cost: Kopecks
    district: str


@dataclass(frozen=True)
class Category:
    """A category of projects: its own budget, maximum project cost, ballot kind and limits.

    Every limit holds for a voter's counted ballots together (see :mod:`votes.rules`).
    ``max_picks``/``min_picks``: how many of the category's projects a voter chooses (approves,
    gives points to, ranks). ``max_total_cost``/``min_total_cost`` (knapsack only; None and 0
    otherwise): the chosen projects' total cost. ``max_points`` (per project),
    ``max_total_points``, ``min_total_points`` (cumulative only; None, None, 0 otherwise).
    """

    id: str
    title: dict[str, str] = field(hash=False)
    max_picks: int
    budget: Kopecks
    max_cost: Kopecks
    ballot: BallotKind = "approval"
    min_picks: int = 0
    max_total_cost: Kopecks | None = None
    min_total_cost: Kopecks = _NO_KOPECKS
    max_points: int | None = None
    max_total_points: int | None = None
    min_total_points: int = 0


@dataclass(frozen=True)
class CategoryGroup:
    """Categories of which a voter takes part in at most ``max_categories`` (one district of
    several, say)."""

    id: str
    categories: tuple[str, ...]
    max_categories: int


@dataclass(frozen=True)
class PollingPoint:
    """A place where voters vote on paper and clerks enter the ballots."""

    id: str
    title: dict[str, str] = field(hash=False)


@dataclass(frozen=True)
class AllocationRule:
    """How winners are chosen inside each category's budget.

    ``method``: ``greedy`` funds projects by score and skips one that no longer fits;
    ``greedy-no-skip`` stops at the first that does not fit; ``equal-shares`` is the Method of
    Equal Shares (each voter's satisfaction from a funded project: its cost on approval and
    knapsack ballots, the points given to it on cumulative ones, its positional score on ordinal
    ones). A project's score (DESIGN.md §3b) is its number of votes on approval and knapsack
    ballots, the sum of its points on cumulative ballots and of its positional scores k, k-1,
    ..., 1 (k = ``max_picks``) on ordinal ones. ``min_votes`` is a threshold on the score (as
    Pabulib's ``min_project_score_threshold``; the name is older than ballot kinds): projects
    scoring less are never funded. Ties in score are broken by the ``tie_break`` criteria in
    order (``lottery`` draws with ``seed``, so it is always last); projects still tied are
    ordered by id.
    """

    method: AllocationMethod
    min_votes: int = 0
    tie_break: tuple[str, ...] = ()
    seed: str = ""


@dataclass(frozen=True)
class Election:
    """One participatory-budget election: what is on the ballot, when and how it is counted.

    All three datetimes are aware and expressed in ``timezone``. Voting is open for ballots cast
    in [``voting_opens``, ``voting_closes``]; paper entries are accepted until
    ``paper_deadline``. With ``multiple_ballots`` a voter may vote several times while the
    per-category limits hold; with ``double_entry`` a paper ballot counts only once two different
    clerks have keyed the same content (see :mod:`votes.rules`).

    ``results``: ``open`` serves the log's entries and the live totals all along;
    ``sealed-until-close`` serves, until ``voting_closes``, turnout, checkpoints, proofs and
    receipts but neither entries nor totals (:meth:`results_sealed`). Like the rest of the
    definition it is in the election entry, signed, and cannot change once voting has opened.
    """

    id: str
    title: dict[str, str] = field(hash=False)
    timezone: str
    voting_opens: datetime
    voting_closes: datetime
    paper_deadline: datetime
    categories: tuple[Category, ...]
    projects: tuple[Project, ...]
    polling_points: tuple[PollingPoint, ...]
    rule: AllocationRule
    voter_token_scheme: str = "hmac-sha256"
    multiple_ballots: bool = True
    double_entry: bool = False
    results: ResultsPolicy = "open"
    category_groups: tuple[CategoryGroup, ...] = ()
    _projects: dict[str, Project] = field(init=False, repr=False, compare=False, hash=False)
    _categories: dict[str, Category] = field(init=False, repr=False, compare=False, hash=False)
    _points: dict[str, PollingPoint] = field(init=False, repr=False, compare=False, hash=False)
    _plain: bool = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # Lookups sit on the ballot hot path; index once.
        object.__setattr__(self, "_projects", {p.id: p for p in self.projects})
        object.__setattr__(self, "_categories", {c.id: c for c in self.categories})
        object.__setattr__(self, "_points", {p.id: p for p in self.polling_points})
        plain = not self.category_groups and all(
            c.ballot == "approval" and c.min_picks == 0 for c in self.categories
        )
        object.__setattr__(self, "_plain", plain)

    @property
    def only_max_picks(self) -> bool:
        """Whether every category is approval without a minimum and there are no groups: the
        only limits are ``max_picks`` (the rules' fast path)."""
        return self._plain

    def project(self, project_id: str) -> Project | None:
        """The project with ``project_id``, or None when it is not on the ballot."""
        return self._projects.get(project_id)

    def category(self, category_id: str) -> Category | None:
        """The category with ``category_id``, or None."""
        return self._categories.get(category_id)

    def polling_point(self, point_id: str) -> PollingPoint | None:
        """The polling point with ``point_id``, or None."""
        return self._points.get(point_id)

    def groups_of(self, category_id: str) -> tuple[CategoryGroup, ...]:
        """The category groups that ``category_id`` belongs to."""
        return tuple(g for g in self.category_groups if category_id in g.categories)

    def projects_in(self, category_id: str) -> tuple[Project, ...]:
        """The projects of ``category_id``, in definition order."""
        return tuple(p for p in self.projects if p.category == category_id)

    def results_sealed(self, now: datetime) -> bool:
        """Whether, at ``now``, the log's entries and the totals are withheld from the public
        (``results = "sealed-until-close"`` and voting has not closed yet)."""
        return self.results == "sealed-until-close" and now < self.voting_closes

    @property
    def total_budget(self) -> Kopecks:
        """The sum of the categories' budgets."""
        return Kopecks(sum(c.budget for c in self.categories))


def check_amendment(current: Election, amended: Election, *, now: datetime) -> None:
    """Refuse replacing ``current`` by ``amended`` at ``now``.

    Raises :class:`~votes.errors.ElectionFrozenError` once voting has opened (so the ``results``
    policy, like everything else, is fixed before the first ballot), and
    :class:`~votes.errors.ElectionDefinitionError` if the amendment changes the election's id.
    """
    if now >= current.voting_opens:
        raise ElectionFrozenError(current.voting_opens)
    if amended.id != current.id:
        raise ElectionDefinitionError("id", f"an amendment cannot change the id {current.id!r}")


# -- reading -------------------------------------------------------------------------------------


def parse_election_toml(text: str) -> Election:
    """The election defined by the TOML document ``text`` (see the module docstring)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ElectionDefinitionError("toml", f"not valid TOML: {exc}") from None
    return election_from_dict(document)


def _path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def _table(value: object, where: str, allowed: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ElectionDefinitionError(where or "(document)", "must be a table")
    for key in value:
        if key not in allowed:
            expected = ", ".join(sorted(allowed))
            raise ElectionDefinitionError(
                _path(where, str(key)), f"unknown field (expected one of: {expected})"
            )
    return cast("Mapping[str, Any]", value)


def _required(table: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise ElectionDefinitionError(_path(where, key), "is required")
    return table[key]


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ElectionDefinitionError(where, "must be non-empty text")
    return value


def _item_id(value: object, where: str) -> str:
    if not isinstance(value, str) or _ITEM_ID.fullmatch(value) is None:
        raise ElectionDefinitionError(
            where, f"{value!r} is not an id: 1-64 letters, digits, '.', '_' or '-'"
        )
    return value


def _project_id(value: object, where: str) -> str:
    if not isinstance(value, str) or _PROJECT_ID.fullmatch(value) is None:
        raise ElectionDefinitionError(
            where,
            f"{value!r} is not a project id: 1-64 letters, digits, '.', '_', '-' or '/', "
            "starting with a letter or digit",
        )
    return value


def _integer(value: object, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ElectionDefinitionError(where, f"must be an integer, not {value!r}")
    if value < minimum:
        raise ElectionDefinitionError(where, f"must be at least {minimum}, not {value}")
    return value


def _boolean(table: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ElectionDefinitionError(_path(where, key), f"must be true or false, not {value!r}")
    return value


def _title(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ElectionDefinitionError(where, "must be a table of titles by language (uk, en)")
    titles: dict[str, str] = {}
    for language, text in value.items():
        if not isinstance(language, str) or _LANGUAGE.fullmatch(language) is None:
            raise ElectionDefinitionError(
                _path(where, str(language)), "is not a language code like 'uk' or 'en'"
            )
        titles[language] = _text(text, _path(where, language))
    for language in ("uk", "en"):
        if language not in titles:
            raise ElectionDefinitionError(_path(where, language), "is required")
    return titles


def _money(table: Mapping[str, Any], key: str, where: str) -> tuple[Kopecks, str]:
    """The amount under ``key`` (UAH text) or ``key_kopecks`` (integer), and the key used."""
    in_kopecks = f"{key}_kopecks"
    if key in table and in_kopecks in table:
        raise ElectionDefinitionError(
            _path(where, key), f"give either {key} (UAH) or {in_kopecks}, not both"
        )
    if in_kopecks in table:
        value = table[in_kopecks]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ElectionDefinitionError(
                _path(where, in_kopecks), f"must be an integer number of kopecks, not {value!r}"
            )
        return Kopecks(value), in_kopecks
    value = _required(table, key, where)
    if not isinstance(value, str):
        raise ElectionDefinitionError(
            _path(where, key),
            f"write UAH as text like '1 500 000.00' (a bare number such as {value!r} is "
            f"ambiguous), or integer kopecks under {in_kopecks}",
        )
    try:
        return parse_uah(value), key
    except ValueError as exc:
        raise ElectionDefinitionError(_path(where, key), str(exc)) from None


def _positive(amount: Kopecks, where: str) -> Kopecks:
    if amount <= 0:
        raise ElectionDefinitionError(
            where, f"must be more than zero, not {format_uah(amount)} UAH"
        )
    return amount


def _zone(value: object) -> ZoneInfo:
    if not isinstance(value, str) or not value:
        raise ElectionDefinitionError("timezone", "must be an IANA time zone like 'Europe/Kyiv'")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ElectionDefinitionError(
            "timezone", f"{value!r} is not an IANA time zone like 'Europe/Kyiv'"
        ) from None


def _moment(value: object, where: str, zone: ZoneInfo) -> datetime:
    if isinstance(value, str):
        if _HAS_TIME.match(value) is None:
            raise ElectionDefinitionError(
                where, f"{value!r} is not an ISO 8601 date and time like 2018-10-01T00:00:00+03:00"
            )
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ElectionDefinitionError(
                where, f"{value!r} is not an ISO 8601 date and time"
            ) from None
    if not isinstance(value, datetime):
        kind = "a date without a time" if isinstance(value, date) else repr(value)
        raise ElectionDefinitionError(where, f"must be a date and time, not {kind}")
    if value.tzinfo is None:
        earlier = value.replace(tzinfo=zone, fold=0)
        later = value.replace(tzinfo=zone, fold=1)
        if earlier.utcoffset() != later.utcoffset():
            raise ElectionDefinitionError(
                where,
                f"local time {value.isoformat()} is ambiguous or skipped in {zone.key} because "
                "of a clock change; give it with an offset",
            )
        value = earlier
    elif value.utcoffset() is None:
        raise ElectionDefinitionError(where, "has a time zone without an offset")
    return value.astimezone(zone)


_T = TypeVar("_T")


def _items(
    value: object, where: str, read: Callable[[object, str], _T], *, allow_empty: bool
) -> tuple[_T, ...]:
    if not isinstance(value, list | tuple):
        raise ElectionDefinitionError(where, "must be a list of tables")
    if not value and not allow_empty:
        raise ElectionDefinitionError(where, "must not be empty")
    return tuple(read(item, _path(where, i)) for i, item in enumerate(value))


def _unique(items: tuple[Any, ...], where: str) -> None:
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.id in first:
            raise ElectionDefinitionError(
                _path(_path(where, i), "id"),
                f"duplicate id {item.id!r} (also {_path(where, first[item.id])})",
            )
        first[item.id] = i


_KIND_KEYS: dict[str, frozenset[str]] = {
    "approval": frozenset(),
    "knapsack": frozenset(
        {"max_total_cost", "max_total_cost_kopecks", "min_total_cost", "min_total_cost_kopecks"}
    ),
    "cumulative": frozenset({"max_points", "max_total_points", "min_total_points"}),
    "ordinal": frozenset(),
}
_CATEGORY_KEYS = frozenset(
    {
        "id",
        "title",
        "ballot",
        "min_picks",
        "max_picks",
        "budget",
        "budget_kopecks",
        "max_cost",
        "max_cost_kopecks",
    }
).union(*_KIND_KEYS.values())


def _category(value: object, where: str) -> Category:
    """The category, with ``max_picks`` 0 where its kind lets it default (filled in by
    :func:`_category_defaults` once the projects are known)."""
    table = _table(value, where, _CATEGORY_KEYS)
    ballot = table.get("ballot", "approval")
    if ballot not in BALLOT_KINDS:
        raise ElectionDefinitionError(
            _path(where, "ballot"), f"{ballot!r} is not one of {', '.join(BALLOT_KINDS)}"
        )
    for key in table:
        owner = next((k for k, keys in _KIND_KEYS.items() if key in keys), ballot)
        if owner != ballot:
            raise ElectionDefinitionError(
                _path(where, key),
                f"is a limit of {owner} ballots; this category's ballot is {ballot!r}",
            )
    budget, budget_key = _money(table, "budget", where)
    max_cost, max_cost_key = _money(table, "max_cost", where)
    _positive(budget, _path(where, budget_key))
    _positive(max_cost, _path(where, max_cost_key))
    if max_cost > budget:
        raise ElectionDefinitionError(
            _path(where, max_cost_key),
            f"{format_uah(max_cost)} UAH exceeds the category's budget {format_uah(budget)} UAH",
        )
    if ballot in ("approval", "ordinal") or "max_picks" in table:
        max_picks = _integer(_required(table, "max_picks", where), _path(where, "max_picks"), 1)
    else:
        max_picks = 0
    min_picks = _integer(table.get("min_picks", 0), _path(where, "min_picks"), 0)
    if max_picks and min_picks > max_picks:
        raise ElectionDefinitionError(
            _path(where, "min_picks"), f"{min_picks} is more than max_picks {max_picks}"
        )
    max_total_cost: Kopecks | None = None
    min_total_cost = Kopecks(0)
    if ballot == "knapsack":
        max_total_cost = budget
        if "max_total_cost" in table or "max_total_cost_kopecks" in table:
            max_total_cost, key = _money(table, "max_total_cost", where)
            _positive(max_total_cost, _path(where, key))
        if "min_total_cost" in table or "min_total_cost_kopecks" in table:
            min_total_cost, key = _money(table, "min_total_cost", where)
            if min_total_cost < 0 or min_total_cost > max_total_cost:
                raise ElectionDefinitionError(
                    _path(where, key),
                    f"{format_uah(min_total_cost)} UAH is not between 0 and max_total_cost "
                    f"{format_uah(max_total_cost)} UAH",
                )
    max_points: int | None = None
    max_total_points: int | None = None
    min_total_points = 0
    if ballot == "cumulative":
        max_total_points = _integer(
            _required(table, "max_total_points", where), _path(where, "max_total_points"), 1
        )
        max_points = _integer(
            table.get("max_points", max_total_points), _path(where, "max_points"), 1
        )
        min_total_points = _integer(
            table.get("min_total_points", 0), _path(where, "min_total_points"), 0
        )
        if min_total_points > max_total_points:
            raise ElectionDefinitionError(
                _path(where, "min_total_points"),
                f"{min_total_points} is more than max_total_points {max_total_points}",
            )
    return Category(
        id=_item_id(_required(table, "id", where), _path(where, "id")),
        title=_title(_required(table, "title", where), _path(where, "title")),
        max_picks=max_picks,
        budget=budget,
        max_cost=max_cost,
        ballot=cast("BallotKind", ballot),
        min_picks=min_picks,
        max_total_cost=max_total_cost,
        min_total_cost=min_total_cost,
        max_points=max_points,
        max_total_points=max_total_points,
        min_total_points=min_total_points,
    )


def _category_defaults(category: Category, projects: int, where: str) -> Category:
    """``category`` with ``max_picks`` defaulted to its ``projects`` count, and refused if its
    minimums cannot be met by that many projects."""
    if category.max_picks == 0:
        category = replace(category, max_picks=projects)
        if category.min_picks > projects:
            raise ElectionDefinitionError(
                _path(where, "min_picks"),
                f"{category.min_picks} is more than the category's {projects} projects",
            )
    elif category.min_picks > projects:
        raise ElectionDefinitionError(
            _path(where, "min_picks"),
            f"{category.min_picks} is more than the category's {projects} projects",
        )
    return category


def _group_reader(categories: Mapping[str, Category]) -> Callable[[object, str], CategoryGroup]:
    def read(value: object, where: str) -> CategoryGroup:
        table = _table(value, where, frozenset({"id", "categories", "max_categories"}))
        group_id = _item_id(_required(table, "id", where), _path(where, "id"))
        members = _required(table, "categories", where)
        here = _path(where, "categories")
        if not isinstance(members, list | tuple) or not members:
            raise ElectionDefinitionError(here, "must be a non-empty list of category ids")
        listed: list[str] = []
        for i, member in enumerate(members):
            if not isinstance(member, str) or member not in categories:
                known = ", ".join(categories)
                raise ElectionDefinitionError(
                    _path(here, i), f"unknown category {member!r} (categories: {known})"
                )
            if member in listed:
                raise ElectionDefinitionError(_path(here, i), f"{member!r} is listed twice")
            listed.append(member)
        max_categories = _integer(
            _required(table, "max_categories", where), _path(where, "max_categories"), 1
        )
        return CategoryGroup(group_id, tuple(listed), max_categories)

    return read


_PROJECT_KEYS = frozenset({"id", "title", "category", "cost", "cost_kopecks", "district"})


def _project_reader(categories: Mapping[str, Category]) -> Callable[[object, str], Project]:
    def read(value: object, where: str) -> Project:
        table = _table(value, where, _PROJECT_KEYS)
        project_id = _project_id(_required(table, "id", where), _path(where, "id"))
        title = _title(_required(table, "title", where), _path(where, "title"))
        category_id = _required(table, "category", where)
        category = categories.get(category_id) if isinstance(category_id, str) else None
        if category is None:
            known = ", ".join(categories)
            raise ElectionDefinitionError(
                _path(where, "category"),
                f"unknown category {category_id!r} (categories: {known})",
            )
        cost, cost_key = _money(table, "cost", where)
        _positive(cost, _path(where, cost_key))
        if cost > category.max_cost:
            raise ElectionDefinitionError(
                _path(where, cost_key),
                f"{format_uah(cost)} UAH exceeds the category's maximum "
                f"{format_uah(category.max_cost)} UAH",
            )
        district = _text(_required(table, "district", where), _path(where, "district"))
        return Project(project_id, title, category.id, cost, district)

    return read


def _polling_point(value: object, where: str) -> PollingPoint:
    table = _table(value, where, frozenset({"id", "title"}))
    return PollingPoint(
        id=_item_id(_required(table, "id", where), _path(where, "id")),
        title=_title(_required(table, "title", where), _path(where, "title")),
    )


def _rule(value: object) -> AllocationRule:
    where = "rule"
    table = _table(value, where, frozenset({"method", "min_votes", "tie_break", "seed"}))
    method = _required(table, "method", where)
    methods = get_args(AllocationMethod)
    if method not in methods:
        raise ElectionDefinitionError(
            "rule.method", f"{method!r} is not one of {', '.join(methods)}"
        )
    min_votes = _integer(table.get("min_votes", 0), "rule.min_votes", 0)
    raw_breaks = table.get("tie_break", [])
    if not isinstance(raw_breaks, list | tuple):
        raise ElectionDefinitionError("rule.tie_break", "must be a list")
    breaks: list[str] = []
    for i, criterion in enumerate(raw_breaks):
        here = _path("rule.tie_break", i)
        if criterion not in TIE_BREAKS:
            raise ElectionDefinitionError(
                here, f"{criterion!r} is not one of {', '.join(TIE_BREAKS)}"
            )
        if criterion in breaks:
            raise ElectionDefinitionError(here, f"{criterion!r} is listed twice")
        if "lottery" in breaks:
            raise ElectionDefinitionError(here, "nothing can follow 'lottery': it leaves no tie")
        if criterion.startswith("cost-") and any(b.startswith("cost-") for b in breaks):
            raise ElectionDefinitionError(here, "cost-ascending and cost-descending contradict")
        breaks.append(criterion)
    seed = table.get("seed", "")
    if not isinstance(seed, str):
        raise ElectionDefinitionError("rule.seed", "must be text")
    if "lottery" in breaks and not seed.strip():
        raise ElectionDefinitionError("rule.seed", "is required when tie_break uses 'lottery'")
    return AllocationRule(
        method=cast("AllocationMethod", method),
        min_votes=min_votes,
        tie_break=tuple(breaks),
        seed=seed,
    )


_ELECTION_KEYS = frozenset(
    {
        "id",
        "title",
        "timezone",
        "voting_opens",
        "voting_closes",
        "paper_deadline",
        "budget",
        "budget_kopecks",
        "categories",
        "projects",
        "polling_points",
        "rule",
        "voter_token_scheme",
        "multiple_ballots",
        "double_entry",
        "results",
        "category_groups",
    }
)


def election_from_dict(document: Mapping[str, Any]) -> Election:
    """The election described by ``document`` (parsed TOML, or JSON from
    :func:`election_to_dict`), validated; raises :class:`ElectionDefinitionError`."""
    table = _table(document, "", _ELECTION_KEYS)
    election_id = _required(table, "id", "")
    if not isinstance(election_id, str) or _ELECTION_ID.fullmatch(election_id) is None:
        raise ElectionDefinitionError(
            "id",
            f"{election_id!r} is not an election id: 2-63 lowercase letters, digits and '-', "
            "starting with a letter or digit",
        )
    title = _title(_required(table, "title", ""), "title")
    zone = _zone(_required(table, "timezone", ""))
    opens = _moment(_required(table, "voting_opens", ""), "voting_opens", zone)
    closes = _moment(_required(table, "voting_closes", ""), "voting_closes", zone)
    deadline = _moment(_required(table, "paper_deadline", ""), "paper_deadline", zone)
    if not opens < closes:
        raise ElectionDefinitionError(
            "voting_closes", f"{closes.isoformat()} is not after voting_opens {opens.isoformat()}"
        )
    if deadline < closes:
        raise ElectionDefinitionError(
            "paper_deadline",
            f"{deadline.isoformat()} is before voting_closes {closes.isoformat()}",
        )

    categories = _items(
        _required(table, "categories", ""), "categories", _category, allow_empty=False
    )
    _unique(categories, "categories")
    by_id = {c.id: c for c in categories}
    projects = _items(
        _required(table, "projects", ""),
        "projects",
        _project_reader(by_id),
        allow_empty=False,
    )
    _unique(projects, "projects")
    counts = {c.id: 0 for c in categories}
    for project in projects:
        counts[project.category] += 1
    for i, category in enumerate(categories):
        if not counts[category.id]:
            raise ElectionDefinitionError(
                _path("categories", i), f"no project is in category {category.id!r}"
            )
    categories = tuple(
        _category_defaults(c, counts[c.id], _path("categories", i))
        for i, c in enumerate(categories)
    )
    groups = _items(
        table.get("category_groups", []),
        "category_groups",
        _group_reader(by_id),
        allow_empty=True,
    )
    _unique(groups, "category_groups")
    points = _items(
        table.get("polling_points", []), "polling_points", _polling_point, allow_empty=True
    )
    _unique(points, "polling_points")
    rule = _rule(_required(table, "rule", ""))

    scheme = table.get("voter_token_scheme", "hmac-sha256")
    if scheme not in VOTER_TOKEN_SCHEMES:
        raise ElectionDefinitionError(
            "voter_token_scheme", f"{scheme!r} is not one of {', '.join(VOTER_TOKEN_SCHEMES)}"
        )
    results = table.get("results", "open")
    if results not in RESULTS_POLICIES:
        raise ElectionDefinitionError(
            "results",
            f"{results!r} is not one of {', '.join(RESULTS_POLICIES)} (sealed-until-close "
            "withholds entries and totals until voting closes)",
        )
    total = Kopecks(sum(c.budget for c in categories))
    if "budget" in table or "budget_kopecks" in table:
        stated, key = _money(table, "budget", "")
        if stated != total:
            raise ElectionDefinitionError(
                key,
                f"{format_uah(stated)} UAH differs from the categories' total "
                f"{format_uah(total)} UAH",
            )
    return Election(
        id=election_id,
        title=title,
        timezone=zone.key,
        voting_opens=opens,
        voting_closes=closes,
        paper_deadline=deadline,
        categories=categories,
        projects=projects,
        polling_points=points,
        rule=rule,
        voter_token_scheme=scheme,
        multiple_ballots=_boolean(table, "multiple_ballots", "", True),
        double_entry=_boolean(table, "double_entry", "", False),
        results=cast("ResultsPolicy", results),
        category_groups=groups,
    )


# -- writing -------------------------------------------------------------------------------------


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def election_to_dict(election: Election) -> dict[str, Any]:
    """``election`` as JSON-able data: money in integer kopecks (``*_kopecks`` keys), datetimes
    as ISO 8601 in UTC. :func:`election_from_dict` reads it back equal."""
    document: dict[str, Any] = {
        "id": election.id,
        "title": dict(election.title),
        "timezone": election.timezone,
        "voting_opens": _utc(election.voting_opens),
        "voting_closes": _utc(election.voting_closes),
        "paper_deadline": _utc(election.paper_deadline),
        "budget_kopecks": int(election.total_budget),
        "categories": [_category_to_dict(c) for c in election.categories],
        "projects": [
            {
                "id": p.id,
                "title": dict(p.title),
                "category": p.category,
                "cost_kopecks": int(p.cost),
                "district": p.district,
            }
            for p in election.projects
        ],
        "polling_points": [{"id": p.id, "title": dict(p.title)} for p in election.polling_points],
        "rule": {
            "method": election.rule.method,
            "min_votes": election.rule.min_votes,
            "tie_break": list(election.rule.tie_break),
            "seed": election.rule.seed,
        },
        "voter_token_scheme": election.voter_token_scheme,
        "multiple_ballots": election.multiple_ballots,
        "double_entry": election.double_entry,
        "results": election.results,
    }
    if election.category_groups:
        document["category_groups"] = [
            {"id": g.id, "categories": list(g.categories), "max_categories": g.max_categories}
            for g in election.category_groups
        ]
    return document


def _category_to_dict(category: Category) -> dict[str, Any]:
    # An approval category without min_picks writes exactly what it always did, so the
    # definitions of elections signed before ballot kinds read and write unchanged.
    document: dict[str, Any] = {
        "id": category.id,
        "title": dict(category.title),
        "max_picks": category.max_picks,
        "budget_kopecks": int(category.budget),
        "max_cost_kopecks": int(category.max_cost),
    }
    if category.ballot != "approval":
        document["ballot"] = category.ballot
    if category.min_picks:
        document["min_picks"] = category.min_picks
    if category.ballot == "knapsack":
        assert category.max_total_cost is not None
        document["max_total_cost_kopecks"] = int(category.max_total_cost)
        document["min_total_cost_kopecks"] = int(category.min_total_cost)
    if category.ballot == "cumulative":
        document["max_points"] = category.max_points
        document["max_total_points"] = category.max_total_points
        document["min_total_points"] = category.min_total_points
    return document
