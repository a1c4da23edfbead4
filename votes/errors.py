"""Why a vote, a void or an election definition is refused.

Every refusal is a :class:`VoteRefusedError` subclass named after the failure. Each carries a
stable ``code`` and its facts: typed attributes (its constructor's arguments) and ``data``, the same
facts as JSON-able values. Nothing here knows HTTP or any language but the code's: the API's table
(:mod:`api.messages`) maps each ``code`` to an HTTP status and the English and Ukrainian sentences
a clerk or an integrator reads, built from ``data``. ``str(error)`` is a one-line summary for logs
and reports, ``code: fact=value, ...``.

No error ever holds a raw identity number: :class:`BadIdentityError` carries no data at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from typing import Any, ClassVar

__all__ = [
    "AlreadyVotedError",
    "BadIdentityError",
    "BadPayloadError",
    "CostLimitExceededError",
    "CostTooLowError",
    "DisputedPaperBallotError",
    "DomainError",
    "ElectionDefinitionError",
    "ElectionFrozenError",
    "EmptyBallotError",
    "GroupLimitExceededError",
    "LimitExceededError",
    "NonceReusedError",
    "OutsideWindowError",
    "PaperDeadlinePassedError",
    "PointsLimitExceededError",
    "ProjectPointsExceededError",
    "ProjectRepeatedError",
    "RankingExistsError",
    "ResultsSealedError",
    "SameClerkError",
    "TooFewPicksError",
    "TooFewPointsError",
    "UnknownPollingPointError",
    "UnknownProjectError",
    "VoidRefusedError",
    "VoteRefusedError",
    "WrongBallotFieldError",
    "WrongEntryTypeError",
    "WrongPollingPointError",
]


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


class DomainError(Exception):
    """Base of every error the domain or the ledger reports: a stable ``code`` and its facts.

    A subclass is a ``@dataclass(eq=False)`` whose fields are its constructor's arguments; ``data``
    holds them as JSON-able values (datetimes as ISO 8601, tuples as lists), under the names
    ``data_names`` gives where they differ from the attribute's.
    """

    code: ClassVar[str] = "domain-error"
    data_names: ClassVar[Mapping[str, str]] = {}

    @property
    def data(self) -> dict[str, Any]:
        """The error's facts as JSON-able values, in field order."""
        if not is_dataclass(self):
            return {}
        return {
            self.data_names.get(f.name, f.name): _jsonable(getattr(self, f.name))
            for f in fields(self)
        }

    def __str__(self) -> str:
        if not is_dataclass(self):
            return super().__str__() or self.code
        facts = ", ".join(f"{name}={value!r}" for name, value in self.data.items())
        return f"{self.code}: {facts}" if facts else self.code

    def __reduce__(self) -> str | tuple[Any, ...]:
        # A dataclass __init__ does not fill ``args``; rebuild from the fields so errors pickle.
        if not is_dataclass(self):
            return super().__reduce__()
        return (type(self), tuple(getattr(self, f.name) for f in fields(self)))


class VoteRefusedError(DomainError):
    """Base of every domain refusal."""

    code = "vote-refused"


@dataclass(eq=False)
class LimitExceededError(VoteRefusedError):
    """The ballot would give the voter more than ``limit`` projects in ``category``.

    ``already`` counts the projects the voter holds in the category (counted, or waiting for a
    second keying); ``adding`` is how many this ballot brings.
    """

    code = "limit-exceeded"
    category: str
    limit: int
    already: int
    adding: int = 0


@dataclass(eq=False)
class TooFewPicksError(VoteRefusedError):
    """After the ballot the voter would have ``chosen`` projects in ``category``, fewer than
    its ``minimum`` (``min_picks``)."""

    code = "too-few-picks"
    category: str
    minimum: int
    chosen: int


@dataclass(eq=False)
class CostLimitExceededError(VoteRefusedError):
    """Knapsack: the projects the voter would have in ``category`` after the ballot cost
    ``total_cost_kopecks`` together, more than its ``max_total_cost_kopecks``."""

    code = "over-cost-limit"
    category: str
    max_total_cost_kopecks: int
    total_cost_kopecks: int


@dataclass(eq=False)
class CostTooLowError(VoteRefusedError):
    """Knapsack: the projects the voter would have in ``category`` after the ballot cost
    ``total_cost_kopecks`` together, less than its ``min_total_cost_kopecks``."""

    code = "under-cost-minimum"
    category: str
    min_total_cost_kopecks: int
    total_cost_kopecks: int


@dataclass(eq=False)
class ProjectPointsExceededError(VoteRefusedError):
    """Cumulative: the ballot gives ``project`` ``points``, more than ``category``'s
    ``max_points`` per project (``limit``)."""

    code = "too-many-points-for-project"
    category: str
    project: str
    limit: int
    points: int


@dataclass(eq=False)
class PointsLimitExceededError(VoteRefusedError):
    """Cumulative: the voter would have given ``total`` points in ``category`` after the ballot,
    more than its ``max_total_points`` (``limit``); ``already`` were given before."""

    code = "too-many-points"
    category: str
    limit: int
    already: int
    total: int


@dataclass(eq=False)
class TooFewPointsError(VoteRefusedError):
    """Cumulative: the voter would have given ``total`` points in ``category`` after the ballot,
    fewer than its ``min_total_points`` (``minimum``)."""

    code = "too-few-points"
    category: str
    minimum: int
    total: int


