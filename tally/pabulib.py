"""The Pabulib ``.pb`` format: parse, write, and read an election out of it.

Pabulib (https://pabulib.org/format) files have three sections, in this order, each a line with the
section name, a header row, then ``;``-separated CSV rows (standard CSV quoting)::

    META
    key;value
    budget;5663326
    vote_type;approval
    ...
    PROJECTS
    project_id;cost;votes;name;selected
    307;495800;2941;Nowe drogi...;1
    VOTES
    voter_id;vote;voting_method
    5;21,258,307;internet

:func:`parse_pabulib` keeps every value as the exact string in the file and :func:`write_pabulib`
writes it back, so that ``parse_pabulib(write_pabulib(f)) == f``. The other functions interpret
the strings: money into integer kopecks (the files give amounts in the currency's main unit,
possibly with decimals; they are converted exactly, one main unit being 100 minor units), ballots,
totals and the city's rule.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from tally.winners import DEFAULT_TIE_BREAK, Candidate, greedy

__all__ = [
    "SUPPORTED_VOTE_TYPES",
    "VOTE_TYPES",
    "FundedComparison",
    "GreedySettings",
    "LimitBreach",
    "PabulibBallot",
    "PabulibError",
    "PabulibFile",
    "UnsupportedRuleError",
    "UnsupportedVoteTypeError",
    "ballots",
    "breaches",
    "budget_kopecks",
    "candidates",
    "categories",
    "compare_funded",
    "file_totals",
    "file_votes",
    "greedy_settings",
    "max_length",
    "max_points",
    "max_sum_cost",
    "max_sum_points",
    "min_length",
    "min_points",
    "min_sum_cost",
    "min_sum_points",
    "parse_pabulib",
    "project_cost_kopecks",
    "recount",
    "recount_votes",
    "rule",
    "selected",
    "threshold",
    "vote_type",
    "voting_method",
    "write_pabulib",
]

VOTE_TYPES = ("approval", "cumulative", "ordinal", "scoring")
"""The ballot types the Pabulib format defines (META ``vote_type``)."""

SUPPORTED_VOTE_TYPES = ("approval", "cumulative", "ordinal")
"""The ballot types whose ballots and totals this module interprets."""

_SECTIONS = ("META", "PROJECTS", "VOTES")
_AMOUNT = re.compile(r"[0-9]+(?:[.,][0-9]+)?")
_COUNT = re.compile(r"[0-9]+")
_NEEDS_QUOTES = re.compile(r'[;"\r\n]')


class PabulibError(ValueError):
    """A Pabulib file is malformed, or a value in it cannot be read as required.

    ``line`` is the 1-based line of the offending row in the parsed text, when known.
    """

    def __init__(self, line: int | None, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}" if line is not None else message)


class UnsupportedVoteTypeError(PabulibError):
    """The file's ``vote_type`` is not one this operation interprets."""

    def __init__(self, line: int | None, vote_type: str, supported: Sequence[str]) -> None:
        self.vote_type = vote_type
        super().__init__(
            line,
            f"vote_type {vote_type!r} is not supported here (supported: {', '.join(supported)})",
        )


class UnsupportedRuleError(PabulibError):
    """The file's ``rule`` is not one of the greedy rules that :func:`greedy` reproduces."""

    def __init__(self, line: int | None, rule: str) -> None:
        self.rule = rule
        super().__init__(
            line,
            f"rule {rule!r} is not supported (supported: {', '.join(_GREEDY_RULES)})",
        )


@dataclass
class PabulibFile:
    """A Pabulib file as strings: META key/values, and one dict per PROJECTS and VOTES row.

    The rows' keys are the section's header, in order. The ``*_lines`` fields give the line of
    each entry in the parsed text, for error messages; they are empty for files built in code and
    take no part in equality.
    """

    meta: dict[str, str]
    projects: list[dict[str, str]]
    votes: list[dict[str, str]]
    meta_lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    project_lines: list[int] = field(default_factory=list, compare=False, repr=False)
    vote_lines: list[int] = field(default_factory=list, compare=False, repr=False)


# --- parse and write -----------------------------------------------------------------------------


