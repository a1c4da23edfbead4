"""One small error type per failure. Each carries a stable ``code`` and the data a caller needs.

Two shapes, both :class:`~votes.errors.DomainError`:

- a failure with facts is a ``@dataclass(eq=False)`` whose fields are those facts
  (:class:`BadSignatureError` carries ``key``);
- a failure described in a free sentence (a malformed envelope, a proof that does not verify)
  takes that English sentence; its ``data`` is ``{"message": sentence}`` and ``str(error)`` is it.

Nothing here knows HTTP: the API's table (:mod:`api.messages`) maps each ``code`` to a status and
the English and Ukrainian texts.
"""

from __future__ import annotations

from dataclasses import dataclass, is_dataclass
from typing import Any

from votes.errors import DomainError

__all__ = [
    "BadBatchError",
    "BadSignatureError",
    "BatchTooLargeError",
    "CastingBusyError",
    "CheckpointError",
    "ConditionFailedError",
    "ConsistencyProofError",
    "ElectionEmptyError",
    "EntryTooLargeError",
    "EnvelopeError",
    "InclusionProofError",
    "KeyFormatError",
    "KeyRevokedError",
    "LedgerError",
    "LogNotInitialisedError",
    "LogStateError",
    "ProofError",
    "RoleForbiddenError",
    "SchemaMissingError",
    "StoreReadOnlyError",
    "StoreUnavailableError",
    "UnknownElectionError",
    "UnknownKeyError",
    "WrongLogError",
]


class LedgerError(DomainError):
    """Base of every refusal or failure the ledger reports."""

    code = "ledger-error"

    @property
    def data(self) -> dict[str, Any]:
        if is_dataclass(self):
            return super().data
        return {"message": str(self)}


class EnvelopeError(LedgerError):
    """The signed envelope is not of the form ``{"payload": {...}, "key": ..., "sig": ...}``."""

    code = "bad-envelope"


class BadBatchError(LedgerError):
    """A batch of envelopes is not of the form ``{"envelopes": [envelope, ...]}`` with at least
    one envelope."""

    code = "bad-batch"


@dataclass(eq=False)
class BatchTooLargeError(LedgerError):
    """A batch holds ``count`` envelopes, more than the ``most`` one batch may hold."""

    code = "batch-too-large"
    count: int
    most: int


class KeyFormatError(LedgerError):
    """A key string (vkey, key id or signer key file) cannot be parsed."""

    code = "bad-key"


@dataclass(eq=False)
class BadSignatureError(LedgerError):
    """The Ed25519 signature does not verify under the named key."""

    code = "bad-signature"
    key: str


@dataclass(eq=False)
class UnknownKeyError(LedgerError):
    """The envelope names a key that is not registered in this log."""

    code = "unknown-key"
    key: str


@dataclass(eq=False)
class KeyRevokedError(LedgerError):
    """The envelope's key was revoked at log position ``at``."""

    code = "key-revoked"
    key: str
    at: int


@dataclass(eq=False)
class RoleForbiddenError(LedgerError):
    """The key's role may not write entries of this type."""

    code = "role-forbidden"
    key: str
    role: str
    entry_type: str


@dataclass(eq=False)
class WrongLogError(LedgerError):
    """The payload names another election (``found``) than the log it was sent to."""

    code = "wrong-election"
    expected: str
    found: object


@dataclass(eq=False)
class ConditionFailedError(LedgerError):
    """The append condition failed: entries matching its query exist after its position."""

    code = "condition-failed"
    after: int | None


@dataclass(eq=False)
class CastingBusyError(LedgerError):
    """Every attempt to decide and append lost to a concurrent writer; retry with the same nonce."""

    code = "busy"


@dataclass(eq=False)
class UnknownElectionError(LedgerError):
    """The store holds no log for ``election``."""

    code = "unknown-election"
    election: str


class LogNotInitialisedError(LedgerError):
    """The log has no entries yet, so there is no admin key to check against."""

    code = "not-initialised"


@dataclass(eq=False)
class ElectionEmptyError(LedgerError):
    """The log of ``election`` exists but holds no entry, so no election definition."""

    code = "not-initialised"
    election: str


@dataclass(eq=False)
class EntryTooLargeError(LedgerError):
    """The entry would be ``size`` bytes, more than the ``limit`` the log takes: C2SP entry
    bundles prefix each entry with a 16-bit length, so no entry exceeds 65,535 bytes. Nothing is
    written; an election definition that large needs fewer or shorter texts."""

    code = "entry-too-large"
    size: int
    limit: int


class StoreUnavailableError(LedgerError):
    """The database cannot be reached; nothing was written. Safe to retry."""

    code = "store-unavailable"


class SchemaMissingError(StoreUnavailableError):
    """A store opened read-only (``serve --read-only``) holds no uchast schema: a replica creates
    nothing, the primary's ``uchast serve`` (or ``uchast init``) makes the tables."""


@dataclass(eq=False)
class StoreReadOnlyError(LedgerError):
    """A write reached a server that reads a replica (``serve --read-only``): nothing was
    written, and this server never will; writes go to the primary's servers."""

    code = "read-only"

    method: str


class ProofError(LedgerError):
    """A Merkle proof was asked for sizes or indexes the log cannot prove, or does not verify."""

    code = "bad-proof"


class InclusionProofError(ProofError):
    """An RFC 9162 inclusion proof does not verify."""

    code = "bad-inclusion-proof"


class ConsistencyProofError(ProofError):
    """An RFC 9162 consistency proof does not verify."""

    code = "bad-consistency-proof"


class CheckpointError(LedgerError):
    """A checkpoint or signed note is malformed, or its signature does not verify."""

    code = "bad-checkpoint"


class LogStateError(LedgerError):
    """The entry does not fit the log's state: a second election definition, a first entry that
    is not one, a key name registered twice, a revocation of an unknown or revoked key."""

    code = "log-state"


@dataclass(eq=False)
class LogRolledBackError(LedgerError):
    """The log in the database is not an extension of the checkpoints this log key already
    published (kept in the checkpoint journal, outside the database): it is ``size`` entries
    long where ``published`` entries were checkpointed, or it holds a different history at that size
    (``reason``: ``shorter`` or ``different-history``). Nothing is signed or appended until the
    database holds the published history again; retrying does not help."""

    code = "log-rolled-back"
    election: str
    published: int
    size: int
    reason: str
