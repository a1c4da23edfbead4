"""Mirrors no server module: the auditor's own violations and error tree.

What an audit finds wrong: one violation record, and one error type per step of the checklist.

A :class:`Violation` says where (an entry index, a checkpoint size, or neither for the source as a
whole), which check failed, what was expected and what was found. The non-raising
:func:`tally.audit.audit` collects them in a report; the strict variant raises the first one as
the error type of its step.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AuditError",
    "CheckpointError",
    "EntryShapeError",
    "ResultsMismatchError",
    "RuleViolationError",
    "SignatureError",
    "SourceFormatError",
    "Violation",
    "error_for",
]


@dataclass(frozen=True, slots=True)
class Violation:
    """One failed check: ``step`` of the checklist (1-6), the check's name, where, and
    what was expected and found (short texts). ``file``: the checkpoint saved elsewhere
    (``--checkpoint FILE``) the violation is about."""

    step: int
    check: str
    expected: str
    found: str
    entry: int | None = None
    checkpoint: int | None = None
    file: str | None = None

    @property
    def where(self) -> str:
        """``entry 12``, ``checkpoint 30``, ``checkpoint file F`` or ``log``."""
        if self.file is not None:
            return f"checkpoint file {self.file}"
        if self.entry is not None:
            return f"entry {self.entry}"
        if self.checkpoint is not None:
            return f"checkpoint {self.checkpoint}"
        return "log"

    def __str__(self) -> str:
        return (
            f"{self.where}: step {self.step} {self.check}: "
            f"expected {self.expected}; found {self.found}"
        )


class AuditError(Exception):
    """A check of the audit failed; ``violation`` says which, where and how."""

    def __init__(self, violation: Violation) -> None:
        super().__init__(str(violation))
        self.violation = violation


class SourceFormatError(AuditError):
    """Step 1: the source is not an uchast log (header, line framing, gapless indices)."""


class EntryShapeError(AuditError):
    """Step 2: an entry is not in canonical form, or not shaped as a log entry."""


class SignatureError(AuditError):
    """Step 3: an entry's signature is invalid, or its key was not valid for it at its position."""


class CheckpointError(AuditError):
    """Step 4: a checkpoint is badly signed, names another log, or disagrees with the entries."""


class RuleViolationError(AuditError):
    """Step 5: an entry breaks a ballot rule (limits, window, nonces, voids, double entry)."""


class ResultsMismatchError(AuditError):
    """Step 6: the published results differ from the recount of the log."""


_BY_STEP: dict[int, type[AuditError]] = {
    1: SourceFormatError,
    2: EntryShapeError,
    3: SignatureError,
    4: CheckpointError,
    5: RuleViolationError,
    6: ResultsMismatchError,
}


def error_for(violation: Violation) -> AuditError:
    """The error of the violation's step, carrying it."""
    return _BY_STEP[violation.step](violation)