def parse_pabulib(text: str) -> PabulibFile:
    """Parse the text of a ``.pb`` file, strictly.

    Sections must come in the order META, PROJECTS, VOTES, each once, each followed by its
    header: ``key;value`` for META, a header starting with ``project_id`` and holding ``cost`` for
    PROJECTS, one starting with ``voter_id`` and holding ``vote`` for VOTES. Every row must have as
    many fields as its header; META keys, project ids and voter ids must be unique. Blank lines
    are ignored; a UTF-8 byte order mark and either line ending are accepted. Raises
    :class:`PabulibError` naming the line.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";", strict=True)
    parsed = PabulibFile(meta={}, projects=[], votes=[])
    section_index = -1
    header: list[str] | None = None
    ids: set[str] = set()
    line = 0
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise PabulibError(start, f"bad CSV: {exc}") from None
        line = start
        if not row or row == [""]:
            continue
        if len(row) == 1 and row[0].strip().upper() in _SECTIONS:
            name = row[0].strip().upper()
            expected = _SECTIONS[section_index + 1] if section_index + 1 < 3 else None
            if name != expected:
                raise PabulibError(
                    line,
                    f"section {name} out of place; expected "
                    + (expected if expected else "no more sections"),
                )
            section_index += 1
            header, ids = None, set()
            continue
        if section_index < 0:
            raise PabulibError(line, "the file must start with the META section")
        section = _SECTIONS[section_index]
        if header is None:
            header = _check_header(section, row, line)
            continue
        if len(row) != len(header):
            raise PabulibError(
                line, f"{section} row has {len(row)} fields, the header has {len(header)}"
            )
        if section == "META":
            key, value = row
            if key in parsed.meta:
                raise PabulibError(line, f"META key {key!r} repeated")
            parsed.meta[key] = value
            parsed.meta_lines[key] = line
            continue
        record = dict(zip(header, row, strict=True))
        if row[0] in ids:
            raise PabulibError(line, f"{header[0]} {row[0]!r} repeated")
        ids.add(row[0])
        if section == "PROJECTS":
            parsed.projects.append(record)
            parsed.project_lines.append(line)
        else:
            parsed.votes.append(record)
            parsed.vote_lines.append(line)
    if section_index < 2 or header is None:
        missing = _SECTIONS[section_index + 1] if section_index < 2 else "VOTES header"
        raise PabulibError(line or None, f"the file ends before {missing}")
    return parsed


def _check_header(section: str, row: list[str], line: int) -> list[str]:
    if len(set(row)) != len(row):
        raise PabulibError(line, f"{section} header repeats a column: {';'.join(row)}")
    if section == "META" and row != ["key", "value"]:
        raise PabulibError(line, "the META header must be key;value")
    if section == "PROJECTS" and (row[0] != "project_id" or "cost" not in row):
        raise PabulibError(line, "the PROJECTS header must start with project_id and have cost")
    if section == "VOTES" and (row[0] != "voter_id" or "vote" not in row):
        raise PabulibError(line, "the VOTES header must start with voter_id and have vote")
    return row


def write_pabulib(pb: PabulibFile) -> str:
    """The ``.pb`` text of a file: sections in order, ``\\n`` line ends, CSV quoting as needed.

    A field is quoted (with inner quotes doubled) when it holds ``;``, ``"``, or a line break.
    Every row of a section must have the same keys in the same order (they become the header).
    Empty sections get the minimal header (``project_id;cost``, ``voter_id;vote``).
    """
    lines = ["META", "key;value"]
    lines.extend(_csv_line(item) for item in pb.meta.items())
    for section, rows, default in (
        ("PROJECTS", pb.projects, ["project_id", "cost"]),
        ("VOTES", pb.votes, ["voter_id", "vote"]),
    ):
        header = list(rows[0]) if rows else default
        lines.append(section)
        lines.append(_csv_line(header))
        for number, row in enumerate(rows):
            if list(row) != header:
                raise ValueError(f"{section} row {number} has columns {list(row)}, not {header}")
            lines.append(_csv_line(row.values()))
    return "\n".join(lines) + "\n"


def _csv_line(fields: Iterable[str]) -> str:
    # The csv module's writer leaves a lone "\r" unquoted when the line end is "\n", and every
    # reader takes it for a line end: quote any line-break character, whatever the line end.
    return ";".join(
        '"' + value.replace('"', '""') + '"' if _NEEDS_QUOTES.search(value) else value
        for value in fields
    )


# --- values --------------------------------------------------------------------------------------


def _kopecks(text: str, what: str, line: int | None) -> int:
    """Exact minor units of an amount in main units (``1234``, ``1234.5``, ``1234,56``)."""
    if not _AMOUNT.fullmatch(text):
        raise PabulibError(line, f"{what} {text!r} is not an amount")
    minor = Decimal(text.replace(",", ".")) * 100
    if minor != minor.to_integral_value():
        raise PabulibError(line, f"{what} {text!r} has a fraction of a minor unit")
    return int(minor)


def _count(text: str, what: str, line: int | None) -> int:
    if not _COUNT.fullmatch(text):
        raise PabulibError(line, f"{what} {text!r} is not a whole number")
    return int(text)


def _meta_value(pb_meta: Mapping[str, str], key: str) -> str:
    try:
        return pb_meta[key]
    except KeyError:
        raise PabulibError(None, f"META has no {key!r}") from None


def budget_kopecks(meta: Mapping[str, str]) -> int:
    """META ``budget`` in kopecks (minor units), converted exactly."""
    return _kopecks(_meta_value(meta, "budget"), "budget", None)


def project_cost_kopecks(project: Mapping[str, str], line: int | None = None) -> int:
    """A PROJECTS row's ``cost`` in kopecks (minor units), converted exactly."""
    cost = project.get("cost")
    if cost is None:
        raise PabulibError(line, f"project {project.get('project_id')!r} has no cost")
    return _kopecks(cost, f"cost of project {project.get('project_id')!r}", line)


