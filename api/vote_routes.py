"""Write endpoints: online ballots (one by one, or in batches from the voting site), paper ballots
(and spoiled ones), voids, voter lookups.

Each handler reads the body and hands the signed envelope to the election's
:class:`~ledger.casting.Casting` (verify, read, decide, append, retry), then answers with the
receipt: 201 for a new entry, 200 for a replay of an earlier one.
"""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

from api.bodies import read_json
from api.keys import SERVICE
from api.lookups import lookup_limiter
from api.metrics import METRICS
from api.problems import ProblemError, problem_document
from api.ratelimit import charge_items, item_waits, rate_limited, too_many
from ledger.casting import MAX_BATCH, Cast, batch_of
from ledger.entry import entry_envelope
from ledger.errors import BadBatchError
from ledger.store import StoredEntry
from votes.admin import voter_key_id
from votes.election import election_to_dict
from votes.entries import EntryType
from votes.errors import BadIdentityError, BadPayloadError, WrongEntryTypeError
from votes.receipts import receipt_code
from votes.tokens import voter_token

routes = web.RouteTableDef()


def receipt(entry: StoredEntry, *, replay: bool = False, code: str | None = None) -> dict[str, Any]:
    """The receipt of ``entry``; ``code``, its receipt code, if the caller has it at hand
    (otherwise it is derived from the signature in the entry)."""
    if code is None:
        code = receipt_code(base64.b64decode(entry_envelope(entry.data)["sig"]))
    return {
        "receipt": code,
        "position": entry.position,
        "leaf_hash": base64.b64encode(entry.leaf_hash).decode(),
        "type": entry.type,
        "replay": replay,
    }


def accepted(cast: Cast) -> web.Response:
    """201 with the receipt of the entry just written, or 200 with the original's for a replay
    (whose envelope may have been signed by another key)."""
    body = receipt(cast.entry, replay=cast.replay, code=cast.receipt)
    return web.json_response(body, status=200 if cast.replay else 201)


async def _submit(request: web.Request, *types: str) -> web.Response:
    casting = await request.app[SERVICE].casting(request.match_info["election"])
    return accepted(await casting.submit(await read_json(request), types=types))


@routes.post("/v1/elections/{election}/ballots")
async def post_ballot(request: web.Request) -> web.Response:
    return await _submit(request, EntryType.BALLOT)


@routes.post("/v1/elections/{election}/ballot-batches")
async def post_ballot_batch(request: web.Request) -> web.Response:
    """The voting site forwards online ballots in groups: ``{"envelopes": [envelope, ...]}``, 1
    to MAX_BATCH of them, each exactly what ``POST .../ballots`` takes and each cast on its own
    (its voter's limits, its nonce, durable before the answer; ledger.casting.submit_all).

    200 with ``{"results": [...]}`` in the envelopes' order: for each, the receipt the single
    endpoint answers, or its problem document, with that answer's HTTP status as ``"status"``.
    Each envelope counts against its key's rate limit as a request of its own; those past the
    limit answer ``rate-limited`` (and are not cast), the others go on. A body not of that
    shape (400 ``bad-batch``), over MAX_BATCH envelopes (413 ``batch-too-large``) or over the
    body size limit (413), or for an unknown election (404), is refused whole.
    """
    body = await read_json(request)
    if not isinstance(body, dict) or set(body) != {"envelopes"}:
        raise BadBatchError(f'a batch is {{"envelopes": [1 to {MAX_BATCH} signed envelopes]}}')
    envelopes = batch_of(body["envelopes"])
    casting = await request.app[SERVICE].casting(request.match_info["election"])
    waits = item_waits(request, envelopes)
    going = [envelope for envelope, wait in zip(envelopes, waits, strict=True) if wait == 0]
    outcomes = iter(await casting.submit_all(going, types=(EntryType.BALLOT,)))
    results: list[dict[str, Any]] = []
    for wait in waits:
        if wait > 0:
            results.append(
                rate_limited(
                    wait, "too many requests under this key", "забагато запитів з цим ключем"
                )
            )
            continue
        outcome = next(outcomes)
        if isinstance(outcome, Cast):
            answer = receipt(outcome.entry, replay=outcome.replay, code=outcome.receipt)
            results.append({**answer, "status": 200 if outcome.replay else 201})
        else:
            document = problem_document(outcome)
            if document is None:  # an error with no row in the table: a bug, answered 500
                raise outcome
            results.append(document)
    codes = [result.get("code") if result["status"] >= 400 else None for result in results]
    charge_items(request, envelopes, codes)
    request.app[METRICS].observe_items(request, "online", results)
    return web.json_response({"results": results}, headers={"Cache-Control": "no-store"})


