"""The live tally: a projection of one election's log, fed entry by entry in log order.

Mirrored by tally/audit/ballots.py and recount.py; tests/tally/audit/test_differential.py
proves they agree.

What counts is defined once, in :mod:`votes.rules`; this projection applies it incrementally:
without double entry every ballot and paper ballot the log accepted counts until a void names it
(the sequencer only accepted it because the rules allowed it at its position); with double entry
a voter's paper keyings go through :func:`votes.rules.paper_status`. The position of the next
entry to apply moves in the same step as the counts, so every entry is applied exactly once;
rebuilding from position 0 gives exactly the incremental result (a property test checks it).
Memory is bounded by the number of voters and projects, not by the log. A voter token (64
lowercase hex digits, what every ballot carries) is kept as its 32 bytes (a 65-byte object
instead of a 113-byte string: 139 MiB instead of 186 for 1.25 million voters); any other voter
string stays a string, so the two never meet under one key.

Saving is incremental, since a voting day has over a million voters and only those of the last
seconds change between two saves: :meth:`Tally.save_point` gives, at one instant, the counts
without the voters as bytes (:meth:`Tally.snapshot`, one row) and the voters changed since the
last save with their packed counts (items of that row, 0 for a voter whose ballots were all
voided); the service writes both in one transaction (:meth:`ledger.store.Store.save_projection`)
and hands them back (:meth:`Tally.unsaved`) when the save fails. :meth:`Tally.restore` takes the
row and all its items, read from one snapshot of the database, so a restart continues where the
saved view stopped (a property test saves, fails saves and restores at random positions).

Each counted choice adds one to its project's ``votes`` (voters who chose it: the rules let a
voter choose a project once) and its score to the project's ``score`` (DESIGN.md §3b): 1 for a
project in ``projects`` (approval, knapsack), the points for one in ``points`` (cumulative), and
``k - r + 1`` for the ``r``-th ranked project of an ordinal category in ``ranking``
(``k = max_picks``), as :meth:`votes.rules.CountedBallot.scores` defines it. The tally keeps the
votes per (day, channel) and per polling point, and each project's score above its votes in one
more dict, which approval ballots never touch.

Rebuilding reads every entry, so :meth:`Tally.apply` has a fast path for the common case, an
online ballot (or a paper ballot without double entry) stored in the exact canonical form the
ledger writes: one regular expression over the entry's bytes checks the whole shape and takes
the fields that count (voter, projects, points, ranking, polling point, cast_at) without building
the JSON object. It accepts only strings free of escapes and control characters, which JSON
decodes to exactly their bytes, and points as plain integers below 2**53, so whatever it accepts
it reads as ``json.loads`` would; anything else (another entry type, an extra field, an escape,
other spacing) takes the straightforward path.
The day of ``cast_at`` is cached per hour (or minute) of the timestamp where the election's zone
keeps one offset and one date across it (see :meth:`Tally._day`); a ballot then costs one dict
update per project (see :class:`Tally`). ``Tally(election, fast=False)`` always takes the
straightforward path; a test checks that both give identical tallies, entry by entry or a chunk at
a time through :meth:`Tally.apply_data`.
"""

from __future__ import annotations

import binascii
import json
import re
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from ledger.entry import (
    JSON_CHARS,
    JSON_STRING,
    JSON_STRINGS,
    entry_envelope,
    entry_object,
    entry_pattern,
    entry_payload,
    entry_type,
)
from votes.election import Election, election_from_dict
from votes.entries import EntryType
from votes.rules import PriorEntry, paper_status

ONLINE = "online"
PAPER = "paper"
_UNIT = {ONLINE: 1, PAPER: 1 << 32}  # one ballot of the channel in a voter's packed count
_ONLINE_MASK = (1 << 32) - 1
SNAPSHOT_FORMAT = 3
"""3: without the voters; they are saved as the row's items, only those changed since the last
save (see :class:`SavePoint`), a voter at 0 meaning none. 2: with each project's score above its
votes (``surplus``) and every voter inside. A format 2 snapshot restores (its items ignored) with
every voter marked changed, so the next save writes them all as items and replaces any older
ones. A format 1 snapshot (before ballot kinds, otherwise as 2) restores only where every category
is approval or knapsack, whose scores are their votes; otherwise :meth:`Tally.restore` refuses it
and the service rebuilds from the log."""
_SCORED_KINDS = ("cumulative", "ordinal")


