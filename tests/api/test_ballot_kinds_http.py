"""Every ballot kind's limits through HTTP, online and on paper: each refusal leaves as
problem+json with its own code, status and both languages, writes nothing, and ballots within
the limits of every kind get receipts (DESIGN.md §3b)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from api.service import ServiceConfig
from ledger.keys import sign_envelope
from tally.audit.crypto import VerifierKey
from tally.audit.receipts import verify_receipt_proof
from tests.api.conftest import VOTER_KEY, VOTING_DAY, Setup
from tests.api.test_points_limit_race import kinds_definition
from tests.factories import ELECTION, Keys, opened_ledger, voter_token

BASE = f"/v1/elections/{ELECTION}"
# The tests type faster than a clerk may (api/ratelimit.py): the clerk's limit is lifted.
FAST_CLERKS: dict[str, Any] = {"role_rate_limits": (("clerk", 0.0),)}


@pytest.fixture
async def kinds_service(
    aiohttp_client: Callable[[Any], Awaitable[TestClient[Any, Any]]], sqlite_url: str
) -> AsyncIterator[Setup]:
    """The example election with knapsack "large" (cap: the three cheapest large projects) and
    cumulative "small" (3 points a project, 5 in all); "small" also needs 2 points at least,
    and "large" a total cost above the cheapest project's."""
    keys = Keys()
    definition = kinds_definition()
    definition["categories"][1]["min_total_points"] = 2
    cheapest = min(p["cost_kopecks"] for p in definition["projects"] if p["category"] == "large")
    definition["categories"][0]["min_total_cost_kopecks"] = cheapest + 1
    async with opened_ledger(sqlite_url, keys, definition=definition):
        pass
    config = ServiceConfig(
        sqlite_url, keys.log, voter_key=VOTER_KEY, clock=lambda: VOTING_DAY, **FAST_CLERKS
    )
    yield Setup(await aiohttp_client(create_app(config)), keys, sqlite_url)


async def cast(setup: Setup, voter: int, paper: bool, **choices: Any) -> tuple[int, Any]:
    payload: dict[str, Any] = {
        "type": "paper-ballot" if paper else "ballot",
        "election": ELECTION,
        "voter": voter_token(voter),
        "cast_at": "2018-10-05T11:00:00+03:00",
        "nonce": str(uuid.uuid4()),
        **choices,
    }
    if paper:
        payload["polling_point"] = "city-council"
    signer = setup.keys.clerk if paper else setup.keys.site
    response = await setup.client.post(
        f"{BASE}/{'paper-ballots' if paper else 'ballots'}", json=sign_envelope(payload, signer)
    )
    return response.status, await response.json(content_type=None)


def large_by_cost(setup: Setup) -> list[str]:
    definition = kinds_definition()
    ours = [p for p in definition["projects"] if p["category"] == "large"]
    return [p["id"] for p in sorted(ours, key=lambda p: p["cost_kopecks"])]


@pytest.mark.parametrize("paper", [False, True], ids=["online", "paper"])
async def test_each_kind_limit_over_http(kinds_service: Setup, paper: bool) -> None:
    """Within the limits a ballot of points and projects counts; each limit broken, alone or
    with the voter's earlier ballot, is refused under its code, writing nothing."""
    setup = kinds_service
    large = large_by_cost(setup)
    status, body = await cast(setup, 1, paper, projects=large[:2], points={"S01": 3})
    assert status == 201, body
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"projects": [large[3]]}, 409, "over-cost-limit"),
        ({"points": {"S02": 3}}, 409, "too-many-points"),
        ({"points": {"S01": 1}}, 409, "project-repeated"),
        ({"projects": ["S02"]}, 422, "wrong-ballot-field"),
        ({"points": {"S02": 0}}, 422, "bad-payload"),
        ({"ranking": ["S02"]}, 422, "wrong-ballot-field"),
    ]
    for choices, expected_status, code in cases:
        status, body = await cast(setup, 1, paper, **choices)
        assert (status, body["code"]) == (expected_status, code), (choices, body)
        assert body["message_uk"] and body["message_en"] != body["message_uk"]
    status, body = await cast(setup, 2, paper, points={"S03": 4})
    assert (status, body["code"], body["limit"]) == (409, "too-many-points-for-project", 3)
    status, body = await cast(setup, 2, paper, points={"S03": 1})
    assert (status, body["code"], body["minimum"]) == (409, "too-few-points", 2)
    status, body = await cast(setup, 2, paper, projects=[large[0]])
    assert (status, body["code"]) == (409, "under-cost-minimum")
    # What still fits counts: the third cheapest, and 2 more points.
    status, body = await cast(setup, 1, paper, projects=[large[2]], points={"S02": 2})
    assert status == 201, body


