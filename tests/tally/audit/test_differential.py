"""The auditor kept honest in both directions, on random elections.

1. Agreement: random streams of online, paper and spoiled ballots, double-entry keyings and
   voids (with repeats, over-limit ballots, replays and reused nonces among them) go through the
   real write path; the server (its live tally rebuilt from the log, ``votes.rules``' count,
   ``tally.results``' winners) and the auditor (``tally.audit`` on the exported log) then give
   the same counted ballots, totals and winners, and the auditor finds nothing wrong.
2. No leniency: entries the rules refuse, appended straight through the Ledger, are reported by
   the auditor at exactly their positions, under the check that names the rules' own refusal.

``UCHAST_DIFFERENTIAL_EXAMPLES=500`` runs more examples, freshly drawn each run (by default a
fixed draw, so a run is repeatable).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ledger.casting import Casting
from ledger.keys import SignerKey, sign_envelope
from ledger.store import open_store
from tally.audit import AuditReport, audit
from tally.export import replay_tally, results_from_log, voter_histories
from tests.factories import ELECTION, voter_token
from tests.tally.election_log import NOW, AuditKeys, ElectionLog, election_log, export, tags_of
from votes import rules
from votes.admin import key_registration
from votes.election import Election
from votes.errors import VoidRefusedError, VoteRefusedError

METHODS = ("greedy", "greedy-no-skip", "equal-shares")
_EXAMPLES = os.environ.get("UCHAST_DIFFERENTIAL_EXAMPLES")
PROPERTY = settings(
    # Per allocation rule and double-entry setting (six cases per test).
    max_examples=int(_EXAMPLES) if _EXAMPLES else 6,
    derandomize=not _EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

OPENS, CLOSES = "2018-10-01T00:00:00+03:00", "2018-10-10T23:59:59+03:00"
IN_WINDOW = (OPENS, CLOSES, "2018-10-03T10:15:00+03:00", "2018-10-10T20:59:59Z")
OUT_OF_WINDOW = ("2018-09-30T23:59:59+03:00", "2018-10-10T21:00:00Z", "2018-10-11T00:00:00+03:00")
POINTS = ("council", "district-1", "nowhere")  # the election has the first two only
UNKNOWN_PROJECT = "X9"

# The auditor's check for each refusal of the rules (problem codes, votes/errors.py).
CHECK_OF_CODE = {
    "limit-exceeded": "limit",
    "project-repeated": "project-repeated",
    "outside-window": "window",
    "unknown-project": "unknown-project",
    "nonce-reused": "nonce-reused",
    "already-voted": "already-voted",
    "unknown-polling-point": "polling-point",
    "wrong-polling-point": "clerk-polling-point",
    "paper-deadline-passed": "paper-deadline",
    "same-clerk": "same-clerk",
    "paper-disputed": "disputed",
}
CHECK_OF_VOID = {
    "void-of-void": "void-of-void",
    "already-voided": "already-voided",
    "unknown-entry": "void-target",
    "not-voidable": "void-target",
}


# -- random elections ----------------------------------------------------------------------------


def _title(text: str) -> dict[str, str]:
    return {"uk": text, "en": text}


@st.composite
def elections(
    draw: st.DrawFn, method: str, double_entry: bool, *, deadline_passed: bool = False
) -> dict[str, Any]:
    """Overrides of ``election_log``'s definition: 1-3 categories of 1-4 projects with random
    costs (kopecks; a few shared, for ties), budgets and limits; the allocation ``method``
    with a random threshold and tie-break, single or multiple ballots."""
    categories: list[dict[str, Any]] = []
    projects: list[dict[str, Any]] = []
    for c in range(draw(st.integers(1, 3))):
        category = "abc"[c]
        costs = draw(
            st.lists(
                st.sampled_from([10_000_00, 25_000_00, 40_000_00]) | st.integers(1, 60_000_00),
                min_size=1,
                max_size=4,
            )
        )
        budget = draw(st.integers(max(costs), sum(costs) + 1))
        categories.append(
            {
                "id": category,
                "title": _title(f"Category {category}"),
                "max_picks": draw(st.integers(1, 3)),
                "budget_kopecks": budget,
                "max_cost_kopecks": max(costs),
            }
        )
        projects += [
            {
                "id": f"{category.upper()}{i}",
                "title": _title(f"Project {category}{i}"),
                "category": category,
                "cost_kopecks": cost,
                "district": draw(st.sampled_from(["centre", "north"])),
            }
            for i, cost in enumerate(costs)
        ]
    tie_break = list(draw(st.sampled_from([(), ("cost-ascending",), ("cost-descending",)])))
    if draw(st.booleans()):
        tie_break.append("lottery")
    seed = draw(st.text("abcdef0123456789:/-", min_size=1, max_size=10))
    overrides: dict[str, Any] = {
        "categories": categories,
        "projects": projects,
        "rule": {
            "method": method,
            "min_votes": draw(st.integers(0, 2)),
            "tie_break": tie_break,
            "seed": seed if "lottery" in tie_break or draw(st.booleans()) else "",
        },
        "multiple_ballots": draw(st.booleans()),
        "double_entry": double_entry,
        # Sealing changes what the server serves, never what counts: both read it alike.
        "results": draw(st.sampled_from(["open", "sealed-until-close"])),
    }
    if deadline_passed:
        # Before the entries' recorded_at (today), after voting closes.
        overrides["paper_deadline"] = "2018-10-12T00:00:00+03:00"
    return overrides


def project_ids(overrides: dict[str, Any]) -> list[str]:
    return [p["id"] for p in overrides["projects"]]


# -- random streams through the write path -------------------------------------------------------

VOTERS = st.integers(0, 7)


def picks(ids: Sequence[str]) -> st.SearchStrategy[list[str]]:
    """Mostly distinct projects of the election; at times repeated, unknown or too many."""
    valid = st.lists(st.sampled_from(ids), min_size=1, max_size=3, unique=True)
    faulty = st.lists(st.sampled_from([*ids, UNKNOWN_PROJECT]), min_size=1, max_size=4)
    return st.one_of(valid, valid, valid, faulty)


def voters_first(ids: Sequence[str], *, paper: bool) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    """A few voters (10, 11, ...) each casting one ballot of distinct projects: online, or on
    paper keyed once, twice (by the other clerk of the council), or twice but differently, so
    that every example has something to count and to allocate."""
    channels = ["online", "online", "paper", "paper twice", "disputed"] if paper else ["online"]
    ballots = st.lists(
        st.tuples(
            st.sampled_from(channels),
            st.lists(st.sampled_from(ids), min_size=1, max_size=3, unique=True),
        ),
        min_size=2,
        max_size=12,
    )

    def stream(cast: list[tuple[str, list[str]]]) -> list[tuple[Any, ...]]:
        operations: list[tuple[Any, ...]] = []
        for voter, (channel, projects) in enumerate(cast, start=10):
            if channel == "online":
                operations.append(("ballot", voter, projects, IN_WINDOW[2]))
                continue
            operations.append(("paper", voter, projects, 1, "own"))
            if channel != "paper":
                same = channel == "paper twice"
                operations.append(("rekey", -1, "other", same))  # the last keying
        return operations

    return ballots.map(stream)


CLERK_POINTS = {1: "council", 2: "council", 3: "district-1", 4: "nowhere"}
"""Clerks 1 and 2 are the log's; 3 and 4 are registered by :meth:`Writer.register_clerks`."""


