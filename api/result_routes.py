"""Read endpoints for the public: results (JSON or CSV) and receipts."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from api.keys import SERVICE
from api.problems import ProblemError
from api.service import Service
from ledger.casting import prior_entry
from ledger.entry import entry_object, entry_payload
from ledger.log import Ledger
from ledger.store import StoredCheckpoint, StoredEntry
from ledger.tlog_proof import TLOG_PROOF_SUFFIX, tlog_proof
from tally.export import approvals_of, voter_histories
from tally.results import results_csv, results_document, sealed_document
from votes.receipts import normalise_receipt_code, receipt_status, receipt_tag
from votes.tags import voter_tag

routes = web.RouteTableDef()


@dataclass
class _Computed:
    """An election's results document as of one log size (the refusals are added per request:
    they change without the log growing)."""

    size: int = -1
    document: dict[str, Any] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


RESULTS = web.AppKey("results", dict[str, _Computed])


def setup(app: web.Application) -> None:
    app[RESULTS] = {}


async def _document(request: web.Request, election: str) -> dict[str, Any]:
    """The results as of the tally's position, computed once per log size: equal shares needs
    every voter's ballot from the log, which no reader should get to make the server read again
    and again for the same answer."""
    service = request.app[SERVICE]
    tally = await service.caught_up_tally(election)
    computed = request.app[RESULTS].setdefault(election, _Computed())
    async with computed.lock:
        size = tally.position
        if computed.size != size:
            ledger = await service.ledger(election)
            approvals = None
            if tally.election.rule.method == "equal-shares":
                # Equal shares needs every voter's ballot, not just totals: read them from the
                # log (as of ``size``, whatever the tally applies meanwhile).
                histories = await voter_histories(ledger.store, ledger.log_id, size)
                approvals = approvals_of(tally.election, histories)
            root = await ledger.root(size)
            computed.document = results_document(tally, size, root, approvals)
            computed.size = size
        return computed.document


async def _sealed(request: web.Request, election: str, until: datetime) -> dict[str, Any]:
    """The sealed results: the log's size and root, and the turnout; no totals."""
    service = request.app[SERVICE]
    tally = await service.caught_up_tally(election)
    size = tally.position
    root = await (await service.ledger(election)).root(size)
    return sealed_document(tally, size, root, until)


@routes.get("/v1/elections/{election}/results")
async def results(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    election = request.match_info["election"]
    until = await service.sealed_until(election)
    if until is not None:  # turnout only; the CSV is per project, so refused
        if request.query.get("format") == "csv":
            await service.require_unsealed(election)
        sealed = await _sealed(request, election, until)
        return web.json_response({**sealed, "refusals": await service.refusals(election)})
    document = {**await _document(request, election), "sealed": False}
    if request.query.get("format") == "csv":
        return web.Response(text=results_csv(document), content_type="text/csv")
    return web.json_response({**document, "refusals": await service.refusals(election)})


async def _receipt_entry(request: web.Request) -> tuple[Ledger, str, StoredEntry]:
    """The election's ledger, the canonical code and the ballot it names; 400 ``bad-receipt``
    for what cannot be a code, 404 ``unknown-receipt`` when no ballot has it. Looked up by the
    code's hash, the tag the ballot carries (votes/receipts.py)."""
    ledger = await request.app[SERVICE].ledger(request.match_info["election"])
    code = normalise_receipt_code(request.match_info["code"])
    if code is None:
        raise ProblemError(
            400,
            "bad-receipt",
            "a receipt code looks like ABCDE-12345",
            "код має вигляд ABCDE-12345",
        )
    found, _ = await ledger.tagged([receipt_tag(code)])
    if not found:
        raise ProblemError(
            404,
            "unknown-receipt",
            "no ballot with this receipt code (yet): check the code",
            "бюлетеня з таким кодом немає; перевірте код",
        )
    return ledger, code, found[0]


@routes.get("/v1/elections/{election}/receipts/{code}")
async def receipt(request: web.Request) -> web.Response:
    """A ballot's status (:class:`votes.receipts.ReceiptStatus`: what the results count) and
    its inclusion proof against the latest checkpoint."""
    service = request.app[SERVICE]
    ledger, code, entry = await _receipt_entry(request)
    # One read: the voter's entries and the voids naming them (a void carries the voter's tag).
    voter = entry_payload(entry.data)["voter"]
    found, _ = await ledger.tagged([voter_tag(voter)])
    history = [prior_entry(e) for e in found]
    election = await service.election(request.match_info["election"])
    status = receipt_status(election, history, entry.position, voter)
    voids = [e for e in history if e.type == "void" and e.payload.get("entry") == entry.position]
    checkpoint, cosigned = await _proof_checkpoint(service, ledger, entry)
    hashes = await ledger.inclusion_proof(entry.position, checkpoint.size)
    sealed_until = await service.sealed_until(request.match_info["election"])
    return web.json_response(
        {
            "receipt": code,
            "status": status.value,
            "voided_by": voids[0].position if voids else None,
            "type": entry.type,
            "position": entry.position,
            # While sealed, not even the code's holder sees the picks (anyone with the code could).
            "entry": None if sealed_until else entry_object(entry.data),
            **({"sealed_until": sealed_until.isoformat()} if sealed_until else {}),
            "leaf_hash": base64.b64encode(entry.leaf_hash).decode(),
            "checkpoint": checkpoint.note,
            "cosigned": cosigned,  # the witness policy's quorum cosigned that checkpoint
            "proof": {
                "index": entry.position,
                "size": checkpoint.size,
                "hashes": [base64.b64encode(h).decode() for h in hashes],
            },
        }
    )


async def _proof_checkpoint(
    service: Service, ledger: Ledger, entry: StoredEntry
) -> tuple[StoredCheckpoint, bool]:
    """The checkpoint a receipt (and its proof file) proves the entry against, and whether the
    witness policy's quorum cosigned it (:meth:`Service.receipt_checkpoint`); 503
    ``no-checkpoint`` before one covers the entry."""
    checkpoint, cosigned = await service.receipt_checkpoint(ledger.log_id, entry.position)
    if checkpoint is None or checkpoint.size <= entry.position:
        raise ProblemError(503, "no-checkpoint", "the ballot is not in a checkpoint yet; retry")
    return checkpoint, cosigned


@routes.get("/v1/elections/{election}/receipts/{code}/proof")
async def receipt_proof(request: web.Request) -> web.Response:
    """The ballot's C2SP tlog-proof file (ledger/tlog_proof.py): its entry, index and inclusion
    proof against the latest checkpoint, for ``uchast verify-receipt`` to check offline."""
    # The file carries the entry, so it waits for sealed results to open, as the entry does.
    await request.app[SERVICE].require_unsealed(request.match_info["election"])
    ledger, code, entry = await _receipt_entry(request)
    checkpoint, _ = await _proof_checkpoint(request.app[SERVICE], ledger, entry)
    hashes = await ledger.inclusion_proof(entry.position, checkpoint.size)
    return web.Response(
        text=tlog_proof(entry.position, hashes, checkpoint.note, entry.data),
        content_type="text/plain",
        headers={"Content-Disposition": f'attachment; filename="{code}{TLOG_PROOF_SUFFIX}"'},
    )
