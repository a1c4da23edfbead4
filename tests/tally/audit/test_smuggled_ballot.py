"""Threat: a broken or dishonest server appends validly signed entries that the ballot rules
refuse. The auditor reports each as a rule violation (step 5), never as a crypto failure, and
leaves it out of the count."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from ledger.keys import SignerKey
from tally.audit import AuditReport, RuleViolationError, audit, audit_strict
from tests.factories import ELECTION, voter_token
from tests.tally.election_log import (
    CAST_AT,
    AuditKeys,
    ElectionLog,
    definition,
    election_log,
    export,
    tags_of,
)


def ballot(voter: int, projects: list[str], **fields: Any) -> dict[str, Any]:
    payload = {
        "type": "ballot",
        "election": ELECTION,
        "voter": voter_token(voter),
        "projects": projects,
        "cast_at": CAST_AT,
        "nonce": str(uuid.uuid4()),
    }
    payload.update(fields)
    return payload


async def smuggle(
    log: ElectionLog,
    payload: dict[str, Any],
    signer: SignerKey | None = None,
    extra_tags: list[str] | None = None,
) -> int:
    return await log.smuggle(
        payload, signer or log.keys.site, tags_of(payload) + (extra_tags or [])
    )


async def audited(tmp_path: Path, sqlite_url: str, keys: AuditKeys) -> AuditReport:
    path = tmp_path / "log.jsonl"
    await export(sqlite_url, path)
    return audit(str(path), keys.log.verifier.vkey, keys.admin.verifier.vkey, workers=0)


def only_rules(report: AuditReport) -> list[tuple[int | None, str]]:
    assert all(v.step == 5 for v in report.violations), report.summary()
    return [(v.entry, v.check) for v in report.violations]


async def test_a_ballot_over_the_limit_is_a_rule_violation(tmp_path: Path, sqlite_url: str) -> None:
    """The voter already holds two large projects; a third, signed by the registered site key
    and appended straight through the Ledger, is a limit violation and does not count."""
    keys = AuditKeys()
    async with election_log(sqlite_url, keys) as log:
        await log.ballot(1, ["L01", "S01"])
        await log.ballot(1, ["L02"])
        smuggled = await smuggle(log, ballot(1, ["L03"]))
        await log.ballot(2, ["L03"])
    report = await audited(tmp_path, sqlite_url, keys)
    assert only_rules(report) == [(smuggled, "limit")]
    [violation] = report.violations
    assert violation.expected == "at most 2 in large" and violation.found == "2 held + 1 new"
    assert report.totals["L03"] == 1 and report.ballots == 3
    with pytest.raises(RuleViolationError) as raised:
        path = tmp_path / "log.jsonl"
        audit_strict(str(path), keys.log.verifier.vkey, keys.admin.verifier.vkey, workers=0)
    assert raised.value.violation.entry == smuggled


async def test_repeats_windows_nonces_and_projects_are_rule_violations(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Each smuggled entry breaks one rule and is named by it."""
    keys = AuditKeys()
    async with election_log(sqlite_url, keys) as log:
        await log.ballot(1, ["L01"])
        repeated = await smuggle(log, ballot(1, ["L01"]))
        late = await smuggle(log, ballot(2, ["S01"], cast_at="2018-10-11T00:00:01+03:00"))
        unknown = await smuggle(log, ballot(3, ["X99"]))
        first = ballot(4, ["S02"])
        await smuggle(log, first)
        reused = await smuggle(log, ballot(5, ["S03"], nonce=first["nonce"]))
        twice = await smuggle(log, ballot(6, ["L02", "L02"]))
        wrong_point = await smuggle(
            log,
            {**ballot(7, ["L01"]), "type": "paper-ballot", "polling_point": "district-1"},
            keys.clerk,  # registered for "council" only
        )
    report = await audited(tmp_path, sqlite_url, keys)
    assert only_rules(report) == [
        (repeated, "project-repeated"),
        (late, "window"),
        (unknown, "unknown-project"),
        (reused, "nonce-reused"),
        (twice, "project-repeated"),
        (wrong_point, "clerk-polling-point"),
    ]


async def test_a_second_ballot_where_only_one_is_allowed(tmp_path: Path, sqlite_url: str) -> None:
    """With multiple_ballots false, a voter's second ballot (online after paper) is refused."""
    keys = AuditKeys()
    async with election_log(sqlite_url, keys, multiple_ballots=False) as log:
        await log.paper(1, ["L01"])
        second = await smuggle(log, ballot(1, ["S01"]))
    report = await audited(tmp_path, sqlite_url, keys)
    assert only_rules(report) == [(second, "already-voted")]
    assert report.totals["S01"] == 0


async def test_voids_of_voids_and_double_voids_are_refused(tmp_path: Path, sqlite_url: str) -> None:
    """A void names an earlier ballot-like entry not voided before."""
    keys = AuditKeys()
    async with election_log(sqlite_url, keys) as log:
        target = await log.ballot(1, ["L01"])
        void = await log.void(target)

        def void_of(position: int) -> dict[str, Any]:
            return {
                "type": "void",
                "election": ELECTION,
                "entry": position,
                "reason": "again",
                "nonce": str(uuid.uuid4()),
            }

        again = await smuggle(log, void_of(target), keys.supervisor, [f"voter:{voter_token(1)}"])
        of_void = await smuggle(log, void_of(void), keys.supervisor)
        of_key = await smuggle(log, void_of(1), keys.supervisor)
    report = await audited(tmp_path, sqlite_url, keys)
    assert only_rules(report) == [
        (again, "already-voided"),
        (of_void, "void-of-void"),
        (of_key, "void-target"),
    ]
    assert report.totals["L01"] == 0