def operations(ids: Sequence[str], *, paper: bool) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    """Online ballots, voids (mostly of an accepted entry, else of an unknown position, a key
    or the election), exact replays and reused nonces; with ``paper``, paper ballots (mostly
    at the clerk's own point), second keyings of them and spoiled ballots."""
    ballot = st.tuples(
        st.just("ballot"),
        VOTERS,
        picks(ids),
        st.sampled_from([*IN_WINDOW, *IN_WINDOW, *OUT_OF_WINDOW]),
    )
    void = st.tuples(
        st.just("void"),
        st.sampled_from(["entry", "entry", "entry", "entry", "unknown", "key", "election"]),
        st.integers(0, 99),
    )
    replay = st.tuples(st.just("replay"), st.integers(0, 99))
    reuse = st.tuples(st.just("reuse-nonce"), st.integers(0, 99), VOTERS, picks(ids))
    kinds: list[st.SearchStrategy[tuple[Any, ...]]] = [ballot] * 4 + [void] * 2 + [replay, reuse]
    if paper:
        clerks = st.sampled_from(list(CLERK_POINTS))
        points = st.sampled_from(["own"] * 5 + list(POINTS))
        keying = st.tuples(st.just("paper"), VOTERS, picks(ids), clerks, points)
        # A second keying of an earlier one, mostly by another clerk of its point; the same
        # projects (in another order) or not.
        rekeying: st.SearchStrategy[Any] = st.sampled_from(
            ["other", "other", "other", "same", *CLERK_POINTS]
        )
        rekey = st.tuples(st.just("rekey"), st.integers(0, 99), rekeying, st.booleans())
        # A spoiled ballot may name its voter: a void of it then carries the voter's tag.
        spoiled = st.tuples(st.just("spoiled"), st.sampled_from(POINTS), st.none() | VOTERS)
        kinds += [keying] * 3 + [rekey] * 3 + [spoiled]
    return st.lists(st.one_of(kinds), min_size=3, max_size=24)


