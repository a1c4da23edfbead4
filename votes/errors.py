"""Why a vote, a void or an election definition is refused.

Every refusal is a :class:`VoteRefusedError` subclass named after the failure. Each carries:

- ``code`` — the stable problem ``code`` of the HTTP contract (RFC 9457 problem+json);
- ``status`` — the HTTP status the API answers with;
- ``message_en`` / ``message_uk`` — a sentence a clerk or an integrator can act on
  (``str(error)`` is the English one);
- ``data`` — the error's facts as JSON-able values, for problem+json extension members.

Statuses follow one rule:

- **409 Conflict** — the request is well formed but conflicts with what the log already holds:
  the voter's limit, a repeated project, an earlier ballot, a reused nonce, a void that cannot
  apply, a disputed or same-clerk double-entry keying, an election already open.
- **422 Unprocessable Content** — the content itself is wrong whatever the log holds: a bad
  field, an unknown project or polling point, an empty ballot, a bad identity number, a bad
  election definition.
- **403 Forbidden** — the content is fine but the calendar forbids it: cast outside the voting
  window, or a paper entry after the paper deadline. Retrying will not help.

No error ever holds a raw identity number: :class:`BadIdentityError` carries no data at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

__all__ = [
    "AlreadyVotedError",
    "BadIdentityError",
    "BadPayloadError",
    "DisputedPaperBallotError",
    "ElectionDefinitionError",
    "ElectionFrozenError",
    "EmptyBallotError",
    "LimitExceededError",
    "NonceReusedError",
    "OutsideWindowError",
    "PaperDeadlinePassedError",
    "ProjectRepeatedError",
    "SameClerkError",
    "UnknownPollingPointError",
    "UnknownProjectError",
    "VoidRefusedError",
    "VoteRefusedError",
]


def _when(moment: datetime) -> str:
    return moment.isoformat()


class VoteRefusedError(Exception):
    """Base of every domain refusal: a stable ``code``, an HTTP ``status`` and two messages.

    Subclasses pass their constructor arguments to ``Exception.__init__`` so that errors pickle
    and compare by their data; the messages are computed from that data.
    """

    code: ClassVar[str] = "vote-refused"
    status: ClassVar[int] = 422

    @property
    def message_en(self) -> str:
        """What went wrong and what to do, in English."""
        return "The request was refused."

    @property
    def message_uk(self) -> str:
        """What went wrong and what to do, in Ukrainian."""
        return "Запит відхилено."

    @property
    def data(self) -> dict[str, Any]:
        """The error's facts as JSON-able values (problem+json extension members)."""
        return {}

    def __str__(self) -> str:
        return self.message_en


class LimitExceededError(VoteRefusedError):
    """The ballot would give the voter more than ``limit`` projects in ``category``.

    ``already`` counts the projects the voter holds in the category (counted, or waiting for a
    second keying); ``adding`` is how many this ballot brings.
    """

    code = "limit-exceeded"
    status = 409

    def __init__(self, category: str, limit: int, already: int, adding: int = 0) -> None:
        super().__init__(category, limit, already, adding)
        self.category = category
        self.limit = limit
        self.already = already
        self.adding = adding

    @property
    def message_en(self) -> str:
        return (
            f"Category {self.category!r} allows at most {self.limit} project(s) per voter; "
            f"this voter already has {self.already} and the ballot adds {self.adding}."
        )

    @property
    def message_uk(self) -> str:
        return (
            f"У категорії «{self.category}» виборець може підтримати не більше {self.limit} "
            f"проєкт(ів); цей виборець уже має {self.already}, а бюлетень додає {self.adding}."
        )

    @property
    def data(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "limit": self.limit,
            "already": self.already,
            "adding": self.adding,
        }


class ProjectRepeatedError(VoteRefusedError):
    """The ballot names ``project`` twice, or the voter already supports it."""

    code = "project-repeated"
    status = 409

    def __init__(self, project: str) -> None:
        super().__init__(project)
        self.project = project

    @property
    def message_en(self) -> str:
        return (
            f"Project {self.project!r} appears twice on the ballot or is already supported by "
            "this voter; a voter supports each project at most once."
        )

    @property
    def message_uk(self) -> str:
        return (
            f"Проєкт «{self.project}» повторюється в бюлетені або вже підтриманий цим виборцем; "
            "кожен проєкт можна підтримати лише один раз."
        )

    @property
    def data(self) -> dict[str, Any]:
        return {"project": self.project}


