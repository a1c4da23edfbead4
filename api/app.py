"""The aiohttp application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from api import (
    cosigning,
    health,
    log_routes,
    metrics,
    openapi,
    ratelimit,
    result_routes,
    vote_routes,
)
from api.bodies import body_deadline
from api.keys import SERVICE
from api.metrics import METRICS, Metrics, metrics_middleware
from api.pages import setup_pages
from api.problems import Handler, problem_middleware
from api.service import Service, ServiceConfig
from ledger.errors import StoreReadOnlyError

SERVER = "uchast"
"""The ``Server`` header: no software versions (aiohttp's default names Python's and its own)."""


_READS = frozenset({"GET", "HEAD", "OPTIONS"})


@web.middleware
async def read_only_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``serve --read-only``: every request but a read is refused (503 read-only) before
    anything reads its body, checks a signature or charges a rate limit."""
    if request.method not in _READS:
        raise StoreReadOnlyError(request.method)
    return await handler(request)


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER


def create_app(config: ServiceConfig, service: Service | None = None) -> web.Application:
    """Build the app; the store opens on startup and closes on cleanup."""
    app = web.Application(
        # Outermost first: metrics sees every response as the client gets it; the body's
        # deadline runs before anything (the rate limiter included) waits for the body.
        middlewares=[metrics_middleware, problem_middleware, body_deadline],
        client_max_size=config.max_body_bytes,
    )
    app.on_response_prepare.append(_server_header)
    if config.read_only:  # inside the problem middleware, which renders its refusal
        app.middlewares.insert(app.middlewares.index(problem_middleware) + 1, read_only_middleware)
    result_routes.setup(app)
    app[SERVICE] = service or Service(config)
    app[METRICS] = Metrics()
    app[SERVICE].batch_observers.append(app[METRICS].observe_batch)
    ratelimit.setup(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await app[SERVICE].open()
        yield
        await app[SERVICE].close()

    app.cleanup_ctx.append(lifecycle)
    # Started after the service opened, stopped before; a read-only server cosigns nothing.
    if config.witness_policy is not None and not config.read_only:
        cosigning.setup(app, config.witness_policy)
    # Routes under /v1/elections/{election} are tried in the order added: the write endpoints,
    # which carry the load on voting day, first.
    app.router.add_routes(vote_routes.routes)
    app.router.add_routes(log_routes.routes)
    app.router.add_routes(result_routes.routes)
    app.router.add_routes(health.routes)
    app.router.add_routes(metrics.routes)
    app.router.add_routes(openapi.routes)
    setup_pages(app)
    return app