@dataclass
class Writer:
    """Submits a stream through the write path, remembering what was accepted."""

    log: ElectionLog
    casting: Casting
    clerks: dict[int, SignerKey] = field(default_factory=dict)
    accepted: list[int] = field(default_factory=list)
    keyings: list[tuple[int, list[str], int, str]] = field(default_factory=list)
    refused: int = 0
    replayed: int = 0

    async def register_clerks(self) -> None:
        """Clerks 3 and 4, registered through the write path at district 1 and at "nowhere", a
        point the election does not have."""
        keys = self.log.keys
        self.clerks = {1: keys.clerk, 2: keys.clerk2}
        for number in (3, 4):
            clerk = SignerKey.generate(f"clerk.{CLERK_POINTS[number]}.test")
            registration = key_registration(
                ELECTION, clerk.verifier.vkey, "clerk", CLERK_POINTS[number]
            )
            await self.casting.submit(sign_envelope(registration, keys.admin))
            self.clerks[number] = clerk

    def other(self, projects: list[str]) -> list[str]:
        """Another project than ``projects`` (a mistyped keying), or an unknown one."""
        others = [p.id for p in self.log.election.projects if p.id not in projects]
        return others[:1] or [UNKNOWN_PROJECT]

    def clerk_of(self, key_id: str) -> SignerKey:
        return next(k for k in self.clerks.values() if k.key_id == key_id)

    async def envelope(self, position: int) -> dict[str, Any]:
        [entry] = await self.log.ledger.entries(position, position + 1)
        envelope: dict[str, Any] = json.loads(entry.data)["envelope"]
        return envelope

    async def run(self, operation: tuple[Any, ...]) -> None:
        try:
            position = await self._write(operation)
        except VoteRefusedError as refused:
            self.refused += 1
            event(f"refused: {refused.code}")
            return
        if position is not None:
            self.accepted.append(position)

    async def _write(self, operation: tuple[Any, ...]) -> int | None:
        log = self.log
        match operation:
            case ("ballot", voter, projects, cast_at):
                return await log.ballot(voter, projects, cast_at=cast_at)
            case ("paper", voter, projects, clerk, point):
                point = CLERK_POINTS[clerk] if point == "own" else point
                position = await log.paper(voter, projects, clerk=self.clerks[clerk], point=point)
                self.keyings.append((voter, projects, clerk, point))
                return position
            case ("rekey", ref, clerk, same) if self.keyings:
                voter, projects, first, point = self.keyings[ref % len(self.keyings)]
                if clerk == "same":
                    clerk = first
                elif clerk == "other":
                    others = [n for n, p in CLERK_POINTS.items() if p == point and n != first]
                    clerk = others[0] if others else first
                keyed = list(reversed(projects)) if same else projects[1:] or self.other(projects)
                position = await log.paper(voter, keyed, clerk=self.clerks[clerk], point=point)
                self.keyings.append((voter, keyed, clerk, point))
                return position
            case ("spoiled", point, None):
                return await log.spoiled(point)
            case ("spoiled", point, voter):
                spoiled = {
                    "type": "spoiled-ballot",
                    "election": ELECTION,
                    "voter": voter_token(voter),
                    "polling_point": point,
                    "reason": "too-many-marks",
                    "cast_at": IN_WINDOW[2],
                    "nonce": str(uuid.uuid4()),
                }
                cast = await self.casting.submit(sign_envelope(spoiled, log.keys.clerk))
                return cast.position
            case ("void", "entry", ref) if self.accepted:
                return await log.void(self.accepted[ref % len(self.accepted)])
            case ("void", "unknown", ref):
                return await log.void(await log.ledger.size() + ref)
            case ("void", "key", ref):
                return await log.void(1 + ref % 4)
            case ("void", "election", _):
                return await log.void(0)
            case ("replay", ref) if self.accepted:
                original = self.accepted[ref % len(self.accepted)]
                cast = await self.casting.submit(await self.envelope(original))
                assert cast.replay and cast.position == original
                self.replayed += 1
                return None
            case ("reuse-nonce", ref, voter, projects) if self.accepted:
                used = await self.envelope(self.accepted[ref % len(self.accepted)])
                payload = ballot_payload(voter_token(voter), projects, used["payload"]["nonce"])
                await self.casting.submit(sign_envelope(payload, log.keys.site))
                raise AssertionError("a reused nonce was accepted")
        return None


def ballot_payload(
    voter: str, projects: list[str], nonce: str | None = None, **fields: Any
) -> dict[str, Any]:
    payload = {
        "type": "ballot",
        "election": ELECTION,
        "voter": voter,
        "projects": projects,
        "cast_at": IN_WINDOW[2],
        "nonce": nonce or str(uuid.uuid4()),
    }
    payload.update(fields)
    return payload


# -- both sides' view of a log -------------------------------------------------------------------

Ballots = set[tuple[int, frozenset[str]]]


@dataclass
class ServerView:
    """What the server makes of the log: its live tally rebuilt from position 0, each counted
    ballot by votes.rules, the published results (winners by tally.results.allocate)."""

    election: Election
    size: int
    ballots: Ballots
    pairs: int
    """Counted paper ballots keyed twice (double entry)."""
    totals: dict[str, int]
    voters: int
    counted: int
    spoiled: int
    winners: dict[str, list[str]]
    results: dict[str, Any]


async def server_view(url: str) -> ServerView:
    store = open_store(url)
    await store.open()
    try:
        tally, size, _ = await replay_tally(store, ELECTION)
        histories = await voter_histories(store, ELECTION, size)
        results = await results_from_log(store, ELECTION)
    finally:
        await store.close()
    election = tally.election
    ballots: Ballots = set()
    pairs = 0
    for voter, history in histories.items():
        for ballot in rules.voter_state(election, history, voter).ballots:
            ballots.add((ballot.position, ballot.projects))
            pairs += len(ballot.entries) == 2
    return ServerView(
        election=election,
        size=size,
        ballots=ballots,
        pairs=pairs,
        totals={p.id: tally.votes.get(p.id, 0) for p in election.projects},
        voters=tally.voters,
        counted=sum(tally.ballots.values()),
        spoiled=tally.spoiled,
        winners={c["id"]: c["funded"] for c in results["categories"]},
        results=results,
    )


def audited(path: Path, keys: AuditKeys, **options: Any) -> AuditReport:
    return audit(
        str(path),
        keys.log.verifier.vkey,
        keys.admin.verifier.vkey,
        workers=0,
        list_counted=True,
        **options,
    )


def counted_by_auditor(report: AuditReport) -> Ballots:
    assert report.counted is not None
    return {(position, frozenset(projects)) for position, projects in report.counted}


def bucket(count: int, width: int) -> str:
    low = count // width * width
    return f"{low}-{low + width - 1}"


# -- 1. the same count ---------------------------------------------------------------------------


def honest_scenarios(
    method: str, double_entry: bool
) -> st.SearchStrategy[tuple[dict[str, Any], list[tuple[Any, ...]], int]]:
    """An election, a stream (its voters first, then anything) and the auditor's chunk size."""

    @st.composite
    def scenario(draw: st.DrawFn) -> tuple[dict[str, Any], list[tuple[Any, ...]], int]:
        election = draw(elections(method, double_entry))
        ids = project_ids(election)
        stream = draw(voters_first(ids, paper=True)) + draw(operations(ids, paper=True))
        return election, stream, draw(st.sampled_from([1, 3, 2000]))

    return scenario()


