"""The running service's state: one store, one ledger per election, opened on demand."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger.casting import Casting
from ledger.checkpoint import CheckpointJournal
from ledger.errors import ElectionEmptyError, UnknownElectionError
from ledger.keys import SignerKey
from ledger.log import Ledger
from ledger.store import Store, open_store
from tally.feed import apply_chunk
from tally.projection import Tally
from votes.election import Election

TALLY_PROJECTION = "tally"

log = logging.getLogger("uchast.service")


@dataclass(frozen=True)
class ServiceConfig:
    """What ``uchast serve`` is started with."""

    db_url: str
    log_key: SignerKey
    deployment: str = "uchast.local"
    # Every checkpoint the log key published, outside the database (ledger.checkpoint): a log
    # that does not extend them is refused every write. None: no rollback protection (demo).
    checkpoint_journal: Path | None = None
    voter_key: bytes | None = None
    checkpoint_interval: float = 0.0
    max_body_bytes: int = 64 * 1024
    # /readyz answers 503 while an election's projection is further behind its log than this.
    ready_max_lag: int = 1000
    # The live tally's view is saved with its position at most this often (and at shutdown),
    # so a restart resumes from there instead of replaying the whole log.
    projection_save_interval: float = 5.0
    # Rate limits (api/ratelimit.py), on unless rate_limiting is False. rate_limit N > 0: every
    # key at N writes a second; 0: each role's default (ratelimit.ROLE_RATES). role_rate_limits
    # set one role's rate (0: no limit for that role). Burst 0 = the role's default, or one
    # second's. Requests not yet verified are charged to their sender's address.
    rate_limiting: bool = True
    rate_limit: float = 0.0
    rate_burst: float = 0.0
    role_rate_limits: tuple[tuple[str, float], ...] = ()
    unverified_rate_limit: float = 200.0  # ratelimit.UNVERIFIED_RATE (a test keeps them equal)
    # A clerk key's voter lookups (api/lookups.py): a burst, then one per interval seconds; a
    # burst of 0 is no limit. Apart from the rate limits above, and on whatever they say.
    lookup_limit: tuple[int, float] = (5, 3.0)  # lookups.DEFAULT_LOOKUP_LIMIT
    # The demo replays 2018 on a simulated clock; everything else uses the real one.
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


BatchObserver = Callable[[str, int, float], None]
"""Called after each committed batch of appends: (election, requests in the batch, seconds)."""


@dataclass(frozen=True, slots=True)
class LogStatus:
    """One election's log as the operator sees it: size, checkpoint, projection."""

    election: str
    size: int
    projected: int  # entries the live tally has applied
    checkpoint_size: int | None
    checkpoint_at: float | None  # the latest checkpoint's created_at (Unix time)

    @property
    def lag(self) -> int:
        """Entries committed but not yet in the tally."""
        return self.size - self.projected


