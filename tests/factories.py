"""Small factories for test data: keys, signed payloads, opened ledgers."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.casting import Casting
from ledger.keys import SignerKey, sign_envelope
from ledger.log import Ledger
from ledger.store import open_store
from votes.election import election_to_dict, parse_election_toml

ELECTION = "test-2018"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "zhytomyr-2018.toml"


def example_definition(election: str = ELECTION, **settings: bool) -> dict[str, Any]:
    """The example Zhytomyr election under another id, with boolean settings overridden
    (``multiple_ballots``, ``double_entry``)."""
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        'id = "zhytomyr-2018"', f'id = "{election}"', 1
    )
    for name, value in settings.items():
        text = re.sub(rf"(?m)^{name} = \w+$", f"{name} = {str(value).lower()}", text)
    return election_to_dict(parse_election_toml(text))


@dataclass
class Keys:
    """The keys of one test election."""

    admin: SignerKey = field(default_factory=lambda: SignerKey.generate("admin.test"))
    log: SignerKey = field(default_factory=lambda: SignerKey.generate("uchast.local/log"))
    site: SignerKey = field(default_factory=lambda: SignerKey.generate("site.e-dem"))
    clerk: SignerKey = field(default_factory=lambda: SignerKey.generate("clerk.point-1.olena"))
    supervisor: SignerKey = field(default_factory=lambda: SignerKey.generate("supervisor.main"))


def election_envelope(
    keys: Keys, election: str = ELECTION, definition: dict[str, Any] | None = None
) -> dict[str, Any]:
    payload = {
        "type": "election",
        "election": election,
        "admin_key": keys.admin.verifier.vkey,
        "definition": definition or example_definition(election),
    }
    return sign_envelope(payload, keys.admin)


def key_envelope(
    keys: Keys, key: SignerKey, role: str, election: str = ELECTION, **extra: str
) -> dict[str, Any]:
    payload = {
        "type": "key-registered",
        "election": election,
        "vkey": key.verifier.vkey,
        "role": role,
        **extra,
    }
    return sign_envelope(payload, keys.admin)


def revoke_envelope(keys: Keys, key: SignerKey, election: str = ELECTION) -> dict[str, Any]:
    payload = {
        "type": "key-revoked",
        "election": election,
        "key": key.verifier.key_id,
        "reason": "lost",
    }
    return sign_envelope(payload, keys.admin)


def ballot_envelope(
    signer: SignerKey, voter: str, projects: list[str], election: str = ELECTION
) -> dict[str, Any]:
    payload = {
        "type": "ballot",
        "election": election,
        "voter": voter,
        "projects": projects,
        "cast_at": "2018-10-03T10:15:00+03:00",
        "nonce": str(uuid.uuid4()),
    }
    return sign_envelope(payload, signer)


def voter_token(n: int) -> str:
    return f"{n:064x}"


@asynccontextmanager
async def opened_ledger(
    url: str,
    keys: Keys,
    *,
    register: bool = True,
    definition: dict[str, Any] | None = None,
    **options: Any,
) -> AsyncIterator[Ledger]:
    """A ledger on ``url`` with the election defined and (by default) site/clerk/supervisor keys."""
    store = open_store(url)
    await store.open()
    ledger = Ledger(store, ELECTION, log_signer=keys.log, **options)
    await ledger.open()
    try:
        if register and await ledger.size() == 0:
            casting = Casting(ledger)
            await casting.submit(election_envelope(keys, definition=definition))
            await casting.submit(key_envelope(keys, keys.site, "site"))
            await casting.submit(
                key_envelope(keys, keys.clerk, "clerk", polling_point="city-council")
            )
            await casting.submit(key_envelope(keys, keys.supervisor, "supervisor"))
        yield ledger
    finally:
        await ledger.close()
        await store.close()
