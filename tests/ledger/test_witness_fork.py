"""Threat: the log shows the witness one history and someone else another (a split view)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ledger.keys import SignerKey
from ledger.witness import Witness, WitnessRefusal, open_witness_state
from tests.witnessing import ToyLog, body

LOG_KEY = SignerKey.from_seed("log.test", b"l" * 32)


@pytest.fixture
async def witness(tmp_path: Path) -> AsyncIterator[Witness]:
    w = Witness(
        SignerKey.generate("w"), [LOG_KEY.verifier], open_witness_state(f"sqlite:///{tmp_path}/w")
    )
    await w.state.open()
    yield w
    await w.state.close()


async def test_fork_at_the_same_size_is_refused(witness: Witness) -> None:
    """A second root at the held size is a conflict; the first root stays."""
    honest, fork = ToyLog(LOG_KEY), ToyLog(LOG_KEY, tag="-forked")
    honest.grow(8)
    fork.grow(8)
    await witness.add_checkpoint(honest.request(0))
    with pytest.raises(WitnessRefusal) as caught:
        await witness.add_checkpoint(body(8, [], fork.note()))
    assert (caught.value.reason, caught.value.size) == ("conflict", 8)
    record = await witness.state.get(honest.origin)
    assert record is not None and record.root == honest.tree.root()


async def test_fork_that_grew_is_refused(witness: Witness) -> None:
    """A larger tree of another history has no proof from the held root (its own proof
    leads from its own root)."""
    honest, fork = ToyLog(LOG_KEY), ToyLog(LOG_KEY, tag="-forked")
    honest.grow(8)
    fork.grow(12)
    await witness.add_checkpoint(honest.request(0))
    with pytest.raises(WitnessRefusal) as caught:
        await witness.add_checkpoint(fork.request(8))
    assert caught.value.reason == "bad-proof"


async def test_fed_a_fork_first_refuses_the_real_log(witness: Witness) -> None:
    """A witness that cosigned the fork refuses the honest log from then on."""
    honest, fork = ToyLog(LOG_KEY), ToyLog(LOG_KEY, tag="-forked")
    fork.grow(3)
    honest.grow(9)
    await witness.add_checkpoint(fork.request(0))
    with pytest.raises(WitnessRefusal) as caught:
        await witness.add_checkpoint(honest.request(3))
    assert caught.value.reason == "bad-proof"
