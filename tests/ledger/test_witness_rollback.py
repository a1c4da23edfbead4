"""Threat: the log's database is restored from an old backup and it signs a shorter tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.keys import SignerKey
from ledger.witness import Witness, WitnessRefusal, open_witness_state
from tests.witnessing import ToyLog, body

LOG_KEY = SignerKey.from_seed("log.test", b"l" * 32)


async def test_witness_refuses_rollback(tmp_path: Path) -> None:
    """After cosigning size 10, a checkpoint of size 7 is refused whatever old size it claims,
    and the witness still holds 10."""
    witness = Witness(
        SignerKey.generate("w"), [LOG_KEY.verifier], open_witness_state(f"sqlite:///{tmp_path}/w")
    )
    await witness.state.open()
    log = ToyLog(LOG_KEY)
    log.grow(10)
    await witness.add_checkpoint(log.request(0))
    rolled_back = ToyLog(LOG_KEY)  # the same history, cut at 7: a consistent prefix
    rolled_back.grow(7)
    for old in (0, 7, 10):
        with pytest.raises(WitnessRefusal) as caught:
            await witness.add_checkpoint(body(old, [], rolled_back.note()))
        assert caught.value.reason in {"conflict", "malformed"}
    record = await witness.state.get(log.origin)
    assert record is not None and record.size == 10 and record.root == log.tree.root()
    await witness.state.close()
