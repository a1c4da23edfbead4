"""``uchast import-pabulib``: replay a real election from a Pabulib file through the write path.

The file's META and PROJECTS become an election definition (:func:`plan_import`); then every
VOTES row is cast as a signed ballot through the write path the HTTP endpoints use
(:func:`import_pabulib`, :class:`ledger.casting.Casting`): sign, verify, read the voter's
entries, decide with :mod:`votes.rules`, append under the DCB condition. Nothing is counted
here: the totals are the live tally's, replayed from the log afterwards and compared with the
file's ``votes`` and ``score`` columns (``score`` is ``votes`` on approval files).

How the file maps onto an election:

- **id**: the file name without ``.pb``, lowercased, transliterated to ASCII, every run of other
  characters turned into ``-`` (``Poland_Warszawa_2023_Wola.pb`` → ``poland-warszawa-2023-wola``),
  at most 63 characters; ``--election`` overrides it.
- **projects**: a Pabulib project id is kept exactly when it is an uchast project id (1-64 of
  ``A-Za-z0-9._/-``, starting with a letter or digit: Gdynia's ``BAD/0018`` stays
  ``BAD/0018``); any other id has every character outside ``A-Za-z0-9._-`` replaced by ``-``
  (a clash gets ``-2``, ``-3``...), said in the report, and its title ends with
  ``[Pabulib id ...]``. Costs and budgets are converted to kopecks (minor units) exactly.
- **ballot kind and limits**: ``vote_type`` approval → ``approval`` (``min_length`` →
  ``min_picks``, ``max_length`` → ``max_picks``, else no limit: the number of projects), or
  ``knapsack`` when the file states ``max_sum_cost``/``min_sum_cost`` (→ ``max_total_cost``,
  ``min_total_cost``); cumulative → ``cumulative`` (``max_points``, ``max_sum_points`` →
  ``max_total_points``, ``min_sum_points`` → ``min_total_points``, lengths → picks); ordinal →
  ``ordinal`` (``max_length`` → ``max_picks``, which scores a first place, as the file's
  ``score``; ``min_length`` → ``min_picks``). Online and paper ballots carry ``projects``,
  ``points`` or ``ranking`` (most preferred first) accordingly.
- **ballots outside the file's own limits** (some Warsaw 2017 files hold knapsack ballots over
  ``max_sum_cost`` that the city counted): the published totals count them, so they are cast,
  and knowingly: each such limit is widened in the definition just enough to admit them (to the
  most expensive ballot's cost, the longest ballot...), the category's title says so in the
  signed definition (``the file's limits widened: max_sum_cost 110411 -> 123456, for 2
  ballots the city counted outside them``), and the report lists every such ballot by voter id
  and line (the summary and ``--report FILE``). The rules replayed by the auditor hold the
  widened limits, so no ballot is accepted that the definition refuses. An ordinal ranking
  longer than ``max_length`` cannot be scored as the file scores it: such a file is refused.
- **categories**: Pabulib's ``category`` column is thematic (a Wola project has up to three) and a
  file has one budget, so by default there is one category, ``all``, with the file's budget.
  Budget categories (approval files without a cost limit only) are used when their budgets are
  known: META ``budget_by_category`` (``id:amount,id:amount``, written by ``uchast export
  pabulib``) or ``--category-budget NAME=AMOUNT``; then every project must have exactly one
  category, and a category's maximum is META ``max_length_by_category`` or the most projects
  one ballot names in it.
- **rule**: ``greedy``/``greedy-threshold`` → greedy, ``greedy-no-skip`` → greedy-no-skip, with
  ``min_project_score_threshold`` as ``min_votes``; any other rule falls back to greedy (said in
  the report) unless ``--rule`` chooses. Ties: cost ascending, then the lottery with the seed
  ``pabulib-sha256:<hex SHA-256 of the file>``, published in the definition.
- **window**: ``date_begin`` 00:00 to ``date_end`` 23:59:59 in the country's time zone (Poland
  Europe/Warsaw, Hungary Europe/Budapest...; UTC otherwise; ``--timezone`` overrides), or the
  whole ``instance`` year when the dates are absent. Pabulib has no per-ballot times: every
  ballot's ``cast_at`` is the opening moment. The ballots are keyed now, so the paper deadline is
  a day after the import (the auditor compares it with each entry's ``recorded_at``).
- **channels**: ``voting_method`` ``internet`` (or none) → an online ballot signed by the site
  key; any other method → a paper ballot at a polling point named after it (``paper``), signed
  by that point's clerk key.
- **voters**: the voter token is ``voter_token(voter key, election id, identity)``, the identity
  being the file's ``voter_id`` zero-padded to 10 digits when every id is at most 12 digits and the
  padding keeps them distinct, else the row number (1-based, 12 digits). The voter key is
  generated, new for every import.

``scoring`` files are refused before anything is written (uchast has no such ballot). An
empty paper row becomes a spoiled ballot; an empty online row cannot be a ballot and is reported
as skipped.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import sys
import unicodedata
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from time import monotonic
from typing import Any
from zoneinfo import ZoneInfo

from tqdm import tqdm

from ledger.casting import Casting, check_election_size, create_election
from ledger.keydir import keys_root, new_voter_key, private_directory
from ledger.keys import SignerKey, sign_envelope
from ledger.log import Ledger
from ledger.store import open_store
from tally.export import replay_tally
from tally.pabulib import (
    LimitBreach,
    PabulibBallot,
    PabulibError,
    PabulibFile,
    UnsupportedRuleError,
    ballots,
    breaches,
    budget_kopecks,
    categories,
    file_totals,
    file_votes,
    greedy_settings,
    max_length,
    max_points,
    max_sum_cost,
    max_sum_points,
    min_length,
    min_points,
    min_sum_cost,
    min_sum_points,
    parse_pabulib,
    project_cost_kopecks,
    threshold,
    vote_type,
)
from tally.results import allocate
from votes.election import Election, election_from_dict
from votes.errors import VoteRefusedError
from votes.tokens import voter_token

__all__ = [
    "TIMEZONES",
    "ImportKeys",
    "ImportPlan",
    "ImportReport",
    "PabulibImportError",
    "PlannedBallot",
    "election_id_from_name",
    "import_pabulib",
    "map_project_ids",
    "plan_import",
]

TIMEZONES = {
    "Poland": "Europe/Warsaw",
    "Hungary": "Europe/Budapest",
    "Ukraine": "Europe/Kyiv",
    "Netherlands": "Europe/Amsterdam",
    "France": "Europe/Paris",
    "Germany": "Europe/Berlin",
    "Switzerland": "Europe/Zurich",
    "Spain": "Europe/Madrid",
    "Portugal": "Europe/Lisbon",
    "Italy": "Europe/Rome",
    "Czechia": "Europe/Prague",
    "Czech Republic": "Europe/Prague",
    "Lithuania": "Europe/Vilnius",
    "Latvia": "Europe/Riga",
    "Estonia": "Europe/Tallinn",
}
"""A country's time zone, for the voting window (countries with one zone only)."""

