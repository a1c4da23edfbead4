"""Durability: SIGKILL the writing process mid-stream; every acknowledged entry survives intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ledger import merkle
from tests.factories import Keys, opened_ledger
from tests.ledger.conformance import cast
from tests.ledger.test_double_vote_race import ROOT, save_keys

ACKS_BEFORE_KILL = 400


async def test_sigkill_mid_stream_loses_nothing_acknowledged(
    store_url: str, tmp_path: Path
) -> None:
    """After SIGKILL: acknowledged entries present, no gap, no partial batch, tree and
    checkpoint agree with the entries, and the log reopens and continues."""
    keys = Keys()
    async with opened_ledger(store_url, keys):
        pass
    keydir = tmp_path / "keys"
    save_keys(keys, keydir)
    (keydir / "go").touch()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.ledger.writer_process",
            "stream",
            store_url,
            str(keydir),
            "32",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    acked: dict[int, str] = {}
    deadline = time.monotonic() + 60
    while len(acked) < ACKS_BEFORE_KILL and time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("ack "):
            _, at, leaf = line.split()
            acked[int(at)] = leaf
    os.kill(process.pid, signal.SIGKILL)
    rest, _ = process.communicate(timeout=30)
    for line in rest.splitlines():  # acknowledged just before the kill, still in the pipe
        if line.startswith("ack "):
            _, at, leaf = line.split()
            acked[int(at)] = leaf
    assert process.returncode == -signal.SIGKILL
    assert len(acked) >= ACKS_BEFORE_KILL

    async with opened_ledger(store_url, keys) as ledger:
        size = await ledger.size()
        entries = await ledger.entries(0, size)
        # No gap: positions 0 .. size-1, every one present.
        assert [e.position for e in entries] == list(range(size))
        # Every acknowledged entry is there, byte for byte.
        for position, leaf in acked.items():
            assert entries[position].leaf_hash.hex() == leaf
        # The stored tree is the tree of exactly these entries: no node of a partial batch.
        tree = merkle.MemoryTree()
        tree.extend([e.data for e in entries])
        assert await ledger.root(size) == tree.root()
        assert await ledger.store.nodes(ledger.log_id, [(0, size), (1, size // 2 + 1)]) == {}
        # Every entry's tags were written in the same transaction as the entry.
        tagged = await ledger.store.tagged(ledger.log_id, [f"key:{keys.site.key_id}"])
        assert [e.position for e in tagged] == list(range(4, size))
        # The latest checkpoint verifies and matches the stored tree at its size.
        checkpoint = await ledger.verified_checkpoint()
        assert checkpoint is not None and checkpoint.size == size
        # The log continues.
        position = await cast(ledger, keys, 10**9)
        assert position == size
        checkpoint = await ledger.verified_checkpoint()
        assert checkpoint is not None and checkpoint.size == size + 1
