"""Health endpoints: ``/healthz`` (the process is up) and ``/readyz`` (it can serve).

Ready means: the database answers, no election's log was rolled back behind a checkpoint this
server already published (such a log refuses writes, ledger.sequencer), and every election's live
tally is within ``ServiceConfig.ready_max_lag`` entries of its log (so ``/results`` is current).
Otherwise 503 problem+json with ``Retry-After``, code ``not-ready`` and a ``reason``
(``database``, ``log-rolled-back`` or ``projection-lag``). Under ``serve --routes`` "the
database" is each of them: the server is ready while one answers (``"database": "degraded"``
when not all do) and the report names each (``clusters``), see :func:`readiness`. A read-only
server (``serve --read-only``) says so (``"read_only": true``) and reports each database as a
replica (``replicas``: in recovery or not, age in seconds of its last replayed commit); its
``elections`` sizes are the replica's, to compare with the primary's servers'.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.keys import SERVICE
from api.problems import ProblemError
from api.service import Service

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    return web.json_response(await readiness(request.app[SERVICE]))


async def readiness(service: Service) -> dict[str, Any]:
    """The readiness report; a 503 :class:`ProblemError` when not ready.

    With a routing file (``serve --routes``) the report names each database (its URL without
    the password) with its state and elections. A database that does not answer makes only its
    elections unavailable (they answer 503 store-unavailable); the server stays ready for the
    others, and is not ready only when no database answers."""
    bound = service.config.ready_max_lag
    clusters = await service.cluster_statuses()
    extra: dict[str, Any] = {}
    if service.routed:
        extra["clusters"] = {
            c.name: {
                "database": "ok" if c.available else "unavailable",
                "elections": [*c.elections],
            }
            for c in clusters
        }
    if service.config.read_only:
        extra["read_only"] = True
        extra["replicas"] = await service.replica_statuses()
    if not any(c.available for c in clusters):
        raise ProblemError(
            503,
            "not-ready",
            "the database does not answer",
            "база даних не відповідає",
            data={"reason": "database", "database": "unavailable", **extra},
        )
    database = "ok" if all(c.available for c in clusters) else "degraded"
    statuses = [status for cluster in clusters for status in cluster.logs]
    elections = {s.election: {"size": s.size, "lag": s.lag} for s in statuses}
    rolled_back = {}
    for status in statuses:
        refusal = (await service.ledger(status.election)).rolled_back
        if refusal is not None:
            rolled_back[status.election] = {"published": refusal.published, "size": refusal.size}
    if rolled_back:
        names = ", ".join(sorted(rolled_back))
        raise ProblemError(
            503,
            "not-ready",
            f"the log of {names} is behind or forked from a checkpoint this server published;"
            " writes are refused until the database is restored (RUNBOOK.md)",
            f"журнал ({names}) відкочено від уже оприлюдненої контрольної точки; запис"
            " неможливий, доки базу не відновлять",
            data={
                "reason": "log-rolled-back",
                "database": database,
                "elections": rolled_back,
                **extra,
            },
        )
    behind = sorted(s.election for s in statuses if s.lag > bound)
    if behind:
        raise ProblemError(
            503,
            "not-ready",
            f"the tally of {', '.join(behind)} is more than {bound} entries behind its log",
            f"підрахунок ({', '.join(behind)}) відстає від журналу більш ніж на {bound} записів",
            data={
                "reason": "projection-lag",
                "database": database,
                "max_lag": bound,
                "elections": elections,
                **extra,
            },
        )
    return {
        "status": "ready",
        "database": database,
        "max_lag": bound,
        "elections": elections,
        **extra,
    }