def vote_type(meta: Mapping[str, str]) -> str:
    """META ``vote_type``: ``approval``, ``cumulative``, ``ordinal`` or ``scoring``.

    Raises :class:`UnsupportedVoteTypeError` for anything else.
    """
    value = _meta_value(meta, "vote_type")
    if value not in VOTE_TYPES:
        raise UnsupportedVoteTypeError(None, value, VOTE_TYPES)
    return value


def _optional_count(meta: Mapping[str, str], key: str) -> int | None:
    value = meta.get(key)
    if value is None or value in ("", "None"):
        return None
    return _count(value, key, None)


def min_length(meta: Mapping[str, str]) -> int | None:
    """META ``min_length``: the fewest projects a ballot must name, if the file says."""
    return _optional_count(meta, "min_length")


def max_length(meta: Mapping[str, str]) -> int | None:
    """META ``max_length``: the most projects a ballot may name, if the file says."""
    return _optional_count(meta, "max_length")


def max_sum_points(meta: Mapping[str, str]) -> int | None:
    """META ``max_sum_points``: the points a cumulative ballot may spread, if the file says."""
    return _optional_count(meta, "max_sum_points")


def min_sum_points(meta: Mapping[str, str]) -> int | None:
    """META ``min_sum_points``: the fewest points a cumulative ballot must spread, if stated."""
    return _optional_count(meta, "min_sum_points")


def max_points(meta: Mapping[str, str]) -> int | None:
    """META ``max_points``: the most points one project may get on a cumulative ballot."""
    return _optional_count(meta, "max_points")


def min_points(meta: Mapping[str, str]) -> int | None:
    """META ``min_points``: the fewest points a project named on a cumulative ballot gets."""
    return _optional_count(meta, "min_points")


def _optional_amount(meta: Mapping[str, str], key: str) -> int | None:
    value = meta.get(key)
    if value is None or value in ("", "None"):
        return None
    return _kopecks(value, key, None)


def max_sum_cost(meta: Mapping[str, str]) -> int | None:
    """META ``max_sum_cost`` in kopecks: the cap on the cost of an approval ballot's projects
    (a knapsack ballot), if the file says."""
    return _optional_amount(meta, "max_sum_cost")


def min_sum_cost(meta: Mapping[str, str]) -> int | None:
    """META ``min_sum_cost`` in kopecks: the least cost an approval ballot's projects must add up
    to, if the file says."""
    return _optional_amount(meta, "min_sum_cost")