ONLINE_METHODS = frozenset({"internet", "online", "electronic", "e-voting"})
"""``voting_method`` values cast as online ballots; any other is a paper polling point."""

ONE_CATEGORY = "all"
KINDS = {"approval": "approval", "cumulative": "cumulative", "ordinal": "ordinal"}
"""Pabulib ``vote_type`` → uchast ballot kind (approval with a cost limit → ``knapsack``)."""

# The project id syntax of votes.election (kept as in the file when it fits).
_ITEM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}", re.ASCII)
_NOT_ITEM = re.compile(r"[^A-Za-z0-9._-]+", re.ASCII)
_NOT_SLUG = re.compile(r"[^a-z0-9]+", re.ASCII)
_LANGUAGE = re.compile(r"[a-z]{2,3}", re.ASCII)
_DOTTED_DATE = re.compile(r"([0-9]{1,2})\.([0-9]{1,2})\.([0-9]{4})")
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_AMOUNT = re.compile(r"[0-9]+(?:[.,][0-9]+)?")
_TRANSLIT = str.maketrans(
    {"ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ß": "ss", "ø": "o", "Ø": "O", "æ": "ae", "œ": "oe"}
)


class PabulibImportError(ValueError):
    """The file cannot be imported as asked; nothing has been written. One line, for the CLI."""


# --- ids -----------------------------------------------------------------------------------------


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_TRANSLIT))
    return decomposed.encode("ascii", "ignore").decode("ascii")


def election_id_from_name(name: str) -> str:
    """An election id from a file name: ``Poland_Warszawa_2023_Wola.pb`` →
    ``poland-warszawa-2023-wola`` (``[a-z0-9-]``, 2-63 characters)."""
    stem = name[:-3] if name.lower().endswith(".pb") else name
    slug = _NOT_SLUG.sub("-", _ascii(stem).lower()).strip("-")
    slug = slug[:63].rstrip("-")
    if len(slug) < 2:
        slug = f"pb-{slug}".rstrip("-") if slug else "pabulib"
    return slug


def _item_slug(text: str, fallback: str) -> str:
    slug = _NOT_ITEM.sub("-", _ascii(text)).strip("-._")[:64].rstrip("-._")
    return slug if slug else fallback


def map_project_ids(pabulib_ids: Sequence[str]) -> dict[str, str]:
    """Pabulib project id → uchast project id: kept exactly when it is a valid project id (1-64
    of ``A-Za-z0-9._/-``, starting with a letter or digit), else characters outside
    ``A-Za-z0-9._-`` become ``-``; clashes get ``-2``, ``-3``... (see the module docstring)."""
    mapping: dict[str, str] = {}
    taken = {pid for pid in pabulib_ids if _ITEM_ID.fullmatch(pid)}
    for pid in pabulib_ids:
        if _ITEM_ID.fullmatch(pid):
            mapping[pid] = pid
            continue
        base = _item_slug(pid, "p")
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            suffix = f"-{n}"
            candidate = base[: 64 - len(suffix)] + suffix
        taken.add(candidate)
        mapping[pid] = candidate
    return mapping


