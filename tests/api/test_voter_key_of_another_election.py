"""Threat: one server serves several elections with one --voter-key. Tokens are per election and
each election has its own voter key, so a lookup for an election whose entry names another voter
key would hand the clerk a token its voting site never computes: refused, nothing written."""

from __future__ import annotations

import uuid
from typing import Any

from api.app import create_app
from api.service import ServiceConfig
from ledger.casting import Casting, create_election
from ledger.keys import SignerKey, sign_envelope
from ledger.log import Ledger
from ledger.store import open_store
from tests.api.conftest import VOTING_DAY
from tests.factories import ELECTION, Keys, example_definition
from votes.election import election_from_dict

ELECTION_KEY = bytes(range(1, 33))
OTHER_KEY = bytes(range(2, 34))


async def test_lookup_with_another_elections_voter_key(
    aiohttp_client: Any, sqlite_url: str
) -> None:
    """The election names ELECTION_KEY; a server holding OTHER_KEY answers 503, one holding
    ELECTION_KEY answers with the token."""
    keys = Keys()
    clerk = SignerKey.generate("clerk.city-council.anna")
    store = open_store(sqlite_url)
    await store.open()
    await store.create_log(ELECTION)
    ledger = Ledger(store, ELECTION, verify_workers=0)
    await ledger.open()
    await create_election(
        Casting(ledger),
        election_from_dict(example_definition()),
        keys.admin,
        ELECTION_KEY,
        [(clerk, "clerk", "city-council")],
    )
    await ledger.close()
    await store.close()

    def body() -> dict[str, Any]:
        payload = {
            "type": "voter-lookup",
            "election": ELECTION,
            "polling_point": "city-council",
            "nonce": str(uuid.uuid4()),
        }
        return {"envelope": sign_envelope(payload, clerk), "identity": "3012345678"}

    for voter_key, status in ((OTHER_KEY, 503), (ELECTION_KEY, 201)):
        config = ServiceConfig(sqlite_url, keys.log, voter_key=voter_key, clock=lambda: VOTING_DAY)
        client = await aiohttp_client(create_app(config))
        async with client.post(f"/v1/elections/{ELECTION}/voter-tokens", json=body()) as answer:
            problem = await answer.json(content_type=None)
            assert answer.status == status, problem
        if status == 503:
            assert problem["code"] == "no-voter-key" and "voter" not in problem
        await client.close()