VoterKey = bytes | str
_TOKEN = re.compile(r"[0-9a-f]{64}")
_TOKEN_BYTES = re.compile(rb"[0-9a-f]{64}")


def voter_key(voter: str) -> VoterKey:
    """How the tally keeps ``voter``: a voter token as its 32 bytes, anything else as is."""
    return bytes.fromhex(voter) if _TOKEN.fullmatch(voter) else voter


def voter_name(key: VoterKey) -> str:
    """The voter string :func:`voter_key` was given."""
    return key.hex() if isinstance(key, bytes) else key


@dataclass(frozen=True, slots=True)
class SavePoint:
    """What one save writes, taken at one instant by :meth:`Tally.save_point`: the tally at
    ``position`` without its voters (``state``, :meth:`Tally.snapshot`), and ``voters``, every
    voter changed since the last save with their packed count then (0: no counted ballot any
    more). With ``replace`` the saved items are not known to be this tally's (it did not start
    from them): the save must drop the stored ones first; ``voters`` then holds every voter with
    a counted ballot."""

    position: int
    state: bytes
    voters: dict[VoterKey, int]  # by voter_key; items() names them
    replace: bool

    def items(self) -> dict[str, int]:
        """``voters`` by their strings, as the row's items are saved. Every voter, for a save
        that replaces the items: about 0.5 s at 1.25 million voters (a new string each), so the
        service names them in a worker thread, off the event loop."""
        return {voter_name(voter): count for voter, count in self.voters.items()}


@dataclass(frozen=True, slots=True)
class Counted:
    """One counted ballot's contribution: a vote for each of ``projects`` and, in ``surplus``,
    each project's score above that vote (zeros left out)."""

    voter: str
    projects: tuple[str, ...]
    channel: str
    point: str | None
    day: str
    surplus: tuple[tuple[str, int], ...] = ()


Fetch = Callable[[int], Awaitable[dict[str, Any]]]


def _voter_key_raw(raw: bytes) -> VoterKey:
    """:func:`voter_key` of an escape-free JSON string's bytes, as the fast path holds it."""
    if _TOKEN_BYTES.fullmatch(raw):
        return binascii.a2b_hex(raw)
    return raw.decode("utf-8", "surrogatepass")


def _channels(packed: int) -> set[str]:
    channels = set()
    if packed & _ONLINE_MASK:
        channels.add(ONLINE)
    if packed >> 32:
        channels.add(PAPER)
    return channels


def _day_of(cast_at: str, zone: ZoneInfo) -> str:
    """The date (ISO) of ``cast_at`` in ``zone``: the definition the fast path must match."""
    return datetime.fromisoformat(cast_at).astimezone(zone).date().isoformat()


_CAPTURED = rb'"(' + JSON_CHARS + rb')"'  # a JSON_STRING, its value captured
# The members of a canonical JSON object of such strings to integers 1 .. 2**53 - 1 (canonical
# JSON writes those as plain digits).
_POINT = JSON_STRING + rb":[1-9][0-9]{0,14}"
_POINTS = rb"(?:" + _POINT + rb"(?:," + _POINT + rb")*)?"
# cast_at, whole; in the usual form (as _STAMP) also its hour and offset.
_CAST_AT = (
    rb'"((?:([0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3])):[0-5][0-9]'
    rb"(?::[0-5][0-9](?:\.[0-9]{1,6})?)?(Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
    rb'(?="))?' + JSON_CHARS + rb')"'
)
# The canonical (RFC 8785) entry of a ballot or paper ballot whose payload has exactly the
# fields the rules allow: members in sorted order, no spaces. Most ballots have projects alone:
# _BALLOT_ENTRY takes them (a pattern without points and ranking is a few percent faster), and
# _SCORED_BALLOT_ENTRY any other.
_BALLOT_ENTRY = re.compile(
    entry_pattern(
        rb'\{"cast_at":' + _CAST_AT
        + rb',"election":' + JSON_STRING
        + rb',"nonce":' + JSON_STRING
        + rb'(?:,"polling_point":' + _CAPTURED + rb")?"
        + rb',"projects":\[(' + JSON_STRINGS + rb")\]"
        + rb',"type":' + JSON_STRING
        + rb',"voter":' + _CAPTURED + rb"\}",
        rb'"(ballot|paper-ballot)"',
    )
)  # fmt: skip
_SCORED_BALLOT_ENTRY = re.compile(
    entry_pattern(
        rb'\{"cast_at":' + _CAST_AT
        + rb',"election":' + JSON_STRING
        + rb',"nonce":' + JSON_STRING
        + rb'(?:,"points":\{(' + _POINTS + rb")\})?"
        + rb'(?:,"polling_point":' + _CAPTURED + rb")?"
        + rb'(?:,"projects":\[(' + JSON_STRINGS + rb")\])?"
        + rb'(?:,"ranking":\[(' + JSON_STRINGS + rb")\])?"
        + rb',"type":' + JSON_STRING
        + rb',"voter":' + _CAPTURED + rb"\}",
        rb'"(ballot|paper-ballot)"',
    )
)  # fmt: skip
# A timestamp in a form fromisoformat reads, split into its hour, minute and offset.
_STAMP = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3])):([0-5][0-9])"
    r"(?::[0-5][0-9](?:\.[0-9]{1,6})?)?"
    r"(Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_REST_OF_HOUR = timedelta(minutes=59, seconds=59, microseconds=999_999)
