"""The results document's breakdowns: by day and channel, by polling point, by district, each
agreeing with a recount from the log by votes.rules."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from tally.projection import Tally
from tally.results import results_document
from tests.tally.test_projection import replay
from tests.votes.factories import (
    CLERK_OLENA,
    CLERK_PETRO,
    DURING,
    Log,
    ballot,
    paper_ballot,
    token,
    void,
    zhytomyr_with,
)
from votes.errors import VoteRefusedError
from votes.rules import voter_state

PROJECTS = ["L01", "L02", "L03", "L05", "S01", "S02", "S04"]
POINTS = ["city-council", "bohunskyi-council", "koroliovskyi-council"]
# Around midnight in Kyiv, so the day of a ballot depends on the zone, not on the UTC date.
MOMENTS = [
    DURING.replace(hour=23, minute=30) + timedelta(days=d, hours=h)
    for d in range(3)
    for h in (0, 1)
]

picks = st.lists(st.sampled_from(PROJECTS), min_size=1, max_size=3, unique=True)
operation = st.one_of(
    st.tuples(st.just("online"), st.integers(0, 5), picks, st.sampled_from(MOMENTS)),
    st.tuples(
        st.just("paper"),
        st.integers(0, 5),
        picks,
        st.sampled_from(MOMENTS),
        st.sampled_from(POINTS),
        st.sampled_from([CLERK_OLENA, CLERK_PETRO]),
    ),
    st.tuples(st.just("void"), st.integers(1, 30)),
)


def build(double_entry: bool, operations: list[tuple[Any, ...]]) -> Log:
    log = Log(zhytomyr_with(double_entry=double_entry))
    for op in operations:
        try:
            if op[0] == "online":
                log.submit_ballot(ballot(token(op[1]), op[2], cast_at=op[3]))
            elif op[0] == "paper":
                payload = paper_ballot(token(op[1]), op[2], cast_at=op[3], point=op[4])
                log.submit_ballot(payload, key=op[5])
            else:
                log.submit_void(void(op[1]))
        except VoteRefusedError:
            pass
    return log


@settings(max_examples=100, deadline=None)
@given(st.booleans(), st.lists(operation, max_size=30))
def test_breakdowns_equal_a_recount_from_the_log(
    double_entry: bool, operations: list[tuple[Any, ...]]
) -> None:
    log = build(double_entry, operations)
    election = log.election
    tally = Tally(election)
    asyncio.run(replay(log, tally))
    document = results_document(tally, len(log.entries), b"\0" * 32)

    zone = ZoneInfo(election.timezone)
    by_day: Counter[tuple[str, str]] = Counter()
    by_point: Counter[str] = Counter()
    by_project_day: Counter[tuple[str, str]] = Counter()
    by_project_point: Counter[tuple[str, str]] = Counter()
    totals: Counter[str] = Counter()
    for n in range(6):
        for counted in voter_state(election, log.history_of(token(n)), token(n)).ballots:
            payload = log.entries[counted.entries[0]][0].payload  # the (first) keying
            day = ballot_day(payload["cast_at"], zone)
            for project in counted.projects:
                totals[project] += 1
                by_day[(day, counted.channel)] += 1
                by_project_day[(project, day)] += 1
                if "polling_point" in payload:
                    by_point[payload["polling_point"]] += 1
                    by_project_point[(project, payload["polling_point"])] += 1

    breakdown = document["breakdown"]
    assert {
        (row["day"], channel): row[channel]
        for row in breakdown["by_day"]
        for channel in ("online", "paper")
        if row[channel]
    } == dict(by_day)
    assert all(row["votes"] == row["online"] + row["paper"] for row in breakdown["by_day"])
    assert {row["point"]: row["votes"] for row in breakdown["by_point"]} == {
        p.id: by_point[p.id] for p in election.polling_points
    }
    districts: Counter[str] = Counter()
    for listed in election.projects:
        districts[listed.district] += totals[listed.id]
    assert {row["district"]: row["votes"] for row in breakdown["by_district"]} == {
        d: districts[d] for d in {p.district for p in election.projects}
    }
    funded = {p for c in document["categories"] for p in c["funded"]}
    assert sum(row["funded"] for row in breakdown["by_district"]) == len(funded)
    for category in document["categories"]:
        for project in category["projects"]:
            assert project["votes"] == totals[project["id"]]
            assert project["votes_by_day"] == {
                day: n for (p, day), n in sorted(by_project_day.items()) if p == project["id"]
            }
            assert project["votes_by_point"] == {
                point.id: by_project_point[(project["id"], point.id)]
                for point in election.polling_points
            }


def ballot_day(cast_at: str, zone: ZoneInfo) -> str:
    from datetime import datetime

    return datetime.fromisoformat(cast_at).astimezone(zone).date().isoformat()