def categories(project: Mapping[str, str]) -> tuple[str, ...]:
    """A PROJECTS row's categories (``category`` or ``categories``, comma-separated), if any."""
    value = project.get("category", project.get("categories", ""))
    if value in ("", "None"):
        return ()
    return tuple(part.strip() for part in value.split(","))


def voting_method(vote: Mapping[str, str]) -> str | None:
    """A VOTES row's ``voting_method`` (``internet``, ``paper``...), if the file records it."""
    value = vote.get("voting_method")
    return None if value in (None, "", "None") else value


def rule(meta: Mapping[str, str]) -> str:
    """META ``rule`` as written: ``greedy``, ``greedy-threshold``, ``greedy-no-skip``,
    ``unknown``, ``equalshares``...
    """
    return _meta_value(meta, "rule")


def threshold(meta: Mapping[str, str]) -> int:
    """The least votes (points) a project needs to be eligible: META
    ``min_project_score_threshold``, 0 when absent.
    """
    return _optional_count(meta, "min_project_score_threshold") or 0


def selected(pb: PabulibFile) -> frozenset[str]:
    """The projects the city funded under its rule: ``selected == "1"``.

    Other values are not part of the rule's outcome (``2`` marks special cases such as Gdynia's
    turnout award, explained in the file's comment).
    """
    if pb.projects and "selected" not in pb.projects[0]:
        raise PabulibError(pb.project_lines[0] if pb.project_lines else None, "no selected column")
    return frozenset(p["project_id"] for p in pb.projects if p["selected"] == "1")


def _with_lines(
    rows: Sequence[dict[str, str]], lines: Sequence[int]
) -> list[tuple[dict[str, str], int | None]]:
    if len(lines) == len(rows):
        return list(zip(rows, lines, strict=True))
    return [(row, None) for row in rows]


# --- ballots and totals --------------------------------------------------------------------------


@dataclass(frozen=True)
class PabulibBallot:
    """One VOTES row, interpreted.

    ``projects`` in the file's order (on ordinal ballots: most preferred first); ``points``
    parallel to it on cumulative ballots (the voter's points) and on ordinal ballots (the
    positional score k, k-1, ... with k = META ``max_length``, else the longest ranking), empty
    on approval ballots.
    """

    voter_id: str
    projects: tuple[str, ...]
    points: tuple[int, ...]
    voting_method: str | None

    def weights(self) -> dict[str, int]:
        """Project id to points (1 for each approval)."""
        if not self.points:
            return dict.fromkeys(self.projects, 1)
        return dict(zip(self.projects, self.points, strict=True))


def ballots(pb: PabulibFile) -> list[PabulibBallot]:
    """Every VOTES row as a ballot, checked against PROJECTS.

    Approval: ``vote`` is a comma-separated list of project ids (possibly empty). Cumulative:
    ``vote`` and ``points`` are parallel comma-separated lists. Ordinal: ``vote`` is the ranking,
    most preferred first, scored by position. A ballot may not name a project twice or one
    missing from PROJECTS. Other vote types raise :class:`UnsupportedVoteTypeError`.
    """
    kind = _supported_vote_type(pb)
    known = {p["project_id"] for p in pb.projects}
    top = 0
    if kind == "ordinal":
        stated = max_length(pb.meta)
        top = stated if stated is not None else max(_lengths(pb), default=0)
    result: list[PabulibBallot] = []
    for row, line in _with_lines(pb.votes, pb.vote_lines):
        chosen = tuple(row["vote"].split(",")) if row["vote"] else ()
        for pid in chosen:
            if pid not in known:
                raise PabulibError(line, f"ballot names unknown project {pid!r}")
        if len(set(chosen)) != len(chosen):
            raise PabulibError(line, "ballot names a project twice")
        points: tuple[int, ...] = ()
        if kind == "cumulative":
            if "points" not in row:
                raise PabulibError(line, "cumulative VOTES need a points column")
            listed = row["points"].split(",") if row["points"] else []
            if len(listed) != len(chosen):
                raise PabulibError(line, f"{len(chosen)} projects but {len(listed)} points")
            points = tuple(_count(p, "points", line) for p in listed)
        elif kind == "ordinal":
            if len(chosen) > top:
                raise PabulibError(line, f"a ranking of {len(chosen)} but max_length is {top}")
            points = tuple(range(top, top - len(chosen), -1))
        result.append(
            PabulibBallot(
                voter_id=row["voter_id"],
                projects=chosen,
                points=points,
                voting_method=voting_method(row),
            )
        )
    return result


