"""``uchast witness``: the C2SP tlog-witness HTTP service (``POST /add-checkpoint``).

Answers are the protocol's, not problem+json: 200 with the cosignature line, 409 with the held
size as ``text/x.tlog.size``, 400/403/422 with one line of plain text saying why.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from ledger.errors import StoreUnavailableError
from ledger.witness import Witness, WitnessRefusal

__all__ = ["WITNESS", "create_witness_app"]

WITNESS = web.AppKey("witness", Witness)

_STATUS = {"malformed": 400, "untrusted": 403, "conflict": 409, "bad-proof": 422}
# A request is an old-size line, at most 63 hashes and a checkpoint with a few signatures.
MAX_REQUEST_BYTES = 16 * 1024

log = logging.getLogger("uchast.witness")
routes = web.RouteTableDef()


@routes.post("/add-checkpoint")
async def add_checkpoint(request: web.Request) -> web.Response:
    """Cosign the submitted checkpoint if it extends what this witness last cosigned."""
    try:
        line = await request.app[WITNESS].add_checkpoint(await request.read())
    except WitnessRefusal as refusal:
        if refusal.reason != "malformed":  # a forked or unprovable checkpoint is evidence
            log.warning("refused a checkpoint (%s): %s", refusal.reason, refusal)
        if refusal.reason == "conflict":
            return web.Response(
                status=409, body=f"{refusal.size}\n".encode(), content_type="text/x.tlog.size"
            )
        return web.Response(status=_STATUS[refusal.reason], text=f"{refusal}\n")
    except StoreUnavailableError as exc:
        return web.Response(status=503, text=f"{exc}\n", headers={"Retry-After": "5"})
    return web.Response(text=line, content_type="text/plain")


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Up; names this witness's cosigner key."""
    return web.Response(text=request.app[WITNESS].cosigner.vkey + "\n")


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text: the size of the latest checkpoint cosigned, per origin."""
    records = await request.app[WITNESS].state.records()
    lines = [
        "# HELP uchast_witness_cosigned_size Size of the latest checkpoint cosigned per log.",
        "# TYPE uchast_witness_cosigned_size gauge",
    ]
    for record in records:
        origin = record.origin.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'uchast_witness_cosigned_size{{origin="{origin}"}} {record.size}')
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


def create_witness_app(witness: Witness) -> web.Application:
    """The witness's app; its state opens on startup and closes on cleanup."""
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app[WITNESS] = witness

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await app[WITNESS].state.open()
        log.info("witness %s serving", app[WITNESS].cosigner.vkey)
        yield
        await app[WITNESS].state.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_routes(routes)
    return app
