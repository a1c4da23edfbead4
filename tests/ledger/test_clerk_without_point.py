"""Attack: a clerk key registered without a polling point enters paper ballots at every point.

A clerk is bound to the polling point whose paper ballots they key in; a registration that names
none gave the key every point at once. Refused where registrations are built and where the log
admits them, so it cannot be smuggled in by another writer either; a log that already holds
such a key (written before this rule) still replays.
"""

from __future__ import annotations

import pytest

from ledger.errors import LogStateError
from ledger.keys import SignerKey
from ledger.registry import KeyRegistry
from tests.factories import ELECTION, Keys, example_definition
from votes.admin import key_registration

CLERK = SignerKey.generate("clerk.roaming.ivan")


def election(keys: Keys) -> dict[str, object]:
    return {
        "type": "election",
        "election": ELECTION,
        "admin_key": keys.admin.verifier.vkey,
        "definition": example_definition(),
    }


def test_the_builder_refuses_a_clerk_without_a_point() -> None:
    vkey = CLERK.verifier.vkey
    for point in (None, ""):
        with pytest.raises(ValueError, match="polling point"):
            key_registration(ELECTION, vkey, "clerk", point)
    assert key_registration(ELECTION, vkey, "clerk", "city-council")["polling_point"] == (
        "city-council"
    )
    assert "polling_point" not in key_registration(ELECTION, vkey, "site")


def test_the_log_refuses_a_clerk_registration_without_a_point() -> None:
    """The gatekeeper's check: a new registration of a clerk naming no point (or an empty one)
    is refused and leaves the registry as it was."""
    keys = Keys()
    registry = KeyRegistry()
    registry.apply(election(keys), keys.admin.key_id, 0)
    payload = {
        "type": "key-registered",
        "election": ELECTION,
        "vkey": CLERK.verifier.vkey,
        "role": "clerk",
    }
    for bad in (payload, {**payload, "polling_point": ""}):
        with pytest.raises(LogStateError, match="polling point"):
            registry.stage(bad, keys.admin.key_id, 1)
        registry.abort()
    assert registry.get(CLERK.key_id) is None
    registry.stage({**payload, "polling_point": "city-council"}, keys.admin.key_id, 1)
    registry.commit(2)
    record = registry.get(CLERK.key_id)
    assert record is not None and record.polling_point == "city-council"


def test_a_log_that_already_holds_such_a_key_still_replays() -> None:
    """Entries already committed are facts: replaying them (as every process opening an old
    election does) keeps the key, without a point; the auditor is where it is flagged."""
    keys = Keys()
    registry = KeyRegistry()
    registry.apply(election(keys), keys.admin.key_id, 0)
    old = {"type": "key-registered", "election": ELECTION, "vkey": CLERK.verifier.vkey}
    registry.apply({**old, "role": "clerk"}, keys.admin.key_id, 1)
    record = registry.get(CLERK.key_id)
    assert record is not None and record.polling_point is None
