"""Exports computed by replaying a stored log: the results document and Pabulib ballots.

Both read the log from position 0 as a stream (bounded batches; a server-side cursor on
PostgreSQL), so they need no running server and give what ``GET /results`` gives for the same
log size.

``uchast export pabulib`` writes the counted ballots, anonymised, in Pabulib format
(https://pabulib.org/format):

- one VOTES row per voter with at least one counted ballot, holding the union of the projects
  their counted ballots support (:func:`votes.rules.voter_state`: voids, double entry and
  spoiled ballots taken into account), so each project's approvals in VOTES equal its total;
  cumulative: ``vote`` and ``points`` parallel; ordinal: ``vote`` is the ranking, most
  preferred first (every category must have the same ballot kind, and only approval elections
  may have several categories: a Pabulib file has one ``vote_type`` and one set of limits);
- voter ids are sequence numbers 1, 2, ... in the order of each voter's first ballot in the log;
  no token, nonce, key or time leaves the log; ``voting_method`` is ``internet``, ``paper``, or
  ``mixed`` for a voter counted on both channels;
- PROJECTS: ``project_id;cost;votes;name;category;selected`` with the election's ids, costs in
  main units (exact: kopecks / 100), the tally's totals and the results' funded set (and
  ``score`` after ``votes`` on cumulative and ordinal files);
- META: ``budget`` (the total), ``vote_type`` (``approval`` for approval and knapsack,
  ``cumulative``, ``ordinal``), ``rule`` (``greedy``,
  ``greedy-threshold`` when ``min_votes`` > 0, ``greedy-no-skip``; ``equalshares``),
  ``min_project_score_threshold``, ``min_length`` and ``max_length`` (the sums of the
  categories' minimums and maximums), ``min_sum_cost``/``max_sum_cost`` (knapsack),
  ``max_points``/``min_sum_points``/``max_sum_points`` (cumulative), the
  voting dates; with several categories also the uchast keys ``budget_by_category`` and
  ``max_length_by_category`` (``id:value,id:value``), which ``uchast import-pabulib`` reads back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ledger import merkle
from ledger.casting import prior_entry
from ledger.entry import entry_object, entry_payload
from ledger.store import Store, StoredEntry
from tally.feed import apply_chunk
from tally.pabulib import PabulibFile, write_pabulib
from tally.projection import Tally
from tally.results import results_document
from votes.election import Election, election_from_dict
from votes.entries import EntryType
from votes.rules import PriorEntry, voter_state

__all__ = [
    "approvals_of",
    "definition_of",
    "log_root",
    "main_units",
    "pabulib_export",
    "replay_tally",
    "results_from_log",
    "voter_histories",
]

_VOTER_TAG = "voter:"
_VOTER_ENTRIES = frozenset(
    {EntryType.BALLOT, EntryType.PAPER_BALLOT, EntryType.SPOILED_BALLOT, EntryType.VOID}
)


def definition_of(data: bytes) -> Election:
    """The election defined (or amended) by an ``election`` / ``election-amended`` entry."""
    return election_from_dict(entry_payload(data)["definition"])


async def log_root(store: Store, log_id: str, size: int) -> bytes:
    """RFC 9162 root of the first ``size`` entries, from the stored tree nodes."""
    if size == 0:
        return merkle.EMPTY_ROOT
    ids = merkle.frontier_ids(size)
    nodes = await store.nodes(log_id, ids)
    missing = [i for i in ids if i not in nodes]
    if missing:
        raise ValueError(f"tree nodes {missing[:3]} of {log_id!r} are not stored")
    return merkle.fold([nodes[i] for i in ids])


async def replay_tally(
    store: Store, log_id: str, size: int | None = None
) -> tuple[Tally, int, bytes]:
    """A :class:`Tally` rebuilt from position 0 over the first ``size`` entries (default: all),
    with that size and the log root at it. Reads only the entries' bytes, a chunk at a time
    (:func:`tally.feed.apply_chunk`)."""
    end = await store.size(log_id) if size is None else size
    if end == 0:
        raise ValueError(f"election {log_id!r} has no entries")
    tally: Tally | None = None
    position = 0
    async for chunk in store.stream_data(log_id, 0, end):
        if tally is None:
            if entry_object(chunk[0]).get("type") != EntryType.ELECTION:
                raise ValueError(f"entry 0 of {log_id!r} is not the election's definition")
            tally = Tally(definition_of(chunk[0]))
        await apply_chunk(store, log_id, tally, position, chunk)
        position += len(chunk)
    if tally is None or tally.position != end:
        raise ValueError(f"the log of {log_id!r} ended before entry {end}")
    return tally, end, await log_root(store, log_id, end)


async def voter_histories(store: Store, log_id: str, end: int) -> dict[str, list[PriorEntry]]:
    """Each voter's entries (and the voids naming them) among the first ``end``, in log order."""
    histories: dict[str, list[PriorEntry]] = {}
    async for entry in store.stream(log_id, 0, end):
        _add_to_histories(entry, histories)
    return histories