async def agree(overrides: dict[str, Any], stream: list[tuple[Any, ...]], chunk: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'uchast.db'}"
        keys = AuditKeys()
        async with election_log(url, keys, **overrides) as log:
            writer = Writer(log, Casting(log.ledger, lambda: NOW))
            await writer.register_clerks()
            for operation in stream:
                await writer.run(operation)
        server = await server_view(url)
        path = Path(tmp) / "log.jsonl"
        await export(url, path)
        report = audited(path, keys, chunk_size=chunk, results=server.results)

    assert report.ok, "\n".join(report.summary())
    assert report.results_compared
    assert report.entries == server.size
    # The server's count is consistent with itself: the tally counts what votes.rules counts.
    by_rules = dict.fromkeys(server.totals, 0)
    for _, projects in server.ballots:
        for project in projects:
            by_rules[project] += 1
    assert by_rules == server.totals
    # ... and the auditor's count is the same, ballot by ballot.
    assert counted_by_auditor(report) == server.ballots
    assert report.totals == server.totals
    assert (report.ballots, report.voters, report.spoiled) == (
        server.counted,
        server.voters,
        server.spoiled,
    )
    assert report.winners == server.winners  # funded sets, in funding order

    election = server.election
    event(f"rule {election.rule.method}, double entry {election.double_entry}")
    event(f"entries accepted: {bucket(len(writer.accepted), 5)}")
    event(f"entries refused: {bucket(writer.refused, 5)}")
    event(f"counted ballots: {bucket(len(server.ballots), 4)}")
    event(f"confirmed double-entry pairs: {min(server.pairs, 3)}")
    event(f"funded projects: {min(sum(map(len, server.winners.values())), 4)}")


@pytest.mark.parametrize("double_entry", [False, True])
@pytest.mark.parametrize("method", METHODS)
@PROPERTY
@given(data=st.data())
def test_the_auditor_counts_what_the_server_counts(
    method: str, double_entry: bool, data: st.DataObject
) -> None:
    """Whatever the election (categories, budgets, limits, single or multiple ballots, double
    entry, greedy, greedy-no-skip, thresholds, tie-breaks, equal shares) and whatever was
    submitted (repeats, over-limit, replays, reused nonces, voids of anything), the auditor
    passes the log and finds the server's counted ballots, totals and winners."""
    asyncio.run(agree(*data.draw(honest_scenarios(method, double_entry))))


# -- 2. no leniency ------------------------------------------------------------------------------

SMUGGLED = (
    "over-limit",
    "repeated-project",
    "outside-window",
    "after-deadline",
    "reused-nonce",
    "void-of-void",
    "voided-again",
    "void-of-nothing",
    "unknown-point",
    "wrong-point",
    "already-voted",
    "same-clerk",
    "while-disputed",
    "unknown-project",
)


@dataclass(frozen=True)
class Logged:
    """An entry as read back from the log."""

    prior: rules.PriorEntry
    tags: tuple[str, ...]
    recorded_at: datetime


async def read_log(log: ElectionLog) -> list[Logged]:
    entries = await log.ledger.entries(0, await log.ledger.size())
    logged = []
    for entry in entries:
        obj = json.loads(entry.data)
        envelope = obj["envelope"]
        prior = rules.PriorEntry(entry.position, obj["type"], envelope["payload"], envelope["key"])
        recorded_at = datetime.fromisoformat(obj["recorded_at"])
        logged.append(Logged(prior, tuple(obj["tags"]), recorded_at))
    return logged


@dataclass
class Smuggler:
    """Builds entries the rules refuse, from the honest log so far."""

    writer: Writer
    election: Election
    honest: list[rules.PriorEntry]
    size: int
    """The log's size, entries smuggled in before included."""
    fresh: int = 300

    def new_voter(self) -> str:
        self.fresh += 1
        return voter_token(self.fresh)

    def voters(self) -> list[str]:
        found = {e.payload["voter"] for e in self.honest if "voter" in e.payload}
        return sorted(v for v in found if isinstance(v, str))

    def state(self, voter: str) -> rules.VoterState:
        return rules.voter_state(self.election, self.honest, voter)

    def entry(self, kind: str, ref: int) -> tuple[dict[str, Any], SignerKey] | None:
        """The payload and signer of a ``kind`` of refused entry, None if this log has none."""
        keys, election = self.writer.log.keys, self.election
        first = election.projects[ref % len(election.projects)].id
        voters = self.voters()
        if kind == "over-limit":
            for voter in [*voters[ref % max(1, len(voters)) :], *voters, self.new_voter()]:
                held = self.state(voter).held(election)
                for category in election.categories:
                    free = [
                        p.id
                        for p in election.projects_in(category.id)
                        if p.id not in held[category.id]
                    ]
                    need = category.max_picks - len(held[category.id]) + 1
                    if 0 < need <= len(free):
                        return ballot_payload(voter, free[:need]), keys.site
            return None
        if kind == "repeated-project":
            for voter in voters:
                chosen = sorted(p for ps in self.state(voter).held(election).values() for p in ps)
                if chosen:
                    return ballot_payload(voter, [chosen[ref % len(chosen)]]), keys.site
            return ballot_payload(self.new_voter(), [first, first]), keys.site
        if kind == "outside-window":
            cast_at = OUT_OF_WINDOW[ref % len(OUT_OF_WINDOW)]
            return ballot_payload(self.new_voter(), [first], cast_at=cast_at), keys.site
        if kind == "after-deadline":
            if self.election.paper_deadline.year > 2018:
                return None
            if ref % 2:
                spoiled = {
                    "type": "spoiled-ballot",
                    "election": ELECTION,
                    "polling_point": "council",
                    "reason": "unreadable",
                    "cast_at": IN_WINDOW[2],
                    "nonce": str(uuid.uuid4()),
                }
                return spoiled, keys.clerk
            return paper_payload(self.new_voter(), [first], "council"), keys.clerk
        if kind == "reused-nonce":
            nonces = [e.payload["nonce"] for e in self.honest if "nonce" in e.payload]
            nonce = nonces[ref % len(nonces)]
            return ballot_payload(self.new_voter(), [first], nonce), keys.site
        if kind in ("void-of-void", "voided-again", "void-of-nothing"):
            if kind == "void-of-void":
                targets = [e.position for e in self.honest if e.type == "void"]
            elif kind == "voided-again":
                targets = [e.payload["entry"] for e in self.honest if e.type == "void"]
            else:
                targets = [1 + ref % 4, self.size + ref]  # a key's registration, or beyond
            void = {
                "type": "void",
                "election": ELECTION,
                "entry": targets[ref % len(targets)],
                "reason": "smuggled",
                "nonce": str(uuid.uuid4()),
            }
            return void, keys.supervisor
        if kind == "unknown-point":
            return paper_payload(self.new_voter(), [first], "nowhere"), self.writer.clerks[4]
        if kind == "wrong-point":
            return paper_payload(self.new_voter(), [first], "district-1"), keys.clerk
        if kind == "already-voted":
            if election.multiple_ballots:
                return None
            for voter in voters:
                if self.state(voter).has_ballot:
                    return ballot_payload(voter, [first]), keys.site
            return None
        if kind == "same-clerk":
            for voter in voters:
                pending = self.state(voter).pending
                if pending is not None:
                    payload = paper_payload(
                        voter, list(pending.payload["projects"]), pending.payload["polling_point"]
                    )
                    return payload, self.writer.clerk_of(pending.key)
            return None
        if kind == "while-disputed":
            for voter in voters:
                disputed = self.state(voter).disputed
                if disputed:
                    point = disputed[0].payload["polling_point"]
                    return paper_payload(voter, [first], point), self.writer.clerk_of(
                        disputed[-1].key
                    )
            return None
        if kind == "unknown-project":
            return ballot_payload(self.new_voter(), [first, UNKNOWN_PROJECT]), keys.site
        raise AssertionError(kind)