def _category_ids(names: Sequence[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        base = _item_slug(name.lower().replace(" ", "-"), "category")
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base[:60]}-{n}"
        taken.add(candidate)
        mapping[name] = candidate
    return mapping


# --- the plan ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedBallot:
    """One VOTES row as it will be cast: ``point`` None for online, else the polling point.

    ``projects`` in the file's order (a ranking on ordinal ballots); ``points`` parallel to it
    on cumulative ballots, else empty.
    """

    line: int | None
    voter_id: str
    identity: str
    projects: tuple[str, ...]
    point: str | None
    points: tuple[int, ...] = ()


@dataclass(frozen=True)
class ImportPlan:
    """The election a file defines and the ballots to cast, all checked before any write."""

    election: Election
    ballots: tuple[PlannedBallot, ...]
    project_ids: dict[str, str]  # Pabulib id -> uchast id
    expected_totals: dict[str, int]  # uchast id -> the file's votes column
    selected: frozenset[str]  # uchast ids with selected == 1 (empty when the file has no column)
    notes: tuple[str, ...]
    kind: str = "approval"  # the uchast ballot kind of every category
    expected_scores: dict[str, int] = field(default_factory=dict)  # the file's score column
    breaches: tuple[LimitBreach, ...] = ()  # ballots outside the file's own limits
    lifted: tuple[str, ...] = ()  # "max_sum_cost 110411 -> 123456": limits the import widened


def _amount_kopecks(text: str, what: str) -> int:
    text = text.strip().replace(" ", "")
    if not _AMOUNT.fullmatch(text):
        raise PabulibImportError(f"{what} {text!r} is not an amount")
    try:
        minor = Decimal(text.replace(",", ".")) * 100
    except InvalidOperation:
        raise PabulibImportError(f"{what} {text!r} is not an amount") from None
    if minor != minor.to_integral_value():
        raise PabulibImportError(f"{what} {text!r} has a fraction of a minor unit")
    return int(minor)


def _pairs(text: str, what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for part in text.split(","):
        name, sep, value = part.rpartition(":")
        if not sep or not name.strip():
            raise PabulibImportError(f"META {what}: {part!r} is not name:value")
        pairs[name.strip()] = value.strip()
    return pairs


def _date(text: str | None) -> tuple[int, int, int] | None:
    if not text:
        return None
    text = text.strip()
    dotted = _DOTTED_DATE.fullmatch(text)
    if dotted:
        return int(dotted[3]), int(dotted[2]), int(dotted[1])
    iso = _ISO_DATE.match(text)
    if iso:
        return int(iso[1]), int(iso[2]), int(iso[3])
    return None


def _window(meta: Mapping[str, str], zone: ZoneInfo) -> tuple[datetime, datetime, str | None]:
    begin, end = _date(meta.get("date_begin")), _date(meta.get("date_end"))
    note = None
    if begin is None or end is None:
        instance = meta.get("instance", "")
        year = int(instance[:4]) if instance[:4].isdigit() else 2000
        begin, end = (year, 1, 1), (year, 12, 31)
        note = f"the file gives no voting dates: nominal window {year}-01-01 to {year}-12-31"
    try:
        opens = datetime.combine(datetime(*begin).date(), time(0, 0), zone)
        closes = datetime.combine(datetime(*end).date(), time(23, 59, 59), zone)
    except ValueError as exc:
        raise PabulibImportError(f"voting dates {begin} to {end}: {exc}") from None
    if closes <= opens:
        raise PabulibImportError(f"date_end {meta.get('date_end')!r} is before date_begin")
    return opens, closes, note


def _identities(voter_ids: Sequence[str]) -> list[str]:
    if all(v.isascii() and v.isdigit() and len(v) <= 12 for v in voter_ids):
        padded = [v.zfill(10) for v in voter_ids]
        if len(set(padded)) == len(padded):
            return padded
    return [f"{row:012d}" for row in range(1, len(voter_ids) + 1)]


def _titles(text: str, language: str | None) -> dict[str, str]:
    titles = {"uk": text, "en": text}
    if language and _LANGUAGE.fullmatch(language) and language not in titles:
        titles[language] = text
    return titles


def plan_import(
    pb: PabulibFile,
    *,
    file_name: str,
    file_digest: str,
    election_id: str | None = None,
    category_budgets: Mapping[str, str] | None = None,
    rule_name: str | None = None,
    timezone: str | None = None,
    now: datetime | None = None,
) -> ImportPlan:
    """The election and ballots of ``pb``; raises :class:`PabulibImportError` (or a
    :class:`~tally.pabulib.PabulibError`) if the file cannot be imported faithfully.

    ``category_budgets``: category name → amount in the file's currency (``"40000000"``), which
    turns the file's categories into budget categories. ``rule_name``: ``greedy`` or
    ``greedy-no-skip`` instead of the file's rule. ``now``: the import time (paper deadline).
    """
    file_kind = vote_type(pb.meta)
    if file_kind not in KINDS:
        raise PabulibImportError(
            f"{file_name}: vote_type {file_kind!r} cannot be imported: uchast has approval, "
            f"knapsack, cumulative and ordinal ballots, and {file_kind} ballots would be "
            "miscounted as one of them; nothing was written"
        )
    notes: list[str] = []
    meta = pb.meta
    language = meta.get("language")

    # Projects and their ids.
    pabulib_ids = [p["project_id"] for p in pb.projects]
    ids = map_project_ids(pabulib_ids)
    changed = {pid: ours for pid, ours in ids.items() if pid != ours}
    if changed:
        notes.append(
            f"{len(changed)} project ids mapped to uchast ids (original kept in the titles): "
            + ", ".join(f"{k} -> {v}" for k, v in list(changed.items())[:5])
            + (" ..." if len(changed) > 5 else "")
        )
    project_lines: list[int | None] = list(pb.project_lines)
    if len(project_lines) != len(pb.projects):
        project_lines = [None] * len(pb.projects)
    costs = {
        ids[p["project_id"]]: project_cost_kopecks(p, line)
        for p, line in zip(pb.projects, project_lines, strict=True)
    }
    rows = ballots(pb)  # checks every ballot against PROJECTS
    outside = tuple(breaches(pb))
    kind = file_kind
    lifted: list[str] = []

    # Categories.
    budgets_text: dict[str, str] | None = None
    if category_budgets:
        budgets_text = dict(category_budgets)
    elif meta.get("budget_by_category"):
        budgets_text = _pairs(meta["budget_by_category"], "budget_by_category")
    project_category: dict[str, str] = {}
    category_rows: list[dict[str, Any]]
    if budgets_text is None:
        project_category = dict.fromkeys(costs, ONE_CATEGORY)
        row, kind, lifted = _one_category(meta, file_kind, rows, costs, outside, notes)
        category_rows = [row]
    else:
        if file_kind != "approval" or max_sum_cost(meta) is not None or outside:
            raise PabulibImportError(
                "budget categories are for approval files without a cost limit whose ballots "
                f"keep to its limits; this file is {file_kind}"
                + (" with max_sum_cost" if max_sum_cost(meta) is not None else "")
                + (f" with {len(outside)} ballots outside its limits" if outside else "")
            )
        names: list[str] = []
        for p in pb.projects:
            found = categories(p)
            if len(found) != 1:
                raise PabulibImportError(
                    f"project {p['project_id']!r} has {len(found)} categories; budget "
                    "categories need exactly one per project"
                )
            project_category[ids[p["project_id"]]] = found[0]
            if found[0] not in names:
                names.append(found[0])
        unknown = sorted(set(budgets_text) - set(names))
        missing = [n for n in names if n not in budgets_text]
        if unknown or missing:
            raise PabulibImportError(
                f"category budgets: the file's categories are {', '.join(names)}"
                + (f"; no budget for {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(unknown)}" if unknown else "")
            )
        cat_ids = _category_ids(names)
        per_category: Counter[tuple[int, str]] = Counter()
        for number, b in enumerate(rows):
            for pid in b.projects:
                per_category[(number, project_category[ids[pid]])] += 1
        most = Counter[str]()
        for (_, name), n in per_category.items():
            most[name] = max(most[name], n)
        stated_picks = (
            _pairs(meta["max_length_by_category"], "max_length_by_category")
            if meta.get("max_length_by_category")
            else {}
        )
        category_rows = []
        for name in names:
            budget = _amount_kopecks(budgets_text[name], f"budget of category {name!r}")
            in_category = [c for pid, c in costs.items() if project_category[pid] == name]
            picks = int(stated_picks[name]) if name in stated_picks else max(most[name], 1)
            if most[name] > picks:
                raise PabulibImportError(
                    f"a ballot names {most[name]} projects of {name!r}, more than {picks}"
                )
            category_rows.append(
                {
                    "id": cat_ids[name],
                    "title": _titles(name, language),
                    "max_picks": picks,
                    "budget_kopecks": budget,
                    "max_cost_kopecks": min(max(in_category), budget),
                }
            )
        project_category = {pid: cat_ids[name] for pid, name in project_category.items()}
        total_file = meta.get("budget")
        if total_file is not None:
            stated_total = budget_kopecks(meta)
            ours_total = sum(c["budget_kopecks"] for c in category_rows)
            if stated_total != ours_total:
                notes.append(
                    f"category budgets add up to {ours_total} kopecks; META budget says "
                    f"{stated_total}"
                )
    for c in category_rows:
        if c["max_cost_kopecks"] < max(
            cost for pid, cost in costs.items() if project_category[pid] == c["id"]
        ):
            raise PabulibImportError(
                f"a project of category {c['id']!r} costs more than its budget"
            )

    # Rule.
    if rule_name is not None:
        if rule_name not in ("greedy", "greedy-no-skip"):
            raise PabulibImportError(f"--rule {rule_name!r}: expected greedy or greedy-no-skip")
        method = rule_name
        notes.append(f"rule {method} as asked (the file says {meta.get('rule')!r})")
    else:
        try:
            settings = greedy_settings(meta)
            method = "greedy" if settings.skip else "greedy-no-skip"
        except (UnsupportedRuleError, PabulibError):
            method = "greedy"
            notes.append(
                f"the file's rule {meta.get('rule')!r} is not a greedy rule: greedy is used "
                "(choose with --rule)"
            )
    min_votes = threshold(meta)

    # Window, channels, voters.
    zone_name = timezone or TIMEZONES.get(meta.get("country", ""), "UTC")
    try:
        zone = ZoneInfo(zone_name)
    except Exception:
        raise PabulibImportError(f"time zone {zone_name!r} is unknown") from None
    opens, closes, window_note = _window(meta, zone)
    if window_note:
        notes.append(window_note)
    moment = now or datetime.now(UTC)
    deadline = max(closes, (moment + timedelta(days=1)).astimezone(zone).replace(microsecond=0))
    methods = sorted(
        {b.voting_method for b in rows if b.voting_method and b.voting_method not in ONLINE_METHODS}
    )
    points = {m: _item_slug(m.lower(), "paper") for m in methods}
    if len(set(points.values())) != len(points):
        raise PabulibImportError(f"voting methods {methods} do not map to distinct polling points")
    identities = _identities([b.voter_id for b in rows])
    planned: list[PlannedBallot] = []
    skipped = 0
    lines: list[int | None] = list(pb.vote_lines)
    if len(lines) != len(rows):
        lines = [None] * len(rows)
    for b, identity, line in zip(rows, identities, lines, strict=True):
        point = None
        if b.voting_method and b.voting_method not in ONLINE_METHODS:
            point = points[b.voting_method]
        if not b.projects and point is None:
            skipped += 1
            continue
        planned.append(
            PlannedBallot(
                line,
                b.voter_id,
                identity,
                tuple(ids[p] for p in b.projects),
                point,
                b.points if file_kind == "cumulative" else (),
            )
        )
    if skipped:
        notes.append(f"{skipped} empty online ballots skipped (an empty ballot supports nothing)")

    description = meta.get("description") or file_name
    currency = meta.get("currency")
    document: dict[str, Any] = {
        "id": election_id or election_id_from_name(file_name),
        "title": _titles(
            f"{description} (Pabulib {file_name}" + (f"; {currency}" if currency else "") + ")",
            language,
        ),
        "timezone": zone.key,
        "voting_opens": opens.isoformat(),
        "voting_closes": closes.isoformat(),
        "paper_deadline": deadline.isoformat(),
        "categories": category_rows,
        "projects": [
            {
                "id": ids[p["project_id"]],
                "title": _titles(
                    (p.get("name") or f"Project {p['project_id']}")
                    + (f" [Pabulib id {p['project_id']}]" if p["project_id"] in changed else ""),
                    language,
                ),
                "category": project_category[ids[p["project_id"]]],
                "cost_kopecks": costs[ids[p["project_id"]]],
                "district": p.get("district")
                or meta.get("district")
                or meta.get("subunit")
                or meta.get("unit")
                or "-",
            }
            for p in pb.projects
        ],
        "polling_points": [
            {"id": points[m], "title": {"uk": f"Папір: {m}", "en": f"Paper: {m}"}} for m in methods
        ],
        "rule": {
            "method": method,
            "min_votes": min_votes,
            "tie_break": ["cost-ascending", "lottery"],
            "seed": f"pabulib-sha256:{file_digest}",
        },
        "multiple_ballots": False,
        "double_entry": False,
    }
    try:
        election = election_from_dict(document)
    except ValueError as exc:
        raise PabulibImportError(f"the file does not make a valid election: {exc}") from None
    totals = {ids[pid]: n for pid, n in file_votes(pb).items()}
    scores = {ids[pid]: n for pid, n in file_totals(pb).items()}
    chosen = frozenset(
        ids[p["project_id"]] for p in pb.projects if p.get("selected", "").strip() == "1"
    )
    return ImportPlan(
        election=election,
        ballots=tuple(planned),
        project_ids=ids,
        expected_totals=totals,
        selected=chosen,
        notes=tuple(notes),
        kind=kind,
        expected_scores=scores,
        breaches=outside,
        lifted=tuple(lifted),
    )


# What each of a file's limits is in an uchast category, and how a ballot measures against it:
# META key -> (category key, is a maximum, measure of a PabulibBallot).
def _measures(costs: Mapping[str, int]) -> dict[str, tuple[str, bool, Any]]:
    def cost(b: PabulibBallot) -> int:
        return sum(costs[p] for p in b.projects)

    return {
        "min_length": ("min_picks", False, lambda b: len(b.projects)),
        "max_length": ("max_picks", True, lambda b: len(b.projects)),
        "min_sum_cost": ("min_total_cost_kopecks", False, cost),
        "max_sum_cost": ("max_total_cost_kopecks", True, cost),
        "min_sum_points": ("min_total_points", False, lambda b: sum(b.points)),
        "max_sum_points": ("max_total_points", True, lambda b: sum(b.points)),
        "max_points": ("max_points", True, lambda b: max(b.points, default=0)),
    }


def _one_category(
    meta: Mapping[str, str],
    file_kind: str,
    rows: Sequence[PabulibBallot],
    costs: Mapping[str, int],
    found: Sequence[LimitBreach],
    notes: list[str],
) -> tuple[dict[str, Any], str, list[str]]:
    """The file's one category: its ballot kind and the file's limits, each lifted just enough
    to admit the ballots the city counted beyond it (the returned list says which, and the
    category's title says so too); returns the category, its kind and the lifted limits."""
    total = budget_kopecks(meta)
    cast = [b for b in rows if b.projects]  # empty rows are spoiled or skipped, never votes
    stated: dict[str, int | None] = {
        "min_length": min_length(meta),
        "max_length": max_length(meta),
    }
    kind = KINDS[file_kind]
    if file_kind == "approval":
        stated["min_sum_cost"] = min_sum_cost(meta)
        stated["max_sum_cost"] = max_sum_cost(meta)
        if stated["max_sum_cost"] is not None or stated["min_sum_cost"] is not None:
            kind = "knapsack"
    elif file_kind == "cumulative":
        stated["min_sum_points"] = min_sum_points(meta)
        stated["max_sum_points"] = max_sum_points(meta)
        stated["max_points"] = max_points(meta)
        least = min_points(meta)
        if least is not None and least > 1:
            notes.append(
                f"min_points {least} is not a limit uchast holds (any positive points count)"
            )
    row: dict[str, Any] = {
        "id": ONE_CATEGORY,
        "ballot": kind,
        "budget_kopecks": total,
        "max_cost_kopecks": max(costs.values()),
    }
    if file_kind == "cumulative" and stated["max_sum_points"] is None:
        most = max((sum(b.points) for b in cast), default=1)
        stated["max_sum_points"] = most
        notes.append(f"the file states no max_sum_points: the largest ballot's {most} is used")
    if kind in ("approval", "ordinal") and stated["max_length"] is None:
        if kind == "approval":
            row["max_picks"] = len(costs)
        else:  # a ranking's first place scores max_picks: the longest ranking, as Pabulib does
            row["max_picks"] = max((len(b.projects) for b in cast), default=1)
            notes.append(
                f"the file states no max_length: rankings are scored from {row['max_picks']}"
            )
    measures = _measures(costs)
    broken = {b.key for b in found if b.key in measures}
    lifted: list[str] = []
    for key, limit in stated.items():
        if limit is None:
            continue
        target, is_max, measure = measures[key]
        value = limit
        if key in broken and cast:
            extreme = (max if is_max else min)(measure(b) for b in cast)
            value = max(limit, extreme) if is_max else min(limit, extreme)
            if value != limit:
                lifted.append(f"{key} {_shown(key, limit)} -> {_shown(key, value)}")
        row[target] = value
    title = {"uk": "Усі проєкти", "en": "All projects"}
    if lifted:
        count = len({b.voter_id for b in found})
        title = {
            "uk": f"Усі проєкти (ліміти файлу розширено: {'; '.join(lifted)}, бо {count} "
            "бюлетенів, які місто зарахувало, їх порушують)",
            "en": f"All projects (the file's limits widened: {'; '.join(lifted)}, for {count} "
            "ballots the city counted outside them)",
        }
    row["title"] = title
    return row, kind, lifted


def _shown(key: str, value: int) -> str:
    """A limit's value as the file writes it: costs in main units."""
    if key.endswith("_cost"):
        return str(Decimal(value) / 100) if value % 100 else str(value // 100)
    return str(value)


# --- keys ----------------------------------------------------------------------------------------


@dataclass
class ImportKeys:
    """The imported election's keys, saved as files in one directory (mode 0600)."""

    admin: SignerKey
    log: SignerKey
    site: SignerKey
    clerks: dict[str, SignerKey]  # polling point -> clerk key
    voter_key: bytes
    directory: Path

    @classmethod
    def create(cls, directory: Path, election: Election) -> ImportKeys:
        """New keys for ``election`` in ``directory``; refuses to replace existing key files."""
        files = ["admin.key", "log.key", "site.key", "voter.key"]
        files += [f"clerk-{p.id}.key" for p in election.polling_points]
        clash = [f for f in files if (directory / f).exists()]
        if clash:
            raise PabulibImportError(f"{directory / clash[0]} exists: choose another --dir")
        private_directory(directory)

        def make(name: str, file: str) -> SignerKey:
            signer = SignerKey.generate(name)
            signer.save(directory / file)
            return signer

        voter_key = new_voter_key(directory / "voter.key")  # new for every import, never reused
        return cls(
            admin=make(f"admin.{election.id}", "admin.key"),
            log=make("uchast.local/log", "log.key"),
            site=make(f"site.pabulib.{election.id}", "site.key"),
            clerks={
                p.id: make(f"clerk.{p.id}.pabulib", f"clerk-{p.id}.key")
                for p in election.polling_points
            },
            voter_key=voter_key,
            directory=directory,
        )


# --- the import ----------------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What an import did, and whether the log's totals equal the file's."""

    election: str
    db_url: str
    keys_dir: Path
    cast: Counter[str] = field(default_factory=Counter)  # online / paper / spoiled
    refused: list[str] = field(default_factory=list)  # "line N: reason"
    totals: dict[str, int] = field(default_factory=dict)  # from the tally, uchast ids
    expected: dict[str, int] = field(default_factory=dict)
    funded: frozenset[str] = frozenset()
    selected: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()
    log_size: int = 0
    seconds: float = 0.0
    log_vkey: str = ""
    admin_vkey: str = ""
    kind: str = "approval"
    scores: dict[str, int] = field(default_factory=dict)  # from the tally, uchast ids
    expected_scores: dict[str, int] = field(default_factory=dict)  # the file's score column
    breaches: tuple[LimitBreach, ...] = ()  # ballots outside the file's limits, cast knowingly
    lifted: tuple[str, ...] = ()
    seconds_casting: float = 0.0

    @property
    def totals_match(self) -> bool:
        """Whether every project's votes and score in the log equal the file's columns."""
        return self.totals == self.expected and self.scores == self.expected_scores

    def differences(self) -> dict[str, tuple[int, int]]:
        """Project → (ours, the file's) where the votes, or else the scores, differ."""
        ours, theirs = self.totals, self.expected
        if ours == theirs:
            ours, theirs = self.scores, self.expected_scores
        return {
            p: (ours.get(p, 0), theirs.get(p, 0))
            for p in sorted(set(ours) | set(theirs))
            if ours.get(p, 0) != theirs.get(p, 0)
        }

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-able data (``--report FILE``): what was cast, the ballots outside
        the file's limits by voter id (``stated`` and ``ballot`` values; costs in kopecks) and
        the limits widened for them, totals compared."""
        return {
            "election": self.election,
            "kind": self.kind,
            "cast": dict(self.cast),
            "refused": list(self.refused),
            "outside_limits": [
                {
                    "voter_id": b.voter_id,
                    "line": b.line,
                    "limit": b.key,
                    "stated": b.stated,
                    "ballot": b.value,
                }
                for b in self.breaches
            ],
            "limits_widened": list(self.lifted),
            "notes": list(self.notes),
            "totals_match": self.totals_match,
            "differences": {p: list(d) for p, d in self.differences().items()},
            "funded": sorted(self.funded),
            "selected": sorted(self.selected),
            "log_size": self.log_size,
            "log_vkey": self.log_vkey,
            "admin_vkey": self.admin_vkey,
        }


def read_plan(
    path: Path,
    *,
    election_id: str | None = None,
    category_budgets: Mapping[str, str] | None = None,
    rule_name: str | None = None,
    timezone: str | None = None,
) -> ImportPlan:
    """Read and plan a ``.pb`` file (no writes)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PabulibImportError(f"cannot read {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PabulibImportError(f"{path} is not UTF-8 text") from None
    try:
        pb = parse_pabulib(text)
        return plan_import(
            pb,
            file_name=path.name,
            file_digest=hashlib.sha256(raw).hexdigest(),
            election_id=election_id,
            category_budgets=category_budgets,
            rule_name=rule_name,
            timezone=timezone,
        )
    except PabulibError as exc:
        raise PabulibImportError(f"{path.name}: {exc}") from None


async def import_pabulib(
    path: Path,
    db_url: str,
    directory: Path | None = None,
    *,
    election_id: str | None = None,
    category_budgets: Mapping[str, str] | None = None,
    rule_name: str | None = None,
    timezone: str | None = None,
    concurrency: int = 64,
    progress: bool = False,
) -> ImportReport:
    """Create the election of the Pabulib file at ``path`` in ``db_url``, its keys in
    ``directory``, and cast every VOTES row through the signed write path.

    Everything that can refuse the file (vote type, ids, limits, dates) is checked first; then
    nothing is written. ``directory`` defaults to ``keys_root() / <election id>``, outside the
    working directory (made 0700 if new). Returns the report, with the totals replayed from the
    log.
    """
    plan = read_plan(
        path,
        election_id=election_id,
        category_budgets=category_budgets,
        rule_name=rule_name,
        timezone=timezone,
    )
    election = plan.election
    # Refused here, before keys or a log are made, if the definition cannot be an entry.
    check_election_size(election, SignerKey.generate(f"admin.{election.id}"), bytes(32))
    store = open_store(db_url)
    await store.open()
    try:
        if election.id in await store.log_ids() and await store.size(election.id) > 0:
            raise PabulibImportError(f"election {election.id!r} already exists in this database")
        directory = directory or keys_root() / election.id
        keys = ImportKeys.create(directory, election)
        started = monotonic()
        await store.create_log(election.id)
        ledger = Ledger(store, election.id, log_signer=keys.log)
        await ledger.open()
        try:
            casting = Casting(ledger)
            registrations: list[tuple[SignerKey, str, str | None]] = [
                (keys.site, "site", None),
                *((clerk, "clerk", point) for point, clerk in keys.clerks.items()),
            ]
            await create_election(casting, election, keys.admin, keys.voter_key, registrations)
            report = ImportReport(
                election=election.id,
                db_url=db_url,
                keys_dir=directory,
                expected=plan.expected_totals,
                selected=plan.selected,
                notes=plan.notes,
                log_vkey=keys.log.verifier.vkey,
                admin_vkey=keys.admin.verifier.vkey,
                kind=plan.kind,
                expected_scores=plan.expected_scores,
                breaches=plan.breaches,
                lifted=plan.lifted,
            )
            casting_started = monotonic()
            await _cast_all(casting, election, keys, plan, report, concurrency, progress)
            report.seconds_casting = monotonic() - casting_started
        finally:
            await ledger.close()
        tally, size, _ = await replay_tally(store, election.id)
        report.totals = {p.id: tally.votes.get(p.id, 0) for p in election.projects}
        report.scores = {p.id: tally.scores.get(p.id, 0) for p in election.projects}
        report.funded = frozenset(
            pid
            for c in election.categories
            for pid in allocate(election, c.id, report.scores).funded
        )
        report.log_size = size
        report.seconds = monotonic() - started
        return report
    finally:
        await store.close()


def _choice(kind: str, ballot: PlannedBallot) -> dict[str, Any]:
    """The payload field of a ballot's choice: ``projects`` (approval, knapsack), ``points``
    (cumulative) or ``ranking`` (ordinal, most preferred first), as DESIGN.md §3b."""
    if kind == "cumulative":
        return {"points": dict(zip(ballot.projects, ballot.points, strict=True))}
    if kind == "ordinal":
        return {"ranking": list(ballot.projects)}
    return {"projects": list(ballot.projects)}


def _envelope(
    election: Election, keys: ImportKeys, ballot: PlannedBallot, kind: str = "approval"
) -> dict[str, Any]:
    """The signed envelope of one VOTES row: online ballot, paper ballot or spoiled ballot."""
    payload: dict[str, Any] = {
        "election": election.id,
        "voter": voter_token(keys.voter_key, election.id, ballot.identity),
        "cast_at": election.voting_opens.isoformat(),
        "nonce": str(uuid.uuid4()),
    }
    if ballot.point is None:
        payload.update(type="ballot", **_choice(kind, ballot))
        return sign_envelope(payload, keys.site)
    if ballot.projects:
        payload.update(type="paper-ballot", **_choice(kind, ballot), polling_point=ballot.point)
    else:
        payload.update(type="spoiled-ballot", polling_point=ballot.point, reason="other")
    return sign_envelope(payload, keys.clerks[ballot.point])


async def _cast_all(
    casting: Casting,
    election: Election,
    keys: ImportKeys,
    plan: ImportPlan,
    report: ImportReport,
    concurrency: int,
    progress: bool,
) -> None:
    pending = list(reversed(plan.ballots))
    bar = tqdm(
        total=len(plan.ballots),
        desc=election.id[:30],
        unit="ballot",
        disable=not (progress and sys.stderr.isatty()),
        file=sys.stderr,
    )
    channels = {"ballot": "online", "paper-ballot": "paper", "spoiled-ballot": "spoiled"}

    async def worker() -> None:
        while pending:
            ballot = pending.pop()
            try:
                cast = await casting.submit(_envelope(election, keys, ballot, plan.kind))
                report.cast[channels[cast.entry.type]] += 1
            except VoteRefusedError as exc:
                where = f"line {ballot.line}" if ballot.line else f"voter {ballot.voter_id}"
                report.refused.append(f"{where}: {exc}")
            bar.update(1)

    try:
        await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    finally:
        bar.close()


def parse_category_budgets(items: Sequence[str]) -> dict[str, str]:
    """``--category-budget NAME=AMOUNT`` options as a mapping (amounts checked later)."""
    budgets: dict[str, str] = {}
    for item in items:
        name, sep, amount = item.rpartition("=")
        if not sep or not name:
            raise PabulibImportError(f"--category-budget {item!r}: expected NAME=AMOUNT")
        budgets[name] = amount
    return budgets


def format_report(report: ImportReport, source: str) -> str:
    """The import's summary for the terminal: what was cast, totals and funded set compared."""
    lines = [f"{source}: election {report.election} in {report.db_url}, keys in {report.keys_dir}"]
    lines.extend(f"  note: {note}" for note in report.notes)
    cast = ", ".join(f"{n} {kind}" for kind, n in sorted(report.cast.items())) or "nothing"
    lines.append(
        f"  cast {cast} through the signed write path in {report.seconds:.1f} s; "
        f"log size {report.log_size}"
    )
    for refusal in report.refused[:10]:
        lines.append(f"  REFUSED {refusal}")
    if len(report.refused) > 10:
        lines.append(f"  ... {len(report.refused) - 10} more refusals")
    if report.breaches:
        voters = len({b.voter_id for b in report.breaches})
        lines.append(
            f"  OUTSIDE THE FILE'S LIMITS: {voters} ballots the city counted, cast as counted "
            f"under the widened limits {', '.join(report.lifted) or '(none needed)'} (written "
            "into the category's title in the signed definition):"
        )
        lines.extend(f"    {b}" for b in report.breaches)
    columns = "votes column" if report.kind in ("approval", "knapsack") else "votes and score"
    if report.totals_match:
        lines.append(f"  totals: all {len(report.totals)} projects equal the file's {columns}")
    else:
        diffs = report.differences()
        shown = ", ".join(
            f"{p} {ours} vs {theirs}" for p, (ours, theirs) in list(diffs.items())[:8]
        )
        lines.append(f"  totals DIFFER from the file's on {len(diffs)} projects: {shown}")
    if report.selected:
        if report.funded == report.selected:
            n = len(report.funded)
            lines.append(f"  funded: the same {n} project{'s' * (n != 1)} as the file's selected")
        else:
            lines.append(
                "  funded differs from the file's selected: missing "
                f"{sorted(report.selected - report.funded)}, extra "
                f"{sorted(report.funded - report.selected)}"
            )
    lines.append(
        f"  audit it: uchast export log --db {report.db_url} --election {report.election}"
        f" --out log.jsonl && uchast audit log.jsonl --log-vkey '{report.log_vkey}'"
        f" --admin-vkey '{report.admin_vkey}'"
    )
    return "\n".join(lines)