_REST_OF_MINUTE = timedelta(seconds=59, microseconds=999_999)
_CACHE_LIMIT = 1 << 16
_UNKNOWN = ""  # not cached yet (a cached value is a date, or None: not constant)


class Tally:
    """Counts of one election, as of ``position`` (the next entry to apply).

    The counts live in plain dicts keyed by project id, one per (day, channel) and one per
    polling point, so a ballot costs one dict update per project; :attr:`votes`,
    :attr:`scores`, :attr:`by_channel`, :attr:`by_day`, :attr:`by_point`, :attr:`ballots`,
    :attr:`voter_ballots` and :attr:`voter_channels` are views of them (sums over days or
    channels), built when read and kept until the next entry is applied.
    """

    def __init__(self, election: Election, *, fast: bool = True) -> None:
        self.election = election
        self.zone = ZoneInfo(election.timezone)
        self.fast = fast
        self._hours: dict[tuple[str, str], str | None] = {}  # (hour, offset) -> day
        self._minutes: dict[tuple[str, str, str], str | None] = {}  # (hour, minute, offset)
        self._hours_b: dict[tuple[bytes, bytes], str | None] = {}  # _hours, as stored
        self._projects_of: dict[bytes, tuple[str, ...]] = {}  # projects as stored -> ids
        # points or ranking as stored -> (ids, surplus): depends on the definition's kinds
        self._scored_of: dict[tuple[bytes | None, bytes | None], Any] = {}
        self._kinds(election)
        self.position = 0
        self._cells: dict[tuple[str, str], dict[str, int]] = {}  # (day, channel) -> project
        self._point: dict[str, dict[str, int]] = {}  # polling point -> project -> votes
        self._surplus: dict[str, int] = {}  # project -> score above votes (where not 0)
        self._ballots: dict[str, int] = {}  # counted ballots by channel
        # Per voter with counted ballots (by voter_key): online ballots + paper ballots << 32
        # (one dict operation per ballot instead of a dict per channel).
        self._voters: dict[VoterKey, int] = {}
        # Voters whose packed count changed since the last save (see save_point), kept only
        # while the next save writes changes: a fresh tally did not start from any saved items,
        # so its first save replaces them with every voter, and needs no list of changes.
        self._changed: set[VoterKey] = set()
        # Voters counted on each channel, kept with _voters: /results asks on every read, and
        # counting a million voters took ~80 ms of the event loop each time.
        self._online_voters = 0
        self._paper_voters = 0
        self._replace_saved = True
        self._views: dict[str, Any] = {}
        self.spoiled = 0
        self.voided = 0
        self.entries = 0
        self._voided_positions: set[int] = set()
        # Double entry only: each voter's paper keyings (not voided) and what they count for.
        self._paper: dict[str, list[PriorEntry]] = defaultdict(list)
        self._paper_counted: dict[str, list[Counted]] = defaultdict(list)

    def redefine(self, election: Election) -> None:
        """Take an amended definition (amendments come before voting opens, so nothing counted
        depends on the old one)."""
        self.election = election
        self.zone = ZoneInfo(election.timezone)
        self._hours_b.clear()
        self._hours.clear()
        self._minutes.clear()
        self._scored_of.clear()
        self._kinds(election)

    def _kinds(self, election: Election) -> None:
        """What scoring needs of the definition: each cumulative category's projects and each
        ordinal category's projects with (category, max_picks)."""
        kind = {c.id: c for c in election.categories}
        self._cumulative = frozenset(
            p.id for p in election.projects if kind[p.category].ballot == "cumulative"
        )
        self._ordinal = {
            p.id: (p.category, kind[p.category].max_picks)
            for p in election.projects
            if kind[p.category].ballot == "ordinal"
        }

    def _scored(
        self, points: Mapping[str, int], ranking: Sequence[str]
    ) -> tuple[tuple[str, ...], tuple[tuple[str, int], ...]]:
        """The projects a ballot's ``points`` and ``ranking`` choose, and the score of each above
        one (:meth:`votes.rules.CountedBallot.scores`: points on a cumulative category's project,
        ``max_picks - rank + 1`` for the rank within an ordinal category, 1 for anything else)."""
        surplus: list[tuple[str, int]] = []
        for project, n in points.items():
            if n != 1 and project in self._cumulative:
                surplus.append((project, n - 1))
        ranks: dict[str, int] = {}
        for project in ranking:
            ordinal = self._ordinal.get(project)
            if ordinal is not None:
                category, top = ordinal
                rank = ranks[category] = ranks.get(category, 0) + 1
                if top != rank:
                    surplus.append((project, top - rank))
        return (*points, *ranking), tuple(surplus)

    def _counted(self, payload: Mapping[str, Any], channel: str) -> Counted:
        """The contribution of a counted ballot or paper ballot with this payload."""
        day = _day_of(payload["cast_at"], self.zone)
        projects = tuple(payload.get("projects", ()))
        points, ranking = payload.get("points", {}), payload.get("ranking", ())
        surplus: tuple[tuple[str, int], ...] = ()
        if points or ranking:
            scored, surplus = self._scored(points, ranking)
            projects += scored
        return Counted(
            payload["voter"], projects, channel, payload.get("polling_point"), day, surplus
        )

    # -- views -------------------------------------------------------------------------------

    def _view(self, name: str, build: Callable[[], Any]) -> Any:
        view = self._views.get(name)
        if view is None:
            view = self._views[name] = build()
        return view

    def _sum(self, key: Callable[[str, str, str], Any]) -> Counter[Any]:
        """The cells' counts summed by ``key(project, day, channel)`` (keys kept at zero)."""
        total: Counter[Any] = Counter()
        for (day, channel), counts in self._cells.items():
            for project, n in counts.items():
                total[key(project, day, channel)] += n
        return total

    @property
    def votes(self) -> Counter[str]:
        """Counted votes per project."""
        return cast("Counter[str]", self._view("votes", lambda: self._sum(lambda p, d, c: p)))

    @property
    def scores(self) -> Counter[str]:
        """Counted score per project (DESIGN.md §3b): its votes on approval and knapsack
        ballots, the sum of its points on cumulative ballots, of its positional scores on
        ordinal ones."""

        def build() -> Counter[str]:
            scores = Counter(self.votes)
            scores.update(self._surplus)
            return scores

        return cast("Counter[str]", self._view("scores", build))

    @property
    def by_channel(self) -> Counter[tuple[str, str]]:
        """Counted votes per (project, channel)."""
        return cast(
            "Counter[tuple[str, str]]",
            self._view("by_channel", lambda: self._sum(lambda p, d, c: (p, c))),
        )

    @property
    def by_day(self) -> Counter[tuple[str, str]]:
        """Counted votes per (project, day of cast_at in the election's zone)."""
        return cast(
            "Counter[tuple[str, str]]",
            self._view("by_day", lambda: self._sum(lambda p, d, c: (p, d))),
        )

    @property
    def by_day_and_channel(self) -> Counter[tuple[str, str]]:
        """Counted votes per (day of cast_at in the election's zone, channel)."""
        return cast(
            "Counter[tuple[str, str]]",
            self._view("by_day_and_channel", lambda: self._sum(lambda p, d, c: (d, c))),
        )

    @property
    def by_point(self) -> Counter[tuple[str, str]]:
        """Counted votes per (project, polling point), of ballots naming a point."""
        return cast(
            "Counter[tuple[str, str]]",
            self._view(
                "by_point",
                lambda: Counter(
                    {
                        (p, point): n
                        for point, counts in self._point.items()
                        for p, n in counts.items()
                    }
                ),
            ),
        )

    @property
    def ballots(self) -> Counter[str]:
        """Counted ballots by channel."""
        return cast("Counter[str]", self._view("ballots", lambda: Counter(self._ballots)))

    @property
    def voter_ballots(self) -> dict[str, int]:
        """Counted ballots per voter (voters with none left out)."""
        return {
            voter_name(voter): (packed & _ONLINE_MASK) + (packed >> 32)
            for voter, packed in self._voters.items()
        }

    @property
    def voter_channels(self) -> dict[str, set[str]]:
        """The channels each voter has counted ballots on (voters with none left out)."""
        return {voter_name(voter): _channels(packed) for voter, packed in self._voters.items()}

    # -- counting ----------------------------------------------------------------------------

    def _day(self, cast_at: str) -> str:
        """:func:`_day_of` in the election's zone, cached.

        Exact: a timestamp of the form ``YYYY-MM-DDTHH:MM[:SS[.ffffff]]`` with ``±HH:MM`` or
        ``Z`` lies within its hour (and its minute). When the zone has the same offset at both
        ends of that hour and both ends fall on the same date, every instant of the hour does
        (no zone changes its clock twice within an hour), so the hour's date is the
        timestamp's; when not, the same holds for the minute; failing both, and for any other
        form, the date is computed directly.
        """
        day: str | None = None
        match = _STAMP.fullmatch(cast_at)
        if match is not None:
            hour, minute, offset = match.groups()
            day = self._hours.get((hour, offset), _UNKNOWN)
            if day is _UNKNOWN:
                day = self._span_day(f"{hour}:00{offset}", _REST_OF_HOUR)
                self._hours[(hour, offset)] = day
            if day is None:
                day = self._minutes.get((hour, minute, offset), _UNKNOWN)
                if day is _UNKNOWN:
                    day = self._span_day(f"{hour}:{minute}{offset}", _REST_OF_MINUTE)
                    self._minutes[(hour, minute, offset)] = day
        if day is None:
            day = _day_of(cast_at, self.zone)
        if len(self._hours) > _CACHE_LIMIT or len(self._minutes) > _CACHE_LIMIT:
            self._hours.clear()
            self._minutes.clear()
        return day

    def _span_day(self, start: str, length: timedelta) -> str | None:
        """The one date of every instant in [start, start + length] in the election's zone,
        if the zone keeps one offset across it; else None."""
        try:
            first = datetime.fromisoformat(start).astimezone(self.zone)
        except ValueError:
            return None
        last = (first + length).astimezone(self.zone)
        if first.utcoffset() == last.utcoffset() and first.date() == last.date():
            return first.date().isoformat()
        return None

    def _add(self, counted: Counted, sign: int) -> None:
        cell = self._cells.setdefault((counted.day, counted.channel), {})
        point = None if counted.point is None else self._point.setdefault(counted.point, {})
        for project in counted.projects:
            cell[project] = cell.get(project, 0) + sign
            if point is not None:
                point[project] = point.get(project, 0) + sign
        for project, extra in counted.surplus:
            self._add_surplus(project, sign * extra)
        self._ballots[counted.channel] = self._ballots.get(counted.channel, 0) + sign
        voter = voter_key(counted.voter)
        before = self._voters.get(voter, 0)
        packed = before + sign * _UNIT[counted.channel]
        if not self._replace_saved:
            self._changed.add(voter)
        self._count_channels(before, packed)
        if packed:
            self._voters[voter] = packed
        else:
            self._voters.pop(voter, None)

    def _add_surplus(self, project: str, extra: int) -> None:
        total = self._surplus.get(project, 0) + extra
        if total:
            self._surplus[project] = total
        else:
            self._surplus.pop(project, None)

    async def apply_data(self, start: int, chunk: Iterable[bytes], fetch: Fetch) -> None:
        """:meth:`apply` the consecutive entries ``start, start + 1, ...`` (their stored bytes,
        as :meth:`ledger.store.Store.stream_data` gives them): the rebuild's and the
        follower's loop."""
        if start != self.position:
            raise ValueError(f"tally expects entry {self.position}, got {start}")
        if self._views:
            self._views = {}
        fast = self._apply_fast if self.fast else None
        applied = 0  # entries counted by the fast path, not yet added to position and entries
        try:
            for data in chunk:
                if fast is not None and fast(data):
                    applied += 1
                    continue
                self.entries += applied
                self.position += applied
                applied = 0
                await self.apply(self.position, data, fetch)
        finally:
            self.entries += applied
            self.position += applied

    async def apply(self, position: int, data: bytes, fetch: Fetch) -> None:
        """Apply the entry at ``position`` (its stored bytes); ``fetch`` reads an earlier
        entry's payload (for voids)."""
        if position != self.position:
            raise ValueError(f"tally expects entry {self.position}, got {position}")
        if self._views:
            self._views = {}
        if self.fast and self._apply_fast(data):
            self.entries += 1
            self.position = position + 1
            return
        obj = entry_object(data)
        envelope = entry_envelope(obj)
        payload = envelope["payload"]
        kind = entry_type(obj)
        if kind == EntryType.BALLOT:
            self._add(self._counted(payload, ONLINE), +1)
        elif kind == EntryType.PAPER_BALLOT:
            if self.election.double_entry:
                voter = payload["voter"]
                self._paper[voter].append(PriorEntry(position, kind, payload, envelope["key"]))
                self._recount_paper(voter)
            else:
                self._add(self._counted(payload, PAPER), +1)
        elif kind == EntryType.SPOILED_BALLOT:
            self.spoiled += 1
        elif kind == EntryType.VOID:
            await self._void(int(payload["entry"]), fetch)
        elif kind == EntryType.ELECTION_AMENDED:
            self.redefine(election_from_dict(payload["definition"]))
        self.entries += 1
        self.position = position + 1

    def _apply_fast(self, data: bytes) -> bool:
        """Count a canonical online ballot (or paper ballot without double entry) straight from
        its bytes; False, having changed nothing, for any other entry."""
        raw_points = raw_ranking = None
        match = _BALLOT_ENTRY.fullmatch(data)
        if match is not None:
            raw_cast_at, hour, offset, raw_point, raw_projects, raw_voter, kind = match.groups()
        else:
            match = _SCORED_BALLOT_ENTRY.fullmatch(data)
            if match is None:
                return False
            (
                raw_cast_at,
                hour,
                offset,
                raw_points,
                raw_point,
                raw_projects,
                raw_ranking,
                raw_voter,
                kind,
            ) = match.groups()
        if not data.isascii():
            try:  # json.loads decodes the whole entry first: UTF-8, lone surrogates allowed
                data.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                return False
        paper = kind == b"paper-ballot"
        if paper and self.election.double_entry:
            return False
        day: str | None = None
        if hour is not None:  # the usual form: the day is the hour's, if it has only one
            day = self._hours_b.get((hour, offset), _UNKNOWN)
            if day is _UNKNOWN:
                day = self._hours_b[(hour, offset)] = self._span_day(
                    f"{hour.decode()}:00{offset.decode()}", _REST_OF_HOUR
                )
                if len(self._hours_b) > _CACHE_LIMIT:
                    self._hours_b.clear()
        if day is None:  # another form, or the hour straddles a date or a clock change
            day = self._day(raw_cast_at.decode("utf-8", "surrogatepass"))
        channel = PAPER if paper else ONLINE
        projects = self._projects_of.get(raw_projects)
        if projects is None:
            projects = _strings(raw_projects)
            if len(self._projects_of) > _CACHE_LIMIT:
                self._projects_of.clear()
            self._projects_of[raw_projects] = projects
        if raw_points is not None or raw_ranking is not None:
            scored = self._scored_of.get((raw_points, raw_ranking))
            if scored is None:
                # Duplicate keys: json.loads keeps the last, as it does reading the whole entry.
                points = json.loads(b"{" + raw_points + b"}") if raw_points is not None else {}
                scored = self._scored(points, _strings(raw_ranking))
                if len(self._scored_of) > _CACHE_LIMIT:
                    self._scored_of.clear()
                self._scored_of[(raw_points, raw_ranking)] = scored
            projects = projects + scored[0]
            for project, extra in scored[1]:
                self._add_surplus(project, extra)
        cell = self._cells.get((day, channel))
        if cell is None:
            cell = self._cells[(day, channel)] = {}
        for project in projects:  # a str key in a plain dict: the cheapest count there is
            try:
                cell[project] += 1
            except KeyError:
                cell[project] = 1
        if raw_point is not None:
            point = raw_point.decode("utf-8", "surrogatepass")
            by_point = self._point.setdefault(point, {})
            for project in projects:
                by_point[project] = by_point.get(project, 0) + 1
        self._ballots[channel] = self._ballots.get(channel, 0) + 1
        voter = _voter_key_raw(raw_voter)
        voters = self._voters
        before = voters.get(voter, 0)
        if paper:  # _count_channels, inline on the path every ballot takes
            voters[voter] = before + (1 << 32)
            self._paper_voters += before < 1 << 32
        else:
            voters[voter] = before + 1
            self._online_voters += not before & _ONLINE_MASK
        if not self._replace_saved:
            self._changed.add(voter)
        return True

    async def _void(self, target: int, fetch: Fetch) -> None:
        if target in self._voided_positions:
            return
        obj = await fetch(target)  # before changing anything: a failed read must leave no trace
        self._voided_positions.add(target)
        self.voided += 1
        payload = entry_payload(obj)
        kind = entry_type(obj)
        if kind == EntryType.BALLOT:
            self._add(self._counted(payload, ONLINE), -1)
        elif kind == EntryType.PAPER_BALLOT:
            if self.election.double_entry:
                voter = payload["voter"]
                self._paper[voter] = [e for e in self._paper[voter] if e.position != target]
                self._recount_paper(voter)
            else:
                self._add(self._counted(payload, PAPER), -1)
        elif kind == EntryType.SPOILED_BALLOT:
            self.spoiled -= 1

    def _recount_paper(self, voter: str) -> None:
        for counted in self._paper_counted.pop(voter, []):
            self._add(counted, -1)
        status = paper_status(self.election, self._paper[voter], voter)
        for pair in status.counted:
            counted = self._counted(pair[0].payload, PAPER)
            self._paper_counted[voter].append(counted)
            self._add(counted, +1)

    @property
    def voters(self) -> int:
        """Distinct voters with at least one counted ballot."""
        return len(self._voters)

    def voters_by_channel(self) -> dict[str, int]:
        """Voters with counted ballots on each channel (one voter may count on both)."""
        return {ONLINE: self._online_voters, PAPER: self._paper_voters}

    def _count_channels(self, before: int, after: int) -> None:
        """Keep the voters per channel as a voter's packed count goes from ``before`` to
        ``after``."""
        self._online_voters += bool(after & _ONLINE_MASK) - bool(before & _ONLINE_MASK)
        self._paper_voters += bool(after >> 32) - bool(before >> 32)

    def _recount_channels(self) -> None:
        self._online_voters = self._paper_voters = 0
        for packed in self._voters.values():
            self._count_channels(0, packed)

    # -- saving and restoring ----------------------------------------------------------------

    def snapshot(self) -> bytes:
        """Everything this tally has counted except the voters (the row's items: see
        :meth:`save_point`), with its position, as bytes for
        :meth:`ledger.store.Store.save_projection`; :meth:`restore` reads them back. Under double
        entry the voters' paper keyings are in it, as the rules need them."""
        state = {
            "format": SNAPSHOT_FORMAT,
            "election": self.election.id,
            "position": self.position,
            "entries": self.entries,
            "spoiled": self.spoiled,
            "voided": self.voided,
            "cells": [[day, channel, counts] for (day, channel), counts in self._cells.items()],
            "points": self._point,
            "surplus": self._surplus,
            "ballots": self._ballots,
            "voided_positions": sorted(self._voided_positions),
            "paper": {
                voter: [[e.position, e.type, e.payload, e.key] for e in entries]
                for voter, entries in self._paper.items()
                if entries
            },
        }
        return json.dumps(state, ensure_ascii=False, separators=(",", ":")).encode()

    def save_point(self) -> SavePoint:
        """What to save now: :meth:`snapshot` and the voters changed since the last save point,
        taken together without awaiting anything, so they describe the same position. From here
        on those voters count as saved: hand the save point to :meth:`unsaved` if the save did
        not write it."""
        voters = self._voters
        if self._replace_saved:  # every voter, and none at 0: the stored items go first
            changed = dict(voters)
        else:
            changed = {voter: voters.get(voter, 0) for voter in self._changed}
        point = SavePoint(self.position, self.snapshot(), changed, self._replace_saved)
        self._changed = set()
        self._replace_saved = False
        return point

    def unsaved(self, point: SavePoint) -> None:
        """Mark the voters of a save point that was not written as changed again (with whether
        the saved items must be replaced), so the next save point writes them, at their counts
        then."""
        if point.replace:
            self._replace_saved = True
            self._changed = set()
        elif not self._replace_saved:
            self._changed.update(point.voters)

    def forget_changes(self) -> None:
        """Hold nothing for a next save, for a process that never saves (a read-only server),
        whose changed voters would otherwise grow to every voter."""
        self._changed = set()
        self._replace_saved = False

    @property
    def unsaved_voters(self) -> int:
        """Voters the next save point writes: those changed since the last one, or every
        voter when it replaces the saved items."""
        return len(self._voters) if self._replace_saved else len(self._changed)

    @classmethod
    def restore(
        cls,
        election: Election,
        snapshot: bytes,
        voters: Mapping[str, int] | None = None,
        *,
        fast: bool = True,
    ) -> Tally:
        """The tally a :meth:`snapshot` was taken of, with ``voters`` the saved items read with
        it (every voter's packed count as of the snapshot's position, 0 or absent: none),
        counting under ``election`` (its current definition) from the snapshot's position on.
        A format 1 or 2 snapshot has its voters inside (``voters`` is ignored), and all of them
        count as changed, so the next save writes them as items. ValueError if the bytes are not
        a snapshot of this election in a format read here (format 1, which has no scores, is
        refused where some category's scores are not its votes: see :data:`SNAPSHOT_FORMAT`)."""
        try:
            state = json.loads(snapshot)
            version = state.get("format")
            if version == 1 and all(c.ballot not in _SCORED_KINDS for c in election.categories):
                state["surplus"] = {}
            elif version == 1:
                raise ValueError("snapshot format 1 has no scores, and this election has some")
            elif version not in (2, SNAPSHOT_FORMAT):
                raise ValueError(f"snapshot format {version!r}, not {SNAPSHOT_FORMAT}")
            if state.get("election") != election.id:
                raise ValueError(f"snapshot of {state.get('election')!r}, not {election.id!r}")
            tally = cls(election, fast=fast)
            tally.position = _count(state["position"])
            tally.entries = _count(state["entries"])
            tally.spoiled = _count(state["spoiled"])
            tally.voided = _count(state["voided"])
            tally._cells = {(day, channel): _counts(c) for day, channel, c in state["cells"]}
            tally._point = {point: _counts(c) for point, c in state["points"].items()}
            tally._surplus = _counts(state["surplus"])
            tally._ballots = _counts(state["ballots"])
            if version == SNAPSHOT_FORMAT:
                counts = _counts({v: n for v, n in (voters or {}).items() if n})
                tally._replace_saved = False
            else:  # voters inside: the next save replaces the items with all of them
                counts = _counts(state["voters"])
            tally._voters = {voter_key(voter): n for voter, n in counts.items()}
            tally._recount_channels()
            tally._voided_positions = {_count(p) for p in state["voided_positions"]}
            for voter, entries in state["paper"].items():
                tally._paper[voter] = [PriorEntry(p, t, payload, k) for p, t, payload, k in entries]
                status = paper_status(election, tally._paper[voter], voter)
                tally._paper_counted[voter] = [
                    tally._counted(pair[0].payload, PAPER) for pair in status.counted
                ]
        except (KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise ValueError(f"not a tally snapshot: {exc!r}") from exc
        return tally


def _strings(raw: bytes | None) -> tuple[str, ...]:
    """The members of a canonical array of escape-free strings, from between its brackets."""
    if not raw:
        return ()
    return tuple(raw[1:-1].decode("utf-8", "surrogatepass").split('","'))


def _counts(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ValueError(f"counts must be an object, not {value!r}")
    for key, count in value.items():
        if not isinstance(count, int) or isinstance(count, bool):
            raise ValueError(f"the count of {key!r} must be an integer, not {count!r}")
    return value


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"a count must be a non-negative integer, not {value!r}")
    return value
