"""``serve --witness-policy``: witness cosignatures for every election's checkpoints.

A background task polls each open election's latest signed checkpoint. When one is newer than
what the log has published, it is sent (C2SP tlog-witness ``add-checkpoint``, with a consistency
proof from the size that witness last acknowledged) to every witness of the policy that has a
URL; a 409 is retried once from the size the witness says it holds. Each returned cosignature is
checked against the witness's key in the policy. Once the cosigning witnesses meet the quorum, the
checkpoint with their lines appended is stored (``Store.save_cosigned_checkpoint``) and becomes
the published checkpoint ``GET /log/checkpoint`` serves.

Only the latest checkpoint is ever submitted (checkpoints come per batch, and a witness that
cosigns size N has vouched for every smaller size); a checkpoint that has not reached the quorum
is tried again at each poll, asking only the witnesses that have not cosigned it yet.

What each witness acknowledged is kept in memory: after a restart the first request says
``old 0`` and the witness's 409 tells the size it holds (the protocol's way to learn it).

Metrics (registered in the app's registry, read at each scrape):

* ``uchast_witness_acknowledged_size{election,witness}`` — size the witness last cosigned;
* ``uchast_witness_behind_entries{election,witness}`` — latest signed size minus that;
* ``uchast_witness_lag_seconds{election,witness}`` — seconds since the witness last cosigned
  what was then the latest checkpoint (0 while it holds the latest): what the alert reads, since
  under steady load every witness is always a batch behind;
* ``uchast_witness_last_success_timestamp_seconds{election,witness}``;
* ``uchast_witness_failures_total{election,witness}`` — refused or failed submissions;
* ``uchast_witness_quorum_met{election}`` — 1 if the latest signed checkpoint is published;
* ``uchast_witness_quorum_lag_seconds{election}`` — seconds since the log last published what
  was then its latest checkpoint (0 while the latest is published);
* ``uchast_cosigned_checkpoint_size{election}`` — size of the published (cosigned) checkpoint.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api.keys import SERVICE
from ledger.cosignature import verified_cosignatures
from ledger.errors import CheckpointError
from ledger.keys import VerifierKey
from ledger.log import Ledger
from ledger.policy import Policy, WitnessLine, parse_policy
from ledger.store import StoredCheckpoint

if TYPE_CHECKING:
    from api.service import Service

__all__ = ["COSIGNING", "Cosigning", "WitnessProgress", "load_policy", "setup"]

log = logging.getLogger("uchast.cosigning")

POLL_SECONDS = 1.0
REQUEST_SECONDS = 5.0


@dataclass
class WitnessProgress:
    """One witness's view of one election's log, as this server last learnt it."""

    acknowledged: int = 0
    last_success: float | None = None
    failures: int = 0
    last_error: str = ""
    # When the witness last cosigned what was then the log's latest checkpoint (first seen: when
    # this server started asking it). Under steady load a witness is always a batch behind; it
    # is lagging only when this grows old.
    current_at: float = field(default_factory=time.time)


@dataclass
class _Pending:
    """The checkpoint being cosigned and the verified lines gathered for it, by witness."""

    checkpoint: StoredCheckpoint
    lines: dict[str, str] = field(default_factory=dict)


class Cosigning:
    """Gathers witness cosignatures for each election's latest checkpoint and publishes it once
    the policy's quorum is met."""

    def __init__(
        self,
        service: Service,
        policy: Policy,
        *,
        poll: float = POLL_SECONDS,
        timeout: float = REQUEST_SECONDS,
    ) -> None:
        self.service = service
        self.policy = policy
        self.poll = poll
        self.timeout = timeout
        self.progress: dict[tuple[str, str], WitnessProgress] = {}
        self.latest: dict[str, int] = {}  # election -> latest signed size
        self.published: dict[str, int] = {}  # election -> published (cosigned) size
        # election -> when the log last published what was then its latest checkpoint
        self.published_current_at: dict[str, float] = {}
        self._pending: dict[str, _Pending] = {}
        self._session: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        """Poll forever; a failing round is logged and the next one tries again."""
        while True:
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database or the network: next round
                log.warning("cosigning round failed: %s", exc)
            await asyncio.sleep(self.poll)

    async def round(self) -> None:
        """One pass over every open election."""
        for ledger in self.service.open_ledgers():
            await self.election(ledger)

    async def election(self, ledger: Ledger) -> None:
        """Submit ``ledger``'s latest checkpoint if it is not published yet; publish it once
        the quorum is met."""
        election = ledger.log_id
        started = time.time()
        latest = await ledger.latest_checkpoint()
        if latest is None:
            return
        self.latest[election] = latest.size
        self.published_current_at.setdefault(election, started)
        published = await ledger.store.latest_cosigned_checkpoint(election)
        if published is not None:
            self.published[election] = published.size
            if published.size >= latest.size:
                self.published_current_at[election] = started
                return
        pending = self._pending.get(election)
        if pending is None or pending.checkpoint.size != latest.size:
            pending = self._pending[election] = _Pending(latest)
        asking = [
            w for w in self.policy.witnesses if w.url is not None and w.name not in pending.lines
        ]
        answers = await asyncio.gather(*(self._submit(ledger, w, latest) for w in asking))
        for witness, line in zip(asking, answers, strict=True):
            if line is not None:
                pending.lines[witness.name] = line
                self.progress[(election, witness.name)].current_at = started
        if self.policy.satisfied(pending.lines):
            lines = [
                pending.lines[w.name] for w in self.policy.witnesses if w.name in pending.lines
            ]
            await ledger.store.save_cosigned_checkpoint(
                election, latest.size, latest.note + "".join(lines)
            )
            self.published[election] = latest.size
            self.published_current_at[election] = started
            del self._pending[election]

    async def _submit(
        self, ledger: Ledger, witness: WitnessLine, checkpoint: StoredCheckpoint
    ) -> str | None:
        """The witness's verified cosignature line for ``checkpoint``, or None (counted)."""
        progress = self.progress.setdefault((ledger.log_id, witness.name), WitnessProgress())
        old = progress.acknowledged
        try:
            for _ in range(2):  # a 409 tells the size the witness holds: ask once more from it
                if old > checkpoint.size:
                    return self._failed(
                        progress,
                        witness,
                        f"holds size {old}, larger than the log's {checkpoint.size}",
                    )
                proof = (
                    await ledger.consistency_proof(old, checkpoint.size)
                    if 0 < old < checkpoint.size
                    else []
                )
                status, text = await self._post(witness, _request_body(old, proof, checkpoint))
                if status == 200:
                    return self._cosigned(progress, witness, checkpoint, text)
                if status != 409 or not text.strip().isdigit() or int(text) == old:
                    return self._failed(progress, witness, f"{status}: {text.strip()[:200]}")
                old = progress.acknowledged = int(text)
            return self._failed(progress, witness, "409 twice")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return self._failed(progress, witness, f"unreachable: {exc or type(exc).__name__}")

    async def _post(self, witness: WitnessLine, body: bytes) -> tuple[int, str]:
        assert witness.url is not None
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        url = witness.url.rstrip("/") + "/add-checkpoint"
        async with self._session.post(url, data=body) as response:
            return response.status, await response.text(errors="replace")

    def _cosigned(
        self,
        progress: WitnessProgress,
        witness: WitnessLine,
        checkpoint: StoredCheckpoint,
        text: str,
    ) -> str | None:
        try:
            found = verified_cosignatures(checkpoint.note + text, {witness.name: witness.key})
        except CheckpointError as exc:
            return self._failed(progress, witness, f"answer is not signature lines: {exc}")
        if not found:
            return self._failed(progress, witness, "no valid cosignature by its policy key")
        progress.acknowledged = checkpoint.size
        progress.last_success = time.time()
        progress.last_error = ""
        return found[0].line

    @staticmethod
    def _failed(progress: WitnessProgress, witness: WitnessLine, error: str) -> None:
        progress.failures += 1
        if error != progress.last_error:  # once per change, not every second
            log.warning("witness %s: %s", witness.name, error)
        progress.last_error = error
        return None

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _request_body(old: int, proof: list[bytes], checkpoint: StoredCheckpoint) -> bytes:
    lines = [f"old {old}", *(base64.b64encode(h).decode() for h in proof)]
    return ("\n".join(lines) + "\n\n" + checkpoint.note).encode()


