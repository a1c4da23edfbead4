"""Threat: someone with database access edits a stored entry after it was checkpointed."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from ledger import merkle
from ledger.checkpoint import verify_checkpoint
from ledger.errors import InclusionProofError
from ledger.log import Ledger
from tests.factories import Keys, opened_ledger
from tests.ledger.conformance import cast

VICTIM = 9


async def tamper(url: str, ledger: Ledger, position: int, *, fix_leaf_hash: bool) -> None:
    [entry] = await ledger.entries(position, position + 1)
    forged = entry.data.replace(b'"L01"', b'"L02"')
    assert forged != entry.data
    leaf = merkle.leaf_hash(forged) if fix_leaf_hash else entry.leaf_hash
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        with conn:
            conn.execute(
                "UPDATE entries SET data=?, leaf_hash=? WHERE position=?", (forged, leaf, position)
            )
        conn.close()
    else:
        import asyncpg

        conn = await asyncpg.connect(url)
        await conn.execute(
            "UPDATE uchast_entries SET data=$1, leaf_hash=$2 WHERE position=$3",
            forged,
            leaf,
            position,
        )
        await conn.close()


@pytest.mark.parametrize("fix_leaf_hash", [False, True])
async def test_edited_entry_fails_its_inclusion_proof(store_url: str, fix_leaf_hash: bool) -> None:
    """An edited entry no longer proves into the signed checkpoint, even with its leaf hash
    rewritten to match: the interior nodes and the signed root still hold the original."""
    keys = Keys()
    async with opened_ledger(store_url, keys) as ledger:
        await asyncio.gather(*(cast(ledger, keys, n) for n in range(12)))
        note = (await ledger.latest_checkpoint()).note  # type: ignore[union-attr]
        checkpoint = verify_checkpoint(note, keys.log.verifier)
        await tamper(store_url, ledger, VICTIM, fix_leaf_hash=fix_leaf_hash)
        [served] = await ledger.entries(VICTIM, VICTIM + 1)
        proof = await ledger.inclusion_proof(VICTIM, checkpoint.size)
        with pytest.raises(InclusionProofError):
            merkle.verify_inclusion(
                merkle.leaf_hash(served.data), VICTIM, checkpoint.size, proof, checkpoint.root
            )
        # Untouched neighbours still prove.
        [neighbour] = await ledger.entries(VICTIM + 1, VICTIM + 2)
        merkle.verify_inclusion(
            merkle.leaf_hash(neighbour.data),
            VICTIM + 1,
            checkpoint.size,
            await ledger.inclusion_proof(VICTIM + 1, checkpoint.size),
            checkpoint.root,
        )