@routes.get("/v1/elections/{election}")
async def get_election(request: web.Request) -> web.Response:
    """The election's definition, as its first entry holds it (money in kopecks)."""
    election = await request.app[SERVICE].election(request.match_info["election"])
    return web.json_response(election_to_dict(election))


@routes.post("/v1/elections/{election}/paper-ballots")
async def post_paper_ballot(request: web.Request) -> web.Response:
    return await _submit(request, EntryType.PAPER_BALLOT, EntryType.SPOILED_BALLOT)


@routes.post("/v1/elections/{election}/voids")
async def post_void(request: web.Request) -> web.Response:
    return await _submit(request, EntryType.VOID)


@routes.post("/v1/elections/{election}/voter-tokens")
async def post_voter_token(request: web.Request) -> web.Response:
    """A clerk looks up the voter token of the identity number typed at a polling point.

    The body is ``{"envelope": <clerk-signed voter-lookup>, "identity": "<digits>"}``: the signed
    payload (type, election, polling_point, nonce) holds neither the number nor the token. The
    number lives only in this request's memory; the lookup itself becomes a ``voter-lookup``
    entry of the log, tagged with the token, through the one write path (which refuses a reused
    nonce, a time outside [voting opens, paper deadline], a voter who can add nothing, and a
    revoked key at the entry's own position in the log). A clerk key is held to a human's pace
    (api/lookups.py). 201 with the token and the lookup's receipt, never cached.
    """
    service = request.app[SERVICE]
    election = request.match_info["election"]
    body = await read_json(request)
    if not isinstance(body, dict) or set(body) != {"envelope", "identity"}:
        raise BadPayloadError(
            "body", "a lookup is {envelope: <signed voter-lookup>, identity: <the number>}"
        )
    casting = await service.casting(election)
    verified = await casting.ledger.verify(body["envelope"])
    if verified.payload.get("type") != EntryType.VOTER_LOOKUP:
        raise WrongEntryTypeError((EntryType.VOTER_LOOKUP,), verified.payload.get("type"))
    if service.config.voter_key is None:
        raise ProblemError(
            503,
            "no-voter-key",
            "this server was started without --voter-key; paper ballots are not possible",
            "сервер запущено без ключа виборців; паперові бюлетені неможливі",
        )
    await casting.election()  # reads the election entry, and with it its voter key id
    if casting.voter_key_id is not None and casting.voter_key_id != voter_key_id(
        service.config.voter_key
    ):
        # One server, several elections, one --voter-key: tokens of this election would not
        # be the ones its voting site computes, so none is given.
        raise ProblemError(
            503,
            "no-voter-key",
            "this server holds another election's voter key; paper ballots are not possible here",
            "сервер має ключ виборців іншого голосування; паперові бюлетені тут неможливі",
        )
    wait = lookup_limiter(service).take(election, verified.envelope.key)
    if wait > 0:
        return too_many(
            wait,
            "too many voter lookups under this key",
            "забагато запитів номерів виборців з цим ключем",
            same_nonce=False,
        )
    identity = body["identity"]
    if not isinstance(identity, str):
        raise BadIdentityError()
    token = voter_token(service.config.voter_key, election, identity)
    cast = await casting.submit_verified(verified, types=(EntryType.VOTER_LOOKUP,), token=token)
    point = verified.payload["polling_point"]
    request.app[METRICS].lookups.labels(election, point).inc()
    answer = {"voter": token, "lookup": cast.position, **receipt(cast.entry, code=cast.receipt)}
    return web.json_response(answer, status=201, headers={"Cache-Control": "no-store"})
