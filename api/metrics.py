"""Prometheus metrics at ``GET /metrics``, one registry per app.

Counted as requests pass (:func:`metrics_middleware`, outside the problem middleware, so it sees
every refusal as the problem document the client got):

* ``uchast_ballots_accepted_total{channel}`` — new ballots written (201), ``online`` or ``paper``
  (spoiled paper ballots included);
* ``uchast_ballots_replayed_total{channel}`` — retries answered with the original receipt (200);
* ``uchast_ballots_refused_total{channel,code}`` — refusals, by the problem ``code``;

  (each envelope of a batch, ``POST .../ballot-batches``, counts in these three as a ballot
  sent alone would);
* ``uchast_append_latency_seconds{endpoint}`` — request to durable receipt, for every write
  endpoint that appended (or replayed);
* ``uchast_http_responses_total{route,method,status}`` — every response, by route template;
* ``uchast_voter_lookups_total{election,polling_point}`` — clerks' voter lookups answered (each
  one a ``voter-lookup`` entry of the log).

From the sequencer, after each committed batch:

* ``uchast_batch_size{election}`` — append requests per batch (one transaction);
* ``uchast_batch_duration_seconds{election}`` — the batch's transaction, lock to commit.

Read from the database at each scrape:

* ``uchast_store_up`` — 1 if the database answered this scrape, else 0 (the per-election gauges
  then keep their last values);
* ``uchast_log_size{election}``, ``uchast_checkpoint_size{election}``;
* ``uchast_checkpoint_age_seconds{election}`` — now minus the latest checkpoint's ``created_at``;
* ``uchast_projection_lag_entries{election}`` — log size minus the entries the live tally applied;
* ``uchast_db_pool_size``, ``uchast_db_pool_idle``, ``uchast_db_pool_max_size`` — connections
  (PostgreSQL: the asyncpg pool; SQLite: one writer, reported as 1 / 0 / 1).

With ``serve --witness-policy``, the witness gauges of :mod:`api.cosigning` join the same
registry (``uchast_witness_*``, ``uchast_cosigned_checkpoint_size``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from api.keys import SERVICE
from api.problems import PROBLEM_JSON, Handler
from api.service import Service
from ledger.errors import StoreUnavailableError
from ledger.postgres import PostgresStore

# POST routes that append, by route template: (endpoint label, ballot channel or None).
WRITE_ROUTES: dict[str, tuple[str, str | None]] = {
    "/v1/elections/{election}/ballots": ("ballots", "online"),
    # Each envelope of a batch is counted by the handler (Metrics.observe_items).
    "/v1/elections/{election}/ballot-batches": ("ballot-batches", None),
    "/v1/elections/{election}/paper-ballots": ("paper-ballots", "paper"),
    "/v1/elections/{election}/voids": ("voids", None),
}
CHANNELS = ("online", "paper")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    """The app's collectors, in a registry of their own (two apps in one process never mix)."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.accepted = Counter(
            "uchast_ballots_accepted",
            "Ballots written to the log, by channel.",
            ["channel"],
            registry=registry,
        )
        self.replayed = Counter(
            "uchast_ballots_replayed",
            "Ballot retries answered with the original receipt, by channel.",
            ["channel"],
            registry=registry,
        )
        self.refused = Counter(
            "uchast_ballots_refused",
            "Ballots refused, by channel and problem code.",
            ["channel", "code"],
            registry=registry,
        )
        self.append_latency = Histogram(
            "uchast_append_latency_seconds",
            "Write requests that appended (or replayed): request received to receipt sent.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.responses = Counter(
            "uchast_http_responses",
            "HTTP responses by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.lookups = Counter(
            "uchast_voter_lookups",
            "Clerks' voter lookups answered (each a voter-lookup entry), by polling point.",
            ["election", "polling_point"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "uchast_batch_size",
            "Append requests per sequencer batch (one transaction).",
            ["election"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.batch_duration = Histogram(
            "uchast_batch_duration_seconds",
            "Sequencer batch transactions, lock to commit.",
            ["election"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.store_up = Gauge(
            "uchast_store_up", "Whether the database answered the last scrape.", registry=registry
        )
        self.log_size = Gauge(
            "uchast_log_size", "Entries in the election's log.", ["election"], registry=registry
        )
        self.checkpoint_size = Gauge(
            "uchast_checkpoint_size",
            "Log size of the latest signed checkpoint.",
            ["election"],
            registry=registry,
        )
        self.checkpoint_age = Gauge(
            "uchast_checkpoint_age_seconds",
            "Seconds since the latest checkpoint was issued.",
            ["election"],
            registry=registry,
        )
        self.projection_lag = Gauge(
            "uchast_projection_lag_entries",
            "Entries in the log not yet applied by the live tally.",
            ["election"],
            registry=registry,
        )
        self.pool_size = Gauge(
            "uchast_db_pool_size", "Open database connections in the pool.", registry=registry
        )
        self.pool_idle = Gauge(
            "uchast_db_pool_idle", "Idle database connections in the pool.", registry=registry
        )
        self.pool_max = Gauge(
            "uchast_db_pool_max_size", "Most connections the pool may open.", registry=registry
        )
        for channel in CHANNELS:
            self.accepted.labels(channel)
            self.replayed.labels(channel)
        self._children: dict[
            tuple[str, str, int], tuple[Counter, Histogram | None, Counter | None]
        ] = {}
        self._refusal_routes: set[tuple[str, str, int]] = set()

    def observe_response(
        self, request: web.Request, response: web.StreamResponse, seconds: float
    ) -> None:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        status = response.status
        method = request.method if request.method in METHODS else "other"  # bounded labels
        key = (route, method, status)
        # Label lookups cost more than the increments: keep the children of each key.
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = self._children_for(*key)
        responses, latency, outcome = children
        responses.inc()
        if latency is not None:
            latency.observe(seconds)
        if outcome is not None:
            outcome.inc()
        elif status >= 400 and key in self._refusal_routes:
            channel, code = WRITE_ROUTES[route][1], problem_code(response)
            self.refused.labels(channel, code).inc()
            election = request.match_info.get("election")
            if election is not None and channel is not None:
                request.app[SERVICE].count_refusal(election, channel, code)

    def _children_for(
        self, route: str, method: str, status: int
    ) -> tuple[Counter, Histogram | None, Counter | None]:
        responses = self.responses.labels(route, method, str(status))
        write = WRITE_ROUTES.get(route) if method == "POST" else None
        if write is None:
            return responses, None, None
        endpoint, channel = write
        latency = self.append_latency.labels(endpoint) if status < 400 else None
        outcome = None
        if channel is not None:
            if status == 201:
                outcome = self.accepted.labels(channel)
            elif status == 200:
                outcome = self.replayed.labels(channel)
            elif status >= 400:
                self._refusal_routes.add((route, method, status))
        return responses, latency, outcome

    def observe_items(
        self, request: web.Request, channel: str, results: list[dict[str, Any]]
    ) -> None:
        """Count each item answered in a batch as its own request would be counted: written,
        replayed, or refused by its problem code."""
        election = request.match_info.get("election")
        for result in results:
            status = result["status"]
            if status == 201:
                self.accepted.labels(channel).inc()
            elif status == 200:
                self.replayed.labels(channel).inc()
            else:
                code = result["code"]
                self.refused.labels(channel, code).inc()
                if election is not None:
                    request.app[SERVICE].count_refusal(election, channel, code)

    def observe_batch(self, election: str, requests: int, seconds: float) -> None:
        self.batch_size.labels(election).observe(requests)
        self.batch_duration.labels(election).observe(seconds)

    async def scrape(self, service: Service) -> bytes:
        """Refresh the gauges read from the database, then render everything."""
        try:
            statuses = await service.log_statuses()
        except StoreUnavailableError:
            self.store_up.set(0)
        else:
            self.store_up.set(1)
            now = time.time()
            for status in statuses:
                election = status.election
                self.log_size.labels(election).set(status.size)
                self.projection_lag.labels(election).set(status.lag)
                if status.checkpoint_size is not None and status.checkpoint_at is not None:
                    self.checkpoint_size.labels(election).set(status.checkpoint_size)
                    self.checkpoint_age.labels(election).set(max(0.0, now - status.checkpoint_at))
        size, idle, most = pool_use(service)
        self.pool_size.set(size)
        self.pool_idle.set(idle)
        self.pool_max.set(most)
        return generate_latest(self.registry)


METRICS = web.AppKey("metrics", Metrics)


def problem_code(response: web.StreamResponse) -> str:
    """The ``code`` of a problem+json response (``http-<status>`` for anything else)."""
    if isinstance(response, web.Response) and response.content_type == PROBLEM_JSON:
        body = response.body
        if isinstance(body, bytes):
            try:
                code = json.loads(body).get("code")
            except (ValueError, AttributeError):
                code = None
            if isinstance(code, str):
                return code
    return f"http-{response.status}"


def pool_use(service: Service) -> tuple[int, int, int]:
    """(open, idle, most) database connections."""
    store = service.store
    if isinstance(store, PostgresStore):
        try:
            pool = store.pool
        except StoreUnavailableError:
            return 0, 0, 0
        return pool.get_size(), pool.get_idle_size(), pool.get_max_size()
    return 1, 0, 1


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every response; ballots by channel and outcome, refusals by problem code."""
    started = time.perf_counter()
    response = await handler(request)
    request.app[METRICS].observe_response(request, response, time.perf_counter() - started)
    return response


routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = await request.app[METRICS].scrape(request.app[SERVICE])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