async def test_a_points_ballot_receipt_proof_shows_its_points(kinds_service: Setup) -> None:
    """The receipt's offline proof file names the points given, as the voter cast them."""
    setup = kinds_service
    large = large_by_cost(setup)
    status, accepted = await cast(setup, 3, False, projects=[large[1]], points={"S04": 2})
    assert status == 201
    code = accepted["receipt"]
    response = await setup.client.get(f"{BASE}/receipts/{code}/proof")
    assert response.status == 200
    proof = verify_receipt_proof(
        await response.text(), VerifierKey.parse(setup.keys.log.verifier.vkey), code
    )
    assert (proof.projects, proof.points, proof.ranking) == ((large[1],), (("S04", 2),), ())
    assert proof.choices() == f"{large[1]}, S04 (2 points)"


@pytest.fixture
async def ranked_service(
    aiohttp_client: Callable[[Any], Awaitable[TestClient[Any, Any]]], sqlite_url: str
) -> AsyncIterator[Setup]:
    """The example election with "large" ordinal (rank 2 or 3) and "small" approval needing one
    pick at least, in one group: a voter takes part in one of the two."""
    keys = Keys()
    definition = kinds_definition()
    large, small = definition["categories"]
    for name in ("max_total_cost_kopecks", "min_total_cost_kopecks"):
        del large[name]
    for name in ("max_points", "max_total_points", "min_total_points"):
        del small[name]
    large.update(ballot="ordinal", min_picks=2, max_picks=3)
    small.update(ballot="approval", min_picks=1, max_picks=2)
    definition["category_groups"] = [
        {"id": "one-list", "categories": ["large", "small"], "max_categories": 1}
    ]
    async with opened_ledger(sqlite_url, keys, definition=definition):
        pass
    config = ServiceConfig(
        sqlite_url, keys.log, voter_key=VOTER_KEY, clock=lambda: VOTING_DAY, **FAST_CLERKS
    )
    yield Setup(await aiohttp_client(create_app(config)), keys, sqlite_url)


@pytest.mark.parametrize("paper", [False, True], ids=["online", "paper"])
async def test_rankings_and_groups_over_http(ranked_service: Setup, paper: bool) -> None:
    """A ranking counts once; a second is refused (ranking-exists), as is one too short, and a
    ballot joining the group's other category (too-many-categories)."""
    setup = ranked_service
    status, body = await cast(setup, 1, paper, ranking=["L03", "L01"])
    assert status == 201, body
    cases: list[tuple[dict[str, Any], str, dict[str, Any]]] = [
        ({"ranking": ["L04", "L05"]}, "ranking-exists", {"category": "large"}),
        ({"projects": ["S01"]}, "too-many-categories", {"categories": ["large", "small"]}),
        ({"projects": ["L04"]}, "wrong-ballot-field", {"expected": "ranking"}),
    ]
    for choices, code, facts in cases:
        status, body = await cast(setup, 1, paper, **choices)
        assert (status, body["code"]) == (409 if code != "wrong-ballot-field" else 422, code)
        assert facts.items() <= body.items(), body
    status, body = await cast(setup, 2, paper, ranking=["L02"])
    assert (status, body["code"], body["minimum"]) == (409, "too-few-picks", 2)
    status, body = await cast(setup, 2, paper, ranking=["L01", "L02", "L03", "L04"])
    assert (status, body["code"], body["limit"]) == (409, "limit-exceeded", 3)
    status, body = await cast(setup, 2, paper, projects=["S01", "S02"])
    assert status == 201, body