class OutsideWindowError(VoteRefusedError):
    """The ballot's ``cast_at`` is not within the voting window [``opens``, ``closes``]."""

    code = "outside-window"
    status = 403

    def __init__(self, cast_at: datetime, opens: datetime, closes: datetime) -> None:
        super().__init__(cast_at, opens, closes)
        self.cast_at = cast_at
        self.opens = opens
        self.closes = closes

    @property
    def message_en(self) -> str:
        return (
            f"Cast at {_when(self.cast_at)}, outside the voting window "
            f"{_when(self.opens)} – {_when(self.closes)}."
        )

    @property
    def message_uk(self) -> str:
        return (
            f"Час голосування {_when(self.cast_at)} поза періодом голосування "
            f"{_when(self.opens)} – {_when(self.closes)}."
        )

    @property
    def data(self) -> dict[str, Any]:
        return {
            "cast_at": _when(self.cast_at),
            "opens": _when(self.opens),
            "closes": _when(self.closes),
        }


class UnknownProjectError(VoteRefusedError):
    """The ballot names ``project``, which is not on this election's ballot."""

    code = "unknown-project"
    status = 422

    def __init__(self, project: str) -> None:
        super().__init__(project)
        self.project = project

    @property
    def message_en(self) -> str:
        return f"Project {self.project!r} is not on this election's ballot; check the project id."

    @property
    def message_uk(self) -> str:
        return f"Проєкту «{self.project}» немає в бюлетені цих виборів; перевірте номер проєкту."

    @property
    def data(self) -> dict[str, Any]:
        return {"project": self.project}


class NonceReusedError(VoteRefusedError):
    """``nonce`` already names a different entry: a retry must repeat its payload exactly."""

    code = "nonce-reused"
    status = 409

    def __init__(self, nonce: str) -> None:
        super().__init__(nonce)
        self.nonce = nonce

    @property
    def message_en(self) -> str:
        return (
            f"Nonce {self.nonce} was already used for a different entry; a retry must repeat the "
            "original payload exactly, and a new entry needs a new nonce."
        )

    @property
    def message_uk(self) -> str:
        return (
            f"Ідентифікатор запиту (nonce) {self.nonce} уже використано для іншого запису; "
            "повторний запит має точно збігатися з першим, а новий запис потребує нового nonce."
        )

    @property
    def data(self) -> dict[str, Any]:
        return {"nonce": self.nonce}


class AlreadyVotedError(VoteRefusedError):
    """The voter already has a ballot and the election allows one ballot per voter."""

    code = "already-voted"
    status = 409

    def __init__(self) -> None:
        super().__init__()

    @property
    def message_en(self) -> str:
        return "This voter has already voted; this election allows one ballot per voter."

    @property
    def message_uk(self) -> str:
        return "Цей виборець уже проголосував; на цих виборах дозволено лише один бюлетень."


class EmptyBallotError(VoteRefusedError):
    """The ballot supports no project (a blank paper ballot is recorded as spoiled instead)."""

    code = "empty-ballot"
    status = 422

    def __init__(self) -> None:
        super().__init__()

    @property
    def message_en(self) -> str:
        return "The ballot supports no project; record a blank paper ballot as spoiled."

    @property
    def message_uk(self) -> str:
        return (
            "Бюлетень не підтримує жодного проєкту; "
            "порожній паперовий бюлетень внесіть як зіпсований."
        )


class BadIdentityError(VoteRefusedError):
    """The typed identity number is not 8–12 digits. Deliberately carries no data."""

    code = "bad-identity"
    status = 422

    def __init__(self) -> None:
        super().__init__()

    @property
    def message_en(self) -> str:
        return (
            "The identity number must be 8 to 12 digits (spaces and dashes are ignored); "
            "check what was typed."
        )

    @property
    def message_uk(self) -> str:
        return (
            "Номер документа має складатися з 8–12 цифр (пробіли й дефіси не враховуються); "
            "перевірте введене."
        )


class UnknownPollingPointError(VoteRefusedError):
    """The paper entry names ``point``, which is not a polling point of this election."""

    code = "unknown-polling-point"
    status = 422

    def __init__(self, point: str) -> None:
        super().__init__(point)
        self.point = point

    @property
    def message_en(self) -> str:
        return f"Polling point {self.point!r} is not defined for this election."

    @property
    def message_uk(self) -> str:
        return f"Пункт голосування «{self.point}» не визначено для цих виборів."

    @property
    def data(self) -> dict[str, Any]:
        return {"polling_point": self.point}


class PaperDeadlinePassedError(VoteRefusedError):
    """A paper entry arrived after the election's paper deadline."""

    code = "paper-deadline-passed"
    status = 403

    def __init__(self, deadline: datetime) -> None:
        super().__init__(deadline)
        self.deadline = deadline

    @property
    def message_en(self) -> str:
        return f"Paper ballots could be entered until {_when(self.deadline)}; that has passed."

    @property
    def message_uk(self) -> str:
        return f"Паперові бюлетені можна було внести до {_when(self.deadline)}; цей строк минув."

    @property
    def data(self) -> dict[str, Any]:
        return {"deadline": _when(self.deadline)}


