"""The live tally: a projection of one election's log, fed entry by entry in log order.

What counts is defined once, in :mod:`votes.rules`; this projection applies it incrementally:
without double entry every ballot and paper ballot the log accepted counts until a void names it
(the sequencer only accepted it because the rules allowed it at its position); with double entry
a voter's paper keyings go through :func:`votes.rules.paper_status`. The position of the next
entry to apply moves in the same step as the counts, so every entry is applied exactly once;
rebuilding from position 0 gives exactly the incremental result (a property test checks it).
Memory is bounded by the number of voters and projects, not by the log.

Rebuilding reads every entry, so :meth:`Tally.apply` has a fast path for the common case, an
online ballot (or a paper ballot without double entry) stored in the exact canonical form the
ledger writes: one regular expression over the entry's bytes checks the whole shape and takes
the four fields that count (voter, projects, polling point, cast_at) without building the JSON
object. It accepts only strings free of escapes and control characters, which JSON decodes to
exactly their bytes, so whatever it accepts it reads as ``json.loads`` would; anything else
(another entry type, an extra field, an escape, other spacing) takes the straightforward path.
The day of ``cast_at`` is cached per minute of the timestamp where the election's zone keeps one
offset across that minute (see :meth:`Tally._day`). ``Tally(election, fast=False)`` always takes
the straightforward path; a test checks that both give identical tallies.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from votes.election import Election
from votes.entries import EntryType
from votes.rules import PriorEntry, paper_status

ONLINE = "online"
PAPER = "paper"


@dataclass(frozen=True, slots=True)
class Counted:
    """One counted ballot's contribution."""

    voter: str
    projects: tuple[str, ...]
    channel: str
    point: str | None
    day: str


Fetch = Callable[[int], Awaitable[dict[str, Any]]]


def _day_of(cast_at: str, zone: ZoneInfo) -> str:
    """The date (ISO) of ``cast_at`` in ``zone``: the definition the fast path must match."""
    return datetime.fromisoformat(cast_at).astimezone(zone).date().isoformat()


def _counted(payload: dict[str, Any], channel: str, zone: ZoneInfo) -> Counted:
    day = _day_of(payload["cast_at"], zone)
    return Counted(
        payload["voter"], tuple(payload["projects"]), channel, payload.get("polling_point"), day
    )


