"""The three web pages (``/clerk``, ``/results``, ``/receipt``) and the small endpoints they need.

Everything the pages load is in this package (HTML, CSS, JavaScript, icon): no CDN, so they work
on a closed network. Signing (clerk) and verification (receipt) run in the browser: with WebCrypto
(Ed25519, SHA-256) where the browser offers it, that is in a secure context (HTTPS, ``localhost``)
of a recent browser; elsewhere, as on ``http://10.0.0.5:8080/clerk``, with the audited
plain-JavaScript @noble/ed25519 and @noble/hashes bundled into ``assets/vendor-noble.js`` (its
header says how it was built). Ed25519 is deterministic, so both sign the same bytes.

Endpoints added here, for the pages:

* ``GET /v1/elections`` — the elections this server holds, ``{"elections": [{"id", "title"}]}``
  (the pages pick the only one when no ``?election=`` is given);
* ``GET /v1/elections/{e}/log/key`` — the log's public key (C2SP vkey) and the checkpoint origin,
  ``{"vkey", "origin"}``, against which the receipt page verifies checkpoints;
* ``GET /v1/clock`` — the service's clock, ``{"now": ISO 8601}``: a clerk's ``cast_at`` is taken
  from it, so that a replay of a past election (the demo) stamps ballots inside its window.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from api.keys import SERVICE
from api.problems import ProblemError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HERE = Path(__file__).resolve().parent
ASSETS = HERE / "assets"

# Only this server: no CDN, no inline script, no framing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

PAGES = {"/clerk": "clerk.html", "/results": "results.html", "/receipt": "receipt.html"}


def _page(name: str) -> Handler:
    path = HERE / name

    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path, headers={**PAGE_HEADERS, "Content-Type": "text/html"})

    handler.__name__ = f"page_{path.stem}"
    return handler


async def _asset_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Set as an answer is about to be sent (a signal, not a middleware: no extra layer around
    every request, ballots included)."""
    if request.path.startswith("/assets/"):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-cache")


async def elections(request: web.Request) -> web.Response:
    """The elections on this server, with their titles."""
    service = request.app[SERVICE]
    listed = []
    for election_id in await service.election_ids():
        try:
            election = await service.election(election_id)
        except ProblemError:  # an empty log (not initialised yet): listed without a title
            listed.append({"id": election_id, "title": {}})
            continue
        listed.append({"id": election_id, "title": dict(election.title)})
    return web.json_response({"elections": listed})


async def log_key(request: web.Request) -> web.Response:
    """The log's verifier key (C2SP vkey) and the origin line its checkpoints carry."""
    service = request.app[SERVICE]
    ledger = await service.ledger(request.match_info["election"])
    return web.json_response({"vkey": service.config.log_verifier.vkey, "origin": ledger.origin})


async def clock(request: web.Request) -> web.Response:
    """The service's clock (the real one, or the demo's simulated 2018)."""
    return web.json_response({"now": request.app[SERVICE].clock().isoformat()})


# The OpenAPI 3.1 description of what this module serves, for api/openapi.py to merge into its
# paths (``{**PATHS, **pages.OPENAPI_PATHS}``); problems refer to its ``Problem`` schema.
_PROBLEM = {
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
}
_HTML = {"content": {"text/html": {"schema": {"type": "string"}}}}


def _page_doc(summary: str) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": {"description": "HTML.", **_HTML}}}}


OPENAPI_PATHS: dict[str, Any] = {
    "/v1/elections": {
        "get": {
            "summary": "The elections this server holds (id and title in uk/en)",
            "responses": {
                "200": {
                    "description": "Every election, by id.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["elections"],
                                "properties": {
                                    "elections": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["id", "title"],
                                            "properties": {
                                                "id": {"type": "string"},
                                                "title": {
                                                    "type": "object",
                                                    "additionalProperties": {"type": "string"},
                                                },
                                            },
                                        },
                                    }
                                },
                            }
                        }
                    },
                },
                "503": {"description": "The database is unreachable.", **_PROBLEM},
            },
        }
    },
    "/v1/elections/{election}/log/key": {
        "get": {
            "summary": "The log's public key (C2SP vkey) and its checkpoints' origin line",
            "parameters": [
                {"name": "election", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {
                    "description": "The key that signs this election's checkpoints.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["vkey", "origin"],
                                "properties": {
                                    "vkey": {"type": "string"},
                                    "origin": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "404": {"description": "No such election (`unknown-election`).", **_PROBLEM},
                "503": {"description": "The database is unreachable.", **_PROBLEM},
            },
        }
    },
    "/v1/clock": {
        "get": {
            "summary": "The service's clock (the demo's is simulated)",
            "responses": {
                "200": {
                    "description": "Now, ISO 8601 with an offset.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["now"],
                                "properties": {"now": {"type": "string", "format": "date-time"}},
                            }
                        }
                    },
                }
            },
        }
    },
    "/clerk": _page_doc("Page: polling-point clerk (enter paper and spoiled ballots)"),
    "/results": _page_doc("Page: live results, turnout and the latest checkpoint"),
    "/receipt": _page_doc("Page: a voter checks a receipt (verified in the browser)"),
    "/assets/{name}": {
        "get": {
            "summary": "The pages' static files (HTML, CSS, JavaScript, icon)",
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {"description": "The file."},
                "404": {"description": "No such file."},
            },
        }
    },
}


def _has_route(app: web.Application, method: str, path: str) -> bool:
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        if route.method == method and path in (info.get("path"), info.get("formatter")):
            return True
    return False


def setup_pages(app: web.Application) -> None:
    """Register the pages, their assets and the endpoints they need on ``app``."""
    for url, name in PAGES.items():
        app.router.add_get(url, _page(name), name=f"page-{name.removesuffix('.html')}")
    app.router.add_static("/assets/", ASSETS, name="page-assets", append_version=False)
    app.on_response_prepare.append(_asset_headers)
    # Registered only when nobody else serves them (another module may add its own).
    extra = [
        ("/v1/elections", elections),
        ("/v1/elections/{election}/log/key", log_key),
        ("/v1/clock", clock),
    ]
    for path, handler in extra:
        if not _has_route(app, "GET", path):
            app.router.add_get(path, handler)


__all__ = ["OPENAPI_PATHS", "PAGES", "setup_pages"]
