"""The demo's simulation goes through the real API and the service's totals equal what the
generator knows it sent."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestServer

from api.app import create_app
from api.demo import DemoKeys, create_demo_election, load_example, simulate
from api.keys import SERVICE
from api.service import ServiceConfig


async def test_simulated_voting_matches_the_generator(tmp_path: Path) -> None:
    """300 simulated voters, online and paper, with spoiled ballots and voids: totals match."""
    election = load_example()
    keys = DemoKeys.create(tmp_path, election)
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    await create_demo_election(url, election, keys)

    # Simulated clerks and supervisors work at machine speed: their default limits are lifted.
    unlimited = (("clerk", 0.0), ("supervisor", 0.0))
    config = ServiceConfig(
        url, keys.log, voter_key=keys.voter_key, role_rate_limits=unlimited, lookup_limit=(0, 0.0)
    )
    app = create_app(config)
    async with TestServer(app) as server:
        expected = await simulate(
            str(server.make_url("")).rstrip("/"), election, keys, voters=300, progress=False
        )
        tally = await app[SERVICE].caught_up_tally(election.id)
        assert +tally.votes == +expected.votes
        assert tally.voters == len(expected.voters)
        assert tally.ballots["online"] == expected.ballots["online"]
        assert tally.ballots["paper"] == expected.ballots["paper"]
        assert tally.spoiled == expected.spoiled
        assert expected.ballots["paper"] > 0 and expected.spoiled + expected.voided > 0
