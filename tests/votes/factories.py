"""Small factories for domain tests: the example election, payloads, and an in-memory tagged log."""

from __future__ import annotations

import copy
import dataclasses
import tomllib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from votes.election import Election, parse_election_toml
from votes.rules import (
    Decision,
    PriorEntry,
    decide_ballot,
    decide_spoiled,
    decide_void,
    read_tags_for_ballot,
    read_tags_for_spoiled,
    read_tags_for_void,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "zhytomyr-2018.toml"
KYIV = ZoneInfo("Europe/Kyiv")
DURING = datetime(2018, 10, 3, 10, 15, tzinfo=KYIV)
"""A moment inside the Zhytomyr voting window."""
SITE = "site.e-dem+0a1b2c3d"
CLERK_OLENA = "clerk.city-council.olena+11111111"
CLERK_PETRO = "clerk.city-council.petro+22222222"
CLERK_IRYNA = "clerk.bohunskyi.iryna+33333333"
SUPERVISOR = "supervisor.main+44444444"


@cache
def _example_text() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


def example_text() -> str:
    """The text of examples/zhytomyr-2018.toml."""
    return _example_text()


def example_document() -> dict[str, Any]:
    """A fresh, mutable parse of the example file (for broken variants)."""
    return copy.deepcopy(_example_document())


@cache
def _example_document() -> dict[str, Any]:
    return tomllib.loads(_example_text())


@cache
def zhytomyr() -> Election:
    """The Zhytomyr 2018 example election."""
    return parse_election_toml(_example_text())


def zhytomyr_with(**changes: Any) -> Election:
    """The example election with some fields replaced (e.g. ``double_entry=True``)."""
    return dataclasses.replace(zhytomyr(), **changes)


def token(n: int) -> str:
    """A voter token for test voter ``n``."""
    return f"{n:064x}"


def ballot(
    voter: str,
    projects: Sequence[str],
    *,
    cast_at: datetime = DURING,
    nonce: str | None = None,
    election: str = "zhytomyr-2018",
) -> dict[str, Any]:
    """An online ballot payload."""
    return {
        "type": "ballot",
        "election": election,
        "voter": voter,
        "projects": list(projects),
        "cast_at": cast_at.isoformat(),
        "nonce": nonce or str(uuid.uuid4()),
    }


def paper_ballot(
    voter: str,
    projects: Sequence[str],
    *,
    point: str = "city-council",
    cast_at: datetime = DURING,
    nonce: str | None = None,
) -> dict[str, Any]:
    """A paper ballot payload as a clerk enters it."""
    payload = ballot(voter, projects, cast_at=cast_at, nonce=nonce)
    payload["type"] = "paper-ballot"
    payload["polling_point"] = point
    return payload


def spoiled_ballot(
    *,
    voter: str | None = None,
    point: str = "city-council",
    reason: str = "too-many-marks",
    cast_at: datetime = DURING,
    nonce: str | None = None,
) -> dict[str, Any]:
    """A spoiled ballot payload."""
    payload: dict[str, Any] = {
        "type": "spoiled-ballot",
        "election": "zhytomyr-2018",
        "polling_point": point,
        "reason": reason,
        "cast_at": cast_at.isoformat(),
        "nonce": nonce or str(uuid.uuid4()),
    }
    if voter is not None:
        payload["voter"] = voter
    return payload


def void(
    position: int, *, reason: str = "entered twice", nonce: str | None = None
) -> dict[str, Any]:
    """A supervisor's void payload."""
    return {
        "type": "void",
        "election": "zhytomyr-2018",
        "entry": position,
        "reason": reason,
        "nonce": nonce or str(uuid.uuid4()),
    }


@dataclass
class Log:
    """An in-memory tagged log that applies decisions the way the API does.

    Each ``submit_*`` reads the decision's tags, decides, and appends unless the decision is a
    replay; it returns the decision (refusals propagate). Position 0 holds the election entry.
    """

    election: Election
    entries: list[tuple[PriorEntry, tuple[str, ...]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.entries:
            first = PriorEntry(0, "election", {"type": "election"}, "admin.test+00000000")
            self.entries.append((first, ()))

    def read(self, tags: Sequence[str]) -> list[PriorEntry]:
        """Entries carrying any of ``tags``."""
        wanted = set(tags)
        return [entry for entry, entry_tags in self.entries if wanted & set(entry_tags)]

    def at(self, position: int) -> PriorEntry | None:
        """The entry at ``position``, or None."""
        if 0 <= position < len(self.entries):
            return self.entries[position][0]
        return None

    def _apply(self, payload: dict[str, Any], decision: Decision, key: str) -> Decision:
        if decision.replay_of is None:
            entry = PriorEntry(len(self.entries), payload["type"], copy.deepcopy(payload), key)
            self.entries.append((entry, decision.tags))
        return decision

    @property
    def last(self) -> PriorEntry:
        """The newest entry."""
        return self.entries[-1][0]

    def submit_ballot(
        self, payload: dict[str, Any], *, key: str = SITE, now: datetime = DURING
    ) -> Decision:
        """Decide and apply a ballot or paper ballot."""
        history = self.read(read_tags_for_ballot(payload))
        decision = decide_ballot(self.election, payload, history, now=now, key=key)
        return self._apply(payload, decision, key)

    def submit_spoiled(
        self, payload: dict[str, Any], *, key: str = CLERK_OLENA, now: datetime = DURING
    ) -> Decision:
        """Decide and apply a spoiled ballot."""
        history = self.read(read_tags_for_spoiled(payload))
        decision = decide_spoiled(self.election, payload, history, now=now)
        return self._apply(payload, decision, key)

    def submit_void(
        self, payload: dict[str, Any], *, key: str = SUPERVISOR, now: datetime = DURING
    ) -> Decision:
        """Decide and apply a void."""
        history = self.read(read_tags_for_void(payload))
        target = self.at(payload["entry"])
        decision = decide_void(self.election, payload, target, history, now=now)
        return self._apply(payload, decision, key)

    def history_of(self, voter: str) -> list[PriorEntry]:
        """The voter's entries and the voids naming them, as the API would read them."""
        return self.read([f"voter:{voter}"])