_VOID_REASONS_EN = {
    "void-of-void": "entry {p} is itself a void; a void cannot be voided",
    "unknown-entry": "there is no entry {p} in this election's log",
    "already-voided": "entry {p} is already voided",
    "not-voidable": "entry {p} is not a ballot, paper ballot or spoiled ballot",
}
_VOID_REASONS_UK = {
    "void-of-void": "запис {p} сам є анулюванням; анулювання не можна анулювати",
    "unknown-entry": "запису {p} немає в журналі цих виборів",
    "already-voided": "запис {p} уже анульовано",
    "not-voidable": "запис {p} не є бюлетенем, паперовим чи зіпсованим бюлетенем",
}


class VoidRefusedError(VoteRefusedError):
    """The void of the entry at ``position`` cannot apply.

    ``reason_code`` is one of ``void-of-void``, ``unknown-entry``, ``already-voided``,
    ``not-voidable`` (election, key and results entries are never voided).
    """

    code = "void-refused"
    status = 409
    REASONS: ClassVar[frozenset[str]] = frozenset(_VOID_REASONS_EN)

    def __init__(self, position: int, reason_code: str) -> None:
        super().__init__(position, reason_code)
        self.position = position
        self.reason_code = reason_code

    @property
    def message_en(self) -> str:
        why = _VOID_REASONS_EN.get(self.reason_code, self.reason_code)
        return "Void refused: " + why.format(p=self.position) + "."

    @property
    def message_uk(self) -> str:
        why = _VOID_REASONS_UK.get(self.reason_code, self.reason_code)
        return "Анулювання відхилено: " + why.format(p=self.position) + "."

    @property
    def data(self) -> dict[str, Any]:
        return {"entry": self.position, "reason": self.reason_code}


class BadPayloadError(VoteRefusedError):
    """The payload's ``field`` is missing, of the wrong type or malformed (``problem`` says how)."""

    code = "bad-payload"
    status = 422

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.field = field
        self.problem = problem

    @property
    def message_en(self) -> str:
        return f"{self.field}: {self.problem}"

    @property
    def message_uk(self) -> str:
        return f"Некоректний запит, поле «{self.field}»: {self.problem}"

    @property
    def data(self) -> dict[str, Any]:
        return {"field": self.field, "problem": self.problem}


class ElectionDefinitionError(VoteRefusedError):
    """The election definition's ``field`` (a path like ``projects[12].cost``) is wrong."""

    code = "bad-election"
    status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)
        self.field = field
        self.message = message

    @property
    def message_en(self) -> str:
        return f"{self.field}: {self.message}"

    @property
    def message_uk(self) -> str:
        return f"Помилка у визначенні виборів, поле «{self.field}»: {self.message}"

    @property
    def data(self) -> dict[str, Any]:
        return {"field": self.field, "problem": self.message}


class ElectionFrozenError(VoteRefusedError):
    """The election definition cannot change once voting has opened (at ``opens``)."""

    code = "election-frozen"
    status = 409

    def __init__(self, opens: datetime) -> None:
        super().__init__(opens)
        self.opens = opens

    @property
    def message_en(self) -> str:
        return f"Voting opened at {_when(self.opens)}; the election can no longer be amended."

    @property
    def message_uk(self) -> str:
        return f"Голосування розпочалося {_when(self.opens)}; змінювати вибори вже не можна."

    @property
    def data(self) -> dict[str, Any]:
        return {"opens": _when(self.opens)}


class SameClerkError(VoteRefusedError):
    """Double entry: the second keying of a paper ballot came from the clerk who keyed the first.

    ``key`` is the signer key id (``name+hex8``) of both keyings.
    """

    code = "same-clerk"
    status = 409

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    @property
    def message_en(self) -> str:
        return (
            "This voter's paper ballot is waiting for its second keying, which must come from a "
            f"different clerk than {self.key}."
        )

    @property
    def message_uk(self) -> str:
        return (
            "Паперовий бюлетень цього виборця чекає на повторне внесення, яке має зробити "
            f"інший оператор, ніж {self.key}."
        )

    @property
    def data(self) -> dict[str, Any]:
        return {"key": self.key}


class DisputedPaperBallotError(VoteRefusedError):
    """Double entry: two keyings of the voter's paper ballot differ; a supervisor must void one.

    ``positions`` are the log positions of the disagreeing keyings.
    """

    code = "paper-disputed"
    status = 409

    def __init__(self, positions: tuple[int, ...]) -> None:
        super().__init__(positions)
        self.positions = positions

    @property
    def message_en(self) -> str:
        where = ", ".join(str(p) for p in self.positions)
        return (
            f"The keyings of this voter's paper ballot disagree (entries {where}); a supervisor "
            "must void the wrong one before anything else is entered for this voter."
        )

    @property
    def message_uk(self) -> str:
        where = ", ".join(str(p) for p in self.positions)
        return (
            f"Внесення паперового бюлетеня цього виборця не збігаються (записи {where}); "
            "супервізор має анулювати хибне, перш ніж вносити щось іще для цього виборця."
        )

    @property
    def data(self) -> dict[str, Any]:
        return {"entries": list(self.positions)}