class Service:
    """Store and ledgers; what every handler reaches through the app."""

    def __init__(self, config: ServiceConfig, store: Store | None = None) -> None:
        self.config = config
        self.store = store or open_store(config.db_url)
        self._castings: dict[str, Casting] = {}
        self._tallies: dict[str, Tally] = {}
        self._followers: dict[str, asyncio.Task[None]] = {}
        self._lock = asyncio.Lock()
        self._tally_lock = asyncio.Lock()
        self._saved: dict[str, int] = {}  # position of each election's last saved tally
        # Refusals counted since the last save, per election: "channel/code" -> count.
        self._refusals: dict[str, collections.Counter[str]] = {}
        self.clock = config.clock
        self.batch_observers: list[BatchObserver] = []
        self.journal = (
            CheckpointJournal(config.checkpoint_journal) if config.checkpoint_journal else None
        )

    async def open(self) -> None:
        await self.store.open()
        for log_id in await self.store.log_ids():
            await self.ledger(log_id)

    async def close(self) -> None:
        for task in self._followers.values():
            task.cancel()
        for task in self._followers.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._followers.clear()
        for election in {*self._tallies, *self._refusals}:
            try:
                await self._save_tally(election)
            except Exception as exc:  # the next start replays from the last save instead
                log.warning("tally of %s not saved at shutdown: %s", election, exc)
        for casting in self._castings.values():
            await casting.ledger.close()
        self._castings.clear()
        await self.store.close()

    async def ledger(self, election: str) -> Ledger:
        """The open ledger of ``election``; :class:`UnknownElectionError` if the store has no
        such log."""
        return (await self.casting(election)).ledger

    async def casting(self, election: str) -> Casting:
        """The write path of ``election``'s log, opened on first use."""
        casting = self._castings.get(election)
        if casting is not None:
            return casting
        async with self._lock:
            if election not in self._castings:
                if election not in await self.store.log_ids():
                    raise UnknownElectionError(election)
                ledger = Ledger(
                    self.store,
                    election,
                    log_signer=self.config.log_key,
                    deployment=self.config.deployment,
                    checkpoint_interval=self.config.checkpoint_interval,
                    on_batch=functools.partial(self._batch_done, election),
                    journal=self.journal,
                )
                try:
                    await ledger.open()
                except BaseException:
                    await ledger.close()  # no sequencer left running without its ledger
                    raise
                self._castings[election] = Casting(ledger, self.clock)
            return self._castings[election]

    def _batch_done(self, election: str, requests: int, seconds: float) -> None:
        for observe in self.batch_observers:
            observe(election, requests, seconds)

    async def election(self, election: str) -> Election:
        """The election's definition: its first entry's, or the latest admin amendment's (only
        possible before voting opens). Kept by its casting; the tally's follower refreshes it."""
        return await (await self.casting(election)).election()

    async def tally(self, election: str) -> Tally:
        """The election's live tally, kept up to date by a follower of its log; restored from
        its last saved view when there is one."""
        tally = self._tallies.get(election)
        if tally is not None:
            return tally
        ledger = await self.ledger(election)
        definition = await self.election(election)
        async with self._tally_lock:
            tally = self._tallies.get(election)
            if tally is None:  # nobody else started it while we awaited
                tally = await self._restored_tally(ledger, definition)
                self._tallies[election] = tally
                self._saved[election] = tally.position
                self._followers[election] = asyncio.create_task(
                    self._follow(ledger, tally), name=f"tally:{election}"
                )
        return tally

    async def _restored_tally(self, ledger: Ledger, definition: Election) -> Tally:
        saved = await self.store.load_projection(ledger.log_id, TALLY_PROJECTION)
        if saved is None:
            return Tally(definition)
        size = await ledger.size()
        if saved.position > size:
            log.warning(
                "saved tally of %s is at %d, beyond the log's %d entries: replaying from 0",
                ledger.log_id,
                saved.position,
                size,
            )
            return Tally(definition)
        try:
            return Tally.restore(definition, saved.state)
        except ValueError as exc:
            log.warning("saved tally of %s unreadable (%s): replaying from 0", ledger.log_id, exc)
            return Tally(definition)

    async def _save_tally(self, election: str) -> None:
        """Save the tally's view with its position if it moved (one row, one statement), and
        add the refusals counted since the last save, in the same transaction."""
        tally = self._tallies.get(election)
        moved = tally is not None and tally.position > self._saved.get(election, 0)
        refusals = self._refusals.pop(election, None)
        if not moved and not refusals:
            return
        position, state = (tally.position, tally.snapshot()) if tally and moved else (0, None)
        try:
            await self.store.save_projection(election, TALLY_PROJECTION, position, state, refusals)
        except BaseException:
            if refusals:  # not added: keep them for the next save
                self._refusals.setdefault(election, collections.Counter()).update(refusals)
            raise
        if state is not None:
            self._saved[election] = position

    def count_refusal(self, election: str, channel: str, code: str) -> None:
        """Count a refused write (by its problem code) towards the election's saved refusals.
        Only elections this service has opened count, so made-up names add nothing."""
        if election in self._castings:
            self._refusals.setdefault(election, collections.Counter())[f"{channel}/{code}"] += 1

    async def refusals(self, election: str) -> dict[str, Any]:
        """Refused writes so far, saved and not yet saved, in total, by reason (problem code)
        and by channel and reason. Refusals are not log entries: these counts come from the
        services that answered them, not from a replay."""
        counts = collections.Counter(await self.store.projection_counts(election, TALLY_PROJECTION))
        counts.update(self._refusals.get(election, {}))
        by_reason: collections.Counter[str] = collections.Counter()
        by_channel: dict[str, dict[str, int]] = {}
        for counter, n in sorted(counts.items()):
            channel, _, code = counter.partition("/")
            by_reason[code] += n
            by_channel.setdefault(channel, {})[code] = n
        return {
            "total": sum(by_reason.values()),
            "by_reason": dict(sorted(by_reason.items())),
            "by_channel": by_channel,
        }

    async def caught_up_tally(self, election: str, timeout: float = 5.0) -> Tally:
        """The tally once it has applied every entry committed when this was called."""
        tally = await self.tally(election)
        size = await (await self.ledger(election)).size()
        deadline = asyncio.get_running_loop().time() + timeout
        while tally.position < size and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        return tally

    async def _follow(self, ledger: Ledger, tally: Tally) -> None:
        log_id = ledger.log_id
        loop = asyncio.get_running_loop()
        saved_at = loop.time()
        wait = self.config.projection_save_interval
        while True:
            try:
                size = await self.store.wait_for_growth(log_id, tally.position, 1.0)
                if size > tally.position:
                    async for chunk in self.store.stream_data(log_id, tally.position, size):
                        await apply_chunk(self.store, log_id, tally, tally.position, chunk)
                    # Caught up with `size`: the tally's definition is the latest amendment's
                    # as of there (another process may have appended it).
                    self._castings[log_id].definition_seen(tally.election)
                if loop.time() - saved_at >= wait:
                    started = loop.time()
                    await self._save_tally(log_id)
                    saved_at = loop.time()
                    # A view of a million voters takes a while to encode and write: keep saving
                    # to a small share (~5%) of the follower's time.
                    wait = max(self.config.projection_save_interval, 20 * (saved_at - started))
            except asyncio.CancelledError:
                raise
            except Exception:  # the store went away: wait and resume where we stopped
                log.warning("tally of %s paused: store unavailable", log_id)
                await asyncio.sleep(1.0)

    def open_ledgers(self) -> list[Ledger]:
        return [casting.ledger for casting in self._castings.values()]

    async def log_statuses(self) -> list[LogStatus]:
        """Every election in the store: log size, latest checkpoint, projection progress.

        Starts the live tally of elections that have none yet. Raises
        :class:`~ledger.errors.StoreUnavailableError` when the database does not answer.
        """
        statuses = []
        for election in await self.store.log_ids():
            ledger = await self.ledger(election)
            size = await ledger.size()
            projected = size
            if size > 0:
                with contextlib.suppress(ElectionEmptyError):  # no definition: nothing to project
                    projected = min(size, (await self.tally(election)).position)
            checkpoint = await ledger.latest_checkpoint()
            statuses.append(
                LogStatus(
                    election,
                    size,
                    projected,
                    checkpoint.size if checkpoint else None,
                    checkpoint.created_at if checkpoint else None,
                )
            )
        return statuses
