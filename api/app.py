"""The aiohttp application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from api import log_routes, ratelimit, result_routes, vote_routes
from api.keys import SERVICE
from api.pages import setup_pages
from api.problems import problem_middleware
from api.service import Service, ServiceConfig


def create_app(config: ServiceConfig, service: Service | None = None) -> web.Application:
    """Build the app; the store opens on startup and closes on cleanup."""
    app = web.Application(middlewares=[problem_middleware], client_max_size=config.max_body_bytes)
    app[SERVICE] = service or Service(config)
    ratelimit.setup(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await app[SERVICE].open()
        yield
        await app[SERVICE].close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_routes(log_routes.routes)
    app.router.add_routes(vote_routes.routes)
    app.router.add_routes(result_routes.routes)
    app.router.add_get("/healthz", healthz)
    setup_pages(app)
    return app


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})
