"""A separate writer process for the cross-process tests (double-vote race, SIGKILL).

python -m tests.ledger.writer_process race URL KEYDIR AFTER VOTERS up|down
    casts one ballot per voter, voters in ascending or descending order, four at a time,
    under the condition "no ballot of this voter after AFTER"; one JSON line per outcome.
python -m tests.ledger.writer_process stream URL KEYDIR CONCURRENCY
    appends without end from CONCURRENCY tasks, printing "ack POSITION LEAFHASH" for each
    append only after it returned (that is, after commit).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
from pathlib import Path

from eventsourcing.dcb.api import DCBAppendCondition, DCBQuery, DCBQueryItem

from ledger.errors import LedgerError
from ledger.keys import SignerKey
from ledger.log import Ledger
from ledger.store import open_store
from tests.factories import ELECTION, ballot_envelope, voter_token


def condition(voter: str, after: int) -> DCBAppendCondition:
    return DCBAppendCondition(DCBQuery([DCBQueryItem(tags=[f"voter:{voter}"])]), after=after)


async def race(ledger: Ledger, site: SignerKey, after: int, voters: int, order: str) -> None:
    async def one(n: int) -> None:
        voter = voter_token(n)
        try:
            appended = await ledger.append(
                ballot_envelope(site, voter, ["L01"]),
                tags=[f"voter:{voter}"],
                condition=condition(voter, after),
            )
            outcome: dict[str, object] = {
                "voter": n,
                "position": appended.position,
                "pid": os.getpid(),
            }
        except LedgerError as exc:
            outcome = {"voter": n, "refused": exc.code}
        print(json.dumps(outcome), flush=True)

    sequence = list(range(voters)) if order == "up" else list(range(voters - 1, -1, -1))
    for start in range(0, voters, 4):
        await asyncio.gather(*(one(n) for n in sequence[start : start + 4]))


async def stream(ledger: Ledger, site: SignerKey, concurrency: int) -> None:
    counter = itertools.count()

    async def worker() -> None:
        while True:
            n = next(counter)
            voter = voter_token(n)
            appended = await ledger.append(
                ballot_envelope(site, voter, ["L01"]), tags=[f"voter:{voter}"]
            )
            sys.stdout.write(f"ack {appended.position} {appended.leaf_hash.hex()}\n")
            sys.stdout.flush()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def main(argv: list[str]) -> None:
    mode, url, keydir = argv[0], argv[1], Path(argv[2])
    store = open_store(url)
    await store.open()
    ledger = Ledger(store, ELECTION, log_signer=SignerKey.load(keydir / "log.key"))
    await ledger.open()
    site = SignerKey.load(keydir / "site.key")
    print("ready", flush=True)
    while not (keydir / "go").exists():  # a barrier, so that both processes start together
        await asyncio.sleep(0.005)
    try:
        if mode == "race":
            await race(ledger, site, int(argv[3]), int(argv[4]), argv[5])
        else:
            await stream(ledger, site, int(argv[3]))
    finally:
        await ledger.close()
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
