"""Threat: concurrent add-checkpoint requests roll the witness back (the race tlog-witness warns
of: B stores N+K, then A, checked earlier against N, stores N)."""

from __future__ import annotations

import asyncio

from ledger.keys import SignerKey
from ledger.witness import Witness, WitnessRefusal, open_witness_state
from tests.witnessing import ToyLog

LOG_KEY = SignerKey.from_seed("log.test", b"l" * 32)


async def test_concurrent_submissions_never_roll_back(store_url: str) -> None:
    """Many checkpoints from the same old size at once, on two witness processes' worth of
    connections: exactly one wins, the others get 409 with the winner's size, and the record is
    the winner's."""
    url = store_url.replace("uchast.db", "witness.db")
    witnesses = [Witness(SignerKey.generate("w"), [LOG_KEY.verifier], open_witness_state(url))]
    witnesses.append(Witness(witnesses[0].signer, [LOG_KEY.verifier], open_witness_state(url)))
    for w in witnesses:
        await w.state.open()
    try:
        log = ToyLog(LOG_KEY)
        log.grow(4)
        await witnesses[0].add_checkpoint(log.request(0))
        log.grow(40)
        requests = [log.request(4, size) for size in range(5, 41)]
        results = await asyncio.gather(
            *(witnesses[i % 2].add_checkpoint(r) for i, r in enumerate(requests)),
            return_exceptions=True,
        )
        won = [size for size, r in zip(range(5, 41), results, strict=True) if isinstance(r, str)]
        assert len(won) == 1
        refused = [r for r in results if isinstance(r, WitnessRefusal)]
        assert len(refused) == 35 and {r.reason for r in refused} == {"conflict"}
        record = await witnesses[0].state.get(log.origin)
        assert record is not None and (record.size, record.root) == (won[0], log.tree.root(won[0]))
    finally:
        for w in witnesses:
            await w.state.close()