def _add_to_histories(entry: StoredEntry, histories: dict[str, list[PriorEntry]]) -> None:
    """File ``entry`` under each voter it concerns (by its ``voter:`` tags)."""
    if entry.type in _VOTER_ENTRIES:
        voters = [t[len(_VOTER_TAG) :] for t in entry.tags if t.startswith(_VOTER_TAG)]
        if voters:
            prior = prior_entry(entry)
            for voter in voters:
                histories.setdefault(voter, []).append(prior)


def approvals_of(
    election: Election, histories: dict[str, list[PriorEntry]]
) -> list[dict[str, int]]:
    """Each voter's counted choices (by :func:`votes.rules.voter_state`), for equal shares: per
    project chosen, the score the voter's ballots give it (:meth:`votes.rules.CountedBallot.scores`:
    1 on approval and knapsack ballots, the points, the positional score)."""
    approvals = []
    for voter, history in histories.items():
        state = voter_state(election, history, voter)
        if state.ballots:
            choices: dict[str, int] = {}
            for ballot in state.ballots:
                for project, score in ballot.scores(election).items():
                    choices[project] = choices.get(project, 0) + score
            approvals.append(choices)
    return approvals


async def results_from_log(store: Store, log_id: str) -> dict[str, Any]:
    """The results document of ``GET /v1/elections/{e}/results``, from a replay of the log,
    with the equal-shares comparison annex (the replay has every ballot at hand)."""
    tally, size, root = await replay_tally(store, log_id)
    approvals = approvals_of(tally.election, await voter_histories(store, log_id, size))
    return results_document(tally, size, root, approvals)


def main_units(kopecks: int) -> str:
    """Kopecks as an exact amount in main units: ``150000000`` → ``1500000``, ``12345`` →
    ``123.45``."""
    whole, fraction = divmod(kopecks, 100)
    return str(whole) if fraction == 0 else f"{whole}.{fraction:02d}"


def _rule_name(election: Election) -> str:
    method = election.rule.method
    if method == "greedy":
        return "greedy-threshold" if election.rule.min_votes > 0 else "greedy"
    if method == "equal-shares":
        return "equalshares"
    return method


def _pairs(values: Sequence[tuple[str, str]]) -> str:
    return ",".join(f"{key}:{value}" for key, value in values)