def _lengths(pb: PabulibFile) -> list[int]:
    return [len(row["vote"].split(",")) if row["vote"] else 0 for row in pb.votes]


def _supported_vote_type(pb: PabulibFile) -> str:
    kind = vote_type(pb.meta)
    if kind not in SUPPORTED_VOTE_TYPES:
        raise UnsupportedVoteTypeError(pb.meta_lines.get("vote_type"), kind, SUPPORTED_VOTE_TYPES)
    return kind


def file_totals(pb: PabulibFile) -> dict[str, int]:
    """Each project's score as the file states it: ``votes`` (approval), ``score`` (cumulative
    and ordinal)."""
    return _column(pb, "votes" if _supported_vote_type(pb) == "approval" else "score")


def file_votes(pb: PabulibFile) -> dict[str, int]:
    """Each project's ``votes`` column: the voters who chose it, whatever the ballot kind."""
    _supported_vote_type(pb)
    return _column(pb, "votes")


def _column(pb: PabulibFile, column: str) -> dict[str, int]:
    totals: dict[str, int] = {}
    for project, line in _with_lines(pb.projects, pb.project_lines):
        if column not in project:
            raise PabulibError(line, f"PROJECTS has no {column} column")
        totals[project["project_id"]] = _count(project[column], column, line)
    return totals


def recount(pb: PabulibFile) -> dict[str, int]:
    """Each project's score counted from the VOTES rows: approvals, points on cumulative,
    positional score on ordinal ballots."""
    totals = {p["project_id"]: 0 for p in pb.projects}
    for ballot in ballots(pb):
        for pid, weight in ballot.weights().items():
            totals[pid] += weight
    return totals


def recount_votes(pb: PabulibFile) -> dict[str, int]:
    """Each project's voters counted from the VOTES rows (the ``votes`` column)."""
    totals = {p["project_id"]: 0 for p in pb.projects}
    for ballot in ballots(pb):
        for pid in ballot.projects:
            totals[pid] += 1
    return totals


@dataclass(frozen=True)
class LimitBreach:
    """A ballot outside a limit its own file states: ``key`` is the META key (``max_sum_cost``,
    ``max_length``...), ``stated`` its value, ``value`` the ballot's (kopecks for costs)."""

    voter_id: str
    line: int | None
    key: str
    stated: int
    value: int

    def __str__(self) -> str:
        """``voter 137 (line 29): max_sum_cost 110411, the ballot has 209267`` (costs in the
        file's main units, as META writes them)."""
        where = f" (line {self.line})" if self.line else ""
        stated, value = (
            (_main_units(self.stated), _main_units(self.value))
            if self.key.endswith("_cost")
            else (str(self.stated), str(self.value))
        )
        return f"voter {self.voter_id}{where}: {self.key} {stated}, the ballot has {value}"


def _main_units(kopecks: int) -> str:
    whole, fraction = divmod(kopecks, 100)
    return str(whole) if fraction == 0 else f"{whole}.{fraction:02d}"