class _Collector(Collector):
    def __init__(self, cosigning: Cosigning) -> None:
        self.cosigning = cosigning

    def collect(self) -> Iterable[Metric]:
        c = self.cosigning
        labels = ["election", "witness"]
        acknowledged = GaugeMetricFamily(
            "uchast_witness_acknowledged_size",
            "Size of the latest checkpoint the witness cosigned (as this server learnt it).",
            labels=labels,
        )
        behind = GaugeMetricFamily(
            "uchast_witness_behind_entries",
            "Latest signed checkpoint size minus the size the witness acknowledged.",
            labels=labels,
        )
        success = GaugeMetricFamily(
            "uchast_witness_last_success_timestamp_seconds",
            "When the witness last returned a valid cosignature (Unix time).",
            labels=labels,
        )
        failures = CounterMetricFamily(
            "uchast_witness_failures",
            "Submissions the witness refused or did not answer.",
            labels=labels,
        )
        lag = GaugeMetricFamily(
            "uchast_witness_lag_seconds",
            "Seconds since the witness last cosigned what was then the latest checkpoint "
            "(0 while it holds the latest).",
            labels=labels,
        )
        now = time.time()
        for (election, witness), p in sorted(c.progress.items()):
            acknowledged.add_metric([election, witness], p.acknowledged)
            current = p.acknowledged >= c.latest.get(election, 0)
            lag.add_metric([election, witness], 0.0 if current else max(0.0, now - p.current_at))
            behind.add_metric(
                [election, witness], max(0, c.latest.get(election, 0) - p.acknowledged)
            )
            if p.last_success is not None:
                success.add_metric([election, witness], p.last_success)
            failures.add_metric([election, witness], p.failures)
        quorum = GaugeMetricFamily(
            "uchast_witness_quorum_met",
            "1 if the latest signed checkpoint has met the witness quorum (is published).",
            labels=["election"],
        )
        published = GaugeMetricFamily(
            "uchast_cosigned_checkpoint_size",
            "Size of the latest cosigned (published) checkpoint.",
            labels=["election"],
        )
        quorum_lag = GaugeMetricFamily(
            "uchast_witness_quorum_lag_seconds",
            "Seconds since the log last published (quorum-cosigned) what was then its latest "
            "checkpoint (0 while the latest is published).",
            labels=["election"],
        )
        for election, size in sorted(c.latest.items()):
            met = c.published.get(election, -1) >= size
            quorum.add_metric([election], 1 if met else 0)
            since = c.published_current_at.get(election, now)
            quorum_lag.add_metric([election], 0.0 if met else max(0.0, now - since))
            if election in c.published:
                published.add_metric([election], c.published[election])
        yield from (acknowledged, behind, lag, success, failures, quorum, quorum_lag, published)