async def pabulib_export(store: Store, log_id: str) -> tuple[str, int]:
    """The counted ballots of the election as Pabulib text (see the module docstring), and
    the log size it reflects."""
    end = await store.size(log_id)
    tally: Tally | None = None
    histories: dict[str, list[PriorEntry]] = {}

    async def fetch(position: int) -> dict[str, Any]:
        [entry] = await store.read(log_id, position, position + 1)
        return entry_object(entry.data)

    async for entry in store.stream(log_id, 0, end):
        if tally is None:
            if entry.type != EntryType.ELECTION:
                raise ValueError(f"entry 0 of {log_id!r} is not the election's definition")
            tally = Tally(definition_of(entry.data))
        await tally.apply(entry.position, entry.data, fetch)
        _add_to_histories(entry, histories)
    if tally is None:
        raise ValueError(f"election {log_id!r} has no entries")
    election = tally.election
    document = results_document(
        tally, end, await log_root(store, log_id, end), approvals_of(election, histories)
    )
    funded = {pid for c in document["categories"] for pid in c["funded"]}
    order = {p.id: i for i, p in enumerate(election.projects)}
    kind = _single_kind(election)

    votes: list[dict[str, str]] = []
    approvals: dict[str, int] = dict.fromkeys(order, 0)
    scores: dict[str, int] = dict.fromkeys(order, 0)
    for voter, history in histories.items():
        state = voter_state(election, history, voter)
        if not state.ballots:
            continue
        marks = {p: m for ms in state.counted_marks(election).values() for p, m in ms.items()}
        if kind == "ordinal":  # most preferred first; one ranking per category and voter
            picks = sorted(marks, key=lambda p: (marks[p], order[p]))
        else:
            picks = sorted(marks, key=order.__getitem__)
        channels = {b.channel for b in state.ballots}
        method = "mixed" if len(channels) > 1 else ("paper" if "paper" in channels else "internet")
        row = {"voter_id": str(len(votes) + 1), "vote": ",".join(picks)}
        if kind == "cumulative":
            row["points"] = ",".join(str(marks[p]) for p in picks)
        for pid in picks:
            approvals[pid] += 1
            scores[pid] += _score_of(election, pid, marks[pid])
        row["voting_method"] = method
        votes.append(row)
    counted = {p.id: tally.votes.get(p.id, 0) for p in election.projects}
    scored = {p.id: tally.scores.get(p.id, 0) for p in election.projects}
    if approvals != counted or scores != scored:
        raise ValueError("the voters' counted picks disagree with the tally: the log is corrupt")

    zone = tally.zone
    meta: dict[str, str] = {
        "description": election.title.get("en") or next(iter(election.title.values())),
        "unit": election.id,
        "instance": str(election.voting_opens.astimezone(zone).year),
        "num_projects": str(len(election.projects)),
        "num_votes": str(len(votes)),
        "budget": main_units(sum(c.budget for c in election.categories)),
        "vote_type": "approval" if kind == "knapsack" else kind,
        "rule": _rule_name(election),
        "date_begin": election.voting_opens.astimezone(zone).strftime("%d.%m.%Y"),
        "date_end": election.voting_closes.astimezone(zone).strftime("%d.%m.%Y"),
        **_limits(election),
    }
    if election.rule.min_votes > 0:
        meta["min_project_score_threshold"] = str(election.rule.min_votes)
    if len(election.categories) > 1:
        meta["budget_by_category"] = _pairs(
            [(c.id, main_units(c.budget)) for c in election.categories]
        )
        meta["max_length_by_category"] = _pairs(
            [(c.id, str(c.max_picks)) for c in election.categories]
        )
    meta["comment"] = (
        f"Exported by uchast from log {election.id} at size {document['log']['size']}, root "
        f"{document['log']['root']}. One row per voter: the union of their counted ballots; "
        "voter ids are sequence numbers."
    )
    projects = [
        {
            "project_id": p.id,
            "cost": main_units(p.cost),
            "votes": str(counted[p.id]),
            **({"score": str(scored[p.id])} if kind in ("cumulative", "ordinal") else {}),
            "name": p.title.get("en") or next(iter(p.title.values())),
            "category": p.category,
            "selected": "1" if p.id in funded else "0",
        }
        for p in election.projects
    ]
    return write_pabulib(PabulibFile(meta=meta, projects=projects, votes=votes)), end


def _single_kind(election: Election) -> str:
    """The one ballot kind of every category: a Pabulib file has one ``vote_type`` (and one
    cost or points limit unless the election is approval)."""
    kinds = {c.ballot for c in election.categories}
    if len(kinds) != 1:
        raise ValueError(
            f"categories with different ballot kinds ({', '.join(sorted(kinds))}) do not fit one "
            "Pabulib file (one vote_type)"
        )
    [kind] = kinds
    if kind != "approval" and len(election.categories) > 1:
        raise ValueError(
            f"several {kind} categories do not fit one Pabulib file (its limits are per file)"
        )
    return kind


def _score_of(election: Election, project_id: str, mark: int) -> int:
    project = election.project(project_id)
    category = election.category(project.category) if project is not None else None
    if category is not None and category.ballot == "ordinal":
        return category.max_picks - mark + 1
    return mark if category is not None and category.ballot == "cumulative" else 1


def _limits(election: Election) -> dict[str, str]:
    """The META limits of the election's ballots, as ``uchast import-pabulib`` reads them back:
    ``min_length``/``max_length`` (picks), ``min_sum_cost``/``max_sum_cost`` (knapsack, main
    units), ``max_points``/``min_sum_points``/``max_sum_points`` (cumulative)."""
    categories = election.categories
    limits: dict[str, str] = {}
    low = sum(c.min_picks for c in categories)
    if low:
        limits["min_length"] = str(low)
    limits["max_length"] = str(sum(c.max_picks for c in categories))
    [first, *_] = categories
    if first.ballot == "knapsack" and first.max_total_cost is not None:
        if first.min_total_cost:
            limits["min_sum_cost"] = main_units(first.min_total_cost)
        limits["max_sum_cost"] = main_units(first.max_total_cost)
    if first.ballot == "cumulative":
        if first.max_points is not None:
            limits["max_points"] = str(first.max_points)
        if first.min_total_points:
            limits["min_sum_points"] = str(first.min_total_points)
        if first.max_total_points is not None:
            limits["max_sum_points"] = str(first.max_total_points)
    return limits