def paper_payload(voter: str, projects: list[str], point: str) -> dict[str, Any]:
    return {**ballot_payload(voter, projects), "type": "paper-ballot", "polling_point": point}


def clerk_points(log: Sequence[Logged]) -> dict[str, str]:
    """Each clerk key's polling point, as registered in the log."""
    points = {}
    for e in log:
        point = e.prior.payload.get("polling_point")
        if e.prior.type == "key-registered" and isinstance(point, str):
            name, key_hash, _ = e.prior.payload["vkey"].split("+", 2)  # base64 may hold "+"
            points[f"{name}+{key_hash}"] = point
    return points


def refusal_check(election: Election, logged: Logged, before: Sequence[Logged]) -> str:
    """The auditor's check for why votes.rules refuses ``logged`` after the honest entries
    ``before``, decided as the write path decides (the signer's registered point, the entries
    carrying the tags it reads, ``recorded_at`` for its clock); AssertionError if the rules
    would accept it."""
    entry = logged.prior
    payload = entry.payload
    wanted = set(rules.read_tags(payload))
    history = [e.prior for e in before if wanted.intersection(e.tags)]
    now = logged.recorded_at
    try:
        if entry.type in ("paper-ballot", "spoiled-ballot"):
            rules.check_polling_point(clerk_points(before).get(entry.key), payload)
        if entry.type == "void":
            target = next((e.prior for e in before if e.prior.position == payload["entry"]), None)
            rules.decide_void(election, payload, target, history, now=now)
        elif entry.type == "spoiled-ballot":
            rules.decide_spoiled(election, payload, history, now=now)
        else:
            rules.decide_ballot(election, payload, history, now=now, key=entry.key)
    except VoidRefusedError as refused:
        return CHECK_OF_VOID[refused.reason_code]
    except VoteRefusedError as refused:
        return CHECK_OF_CODE[refused.code]
    raise AssertionError(f"votes.rules would accept the smuggled entry {entry}")


Smuggling = tuple[
    dict[str, Any], list[tuple[Any, ...]], list[tuple[str, int]], list[tuple[Any, ...]]
]


@st.composite
def smuggling_scenarios(draw: st.DrawFn, method: str, double_entry: bool) -> Smuggling:
    """An election, an honest stream, the kinds of entries to smuggle in after it, and an
    honest tail of new voters."""
    deadline_passed = draw(st.booleans())
    election = draw(elections(method, double_entry, deadline_passed=deadline_passed))
    ids = project_ids(election)
    # Honest paper entries would be late too once the deadline has passed.
    paper = not deadline_passed
    stream = draw(voters_first(ids, paper=paper)) + draw(operations(ids, paper=paper))
    smuggled = draw(
        st.lists(st.tuples(st.sampled_from(SMUGGLED), st.integers(0, 99)), min_size=1, max_size=5)
    )
    # After the smuggled entries, new voters only: their entries depend on nothing smuggled.
    tail = draw(
        st.lists(
            st.tuples(st.just("ballot"), st.integers(500, 509), picks(ids), st.just(IN_WINDOW[2])),
            max_size=4,
        )
    )
    return election, stream, smuggled, tail


