"""Mirrors the server's log checks, one module each; tests/tally/audit/ proves they agree.

The auditor's independent replay of an election's log (``uchast audit``).

Standard library, ``cryptography`` and ``rfc8785`` only: nothing of the server is imported, so an
auditor can read every line that decides the verdict. The checklist is at the top of
:mod:`tally.audit.replay`; the modules, in the order a reader may take them:

- :mod:`tally.audit.crypto` -- RFC 8785, C2SP keys, signed notes and checkpoints, RFC 9162;
- :mod:`tally.audit.sources` -- exported log files and servers (``urllib``);
- :mod:`tally.audit.entries` -- steps 1 and 2 and the signature checks, run on every core;
- :mod:`tally.audit.ballots` -- step 5, the ballot rules;
- :mod:`tally.audit.recount` -- step 6, totals, winners and the published results;
- :mod:`tally.audit.replay` -- the checklist itself: :func:`audit` and :func:`audit_strict`;
- :mod:`tally.audit.cli` -- the command line;
- :mod:`tally.audit.policy` -- witness policies and cosignatures (C2SP tlog-policy, cosignature/v1);
- :mod:`tally.audit.monitor` -- ``uchast monitor``: a live log's tiles followed, the incremental
  audit of :mod:`tally.audit.replay` fed as it grows (its metrics use ``prometheus_client``).
"""

from tally.audit.errors import (
    AuditError,
    CheckpointError,
    EntryShapeError,
    ResultsMismatchError,
    RuleViolationError,
    SignatureError,
    SourceFormatError,
    Violation,
)
from tally.audit.replay import AuditReport, audit, audit_strict

__all__ = [
    "AuditError",
    "AuditReport",
    "CheckpointError",
    "EntryShapeError",
    "ResultsMismatchError",
    "RuleViolationError",
    "SignatureError",
    "SourceFormatError",
    "Violation",
    "audit",
    "audit_strict",
]