@dataclass(eq=False)
class RankingExistsError(VoteRefusedError):
    """Ordinal: the voter already has a ranking in ``category`` (counted, or waiting for a second
    keying); rankings do not combine, so a second one is refused."""

    code = "ranking-exists"
    category: str


@dataclass(eq=False)
class GroupLimitExceededError(VoteRefusedError):
    """After the ballot the voter would take part in ``categories`` of ``group``, more than its
    ``limit`` (``max_categories``)."""

    code = "too-many-categories"
    group: str
    limit: int
    categories: tuple[str, ...]


@dataclass(eq=False)
class WrongBallotFieldError(VoteRefusedError):
    """``project`` is in the payload's ``field`` but its category ``category`` takes a
    ``ballot`` ballot, whose choices go in ``expected``."""

    code = "wrong-ballot-field"
    project: str
    field: str
    category: str
    ballot: str
    expected: str


@dataclass(eq=False)
class ProjectRepeatedError(VoteRefusedError):
    """The ballot names ``project`` twice, or the voter already supports it."""

    code = "project-repeated"
    project: str


@dataclass(eq=False)
class OutsideWindowError(VoteRefusedError):
    """The ballot's ``cast_at`` is not within the voting window [``opens``, ``closes``]."""

    code = "outside-window"
    cast_at: datetime
    opens: datetime
    closes: datetime


@dataclass(eq=False)
class UnknownProjectError(VoteRefusedError):
    """The ballot names ``project``, which is not on this election's ballot."""

    code = "unknown-project"
    project: str


@dataclass(eq=False)
class NonceReusedError(VoteRefusedError):
    """``nonce`` already names a different entry: a retry must repeat its payload exactly."""

    code = "nonce-reused"
    nonce: str


@dataclass(eq=False)
class AlreadyVotedError(VoteRefusedError):
    """The voter already has a ballot and the election allows one ballot per voter."""

    code = "already-voted"


@dataclass(eq=False)
class EmptyBallotError(VoteRefusedError):
    """The ballot supports no project (a blank paper ballot is recorded as spoiled instead)."""

    code = "empty-ballot"


@dataclass(eq=False)
class BadIdentityError(VoteRefusedError):
    """The typed identity number is not 8–12 digits. Deliberately carries no data."""

    code = "bad-identity"


@dataclass(eq=False)
class UnknownPollingPointError(VoteRefusedError):
    """The paper entry names ``point``, which is not a polling point of this election."""

    code = "unknown-polling-point"
    data_names: ClassVar[Mapping[str, str]] = {"point": "polling_point"}
    point: str


@dataclass(eq=False)
class WrongPollingPointError(VoteRefusedError):
    """The clerk's key is registered for polling point ``point``; the entry names another."""

    code = "wrong-polling-point"
    data_names: ClassVar[Mapping[str, str]] = {"point": "polling_point"}
    point: str


@dataclass(eq=False)
class PaperDeadlinePassedError(VoteRefusedError):
    """A paper entry arrived after the election's paper ``deadline``."""

    code = "paper-deadline-passed"
    deadline: datetime


@dataclass(eq=False)
class VoidRefusedError(VoteRefusedError):
    """The void of the entry at ``position`` cannot apply.

    ``reason_code`` is one of ``void-of-void``, ``unknown-entry``, ``already-voided``,
    ``not-voidable`` (election, key and results entries are never voided).
    """

    code = "void-refused"
    data_names: ClassVar[Mapping[str, str]] = {"position": "entry", "reason_code": "reason"}
    position: int
    reason_code: str


@dataclass(eq=False)
class BadPayloadError(VoteRefusedError):
    """The payload's ``field`` is missing, of the wrong type or malformed (``problem`` says how)."""

    code = "bad-payload"
    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}"


@dataclass(eq=False)
class WrongEntryTypeError(VoteRefusedError):
    """The payload's type ``found`` is not one the receiver takes (``expected``)."""

    code = "wrong-type"
    expected: tuple[str, ...]
    found: object


@dataclass(eq=False)
class ElectionDefinitionError(VoteRefusedError):
    """The election definition's ``field`` (a path like ``projects[12].cost``) is wrong."""

    code = "bad-election"
    data_names: ClassVar[Mapping[str, str]] = {"message": "problem"}
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(eq=False)
class ElectionFrozenError(VoteRefusedError):
    """The election definition cannot change once voting has opened (at ``opens``)."""

    code = "election-frozen"
    opens: datetime


@dataclass(eq=False)
class SameClerkError(VoteRefusedError):
    """Double entry: the second keying of a paper ballot came from the clerk who keyed the first.

    ``key`` is the signer key id (``name+hex8``) of both keyings.
    """

    code = "same-clerk"
    key: str


@dataclass(eq=False)
class DisputedPaperBallotError(VoteRefusedError):
    """Double entry: two keyings of the voter's paper ballot differ; a supervisor must void one.

    ``positions`` are the log positions of the disagreeing keyings.
    """

    code = "paper-disputed"
    data_names: ClassVar[Mapping[str, str]] = {"positions": "entries"}
    positions: tuple[int, ...]


@dataclass(eq=False)
class ResultsSealedError(DomainError):
    """The election's results are sealed (``results = "sealed-until-close"``) until voting
    closes at ``until`` (in the election's ``timezone``): the log's entries and the totals are
    not served before then. Not a refusal of a vote: of a read."""

    code = "results-sealed"
    data_names: ClassVar[Mapping[str, str]] = {"until": "results_open_at"}
    until: datetime
    timezone: str