async def catch(
    overrides: dict[str, Any],
    stream: list[tuple[Any, ...]],
    smuggled: list[tuple[str, int]],
    tail: list[tuple[Any, ...]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'uchast.db'}"
        keys = AuditKeys()
        appended: dict[int, str] = {}  # position -> kind
        async with election_log(url, keys, **overrides) as log:
            writer = Writer(log, Casting(log.ledger, lambda: NOW))
            await writer.register_clerks()
            # A ballot and its void, so that every kind has something to break.
            await writer.run(("ballot", 90, [project_ids(overrides)[0]], IN_WINDOW[2]))
            await writer.run(("void", "entry", 0))
            for operation in stream:
                await writer.run(operation)
            for kind, ref in smuggled:
                logged = await read_log(log)
                so_far = [e.prior for e in logged if e.prior.position not in appended]
                fresh = 300 + 10 * len(appended)
                smuggler = Smuggler(writer, log.election, so_far, len(logged), fresh)
                built = smuggler.entry(kind, ref)
                if built is None:
                    continue
                payload, signer = built
                target = next((e for e in so_far if e.position == payload.get("entry")), None)
                position = await log.smuggle(payload, signer, tags_of(payload, target))
                appended[position] = kind
                event(f"smuggled: {kind}")
            for operation in tail:
                await writer.run(operation)
            logged = await read_log(log)
            election = log.election
        path = Path(tmp) / "log.jsonl"
        await export(url, path)
        report = audited(path, keys)

    assert all(v.step == 5 for v in report.violations), "\n".join(report.summary())
    found = {v.entry: v.check for v in report.violations}
    honest = [e for e in logged if e.prior.position not in appended]
    expected = {
        position: refusal_check(
            election, logged[position], [e for e in honest if e.prior.position < position]
        )
        for position in appended
    }
    assert found == expected, (appended, "\n".join(report.summary()))
    # What the auditor counts is what votes.rules counts on the log without them.
    ballots: Ballots = set()
    voters = {e.prior.payload.get("voter") for e in honest} - {None}
    for voter in voters:
        state = rules.voter_state(election, [e.prior for e in honest], str(voter))
        ballots |= {(b.position, b.projects) for b in state.ballots}
    assert counted_by_auditor(report) == ballots


@pytest.mark.parametrize("double_entry", [False, True])
@pytest.mark.parametrize("method", METHODS)
@PROPERTY
@given(data=st.data())
def test_the_auditor_reports_exactly_what_the_rules_refuse(
    method: str, double_entry: bool, data: st.DataObject
) -> None:
    """Entries the rules refuse (over the limit, a project repeated, outside the window, paper
    after the deadline, a reused nonce, a void of a void, of a voided or of no ballot, an unknown
    or another clerk's polling point, a second ballot, a second keying by the same clerk),
    appended straight through the Ledger with the tags the rules would give, are reported at
    exactly their positions, each under the check that names the rules' refusal, and left out
    of the count."""
    asyncio.run(catch(*data.draw(smuggling_scenarios(method, double_entry))))


# -- 3. every ballot kind ------------------------------------------------------------------------
# Random elections whose categories are approval, knapsack, cumulative or ordinal (with their
# minimums and maximums, and at times a category group), and random streams of ballots of
# every kind through the write path -- over and under every limit, in the wrong field, second
# rankings, paper keyed twice alike (points reordered, projects reversed) or differently,
# voids -- give the same counted ballots, totals, scores and winners on both sides; and
# entries breaking a kind's limit, smuggled in through the Ledger, are reported under the
# check that names the rules' refusal.

CHECK_OF_CODE.update(
    {
        "too-few-picks": "too-few-picks",
        "over-cost-limit": "over-cost-limit",
        "under-cost-minimum": "under-cost-minimum",
        "too-many-points-for-project": "too-many-points-for-project",
        "too-many-points": "too-many-points",
        "too-few-points": "too-few-points",
        "ranking-exists": "ranking-exists",
        "too-many-categories": "too-many-categories",
        "wrong-ballot-field": "wrong-ballot-field",
    }
)
KINDS = ("approval", "knapsack", "cumulative", "ordinal")


@st.composite
def kind_elections(draw: st.DrawFn, method: str, double_entry: bool) -> dict[str, Any]:
    """:func:`elections` with every category of a random kind and limits, and at times a group
    of two categories of which a voter takes part in one."""
    overrides = draw(elections(method, double_entry))
    for category in overrides["categories"]:
        ours = [p for p in overrides["projects"] if p["category"] == category["id"]]
        kind = draw(st.sampled_from(KINDS))
        category["max_picks"] = draw(st.integers(1, max(1, len(ours))))
        if kind != "approval":
            category["ballot"] = kind
        if draw(st.booleans()):
            category["min_picks"] = draw(st.integers(0, min(2, category["max_picks"])))
        if kind == "knapsack":
            costs = sorted(p["cost_kopecks"] for p in ours)
            category["max_total_cost_kopecks"] = draw(st.integers(costs[-1], sum(costs) + 1))
            category["min_total_cost_kopecks"] = draw(st.sampled_from([0, 0, costs[0]]))
        elif kind == "cumulative":
            total = draw(st.integers(1, 6))
            category["max_total_points"] = total
            category["max_points"] = draw(st.integers(1, 4))
            category["min_total_points"] = draw(st.integers(0, min(2, total)))
    if len(overrides["categories"]) >= 2 and draw(st.booleans()):
        members = [c["id"] for c in overrides["categories"][:2]]
        overrides["category_groups"] = [{"id": "g", "categories": members, "max_categories": 1}]
    return overrides


Choices = dict[str, Any]


def kind_of(overrides: dict[str, Any], project_id: str) -> str:
    category = next(p["category"] for p in overrides["projects"] if p["id"] == project_id)
    return str(
        next(c.get("ballot", "approval") for c in overrides["categories"] if c["id"] == category)
    )


@st.composite
def kind_choices(draw: st.DrawFn, overrides: dict[str, Any]) -> Choices:
    """Choices of a ballot: projects, each in its kind's field (or, at times, in the wrong one),
    with random points and ranking order; at times an unknown project."""
    ids = project_ids(overrides)
    chosen = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=4, unique=True))
    choices: Choices = {}
    for project_id in chosen:
        field_name = {"cumulative": "points", "ordinal": "ranking"}.get(
            kind_of(overrides, project_id), "projects"
        )
        if draw(st.integers(0, 19)) == 0:
            field_name = draw(st.sampled_from(["projects", "points", "ranking"]))
        if field_name == "points":
            choices.setdefault("points", {})[project_id] = draw(st.integers(1, 4))
        else:
            choices.setdefault(field_name, []).append(project_id)
    if draw(st.integers(0, 19)) == 0:
        choices.setdefault("projects", []).append(UNKNOWN_PROJECT)
    return choices


