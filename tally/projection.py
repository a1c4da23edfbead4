"""The live tally: a projection of one election's log, fed entry by entry in log order.

What counts is defined once, in :mod:`votes.rules`; this projection applies it incrementally:
without double entry every ballot and paper ballot the log accepted counts until a void names it
(the sequencer only accepted it because the rules allowed it at its position); with double entry
a voter's paper keyings go through :func:`votes.rules.paper_status`. The position of the next
entry to apply moves in the same step as the counts, so every entry is applied exactly once;
rebuilding from position 0 gives exactly the incremental result (a property test checks it).
Memory is bounded by the number of voters and projects, not by the log.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
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


def _counted(payload: dict[str, Any], channel: str, zone: ZoneInfo) -> Counted:
    day = datetime.fromisoformat(payload["cast_at"]).astimezone(zone).date().isoformat()
    return Counted(
        payload["voter"], tuple(payload["projects"]), channel, payload.get("polling_point"), day
    )


class Tally:
    """Counts of one election, as of ``position`` (the next entry to apply)."""

    def __init__(self, election: Election) -> None:
        self.election = election
        self.zone = ZoneInfo(election.timezone)
        self.position = 0
        self.votes: Counter[str] = Counter()
        self.by_channel: Counter[tuple[str, str]] = Counter()
        self.by_point: Counter[tuple[str, str]] = Counter()
        self.by_day: Counter[tuple[str, str]] = Counter()
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

    def _add(self, counted: Counted, sign: int) -> None:
        for project in counted.projects:
            self.votes[project] += sign
            self.by_channel[(project, counted.channel)] += sign
            if counted.point is not None:
                self.by_point[(project, counted.point)] += sign
            self.by_day[(project, counted.day)] += sign
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
