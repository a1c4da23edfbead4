"""Threat: one voter's knapsack and cumulative ballots fired at once at two server processes
through both channels, to spend more than the cost cap or the points allowed.

Each limit holds for the voter's counted ballots together (DESIGN.md §3b); the append condition
on the voter's tag makes a ballot decided on a stale read fail and be decided again, so however
the ballots interleave the voter's counted choices stay within the cap and the points exactly.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from ledger.entry import entry_object
from ledger.keys import sign_envelope
from tests.api.servers import race_two_servers
from tests.factories import ELECTION, Keys, example_definition, opened_ledger
from votes.election import election_from_dict
from votes.rules import PriorEntry, voter_state

VOTER_KEY = bytes(range(32, 64))
TOKEN = "7" * 64
ALLOWED_REFUSALS = {
    "over-cost-limit",
    "too-many-points",
    "too-many-points-for-project",
    "project-repeated",
    "busy",
}


def kinds_definition() -> dict[str, Any]:
    """The example election with "large" a knapsack category whose cap is the three cheapest
    large projects' cost together, and "small" cumulative: at most 3 points a project, 5 in
    all."""
    definition = example_definition()
    large, small = definition["categories"]
    costs = sorted(p["cost_kopecks"] for p in definition["projects"] if p["category"] == "large")
    large.update(
        ballot="knapsack",
        max_picks=len(costs),
        max_total_cost_kopecks=sum(costs[:3]),
        min_total_cost_kopecks=0,
    )
    small.update(
        ballot="cumulative", max_picks=40, max_points=3, max_total_points=5, min_total_points=0
    )
    return definition


async def test_racing_ballots_never_spend_more_than_the_cap_or_the_points(
    store_url: str, tmp_path: Path
) -> None:
    """200 ballots of one voter, online and paper, over two server processes: the counted large
    projects cost at most the cap, the counted points are at most 5 (3 a project), no project
    counts twice, and every refusal names the limit."""
    keys = Keys()
    definition = kinds_definition()
    async with opened_ledger(store_url, keys, definition=definition):
        pass
    keys.log.save(tmp_path / "log.key")
    (tmp_path / "voter.key").write_text(VOTER_KEY.hex())
    election = election_from_dict(definition)
    cheap = sorted(election.projects_in("large"), key=lambda p: p.cost)[:6]
    small = [p.id for p in election.projects_in("small")][:6]
    rng = random.Random(11)

    def ballot(n: int) -> tuple[str, dict[str, Any]]:
        payload: dict[str, Any] = {
            "type": "ballot",
            "election": ELECTION,
            "voter": TOKEN,
            "cast_at": "2018-10-05T10:00:00+03:00",
            "nonce": str(uuid.uuid4()),
        }
        if rng.random() < 0.5:
            payload["projects"] = [p.id for p in rng.sample(cheap, rng.randint(1, 2))]
        else:
            chosen = rng.sample(small, rng.randint(1, 2))
            payload["points"] = {p: rng.randint(1, 3) for p in chosen}
        if n % 2:
            payload["type"] = "paper-ballot"
            payload["polling_point"] = "city-council"
            return "paper-ballots", sign_envelope(payload, keys.clerk)
        return "ballots", sign_envelope(payload, keys.site)

    requests = [ballot(n) for n in range(200)]
    outcomes = await race_two_servers(store_url, tmp_path, ELECTION, requests)

    accepted = [body for status, body in outcomes if status == 201]
    refused = Counter(body.get("code") for status, body in outcomes if status != 201)
    assert accepted, "some ballot must get in"
    assert set(refused) <= ALLOWED_REFUSALS, refused
    assert refused["over-cost-limit"] and refused["too-many-points"], refused

    async with opened_ledger(store_url, keys) as ledger:
        history, _ = await ledger.tagged([f"voter:{TOKEN}"])
    prior = [
        PriorEntry(e.position, e.type, entry_object(e.data)["envelope"]["payload"], "")
        for e in history
    ]
    assert sorted(e.position for e in history) == sorted(b["position"] for b in accepted)
    state = voter_state(election, prior, TOKEN)
    marks = state.counted_marks(election)
    cap = definition["categories"][0]["max_total_cost_kopecks"]
    costs = {p.id: p.cost for p in election.projects}
    assert sum(costs[p] for p in marks["large"]) <= cap
    assert sum(marks["small"].values()) <= 5 and max(marks["small"].values()) <= 3
    picks = [p for ballot in state.ballots for p in ballot.projects]
    assert len(picks) == len(set(picks)), "a project counted twice"
    assert len(state.ballots) == len(accepted)