# A JSON string with no escape and no control character: its value is exactly its bytes. (The
# class lists what it allows, every byte but 0x00-0x1f, '"' and '\\': twice as fast in re.)
_S = rb'"[ !#-\[\]-\xff]*"'
_CAPTURED = rb'"([ !#-\[\]-\xff]*)"'
_STRINGS = rb"(?:" + _S + rb"(?:," + _S + rb")*)?"
# The canonical (RFC 8785) entry of a ballot or paper ballot whose payload has exactly the
# fields the rules allow: members in sorted order, no spaces.
_BALLOT_ENTRY = re.compile(
    rb'\{"envelope":\{"key":' + _S
    + rb',"payload":\{"cast_at":' + _CAPTURED
    + rb',"election":' + _S
    + rb',"nonce":' + _S
    + rb'(?:,"polling_point":' + _CAPTURED + rb")?"
    + rb',"projects":\[(' + _STRINGS + rb")\]"
    + rb',"type":' + _S
    + rb',"voter":' + _CAPTURED
    + rb'\},"sig":' + _S
    + rb'\},"recorded_at":' + _S
    + rb',"tags":\[' + _STRINGS + rb"\]"
    + rb',"type":"(ballot|paper-ballot)"\}'
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
    """Counts of one election, as of ``position`` (the next entry to apply)."""

    def __init__(self, election: Election, *, fast: bool = True) -> None:
        self.election = election
        self.zone = ZoneInfo(election.timezone)
        self.fast = fast
        self._days: dict[bytes, str] = {}  # cast_at as stored -> day
        self._hours: dict[tuple[str, str], str | None] = {}  # (hour, offset) -> day
        self._minutes: dict[tuple[str, str, str], str | None] = {}  # (hour, minute, offset)
        # Fast path: ballots counted per (projects as stored, channel, point as stored, day),
        # added to the per-project counters when those are read (sums commute).
        self._pending: dict[tuple[bytes, str, bytes | None, str], int] = {}
        self.position = 0
        self._votes: Counter[str] = Counter()
        self._by_channel: Counter[tuple[str, str]] = Counter()
        self._by_point: Counter[tuple[str, str]] = Counter()
        self._by_day: Counter[tuple[str, str]] = Counter()
        self.ballots: Counter[str] = Counter()  # counted ballots by channel
        self.voter_ballots: dict[str, int] = {}  # counted ballots per voter
        self.voter_channels: dict[str, set[str]] = defaultdict(set)
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
        self._days.clear()
        self._hours.clear()
        self._minutes.clear()

    @property
    def votes(self) -> Counter[str]:
        """Counted votes per project."""
        self._fold()
        return self._votes

    @property
    def by_channel(self) -> Counter[tuple[str, str]]:
        """Counted votes per (project, channel)."""
        self._fold()
        return self._by_channel

    @property
    def by_point(self) -> Counter[tuple[str, str]]:
        """Counted votes per (project, polling point) of ballots naming a point."""
        self._fold()
        return self._by_point

    @property
    def by_day(self) -> Counter[tuple[str, str]]:
        """Counted votes per (project, day of cast_at in the election's zone)."""
        self._fold()
        return self._by_day

    def _fold(self) -> None:
        """Add the fast path's pending ballots to the per-project counters."""
        if not self._pending:
            return
        votes, by_channel, by_point, by_day = (
            self._votes,
            self._by_channel,
            self._by_point,
            self._by_day,
        )
        for (raw_projects, channel, raw_point, day), n in self._pending.items():
            if not raw_projects:
                continue
            projects = raw_projects[1:-1].decode("utf-8", "surrogatepass").split('","')
            for project in projects:
                votes[project] += n
                by_channel[(project, channel)] += n
                by_day[(project, day)] += n
            if raw_point is not None:
                point = raw_point.decode("utf-8", "surrogatepass")
                for project in projects:
                    by_point[(project, point)] += n
        self._pending.clear()

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
        for project in counted.projects:
            self._votes[project] += sign
            self._by_channel[(project, counted.channel)] += sign
            if counted.point is not None:
                self._by_point[(project, counted.point)] += sign
            self._by_day[(project, counted.day)] += sign
        self.ballots[counted.channel] += sign
        left = self.voter_ballots.get(counted.voter, 0) + sign
        if left:
            self.voter_ballots[counted.voter] = left
            if sign > 0:
                self.voter_channels[counted.voter].add(counted.channel)
        else:
            self.voter_ballots.pop(counted.voter, None)
            self.voter_channels.pop(counted.voter, None)

    async def apply(self, position: int, data: bytes, fetch: Fetch) -> None:
        """Apply the entry at ``position`` (its stored bytes); ``fetch`` reads an earlier
        entry's payload (for voids)."""
        if position != self.position:
            raise ValueError(f"tally expects entry {self.position}, got {position}")
        if self.fast and self._apply_fast(data):
            self.entries += 1
            self.position = position + 1
            return
        obj = json.loads(data)
        envelope = obj["envelope"]
        payload = envelope["payload"]
        kind = obj["type"]
        if kind == EntryType.BALLOT:
            self._add(_counted(payload, ONLINE, self.zone), +1)
        elif kind == EntryType.PAPER_BALLOT:
            if self.election.double_entry:
                voter = payload["voter"]
                self._paper[voter].append(PriorEntry(position, kind, payload, envelope["key"]))
                self._recount_paper(voter)
            else:
                self._add(_counted(payload, PAPER, self.zone), +1)
        elif kind == EntryType.SPOILED_BALLOT:
            self.spoiled += 1
        elif kind == EntryType.VOID:
            await self._void(int(payload["entry"]), fetch)
        self.entries += 1
        self.position = position + 1

    def _apply_fast(self, data: bytes) -> bool:
        """Count a canonical online ballot (or paper ballot without double entry) straight from
        its bytes; False, having changed nothing, for any other entry."""
        match = _BALLOT_ENTRY.fullmatch(data)
        if match is None:
            return False
        if not data.isascii():
            try:  # json.loads decodes the whole entry first: UTF-8, lone surrogates allowed
                data.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                return False
        raw_cast_at, raw_point, raw_projects, raw_voter, kind = match.groups()
        paper = kind == b"paper-ballot"
        if paper and self.election.double_entry:
            return False
        day = self._days.get(raw_cast_at)
        if day is None:
            day = self._day(raw_cast_at.decode("utf-8", "surrogatepass"))
            if len(self._days) > _CACHE_LIMIT:
                self._days.clear()
            self._days[raw_cast_at] = day
        channel = PAPER if paper else ONLINE
        key = (raw_projects, channel, raw_point, day)
        pending = self._pending
        pending[key] = pending.get(key, 0) + 1
        if len(pending) > _CACHE_LIMIT:
            self._fold()
        self.ballots[channel] += 1
        voter = raw_voter.decode("utf-8", "surrogatepass")
        left = self.voter_ballots.get(voter, 0) + 1
        if left:
            self.voter_ballots[voter] = left
            self.voter_channels[voter].add(channel)
        else:  # only when a void came before its target (not in a log the rules wrote)
            self.voter_ballots.pop(voter, None)
            self.voter_channels.pop(voter, None)
        return True

    async def _void(self, target: int, fetch: Fetch) -> None:
        if target in self._voided_positions:
            return
        self._voided_positions.add(target)
        self.voided += 1
        obj = await fetch(target)
        payload = obj["envelope"]["payload"]
        kind = obj["type"]
        if kind == EntryType.BALLOT:
            self._add(_counted(payload, ONLINE, self.zone), -1)
        elif kind == EntryType.PAPER_BALLOT:
            if self.election.double_entry:
                voter = payload["voter"]
                self._paper[voter] = [e for e in self._paper[voter] if e.position != target]
                self._recount_paper(voter)
            else:
                self._add(_counted(payload, PAPER, self.zone), -1)
        elif kind == EntryType.SPOILED_BALLOT:
            self.spoiled -= 1

    def _recount_paper(self, voter: str) -> None:
        for counted in self._paper_counted.pop(voter, []):
            self._add(counted, -1)
        status = paper_status(self.election, self._paper[voter], voter)
        for pair in status.counted:
            counted = _counted(dict(pair[0].payload), PAPER, self.zone)
            self._paper_counted[voter].append(counted)
            self._add(counted, +1)

    @property
    def voters(self) -> int:
        """Distinct voters with at least one counted ballot."""
        return len(self.voter_ballots)

    def voters_by_channel(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for channels in self.voter_channels.values():
            for channel in channels:
                counts[channel] += 1
        return {ONLINE: counts[ONLINE], PAPER: counts[PAPER]}
