"""The running service's state: its stores (one per database the routing file names), one
ledger per election, opened on demand."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.routing import Routes, RoutesError, RoutesFile, redact
from ledger.casting import Casting
from ledger.checkpoint import CheckpointJournal
from ledger.errors import ElectionEmptyError, StoreUnavailableError, UnknownElectionError
from ledger.keys import SignerKey, VerifierKey
from ledger.log import Ledger
from ledger.policy import Policy
from ledger.store import Store, StoredCheckpoint, open_store
from tally.feed import LogFollower
from tally.projection import Tally
from votes.election import Election
from votes.errors import ResultsSealedError

TALLY_PROJECTION = "tally"
REOPEN_INTERVAL = 2.0
"""Seconds between attempts to open a routed database that did not answer."""
FOLLOW_IDLE = 0.1
"""Seconds without a batch of this process's own after which the live tally waits on the log
itself (tally.feed.LogFollower): how much later it may see another process's entries."""

log = logging.getLogger("uchast.service")


@dataclass(frozen=True)
class ServiceConfig:
    """What ``uchast serve`` is started with."""

    db_url: str
    # The log key: the private one, which signs checkpoints; a read-only server needs only the
    # public one (`serve --read-only --log-vkey`), which it serves at /log/key.
    log_key: SignerKey | VerifierKey
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
    # `serve --routes`: election -> storage URL (api/routing.py); db_url holds the others.
    routes_file: Path | None = None
    # `serve --witness-policy`: checkpoints are published once its quorum cosigned them.
    witness_policy: Policy | None = None
    # `serve --read-only`: the databases are replicas (hot standbys). Nothing is created,
    # written, signed or cosigned; no checkpoint journal is read or written (the primary's
    # servers keep it); writes answer 503 read-only. Results, receipts, the log and its
    # checkpoints (the latest the primary stored) are served as the replica has them.
    read_only: bool = False

    @property
    def log_verifier(self) -> VerifierKey:
        """The log key's public half."""
        key = self.log_key
        return key if isinstance(key, VerifierKey) else key.verifier


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


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """One database the service uses, as /readyz reports it: named by its URL without the
    password; its elections (when it does not answer: those routed to it or served from it)."""

    name: str
    available: bool
    elections: tuple[str, ...]
    logs: tuple[LogStatus, ...] = ()


