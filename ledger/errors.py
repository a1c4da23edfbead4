"""One small error type per failure. Each carries the data a caller needs and a stable ``code``.

The API maps ``code`` to an HTTP status and an RFC 9457 problem; the auditor prints ``str(error)``.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every refusal or failure the ledger reports."""

    code = "ledger-error"


class EnvelopeError(LedgerError):
    """The signed envelope is not of the form ``{"payload": {...}, "key": ..., "sig": ...}``."""

    code = "bad-envelope"


class KeyFormatError(LedgerError):
    """A key string (vkey, key id or signer key file) cannot be parsed."""

    code = "bad-key"


class BadSignatureError(LedgerError):
    """The Ed25519 signature does not verify under the named key."""

    code = "bad-signature"

    def __init__(self, key: str) -> None:
        super().__init__(f"signature does not verify under key {key}")
        self.key = key


class UnknownKeyError(LedgerError):
    """The envelope names a key that is not registered in this log."""

    code = "unknown-key"

    def __init__(self, key: str) -> None:
        super().__init__(f"key {key} is not registered in this log")
        self.key = key


class KeyRevokedError(LedgerError):
    """The envelope's key was revoked at log position ``at``."""

    code = "key-revoked"

    def __init__(self, key: str, at: int) -> None:
        super().__init__(f"key {key} was revoked at log position {at}")
        self.key = key
        self.at = at


class RoleForbiddenError(LedgerError):
    """The key's role may not write entries of this type."""

    code = "role-forbidden"

    def __init__(self, key: str, role: str, entry_type: str) -> None:
        super().__init__(f"key {key} has role {role!r}, which may not write {entry_type!r} entries")
        self.key = key
        self.role = role
        self.entry_type = entry_type


class WrongLogError(LedgerError):
    """The payload names another election than the log it was sent to."""

    code = "wrong-election"

    def __init__(self, expected: str, found: object) -> None:
        super().__init__(f"payload is for election {found!r}, this log is {expected!r}")
        self.expected = expected
        self.found = found


class ConditionFailedError(LedgerError):
    """The append condition failed: entries matching its query exist after its position."""

    code = "condition-failed"

    def __init__(self, after: int | None) -> None:
        super().__init__(f"entries matching the append condition exist after position {after}")
        self.after = after


class LogNotInitialisedError(LedgerError):
    """The log has no entries yet, so there is no admin key to check against."""

    code = "not-initialised"


class StoreUnavailableError(LedgerError):
    """The database cannot be reached; nothing was written. Safe to retry."""

    code = "store-unavailable"


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
