"""The witness's add-checkpoint checklist on both stores: each step's refusal, and durability."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import pytest

from ledger.checkpoint import Checkpoint, sign_checkpoint, sign_note
from ledger.cosignature import CosignerKey, verified_cosignatures
from ledger.keys import SignerKey
from ledger.witness import Witness, WitnessRefusal, open_witness_state
from tests.witnessing import ToyLog, body

LOG_KEY = SignerKey.from_seed("log.test", b"l" * 32)
WITNESS_KEY = SignerKey.from_seed("witness.test", b"w" * 32)


def witness_url(store_url: str) -> str:
    return store_url.replace("uchast.db", "witness.db")


@pytest.fixture
async def witness(store_url: str) -> AsyncIterator[Witness]:
    w = Witness(WITNESS_KEY, [LOG_KEY.verifier], open_witness_state(witness_url(store_url)))
    await w.state.open()
    yield w
    await w.state.close()


async def refusal(witness: Witness, request: bytes) -> WitnessRefusal:
    with pytest.raises(WitnessRefusal) as caught:
        await witness.add_checkpoint(request)
    return caught.value


async def test_first_and_next_checkpoints_are_cosigned(witness: Witness) -> None:
    """From 0 without a proof, then onwards with one; the line verifies over the checkpoint."""
    log = ToyLog(LOG_KEY)
    log.grow(5)
    await witness.add_checkpoint(log.request(0))
    log.grow(13)
    line = await witness.add_checkpoint(log.request(5))
    found = verified_cosignatures(log.note() + line, {"W": CosignerKey.of(WITNESS_KEY.verifier)})
    assert [c.witness for c in found] == ["W"]
    record = await witness.state.get(log.origin)
    assert record is not None and (record.size, record.root) == (13, log.tree.root())
    assert record.note == log.note()


async def test_stale_old_size_is_409_with_the_held_size(witness: Witness) -> None:
    """An old size that is not the held one is answered with the held one."""
    log = ToyLog(LOG_KEY)
    log.grow(5)
    await witness.add_checkpoint(log.request(0))
    log.grow(9)
    refused = await refusal(witness, log.request(0))
    assert (refused.reason, refused.size) == ("conflict", 5)


async def test_bad_consistency_proof_is_422(witness: Witness) -> None:
    """A proof that does not lead from the held root to the new one is refused."""
    log = ToyLog(LOG_KEY)
    log.grow(5)
    await witness.add_checkpoint(log.request(0))
    log.grow(9)
    proof = log.tree.consistency_proof(5, 9)
    proof[0] = hashlib.sha256(proof[0]).digest()
    assert (await refusal(witness, body(5, proof, log.note()))).reason == "bad-proof"
    assert (await refusal(witness, body(5, [], log.note()))).reason == "bad-proof"


async def test_unknown_log_is_403(witness: Witness) -> None:
    """A checkpoint signed only by a key the witness was not told to trust is refused."""
    log = ToyLog(SignerKey.generate("log.test"))
    log.grow(3)
    assert (await refusal(witness, log.request(0))).reason == "untrusted"


async def test_forged_log_signature_is_403(witness: Witness) -> None:
    """A note whose line names the trusted log key but whose signature is not its own."""
    log = ToyLog(LOG_KEY)
    log.grow(3)
    note = log.note()
    forged = note.replace("\n3\n", "\n4\n", 1)  # the size changed after signing
    assert forged != note
    assert (await refusal(witness, body(0, [], forged))).reason == "untrusted"


@pytest.mark.parametrize(
    "request_body",
    [
        b"old 01\n\nx",
        b"old 1\nnot base64!\n\nx",
        b"old 1\n" + b"AAAA\n" + b"\nx",
        b"old 0\n",
        b"\xff\xfe",
    ],
)
async def test_malformed_request_is_400(witness: Witness, request_body: bytes) -> None:
    """A body that is not old line, hashes, blank line, note."""
    assert (await refusal(witness, request_body)).reason == "malformed"


async def test_old_larger_than_new_is_400(witness: Witness) -> None:
    """The old size may not exceed the checkpoint's."""
    log = ToyLog(LOG_KEY)
    log.grow(3)
    assert (await refusal(witness, body(4, [], log.note()))).reason == "malformed"


async def test_checkpoint_text_must_parse(witness: Witness) -> None:
    """A signed note that is not a checkpoint is refused after its signature is checked."""
    assert (await refusal(witness, body(0, [], sign_note("hello\n", [LOG_KEY])))).reason == (
        "malformed"
    )


async def test_state_survives_restart(store_url: str) -> None:
    """A new witness process on the same database holds what the last one cosigned."""
    log = ToyLog(LOG_KEY)
    log.grow(6)
    first = Witness(WITNESS_KEY, [LOG_KEY.verifier], open_witness_state(witness_url(store_url)))
    await first.state.open()
    await first.add_checkpoint(log.request(0))
    await first.state.close()
    second = Witness(WITNESS_KEY, [LOG_KEY.verifier], open_witness_state(witness_url(store_url)))
    await second.state.open()
    try:
        refused = await refusal(second, log.request(0))
        assert (refused.reason, refused.size) == ("conflict", 6)
    finally:
        await second.state.close()


async def test_several_origins_are_kept_apart(witness: Witness) -> None:
    """Each election's log has its own record."""
    one, two = ToyLog(LOG_KEY, "test.uchast/a"), ToyLog(LOG_KEY, "test.uchast/b")
    one.grow(4)
    two.grow(2)
    await witness.add_checkpoint(one.request(0))
    await witness.add_checkpoint(two.request(0))
    assert [(r.origin, r.size) for r in await witness.state.records()] == [
        ("test.uchast/a", 4),
        ("test.uchast/b", 2),
    ]


async def test_same_checkpoint_again_is_cosigned_again(witness: Witness) -> None:
    """Resubmitting the held checkpoint (old = size, same root) is answered, not refused."""
    log = ToyLog(LOG_KEY)
    log.grow(4)
    await witness.add_checkpoint(log.request(0))
    assert (await witness.add_checkpoint(log.request(4))).startswith("\u2014 witness.test ")


async def test_empty_log_checkpoint(witness: Witness) -> None:
    """A size-0 checkpoint is cosigned and keeps the witness at 0."""
    note = sign_checkpoint(Checkpoint("test.uchast/z", 0, hashlib.sha256().digest()), LOG_KEY)
    await witness.add_checkpoint(body(0, [], note))
    await asyncio.sleep(0)
    record = await witness.state.get("test.uchast/z")
    assert record is not None and record.size == 0