def breaches(pb: PabulibFile) -> list[LimitBreach]:
    """Every ballot that breaks a limit its file's META states, once per limit broken.

    Lengths (``min_length``, ``max_length``) hold for every kind; costs (``min_sum_cost``,
    ``max_sum_cost``, in kopecks) for approval ballots; points (``min_points``, ``max_points``
    per project, ``min_sum_points``, ``max_sum_points``) for cumulative ones. An ordinal ranking
    longer than ``max_length`` cannot be scored and is an error of :func:`ballots` instead.
    """
    kind = _supported_vote_type(pb)
    meta = pb.meta
    costs = {
        p["project_id"]: project_cost_kopecks(p, line)
        for p, line in _with_lines(pb.projects, pb.project_lines)
    }
    lines = pb.vote_lines if len(pb.vote_lines) == len(pb.votes) else [None] * len(pb.votes)
    found: list[LimitBreach] = []
    checks: list[tuple[str, int | None, bool, str]] = [
        ("min_length", min_length(meta), False, "length"),
        ("max_length", max_length(meta), True, "length"),
    ]
    if kind == "approval":
        checks += [
            ("min_sum_cost", min_sum_cost(meta), False, "cost"),
            ("max_sum_cost", max_sum_cost(meta), True, "cost"),
        ]
    if kind == "cumulative":
        checks += [
            ("min_points", min_points(meta), False, "least"),
            ("max_points", max_points(meta), True, "most"),
            ("min_sum_points", min_sum_points(meta), False, "points"),
            ("max_sum_points", max_sum_points(meta), True, "points"),
        ]
    for ballot, line in zip(ballots(pb), lines, strict=True):
        measure = {
            "length": len(ballot.projects),
            "cost": sum(costs[pid] for pid in ballot.projects),
            "points": sum(ballot.points),
            "least": min(ballot.points, default=0),
            "most": max(ballot.points, default=0),
        }
        for key, stated, is_max, what in checks:
            if stated is None or (what == "least" and not ballot.points):
                continue
            value = measure[what]
            if (value > stated) if is_max else (value < stated):
                found.append(LimitBreach(ballot.voter_id, line, key, stated, value))
    return found


def candidates(pb: PabulibFile) -> list[Candidate]:
    """The projects as :class:`~tally.winners.Candidate` s: cost in kopecks, recounted votes
    (voters) and score (approvals, points, positional scores)."""
    score, votes = recount(pb), recount_votes(pb)
    return [
        Candidate(
            id=p["project_id"],
            cost=project_cost_kopecks(p, line),
            votes=votes[p["project_id"]],
            score=score[p["project_id"]],
        )
        for p, line in _with_lines(pb.projects, pb.project_lines)
    ]


# --- the city's rule -----------------------------------------------------------------------------

_GREEDY_RULES = ("greedy", "greedy-threshold", "greedy-no-skip")


@dataclass(frozen=True)
class GreedySettings:
    """How :func:`~tally.winners.greedy` reproduces a Pabulib greedy ``rule``."""

    skip: bool
    min_votes: int


def greedy_settings(meta: Mapping[str, str]) -> GreedySettings:
    """The :func:`~tally.winners.greedy` options for META ``rule`` and threshold.

    ``greedy`` and ``greedy-threshold`` skip projects that do not fit, ``greedy-no-skip`` stops at
    the first; the threshold (:func:`threshold`) applies to each. Any other rule raises
    :class:`UnsupportedRuleError`.
    """
    name = rule(meta)
    if name not in _GREEDY_RULES:
        raise UnsupportedRuleError(None, name)
    return GreedySettings(skip=name != "greedy-no-skip", min_votes=threshold(meta))


@dataclass(frozen=True)
class FundedComparison:
    """Our funded set against the file's ``selected == 1`` set.

    ``rule`` says what we ran (with ``(fallback)`` when the file's rule is not reproducible and
    plain greedy was used); ``missing`` were selected by the city but not by us, ``extra`` the
    other way round.
    """

    rule: str
    expected: frozenset[str]
    ours: frozenset[str]
    missing: frozenset[str]
    extra: frozenset[str]

    @property
    def matches(self) -> bool:
        """Whether both sets are equal."""
        return self.expected == self.ours


def compare_funded(
    pb: PabulibFile, *, tie_break: Sequence[str] = DEFAULT_TIE_BREAK, seed: str = ""
) -> FundedComparison:
    """Run the file's greedy rule on its recounted ballots and compare with ``selected``.

    Files whose rule is not a greedy one (e.g. ``unknown``) are run with plain greedy over the
    whole budget, and the comparison says so: the differences are the report.
    """
    try:
        settings = greedy_settings(pb.meta)
        used = rule(pb.meta)
    except UnsupportedRuleError as exc:
        settings = GreedySettings(skip=True, min_votes=threshold(pb.meta))
        used = f"greedy (fallback for rule {exc.rule!r})"
    outcome = greedy(
        candidates(pb),
        budget_kopecks(pb.meta),
        skip=settings.skip,
        min_votes=settings.min_votes,
        tie_break=tie_break,
        seed=seed,
    )
    expected = selected(pb)
    ours = frozenset(outcome.funded)
    return FundedComparison(
        rule=used, expected=expected, ours=ours, missing=expected - ours, extra=ours - expected
    )
