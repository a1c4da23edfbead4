"""Entry types of an election's log and which key role may write each."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """The role a registered key plays in one election."""

    ADMIN = "admin"
    SITE = "site"
    CLERK = "clerk"
    SUPERVISOR = "supervisor"


class EntryType(StrEnum):
    """The ``type`` of a signed payload, and so of the log entry that holds it."""

    ELECTION = "election"
    ELECTION_AMENDED = "election-amended"
    KEY_REGISTERED = "key-registered"
    KEY_REVOKED = "key-revoked"
    BALLOT = "ballot"
    PAPER_BALLOT = "paper-ballot"
    SPOILED_BALLOT = "spoiled-ballot"
    VOID = "void"
    RESULTS_PUBLISHED = "results-published"
    VOTER_LOOKUP = "voter-lookup"


WRITERS: dict[EntryType, frozenset[Role]] = {
    EntryType.ELECTION: frozenset({Role.ADMIN}),
    EntryType.ELECTION_AMENDED: frozenset({Role.ADMIN}),
    EntryType.KEY_REGISTERED: frozenset({Role.ADMIN}),
    EntryType.KEY_REVOKED: frozenset({Role.ADMIN}),
    EntryType.BALLOT: frozenset({Role.SITE}),
    EntryType.PAPER_BALLOT: frozenset({Role.CLERK}),
    EntryType.SPOILED_BALLOT: frozenset({Role.CLERK}),
    EntryType.VOID: frozenset({Role.SUPERVISOR}),
    EntryType.RESULTS_PUBLISHED: frozenset({Role.ADMIN}),
    EntryType.VOTER_LOOKUP: frozenset({Role.CLERK}),
}

KEY_EVENT_TYPES = frozenset({EntryType.ELECTION, EntryType.KEY_REGISTERED, EntryType.KEY_REVOKED})


_MAY_WRITE = frozenset(
    (role.value, kind.value) for kind, roles in WRITERS.items() for role in roles
)


def may_write(role: str, entry_type: str) -> bool:
    """Whether a key of ``role`` may sign a payload of ``entry_type``."""
    try:  # asked twice for every entry: one set look-up, no enum conversion
        return (role, entry_type) in _MAY_WRITE
    except TypeError:  # not a string
        return False