def rekeyed(choices: Choices, same: bool) -> Choices:
    """A second keying of ``choices``: alike (projects reversed, points reordered, the ranking
    as it was), or different (the last choice dropped, or a point more)."""
    if same:
        again: Choices = {}
        if "projects" in choices:
            again["projects"] = list(reversed(choices["projects"]))
        if "points" in choices:
            again["points"] = dict(reversed(list(choices["points"].items())))
        if "ranking" in choices:
            again["ranking"] = list(choices["ranking"])
        return again
    if "ranking" in choices and len(choices["ranking"]) > 1:
        return {**choices, "ranking": list(reversed(choices["ranking"]))}
    if "points" in choices:
        first = next(iter(choices["points"]))
        return {**choices, "points": {**choices["points"], first: choices["points"][first] + 1}}
    return {**choices, "projects": choices.get("projects", [])[1:] or [UNKNOWN_PROJECT]}


def kind_payload(voter: int, choices: Choices, *, point: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "ballot" if point is None else "paper-ballot",
        "election": ELECTION,
        "voter": voter_token(voter),
        "cast_at": IN_WINDOW[2],
        "nonce": str(uuid.uuid4()),
        **choices,
    }
    if point is not None:
        payload["polling_point"] = point
    return payload


def kind_stream(overrides: dict[str, Any]) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    """Online ballots, paper ballots at the council (clerk 1 or 2), second keyings alike or
    not, and voids of accepted entries; voters 0-5 so that ballots combine."""
    voter = st.integers(0, 5)
    online = st.tuples(st.just("online"), voter, kind_choices(overrides))
    paper = st.tuples(st.just("paper"), voter, kind_choices(overrides), st.sampled_from([1, 2]))
    rekey = st.tuples(st.just("rekey"), st.integers(0, 99), st.booleans())
    void = st.tuples(st.just("void"), st.integers(0, 99))
    return st.lists(st.one_of(online, online, paper, rekey, void), min_size=4, max_size=24)


async def write_kinds(log: ElectionLog, stream: list[tuple[Any, ...]]) -> int:
    """Submit ``stream`` through the write path; returns how many entries were refused."""
    clerks = {1: log.keys.clerk, 2: log.keys.clerk2}
    casting = Casting(log.ledger, lambda: NOW)
    accepted: list[int] = []
    keyings: list[tuple[int, Choices, int]] = []
    refused = 0
    for operation in stream:
        try:
            match operation:
                case ("online", voter, choices):
                    envelope = sign_envelope(kind_payload(voter, choices), log.keys.site)
                case ("paper", voter, choices, clerk):
                    payload = kind_payload(voter, choices, point="council")
                    envelope = sign_envelope(payload, clerks[clerk])
                    keyings.append((voter, choices, clerk))
                case ("rekey", ref, same) if keyings:
                    voter, choices, first = keyings[ref % len(keyings)]
                    payload = kind_payload(voter, rekeyed(choices, same), point="council")
                    envelope = sign_envelope(payload, clerks[3 - first])
                case ("void", ref) if accepted:
                    accepted.append(await log.void(accepted[ref % len(accepted)]))
                    continue
                case _:
                    continue
            cast = await casting.submit(envelope)
            accepted.append(cast.position)
        except VoteRefusedError as refusal:
            refused += 1
            event(f"refused: {refusal.code}")
    return refused


def server_scores(
    server: ServerView, histories: dict[str, list[rules.PriorEntry]]
) -> dict[str, int]:
    scores = dict.fromkeys(server.totals, 0)
    for voter, history in histories.items():
        for ballot in rules.voter_state(server.election, history, voter).ballots:
            for project_id, score in ballot.scores(server.election).items():
                scores[project_id] += score
    return scores


async def agree_on_kinds(overrides: dict[str, Any], stream: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'uchast.db'}"
        keys = AuditKeys()
        async with election_log(url, keys, **overrides) as log:
            refused = await write_kinds(log, stream)
        server = await server_view(url)
        store = open_store(url)
        await store.open()
        try:
            histories = await voter_histories(store, ELECTION, server.size)
        finally:
            await store.close()
        path = Path(tmp) / "log.jsonl"
        await export(url, path)
        report = audited(path, keys, results=server.results)

    assert report.ok, "\n".join(report.summary())
    assert report.results_compared
    assert counted_by_auditor(report) == server.ballots
    assert report.totals == server.totals
    scores = server_scores(server, histories)
    published = {p["id"]: p["score"] for c in server.results["categories"] for p in c["projects"]}
    assert published == scores  # the published results' scores are the rules' scores
    assert report.scores == scores  # and the auditor's
    assert report.winners == server.winners
    kinds = sorted({c.ballot for c in server.election.categories})
    event(f"kinds: {'+'.join(kinds)}; groups: {len(server.election.category_groups)}")
    event(f"refused: {bucket(refused, 5)}; counted ballots: {bucket(len(server.ballots), 4)}")


