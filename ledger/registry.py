"""The key registry: which keys may sign in a log, with which role, from when until when.

Keys are themselves entries of the log: the election entry registers the admin key, then
admin-signed ``key-registered`` / ``key-revoked`` entries add and retire the others. A key name
is registered once and never reused, so a key id always denotes the same public key.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from ledger.errors import (
    KeyFormatError,
    KeyRevokedError,
    LogStateError,
    RoleForbiddenError,
    UnknownKeyError,
)
from ledger.keys import KeyId, VerifierKey
from votes.entries import EntryType, Role, may_write


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A registered key, the position of its registration and, once revoked, of its revocation."""

    key: VerifierKey
    role: Role
    registered_at: int
    revoked_at: int | None = None
    polling_point: str | None = None


class UnknownKeys:
    """A bounded memory of key ids looked for in the store and not found there.

    A key id the registry does not hold may have been registered by another process, so the
    ledger looks in the store; forged writes under invented key ids would each cost that query.
    A miss is remembered for ``TTL`` seconds (at most ``capacity`` of them, oldest forgotten
    first), and a look-up for any unknown id is made at most once per ``INTERVAL``, so a flood of
    fresh ids costs a few queries a second, not one each. The registry forgets every miss when it
    gains a key (committed here or caught up from another writer), so a key registered later is
    found at once after that, and at worst ``TTL`` seconds after its registration otherwise.
    """

    TTL: ClassVar[float] = 1.0
    INTERVAL: ClassVar[float] = 0.25

    def __init__(self, capacity: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.clock = clock
        self._misses: OrderedDict[str, float] = OrderedDict()
        self._looked_at = -float("inf")

    def worth_looking_up(self, key_id: str) -> bool:
        """Whether to ask the store about ``key_id``, which the registry does not hold; counts
        as a miss until the registry grows."""
        now = self.clock()
        seen = self._misses.get(key_id)
        if seen is not None and now - seen < self.TTL:
            return False
        self._misses[key_id] = now
        self._misses.move_to_end(key_id)
        while len(self._misses) > self.capacity:
            self._misses.popitem(last=False)
        if now - self._looked_at < self.INTERVAL:
            return False
        self._looked_at = now
        return True

    def clear(self) -> None:
        self._misses.clear()
        self._looked_at = -float("inf")

    def __len__(self) -> int:
        return len(self._misses)


class KeyRegistry:
    """Keys of one log as of ``size``, with changes staged by a batch not yet committed."""

    def __init__(self) -> None:
        self.size = 0
        self._keys: dict[KeyId, KeyRecord] = {}
        self._names: set[str] = set()
        self._staged: dict[KeyId, KeyRecord] = {}
        self.unknown = UnknownKeys()

    def worth_looking_up(self, key_id: str) -> bool:
        """Whether a key id this registry lacks is worth a look in the store (see UnknownKeys)."""
        return self.unknown.worth_looking_up(key_id)

    def get(self, key_id: str) -> KeyRecord | None:
        """The key's record including staged changes."""
        return self._staged.get(KeyId(key_id)) or self._keys.get(KeyId(key_id))

    def records(self) -> list[KeyRecord]:
        return list(self._keys.values())

    def check_signer(self, key_id: str, entry_type: str, position: int) -> KeyRecord:
        """The key may sign ``entry_type`` at ``position``: registered, not revoked, role allows."""
        record = self.get(key_id)
        if record is None or record.registered_at >= position:
            raise UnknownKeyError(key_id)
        if record.revoked_at is not None and record.revoked_at < position:
            raise KeyRevokedError(key_id, record.revoked_at)
        if not may_write(record.role, entry_type):
            raise RoleForbiddenError(key_id, record.role.value, entry_type)
        return record

    def stage(
        self, payload: dict[str, Any], key_id: str, position: int, *, replaying: bool = False
    ) -> None:
        """Check a key-changing payload against the registry and stage its effect.

        ``replaying``: the entry is already committed (an old log, or another writer's), so a
        rule added since it was written (a clerk names a polling point) is not applied to it.
        """
        entry_type = payload.get("type")
        if entry_type == EntryType.ELECTION:
            if position != 0 or self._keys or self._staged:
                raise LogStateError("the election is already defined in this log")
            admin = election_admin_key(payload)
            if admin.key_id != key_id:
                raise LogStateError(
                    f"the election entry must be signed by its admin key {admin.key_id}"
                )
            self._stage_new(KeyRecord(admin, Role.ADMIN, -1))
        elif entry_type == EntryType.KEY_REGISTERED:
            key = _parse_vkey(payload.get("vkey"))
            try:
                role = Role(str(payload.get("role")))
            except ValueError:
                raise LogStateError(f"role must be one of {[r.value for r in Role]}") from None
            point = payload.get("polling_point")
            if point is not None and (role != Role.CLERK or not isinstance(point, str)):
                raise LogStateError("only a clerk key names a polling point, as a string")
            if role == Role.CLERK and not point and not replaying:
                # Without one, the clerk could key in paper ballots at every point.
                raise LogStateError("a clerk key must name its polling point")
            self._stage_new(KeyRecord(key, role, position, polling_point=point))
        elif entry_type == EntryType.KEY_REVOKED:
            target = payload.get("key")
            record = self.get(str(target))
            if record is None:
                raise LogStateError(f"cannot revoke {target!r}: no such key in this log")
            if record.revoked_at is not None:
                raise LogStateError(f"key {target} is already revoked")
            self._staged[record.key.key_id] = replace(record, revoked_at=position)

    def _stage_new(self, record: KeyRecord) -> None:
        name = record.key.name
        if name in self._names or any(r.key.name == name for r in self._staged.values()):
            raise LogStateError(f"a key named {name!r} is already registered in this log")
        self._staged[record.key.key_id] = record

    def commit(self, size: int) -> None:
        if self._staged:
            self.unknown.clear()
        for key_id, record in self._staged.items():
            self._keys[key_id] = record
            self._names.add(record.key.name)
        self._staged.clear()
        self.size = max(self.size, size)

    def abort(self) -> None:
        self._staged.clear()

    def apply(self, payload: dict[str, Any], key_id: str, position: int) -> None:
        """Replay a committed key entry (written by this or another process)."""
        if position < self.size:
            return
        self.stage(payload, key_id, position, replaying=True)
        self.commit(position + 1)


def election_admin_key(payload: dict[str, Any]) -> VerifierKey:
    """The admin vkey an election payload names."""
    return _parse_vkey(payload.get("admin_key"))


def _parse_vkey(value: object) -> VerifierKey:
    if not isinstance(value, str):
        raise KeyFormatError(f"expected a vkey string, not {type(value).__name__}")
    return VerifierKey.parse(value)