class Service:
    """Stores and ledgers; what every handler reaches through the app.

    ``store`` is the ``--db`` database. With a routing file (:mod:`api.routing`) each election's
    log is in the store of its URL, one store per distinct URL, opened at start (a database that
    does not answer then is tried again when one of its elections is asked for). An election
    keeps the store it was first served from: a re-read routing file that moves it is refused
    with a logged error."""

    def __init__(self, config: ServiceConfig, store: Store | None = None) -> None:
        if not config.read_only and not isinstance(config.log_key, SignerKey):
            raise ValueError("a server that writes needs the log key's private half to sign")
        self.config = config
        self.store = store or open_store(config.db_url, read_only=config.read_only)
        self._stores: dict[str, Store] = {config.db_url: self.store}
        self._opened: set[str] = set()  # URLs whose store is open
        self._store_locks: dict[str, asyncio.Lock] = {}
        # URLs whose store could not be opened -> when it was last tried (loop time).
        self._unanswered: dict[str, float] = {}
        self._routes = Routes(config.db_url)
        self._routes_file = RoutesFile(config.routes_file) if config.routes_file else None
        self._routes_stamp: tuple[int, int, int] | None = None
        self._bound: dict[str, str] = {}  # election -> the URL its ledger was opened on
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
            CheckpointJournal(config.checkpoint_journal)
            if config.checkpoint_journal and not config.read_only
            else None
        )

    @property
    def routed(self) -> bool:
        """Whether a routing file places elections (else every election is in ``store``)."""
        return self._routes_file is not None

    async def open(self) -> None:
        if self._routes_file is not None:
            self._routes_stamp = self._routes_file.stamp()
            self._routes = self._routes_file.read(self.config.db_url)
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload_routes)
        await self.store.open()
        self._opened.add(self.config.db_url)
        for cluster in await self._clusters():
            for election in cluster.elections if cluster.available else ():
                try:
                    await self.ledger(election)
                except StoreUnavailableError as exc:
                    log.warning("election %s not opened at start: %s", election, exc)

    def reload_routes(self) -> bool:
        """Read the routing file again (SIGHUP, or its modification time changed). Elections
        already served keep their store; a file that would move one, or that is not valid, is
        refused for that election (resp. whole) with a logged error. True if it was read."""
        if self._routes_file is None:
            return False
        stamp = self._routes_file.stamp()
        try:
            routes = self._routes_file.read(self.config.db_url)
        except RoutesError as exc:
            self._routes_stamp = stamp  # logged once per version of the file, not per request
            log.error("routing file not reloaded, the previous routes stay: %s", exc)
            return False
        for election, url in sorted(self._bound.items()):
            if routes.url_of(election) != url:
                log.error(
                    "routing file moves election %s from %s to %s while it is served: refused,"
                    " it stays where it is (a restart serves it from the new place)",
                    election,
                    redact(url),
                    redact(routes.url_of(election)),
                )
        self._routes = routes
        self._routes_stamp = stamp
        log.info(
            "routing file %s read: %d election(s) routed, %d database(s)",
            self._routes_file.path,
            len(routes.elections),
            len(routes.urls()),
        )
        return True

    def _reload_if_changed(self) -> None:
        if self._routes_file is not None and self._routes_file.stamp() != self._routes_stamp:
            self.reload_routes()

    def url_of(self, election: str) -> str:
        """The storage URL of ``election``'s log: where it is served from, if it is; else where
        the routing file puts it."""
        return self._bound.get(election) or self._routes.url_of(election)

    async def _store_at(self, url: str) -> Store:
        """The open store of ``url``; :class:`StoreUnavailableError` if it cannot be opened.
        A database that did not answer is tried again at most every ``REOPEN_INTERVAL``
        seconds: meanwhile its elections fail at once instead of each waiting for a connect
        timeout."""
        store = self._stores.get(url)
        if store is None:
            store = self._stores[url] = open_store(url, read_only=self.config.read_only)
        if url not in self._opened:
            self._refuse_if_tried_lately(url)
            async with self._store_locks.setdefault(url, asyncio.Lock()):
                if url not in self._opened:
                    self._refuse_if_tried_lately(url)  # by whoever held the lock before
                    try:
                        await store.open()
                    except BaseException as exc:
                        with contextlib.suppress(Exception):  # a pool half made: let it go
                            await asyncio.wait_for(store.close(), 5)
                        if url not in self._unanswered:  # once, not at every attempt
                            log.warning(
                                "database %s does not answer (%s): its elections answer 503"
                                " until it does",
                                redact(url),
                                type(exc).__name__,
                            )
                        self._unanswered[url] = asyncio.get_running_loop().time()
                        raise
                    self._opened.add(url)
                    if self._unanswered.pop(url, None) is not None:
                        log.warning("database %s answers again", redact(url))
        return store

    def _refuse_if_tried_lately(self, url: str) -> None:
        tried = self._unanswered.get(url)
        if tried is not None and asyncio.get_running_loop().time() - tried < REOPEN_INTERVAL:
            # Not the URL: the answer goes to the public, the logs have it.
            raise StoreUnavailableError("the database of this election does not answer")

    async def store_of(self, election: str) -> Store:
        """The open store holding ``election``'s log (by the routing file, if any)."""
        return await self._store_at(self.url_of(election))

    async def _clusters(self) -> list[ClusterStatus]:
        """Every database the service uses, with the elections it serves from each."""
        self._reload_if_changed()
        urls = dict.fromkeys([*self._routes.urls(), *self._bound.values()])
        clusters = []
        for url in urls:
            try:
                store = await self._store_at(url)
                found = [e for e in await store.log_ids() if self.url_of(e) == url]
            except StoreUnavailableError:
                expected = {e for e, u in self._routes.elections.items() if u == url}
                expected |= {e for e, u in self._bound.items() if u == url}
                clusters.append(ClusterStatus(redact(url), False, tuple(sorted(expected))))
            else:
                clusters.append(ClusterStatus(redact(url), True, tuple(found)))
        return clusters

    async def election_ids(self) -> list[str]:
        """Every election served, from every database that answers;
        :class:`StoreUnavailableError` if none does."""
        clusters = await self._clusters()
        if not any(c.available for c in clusters):
            raise StoreUnavailableError("no database answers")
        return sorted(e for c in clusters if c.available for e in c.elections)

    async def close(self) -> None:
        if self._routes_file is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
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
        for url in self._opened:
            try:
                await asyncio.wait_for(self._stores[url].close(), 10)
            except Exception as exc:  # one database's trouble must not keep the others open
                log.warning("database %s not closed cleanly: %s", redact(url), exc)
        self._opened.clear()

    async def ledger(self, election: str) -> Ledger:
        """The open ledger of ``election``; :class:`UnknownElectionError` if the store has no
        such log."""
        return (await self.casting(election)).ledger

    async def casting(self, election: str) -> Casting:
        """The write path of ``election``'s log, opened on first use."""
        casting = self._castings.get(election)
        if casting is not None:
            return casting
        self._reload_if_changed()  # a new election may have just been routed
        url = self.url_of(election)
        store = await self._store_at(url)
        async with self._lock:
            if election not in self._castings:
                if election not in await store.log_ids():
                    raise UnknownElectionError(election)
                read_only = self.config.read_only
                ledger = Ledger(
                    store,
                    election,
                    # Read-only: no signer, no journal, no sequencer started (a replica that
                    # lags is not a rollback, and it has nothing to sign or write).
                    log_signer=None if read_only else self._signer(),
                    deployment=self.config.deployment,
                    checkpoint_interval=self.config.checkpoint_interval,
                    on_batch=functools.partial(self._batch_done, election),
                    journal=self.journal,
                )
                try:
                    await (ledger.refresh_keys() if read_only else ledger.open())
                except BaseException:
                    await ledger.close()  # no sequencer left running without its ledger
                    raise
                self._castings[election] = Casting(ledger, self.clock)
                self._bound[election] = url
            return self._castings[election]

    def _signer(self) -> SignerKey:
        assert isinstance(self.config.log_key, SignerKey)  # checked at __init__
        return self.config.log_key

    def _batch_done(self, election: str, requests: int, seconds: float) -> None:
        for observe in self.batch_observers:
            observe(election, requests, seconds)

    async def election(self, election: str) -> Election:
        """The election's definition: its first entry's, or the latest admin amendment's (only
        possible before voting opens). Kept by its casting; the tally's follower refreshes it."""
        return await (await self.casting(election)).election()

    async def sealed_until(self, election: str) -> datetime | None:
        """While ``election``'s results are sealed (``results = "sealed-until-close"`` and the
        service's clock is before voting closes), the moment they open; else None. Read at every
        call, so results open at the close without a restart. An empty log hides nothing."""
        try:
            definition = await self.election(election)
        except ElectionEmptyError:
            return None
        return definition.voting_closes if definition.results_sealed(self.clock()) else None

    async def require_unsealed(self, election: str) -> None:
        """Raise :class:`~votes.errors.ResultsSealedError` while ``election``'s results are
        sealed: the one check before serving log entries or totals (api/log_routes.py,
        api/result_routes.py)."""
        until = await self.sealed_until(election)
        if until is not None:
            raise ResultsSealedError(until, (await self.election(election)).timezone)

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
        saved = await ledger.store.load_projection(ledger.log_id, TALLY_PROJECTION, with_items=True)
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
            return Tally.restore(definition, saved.state, saved.items)
        except ValueError as exc:
            log.warning("saved tally of %s unreadable (%s): replaying from 0", ledger.log_id, exc)
            return Tally(definition)

    async def _save_tally(self, election: str) -> None:
        """Save the tally's view with its position if it moved (one row) and the voters changed
        since the last save (its items), and add the refusals counted since the last save, all
        in one transaction. What is not written goes back to be saved next time."""
        tally = self._tallies.get(election)
        if self.config.read_only:  # the primary's servers save the view
            if tally is not None:
                tally.forget_changes()
            return
        moved = tally is not None and tally.position > self._saved.get(election, 0)
        refusals = self._refusals.pop(election, None)
        if not moved and not refusals:
            return
        # Taken without awaiting: the row and its items are of one position.
        point = tally.save_point() if tally is not None and moved else None
        store = self._castings[election].ledger.store
        try:
            written = await store.save_projection(
                election,
                TALLY_PROJECTION,
                point.position if point else 0,
                point.state if point else None,
                refusals,
                await asyncio.to_thread(point.items) if point else None,
                replace_items=point is not None and point.replace,
            )
        except BaseException:
            if refusals:  # not added: keep them for the next save
                self._refusals.setdefault(election, collections.Counter()).update(refusals)
            if tally is not None and point is not None:
                tally.unsaved(point)
            raise
        if tally is not None and point is not None:
            # Refused because another process saved the same or a later position: the stored
            # items are then those of that position or later, so this tally's changes up to here
            # are in them, unless it had to replace them (it did not start from them).
            if not written and point.replace:
                tally.unsaved(point)
            self._saved[election] = point.position

    def count_refusal(self, election: str, channel: str, code: str) -> None:
        """Count a refused write (by its problem code) towards the election's saved refusals.
        Only elections this service has opened count, so made-up names add nothing."""
        if election in self._castings:
            self._refusals.setdefault(election, collections.Counter())[f"{channel}/{code}"] += 1

    async def refusals(self, election: str) -> dict[str, Any]:
        """Refused writes so far, saved and not yet saved, in total, by reason (problem code)
        and by channel and reason. Refusals are not log entries: these counts come from the
        services that answered them, not from a replay."""
        store = (await self.ledger(election)).store
        counts = collections.Counter(await store.projection_counts(election, TALLY_PROJECTION))
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
        """Keep ``tally`` at the head of the log: the batches this process's sequencer commits
        from memory, the rest (other processes' entries, gaps) from the store (tally.feed)."""
        log_id = ledger.log_id
        follower = LogFollower(
            ledger.store, log_id, tally, idle=0.0 if self.config.read_only else FOLLOW_IDLE
        )
        listeners = ledger.sequencer.committed
        listeners.append(follower.committed)
        loop = asyncio.get_running_loop()
        saved_at = loop.time()
        wait = self.config.projection_save_interval
        try:
            while True:
                try:
                    if await follower.step(1.0):
                        # The tally's definition is the latest amendment's as of its position
                        # (another process may have appended it).
                        self._castings[log_id].definition_seen(tally.election)
                    if loop.time() - saved_at >= wait:
                        started = loop.time()
                        await self._save_tally(log_id)
                        saved_at = loop.time()
                        # A save takes a few milliseconds, but the first after a rebuild
                        # writes every voter (seconds at a million): keep saving to a small
                        # share (~5%) of the follower's time.
                        wait = max(self.config.projection_save_interval, 20 * (saved_at - started))
                except asyncio.CancelledError:
                    raise
                except Exception:  # the store went away: wait and resume where we stopped
                    log.warning("tally of %s paused: store unavailable", log_id)
                    await asyncio.sleep(1.0)
        finally:
            listeners.remove(follower.committed)

    async def published_checkpoint(self, election: str) -> StoredCheckpoint | None:
        """The checkpoint the log serves: with a witness policy, the latest one whose
        cosignatures met the quorum (api/cosigning.py), with their lines; else the latest one."""
        ledger = await self.ledger(election)
        if self.config.witness_policy is None:
            return await ledger.latest_checkpoint()
        return await ledger.store.latest_cosigned_checkpoint(ledger.log_id)

    async def receipt_checkpoint(
        self, election: str, position: int
    ) -> tuple[StoredCheckpoint | None, bool]:
        """The checkpoint to prove entry ``position`` against and whether it is cosigned: the
        published one when it includes the entry, else the latest signed one (not yet)."""
        ledger = await self.ledger(election)
        if self.config.witness_policy is not None:
            published = await ledger.store.latest_cosigned_checkpoint(ledger.log_id)
            if published is not None and published.size > position:
                return published, True
        return await ledger.latest_checkpoint(), False

    async def replica_statuses(self) -> dict[str, Any]:
        """Read-only: each open database (by its URL without the password) as a replica, for
        /readyz: in recovery or not, age of its last replayed commit (ledger.postgres)."""
        statuses: dict[str, Any] = {}
        for url in list(self._opened):
            try:
                statuses[redact(url)] = await self._stores[url].replica_status()
            except StoreUnavailableError:
                statuses[redact(url)] = None
        return statuses

    def open_ledgers(self) -> list[Ledger]:
        return [casting.ledger for casting in self._castings.values()]

    async def log_statuses(self) -> list[LogStatus]:
        """Every election served: log size, latest checkpoint, projection progress, from the
        databases that answer.

        Starts the live tally of elections that have none yet. Raises
        :class:`~ledger.errors.StoreUnavailableError` when no database answers.
        """
        clusters = await self.cluster_statuses()
        if not any(c.available for c in clusters):
            raise StoreUnavailableError("no database answers")
        return [status for cluster in clusters for status in cluster.logs]

    async def cluster_statuses(self) -> list[ClusterStatus]:
        """Each database with the status of every election served from it (none when it does
        not answer)."""
        statuses = []
        for cluster in await self._clusters():
            if cluster.available:
                try:
                    logs = [await self._log_status(e) for e in cluster.elections]
                except StoreUnavailableError:
                    cluster = dataclasses.replace(cluster, available=False)
                else:
                    cluster = dataclasses.replace(cluster, logs=tuple(logs))
            statuses.append(cluster)
        return statuses

    async def _log_status(self, election: str) -> LogStatus:
        ledger = await self.ledger(election)
        size = await ledger.size()
        projected = size
        if size > 0:
            with contextlib.suppress(ElectionEmptyError):  # no definition: nothing to project
                projected = min(size, (await self.tally(election)).position)
        checkpoint = await ledger.latest_checkpoint()
        return LogStatus(
            election,
            size,
            projected,
            checkpoint.size if checkpoint else None,
            checkpoint.created_at if checkpoint else None,
        )
