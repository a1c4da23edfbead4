"""Property: whatever sequence of checkpoints a witness is sent (growth, stale old sizes, forks,
rollbacks, wrong proofs), every checkpoint it cosigns extends every one it cosigned before."""

from __future__ import annotations

import asyncio
import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.keys import SignerKey
from ledger.witness import Witness, WitnessRefusal, open_witness_state
from tests.witnessing import ToyLog, body

LOG_KEY = SignerKey.from_seed("log.test", b"l" * 32)
SIZE = 24


def _histories(fork_at: int) -> list[ToyLog]:
    honest, fork = ToyLog(LOG_KEY), ToyLog(LOG_KEY, tag="-fork")
    honest.grow(SIZE)
    fork.tree.extend_hashes([honest.tree.node((0, i)) for i in range(fork_at)])
    fork.grow(SIZE)
    return [honest, fork]


submissions = st.lists(
    st.tuples(
        st.integers(0, 1),  # which history
        st.integers(0, SIZE),  # checkpoint size
        st.sampled_from(["held", "zero", "any"]),  # what old size the sender claims
        st.integers(0, SIZE),  # the "any" old size
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, SIZE - 1), submissions)
def test_cosigned_checkpoints_only_ever_extend(
    fork_at: int, sent: list[tuple[int, int, str, int]]
) -> None:
    """Each accepted checkpoint is at least as large as the last, with the same root at the
    last one's size; the stored record is the last accepted."""
    logs = _histories(fork_at)

    async def run(directory: str) -> None:
        witness = Witness(
            SignerKey.from_seed("w", b"w" * 32),
            [LOG_KEY.verifier],
            open_witness_state(f"sqlite:///{directory}/w.db"),
        )
        await witness.state.open()
        accepted: list[tuple[int, int]] = []
        try:
            for which, size, claim, other in sent:
                log = logs[which]
                held = accepted[-1][1] if accepted else 0
                old = {"held": held, "zero": 0, "any": other}[claim]
                proof = log.tree.consistency_proof(old, size) if 0 < old < size else []
                try:
                    await witness.add_checkpoint(body(old, proof, log.note(size)))
                except WitnessRefusal:
                    continue
                if accepted:
                    last_which, last_size = accepted[-1]
                    assert size >= last_size
                    assert log.tree.root(last_size) == logs[last_which].tree.root(last_size)
                accepted.append((which, size))
            record = await witness.state.get(logs[0].origin)
            if accepted:
                which, size = accepted[-1]
                assert record is not None
                assert (record.size, record.root) == (size, logs[which].tree.root(size))
            else:
                assert record is None
        finally:
            await witness.state.close()

    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(run(directory))
