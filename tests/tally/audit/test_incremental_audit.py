"""The incremental audit (what ``uchast monitor`` runs on a live log): fed a log in pieces, its
verdict after every piece is the one-shot audit's on the log cut there, whether the log is
honest or tampered with."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally.audit import AuditReport, audit
from tally.audit.replay import IncrementalAudit
from tests.tally.election_log import AuditKeys, election_log, export, standard_log


@dataclass
class Log:
    """An exported log taken apart: header, entry bytes, checkpoints (size, note)."""

    header: dict[str, Any]
    entries: list[bytes]
    checkpoints: list[tuple[int, str]]
    keys: AuditKeys

    def cut(self, size: int, path: Path) -> Path:
        """The export of the log's first ``size`` entries and the checkpoints they reach."""
        header = {**self.header, "size": size}
        lines = [json.dumps(header).encode()]
        lines += [b'{"index":%d,"entry":%b}' % (i, e) for i, e in enumerate(self.entries[:size])]
        lines += [
            json.dumps({"checkpoint": {"size": s, "note": n}}).encode()
            for s, n in self.checkpoints
            if s <= size
        ]
        path.write_bytes(b"\n".join(lines) + b"\n")
        return path


async def written(tmp: Path) -> Log:
    keys = AuditKeys()
    url = f"sqlite:///{tmp / 'log.db'}"
    async with election_log(url, keys) as log:
        await standard_log(log)
    data = await export(url, tmp / "log.jsonl")
    lines = data.split(b"\n")[:-1]
    header = json.loads(lines[0])
    entries, checkpoints = [], []
    for line in lines[1:]:
        if line.startswith(b'{"checkpoint":'):
            body = json.loads(line)["checkpoint"]
            checkpoints.append((body["size"], body["note"]))
        else:
            entries.append(line[line.index(b',"entry":') + len(b',"entry":') : -1])
    return Log(header, entries, checkpoints, keys)


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> Log:
    return asyncio.run(written(tmp_path_factory.mktemp("incremental")))


def tampered(log: Log, at: int) -> Log:
    """The online ballot at ``at`` cast a minute later (signature and roots no longer agree)."""
    entries = list(log.entries)
    entries[at] = entries[at].replace(
        b'"cast_at":"2018-10-03T10:15', b'"cast_at":"2018-10-03T10:16'
    )
    assert entries[at] != log.entries[at]
    return Log(log.header, entries, log.checkpoints, log.keys)


def figures(report: AuditReport) -> tuple[Any, ...]:
    return (
        report.ok,
        report.violation_counts,
        sorted(str(v) for v in report.violations),  # the order follows the chunks
        report.entries,
        report.checkpoints,
        report.root,
        report.ballots,
        report.voters,
        report.spoiled,
        report.totals,
        report.winners,
        report.lookups,
        report.unfollowed_lookups,
    )


def one_shot(log: Log, size: int, tmp: Path) -> AuditReport:
    path = log.cut(size, tmp / f"cut-{size}.jsonl")
    return audit(str(path), log.keys.log.verifier.vkey, log.keys.admin.verifier.vkey, workers=0)


def fed_in_pieces(log: Log, cuts: list[int], tmp: Path, chunk_size: int) -> None:
    incremental = IncrementalAudit(
        log.keys.log.verifier.vkey,
        log.keys.admin.verifier.vkey,
        log.header["election"],
        source=str(tmp / f"cut-{len(log.entries)}.jsonl"),
        origin=log.header["origin"],
    )
    for begin, end in zip([0, *cuts], [*cuts, len(log.entries)], strict=True):
        reached = [(s, n) for s, n in log.checkpoints if begin < s <= end or (s == 0 == begin)]
        incremental.feed(log.entries[begin:end], reached, chunk_size=chunk_size)
        assert incremental.size == end
        expected = one_shot(log, end, tmp)
        expected.source = incremental.report().source
        assert figures(incremental.report()) == figures(expected), end


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=6).map(sorted),
    chunk_size=st.sampled_from([1, 3, 2000]),
    tamper=st.sampled_from([None, 8, 20]),
)
def test_fed_in_pieces_the_verdict_is_the_one_shot_audits(
    honest: Log, tmp_path: Path, cuts: list[int], chunk_size: int, tamper: int | None
) -> None:
    """Cut anywhere (between checkpoints, at them, repeatedly at one place), in chunks of any
    size, honest or with an entry altered: after every piece the figures and the violations
    equal those of the one-shot audit of the log up to there."""
    log = honest if tamper is None else tampered(honest, tamper)
    cuts = [min(c, len(log.entries)) for c in cuts]
    fed_in_pieces(log, cuts, tmp_path, chunk_size)


def test_the_honest_log_fed_whole_passes(honest: Log, tmp_path: Path) -> None:
    """The base case the property leans on: the whole log at once passes, as audit() does."""
    incremental = IncrementalAudit(
        honest.keys.log.verifier.vkey, honest.keys.admin.verifier.vkey, honest.header["election"]
    )
    incremental.feed(honest.entries, honest.checkpoints)
    report = incremental.report()
    assert report.ok, report.summary()
    assert not one_shot(tampered(honest, 20), len(honest.entries), tmp_path).ok
    assert report.entries == len(honest.entries) >= 30
    assert report.ballots > 0 and report.winners


def test_worker_processes_give_the_same_verdict(honest: Log, tmp_path: Path) -> None:
    """Signatures checked on two worker processes, kept between feeds: the verdict after each
    piece is still the one-shot audit's, honest and tampered."""
    for log in (honest, tampered(honest, 20)):
        with IncrementalAudit(
            log.keys.log.verifier.vkey,
            log.keys.admin.verifier.vkey,
            log.header["election"],
            origin=log.header["origin"],
            workers=2,
        ) as incremental:
            for begin, end in ((0, 9), (9, 21), (21, len(log.entries))):
                reached = [(s, n) for s, n in log.checkpoints if begin < s <= end]
                incremental.feed(log.entries[begin:end], reached, chunk_size=3)
                expected = one_shot(log, end, tmp_path)
                assert figures(incremental.report()) == figures(expected), end
