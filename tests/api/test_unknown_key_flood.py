"""Attack: forged writes under random, unknown key ids, each hoping to cost the database a query.

A key id the registry does not hold sends the ledger to the store to look for registrations made
by another process. Without a memory of the misses, every forged write under a fresh invented
key id costs one such look-up.
"""

from __future__ import annotations

import asyncio
from typing import Any

from api.keys import SERVICE
from ledger.keys import SignerKey
from tests.api.conftest import Setup
from tests.factories import ELECTION, ballot_envelope, key_envelope, opened_ledger, voter_token

BASE = f"/v1/elections/{ELECTION}"


async def post(setup: Setup, body: object) -> tuple[int, dict[str, Any]]:
    response = await setup.client.post(f"{BASE}/ballots", json=body)
    return response.status, await response.json(content_type=None)


async def test_forged_writes_under_unknown_key_ids_do_not_each_query_the_store(
    service: Setup,
) -> None:
    """300 forged ballots, each under a fresh unknown key id, are refused ``unknown-key`` while
    the store is asked about new keys only a handful of times; a key registered afterwards by
    another writer is still found."""
    assert (await post(service, ballot_envelope(service.keys.site, voter_token(1), ["L01"])))[
        0
    ] == 201
    store = service.client.app[SERVICE].store
    looked = 0
    size = store.size

    async def counting_size(log_id: str) -> int:
        nonlocal looked
        looked += 1
        return int(await size(log_id))

    store.size = counting_size
    for n in range(300):
        forger = SignerKey.generate(f"site.forger-{n}")
        forged = ballot_envelope(forger, voter_token(100 + n), ["L01"])
        status, problem = await post(service, forged)
        assert (status, problem["code"]) == (401, "unknown-key")
    assert looked <= 10, f"{looked} store look-ups for 300 forged writes"

    # Registered later by another writer (the CLI's `keys add`): found once the misses expire.
    late = SignerKey.generate("site.late")
    assert (await post(service, ballot_envelope(late, voter_token(900), ["L01"])))[0] == 401
    async with opened_ledger(service.url, service.keys, register=False) as other:
        await other.append(key_envelope(service.keys, late, "site"))
    await asyncio.sleep(1.1)  # past the misses' time to live (UnknownKeys.TTL)
    status, receipt = await post(service, ballot_envelope(late, voter_token(901), ["L01"]))
    assert status == 201, receipt


def test_the_memory_of_unknown_keys_is_bounded_and_forgets_on_registry_growth() -> None:
    """At most ``capacity`` ids are kept; a registry change forgets them all at once."""
    from ledger.registry import UnknownKeys

    now = [100.0]
    unknown = UnknownKeys(capacity=50, clock=lambda: now[0])
    assert unknown.worth_looking_up("k0")
    for n in range(1, 1000):
        unknown.worth_looking_up(f"k{n}")
    assert len(unknown) <= 50
    assert not unknown.worth_looking_up("k999"), "a recent miss is not looked up again"
    unknown.clear()
    assert unknown.worth_looking_up("k999"), "after the registry grew, look again"
    now[0] += UnknownKeys.TTL + 0.01
    assert unknown.worth_looking_up("k999"), "and after the miss expired"
