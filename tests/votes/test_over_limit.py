"""Threat: a voter getting more than the category limit, or one project twice, by mixing
channels, retries and voids. Checked against an independent model of the rules."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.votes.factories import (
    CLERK_OLENA,
    Log,
    ballot,
    paper_ballot,
    spoiled_ballot,
    token,
    zhytomyr_with,
)
from tests.votes.factories import void as void_payload
from votes.errors import VoteRefusedError
from votes.rules import voter_state

VOTERS = [token(0x100 + i) for i in range(3)]
PICKABLE = ["L01", "L02", "L03", "L04", "S01", "S02", "S03", "L99"]
LIMIT = 2


def _category(project: str) -> str:
    return "large" if project.startswith("L") else "small"


@dataclass
class Model:
    """The rules as a reader would state them, written without the production code."""

    multiple_ballots: bool
    ballots: dict[int, tuple[str, list[str]]] = field(default_factory=dict)
    voided: set[int] = field(default_factory=set)
    kinds: dict[int, str] = field(default_factory=dict)

    def live(self, voter: str) -> list[int]:
        return [p for p, (v, _) in self.ballots.items() if v == voter and p not in self.voided]

    def accepts_ballot(self, voter: str, picks: list[str]) -> bool:
        if any(p == "L99" for p in picks):  # not on the ballot
            return False
        live = self.live(voter)
        if live and not self.multiple_ballots:
            return False
        have = [p for position in live for p in self.ballots[position][1]]
        if set(have) & set(picks):
            return False
        for category in ("large", "small"):
            total = [p for p in have + picks if _category(p) == category]
            if len(total) > LIMIT:
                return False
        return True

    def accepts_void(self, position: int, log_size: int) -> bool:
        kind = self.kinds.get(position)
        if position >= log_size or position in self.voided:
            return False
        return kind in ("ballot", "spoiled")


steps = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from(["online", "paper"]),
            st.sampled_from(VOTERS),
            st.lists(st.sampled_from(PICKABLE), min_size=1, max_size=4, unique=True),
        ),
        st.tuples(st.just("void"), st.integers(0, 10**6)),
        st.tuples(st.just("spoiled"), st.sampled_from(VOTERS)),
        st.tuples(st.just("retry"), st.integers(0, 10**6)),
    ),
    max_size=50,
)


@settings(max_examples=400, deadline=None)
@given(steps, st.booleans())
def test_counted_picks_match_the_model(actions: list[tuple[Any, ...]], multiple: bool) -> None:
    """For any interleaving of ballots on both channels, spoiled ballots, retries and voids,
    decisions agree with the model, limits hold, no project counts twice for a voter, and every
    accepted non-voided ballot is counted exactly once."""
    log = Log(zhytomyr_with(multiple_ballots=multiple))
    model = Model(multiple)
    model.kinds[0] = "election"
    sent: list[tuple[dict[str, Any], str]] = []

    for action in actions:
        kind = action[0]
        if kind in ("online", "paper"):
            _, voter, picks = action
            payload = ballot(voter, picks) if kind == "online" else paper_ballot(voter, picks)
            key = "site.e-dem+0a1b2c3d" if kind == "online" else CLERK_OLENA
            expected = model.accepts_ballot(voter, picks)
            try:
                log.submit_ballot(payload, key=key)
                accepted = True
            except VoteRefusedError:
                accepted = False
            assert accepted == expected, (voter, picks, model.ballots, model.voided)
            if accepted:
                position = log.last.position
                model.ballots[position] = (voter, picks)
                model.kinds[position] = "ballot"
                sent.append((payload, key))
        elif kind == "void":
            position = action[1] % (len(log.entries) + 1)
            expected = model.accepts_void(position, len(log.entries))
            try:
                log.submit_void(void_payload(position))
                accepted = True
            except VoteRefusedError:
                accepted = False
            assert accepted == expected
            if accepted:
                model.voided.add(position)
                model.kinds[log.last.position] = "void"
        elif kind == "spoiled":
            log.submit_spoiled(spoiled_ballot(voter=action[1], nonce=str(uuid.uuid4())))
            model.kinds[log.last.position] = "spoiled"
        elif sent:
            payload, key = sent[action[1] % len(sent)]
            size = len(log.entries)
            decision = log.submit_ballot(payload, key=key)
            assert decision.replay_of is not None and len(log.entries) == size

        for voter in VOTERS:
            state = voter_state(log.election, log.history_of(voter))
            for category in log.election.categories:
                assert len(state.counted[category.id]) <= category.max_picks
            picked = [p for b in state.ballots for p in b.projects]
            assert len(picked) == len(set(picked))
            assert sorted(b.position for b in state.ballots) == sorted(model.live(voter))
            for b in state.ballots:
                assert len(b.entries) == 1
                assert b.projects == frozenset(model.ballots[b.position][1])