COSIGNING = web.AppKey("cosigning", Cosigning)


def setup(app: web.Application, policy: Policy) -> None:
    """Run :class:`Cosigning` for ``policy`` beside the app (after its service opened), and add
    its metrics to the app's registry."""
    from api.metrics import METRICS

    cosigning = app[COSIGNING] = Cosigning(app[SERVICE], policy)
    app[METRICS].registry.register(_Collector(cosigning))

    async def background(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(cosigning.run(), name="cosigning")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await cosigning.close()

    app.cleanup_ctx.append(background)


def load_policy(path: str, log_key: VerifierKey) -> Policy:
    """Read ``serve --witness-policy FILE``; ValueError (naming the line) if it is not a policy
    this log can meet: its log lines, if any, must include ``log_key``, and the quorum must be
    reachable through witnesses that have a URL."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read the witness policy {path}: {exc.strerror}") from None
    policy = parse_policy(text)
    if policy.logs and log_key.public not in {line.key.public for line in policy.logs}:
        raise ValueError(f"witness policy {path} does not list this log's key {log_key.key_id}")
    reachable = [w.name for w in policy.witnesses if w.url is not None]
    if not policy.satisfied(reachable):
        raise ValueError(
            f"witness policy {path}: the quorum cannot be met by the witnesses that have a URL"
        )
    return policy