async def test_wrong_tags_are_a_rule_violation(tmp_path: Path, sqlite_url: str) -> None:
    """An entry whose index tags hide it from the voter's reads is reported."""
    keys = AuditKeys()
    async with election_log(sqlite_url, keys) as log:
        payload = ballot(1, ["L01"])
        hidden = await log.smuggle(payload, keys.site, [f"nonce:{payload['nonce']}"])
    report = await audited(tmp_path, sqlite_url, keys)
    assert only_rules(report) == [(hidden, "tags")]


async def test_a_late_amendment_is_refused_and_the_rules_in_force_still_apply(
    tmp_path: Path, sqlite_url: str
) -> None:
    """An amendment recorded after voting opened is a violation; ballots after it are judged
    by the definition in force (here: a third large project is still over the limit)."""
    keys = AuditKeys()
    async with election_log(sqlite_url, keys) as log:
        await log.ballot(1, ["L01"])
        document = definition()
        document["categories"][0]["max_picks"] = 3
        amended = {"type": "election-amended", "election": ELECTION, "definition": document}
        amendment = await log.smuggle(amended, keys.admin, ["definition"])
        third = await smuggle(log, ballot(2, ["L01", "L02", "L03"]))
        await log.ballot(3, ["L02", "S01"])
    report = await audited(tmp_path, sqlite_url, keys)
    assert only_rules(report) == [(amendment, "amendment"), (third, "limit")]
    assert report.rechecked == 2  # the two ballots after it, read ahead under the amendment


async def test_an_honest_log_needs_no_rechecks(tmp_path: Path, sqlite_url: str) -> None:
    """The keys and definition read ahead for the workers are the ones in force."""
    keys = AuditKeys()
    async with election_log(sqlite_url, keys) as log:
        await log.ballot(1, ["L01"])
        await log.paper(2, ["S01"])
    report = await audited(tmp_path, sqlite_url, keys)
    assert report.ok and report.rechecked == 0


async def test_the_report_is_the_same_whatever_the_chunks(tmp_path: Path, sqlite_url: str) -> None:
    """Chunks of any size, inline or on worker processes, cut anywhere around a definition and
    a key registration read ahead, give the same figures and violations."""
    keys = AuditKeys()
    late = SignerKey.generate("site.late")
    async with election_log(sqlite_url, keys) as log:
        await log.ballot(1, ["L01"])
        registration = {
            "type": "key-registered",
            "election": ELECTION,
            "vkey": late.verifier.vkey,
            "role": "site",
        }
        await log.smuggle(registration, keys.admin, [])
        document = definition()
        document["categories"][0]["max_picks"] = 3
        amended = {"type": "election-amended", "election": ELECTION, "definition": document}
        await log.smuggle(amended, keys.admin, ["definition"])
        await smuggle(log, ballot(2, ["L01", "L02", "L03"]))
        await smuggle(log, ballot(6, ["L02"]), late)
        for voter in range(7, 12):
            await log.ballot(voter, ["L02", "S01"])
    path = tmp_path / "log.jsonl"
    await export(sqlite_url, path)

    def figures(report: AuditReport) -> tuple[Any, ...]:
        return (report.entries, report.root, report.totals, report.violations, report.rechecked)

    whole = audit(str(path), keys.log.verifier.vkey, keys.admin.verifier.vkey, workers=0)
    assert [v.check for v in whole.violations] == ["amendment", "limit"]
    for workers, chunk_size in [(0, 1), (0, 2), (0, 3), (0, 5), (2, 1), (2, 4), (2, 7)]:
        report = audit(
            str(path),
            keys.log.verifier.vkey,
            keys.admin.verifier.vkey,
            workers=workers,
            chunk_size=chunk_size,
        )
        assert figures(report) == figures(whole), (workers, chunk_size)


async def test_an_entry_breaking_two_rules_is_named_as_the_write_path_names_it(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The write path checks the clerk key's point before any rule, and a reused nonce before
    the window, the paper point, the projects or the void's target: the auditor names the same
    rule (found by tests/tally/audit/test_differential.py)."""
    keys = AuditKeys()
    async with election_log(sqlite_url, keys) as log:
        used = ballot(1, ["L01"])
        await log.smuggle(used, keys.site, tags_of(used))
        elsewhere = await smuggle(
            log,
            {**ballot(2, ["L01"]), "type": "paper-ballot", "polling_point": "nowhere"},
            keys.clerk,  # registered for "council"; "nowhere" is no point of the election
        )
        late = await smuggle(
            log, ballot(3, ["S01"], nonce=used["nonce"], cast_at="2018-10-11T00:00:01+03:00")
        )
        unknown = await smuggle(log, ballot(4, ["X99"], nonce=used["nonce"]))
        void = {
            "type": "void",
            "election": ELECTION,
            "entry": 999,
            "reason": "beyond the log",
            "nonce": used["nonce"],
        }
        beyond = await smuggle(log, void, keys.supervisor)
    report = await audited(tmp_path, sqlite_url, keys)
    assert only_rules(report) == [
        (elsewhere, "clerk-polling-point"),
        (late, "nonce-reused"),
        (unknown, "nonce-reused"),
        (beyond, "nonce-reused"),
    ]