@pytest.mark.parametrize("double_entry", [False, True])
@pytest.mark.parametrize("method", METHODS)
@PROPERTY
@given(data=st.data())
def test_the_auditor_counts_every_ballot_kind_as_the_server(
    method: str, double_entry: bool, data: st.DataObject
) -> None:
    """Whatever the kinds, limits and groups, and whatever ballots of every kind were submitted
    online and on paper (over and under each limit, wrong fields, second rankings, keyings
    alike and not, voids), the auditor passes the log and finds the server's counted ballots,
    totals, scores and winners."""
    overrides = data.draw(kind_elections(method, double_entry))
    stream = data.draw(kind_stream(overrides))
    asyncio.run(agree_on_kinds(overrides, stream))


# Refusals of the kinds' limits, smuggled in: (kind of entry, a function building its choices
# from the election, or None when this election has nothing to break that way).
def _smuggled_choices(election: Election, kind: str) -> Choices | None:
    for category in election.categories:
        ours = election.projects_in(category.id)
        field_name = rules.FIELD_OF_KIND[category.ballot]
        ids = [p.id for p in ours]
        if kind == "over-max-picks" and len(ids) > category.max_picks:
            picks = ids[: category.max_picks + 1]
        elif kind == "under-min-picks" and category.min_picks >= 2:
            picks = ids[:1]
        elif kind == "over-cost" and category.ballot == "knapsack":
            assert category.max_total_cost is not None
            cheap = sorted(ours, key=lambda p: p.cost)
            total, picks = 0, []
            for p in cheap:
                picks.append(p.id)
                total += p.cost
                if total > category.max_total_cost:
                    break
            if total <= category.max_total_cost or len(picks) > category.max_picks:
                continue
            if len(picks) < category.min_picks:
                continue
        elif kind == "over-points" and category.ballot == "cumulative":
            assert category.max_points is not None
            return {"points": {ids[0]: category.max_points + 1}}
        elif kind == "wrong-field":
            wrong = "points" if field_name != "points" else "projects"
            return {wrong: {ids[0]: 1}} if wrong == "points" else {wrong: [ids[0]]}
        else:
            continue
        if field_name == "points":
            return {"points": dict.fromkeys(picks, 1)}
        return {field_name: picks}
    return None


def _smuggled_for_voter(
    election: Election, honest: list[rules.PriorEntry], kind: str
) -> tuple[int, Choices] | None:
    """For the kinds that need a voter's history: an honest voter and choices the rules refuse
    given what that voter holds (a second ranking, a category across a group, points over the
    total), or None when no voter holds what it takes."""
    for voter in range(6):
        held = rules.voter_state(election, honest, voter_token(voter)).held_marks(election)
        for category in election.categories:
            mine = held[category.id]
            free = [p.id for p in election.projects_in(category.id) if p.id not in mine]
            if kind == "second-ranking" and category.ballot == "ordinal" and mine:
                return voter, {"ranking": (free or list(mine))[:1]}
            if kind == "over-total-points" and category.ballot == "cumulative" and free:
                assert category.max_total_points is not None
                return voter, {
                    "points": {free[0]: category.max_total_points - sum(mine.values()) + 1}
                }
        if kind == "group-crossing":
            for group in election.category_groups:
                taking = [c for c in group.categories if held[c]]
                others = [c for c in group.categories if not held[c]]
                if len(taking) >= group.max_categories and others:
                    other = election.category(others[0])
                    assert other is not None
                    project = election.projects_in(other.id)[0].id
                    field_name = rules.FIELD_OF_KIND[other.ballot]
                    if field_name == "points":
                        return voter, {"points": {project: 1}}
                    return voter, {field_name: [project]}
    return None


KIND_SMUGGLED = (
    "over-max-picks",
    "under-min-picks",
    "over-cost",
    "over-points",
    "wrong-field",
    "second-ranking",
    "group-crossing",
    "over-total-points",
)


async def catch_kinds(
    overrides: dict[str, Any], stream: list[tuple[Any, ...]], smuggled: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'uchast.db'}"
        keys = AuditKeys()
        appended: dict[int, str] = {}
        async with election_log(url, keys, **overrides) as log:
            await write_kinds(log, stream)
            for n, kind in enumerate(smuggled):
                so_far = [e.prior for e in await read_log(log) if e.prior.position not in appended]
                history_based = _smuggled_for_voter(log.election, so_far, kind)
                voter, choices = history_based or (700 + n, _smuggled_choices(log.election, kind))
                if choices is None:
                    continue
                payload = kind_payload(voter, choices)
                tags = tags_of(payload)
                tags += [
                    f"project:{p}"
                    for p in [*choices.get("points", {}), *choices.get("ranking", [])]
                ]
                position = await log.smuggle(payload, keys.site, tags)
                appended[position] = kind
                event(f"smuggled: {kind}")
            logged = await read_log(log)
            election = log.election
        path = Path(tmp) / "log.jsonl"
        await export(url, path)
        report = audited(path, keys)

    found = {v.entry: v.check for v in report.violations}
    honest = [e for e in logged if e.prior.position not in appended]
    expected = {
        position: refusal_check(
            election, logged[position], [e for e in honest if e.prior.position < position]
        )
        for position in appended
    }
    assert found == expected, (appended, "\n".join(report.summary()))


@pytest.mark.parametrize("double_entry", [False, True])
@PROPERTY
@given(data=st.data())
def test_the_auditor_reports_every_kind_limit_the_rules_refuse(
    double_entry: bool, data: st.DataObject
) -> None:
    """Ballots over or under a kind's limit, or with a choice in the wrong field, appended
    straight through the Ledger, are reported at their positions under the rules' refusal."""
    overrides = data.draw(kind_elections("greedy", double_entry))
    stream = data.draw(kind_stream(overrides))
    smuggled = data.draw(st.lists(st.sampled_from(KIND_SMUGGLED), min_size=1, max_size=4))
    asyncio.run(catch_kinds(overrides, stream, smuggled))
