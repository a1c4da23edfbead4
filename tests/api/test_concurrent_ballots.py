"""Threat: one voter's ballots fired at once at two server processes through both channels."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from ledger.casting import Casting
from ledger.entry import entry_object
from ledger.keys import SignerKey, sign_envelope
from tests.api.servers import race_two_servers
from tests.factories import ELECTION, Keys, key_envelope, opened_ledger
from votes.election import election_from_dict
from votes.rules import PriorEntry, voter_state
from votes.tokens import voter_token

VOTER_KEY = bytes(range(32, 64))
IDENTITY = "3456789012"
PROJECTS = ["L01", "L02", "L03", "L04", "S01", "S02", "S03", "S04"]
ALLOWED_REFUSALS = {"limit-exceeded", "project-repeated", "busy"}


async def test_200_concurrent_ballots_of_one_voter_never_exceed_the_limits(
    store_url: str, tmp_path: Path
) -> None:
    """200 ballots for one voter, online and paper, split over two server processes: the counted
    picks stay within 2 large + 2 small, no project counts twice, every refusal says why."""
    keys = Keys()
    clerk = SignerKey.generate("clerk.city-council.test")
    async with opened_ledger(store_url, keys) as ledger:
        await Casting(ledger).submit(
            key_envelope(keys, clerk, "clerk", polling_point="city-council")
        )
    keys.log.save(tmp_path / "log.key")
    (tmp_path / "voter.key").write_text(VOTER_KEY.hex())
    token = voter_token(VOTER_KEY, ELECTION, IDENTITY)
    rng = random.Random(7)

    def ballot(n: int) -> tuple[str, dict[str, Any]]:
        payload: dict[str, Any] = {
            "type": "ballot",
            "election": ELECTION,
            "voter": token,
            "projects": rng.sample(PROJECTS, rng.randint(1, 2)),
            "cast_at": "2018-10-05T10:00:00+03:00",
            "nonce": str(uuid.uuid4()),
        }
        if n % 2:
            payload["type"] = "paper-ballot"
            payload["polling_point"] = "city-council"
            return "paper-ballots", sign_envelope(payload, clerk)
        return "ballots", sign_envelope(payload, keys.site)

    requests = [ballot(n) for n in range(200)]
    outcomes = await race_two_servers(store_url, tmp_path, ELECTION, requests)

    accepted = [body for status, body in outcomes if status == 201]
    refused = Counter(body.get("code") for status, body in outcomes if status != 201)
    assert accepted, "some ballot must get in"
    assert set(refused) <= ALLOWED_REFUSALS, refused
    assert sum(refused.values()) + len(accepted) == 200

    async with opened_ledger(store_url, keys) as ledger:
        history, _ = await ledger.tagged([f"voter:{token}"])
        election = election_from_dict(
            entry_object((await ledger.entries(0, 1))[0].data)["envelope"]["payload"]["definition"]
        )
    prior = [
        PriorEntry(e.position, e.type, entry_object(e.data)["envelope"]["payload"], "")
        for e in history
    ]
    assert sorted(e.position for e in history) == sorted(b["position"] for b in accepted)
    state = voter_state(election, prior, token)
    assert len(state.counted["large"]) <= 2 and len(state.counted["small"]) <= 2
    picks = [p for ballot in state.ballots for p in ballot.projects]
    assert len(picks) == len(set(picks)), "a project counted twice"
    assert len(state.ballots) == len(accepted)
