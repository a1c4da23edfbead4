"""The demo funds about what Zhytomyr funded in 2018: 19 projects (examples/zhytomyr-2018.toml's
costs are invented to that end, as its header says).

``uchast demo --exit-after-simulation`` runs the whole simulation through HTTP (about 25 s);
this test replays the simulation's choices in-process with the demo's own generator
(:func:`api.demo._picks`, seeded per voter as :func:`api.demo.simulate` seeds it) and allocates
with the service's rule. It leaves out the demo's five voided paper ballots, which the full run
(measured: 8 large and 11 small funded, the same projects) shows do not change the outcome.
"""

from __future__ import annotations

import random
from collections import Counter

from api.demo import _picks, load_example
from tally.results import allocate

VOTERS = 12527  # uchast demo's default: 2018's turnout
SEED = 2018  # api.demo.simulate's default


def test_the_demo_funds_19_projects_as_the_city_did() -> None:
    """8 large and 11 small projects, each category within its budget."""
    election = load_example()
    rng = random.Random(SEED)
    weights = {p.id: rng.paretovariate(1.2) for p in election.projects}
    votes: Counter[str] = Counter()
    for n in range(VOTERS):
        votes.update(_picks(random.Random(SEED * 1_000_003 + n), election, weights))
    funded = {c.id: allocate(election, c.id, votes).funded for c in election.categories}
    assert {c: len(f) for c, f in funded.items()} == {"large": 8, "small": 11}
    costs = {p.id: p.cost for p in election.projects}
    for category in election.categories:
        assert sum(costs[p] for p in funded[category.id]) <= category.budget
    assert funded["large"][:3] == ("L21", "L30", "L09")
