"""Write endpoints: online ballots, paper ballots (and spoiled ones), voids, voter tokens.

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
from api.problems import ProblemError
from ledger.casting import Cast
from ledger.entry import entry_envelope
from ledger.store import StoredEntry
from votes.election import election_to_dict
from votes.entries import EntryType
from votes.errors import WrongEntryTypeError
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
    """A clerk turns a typed identity number into the voter token. Nothing is written or logged:
    the number lives only in this request's memory."""
    service = request.app[SERVICE]
    ledger = await service.ledger(request.match_info["election"])
    verified = await ledger.verify(await read_json(request), check_role=False)
    if verified.payload.get("type") != "voter-token":
        raise WrongEntryTypeError(("voter-token",), verified.payload.get("type"))
    if verified.role != "clerk":
        raise ProblemError(403, "role-forbidden", "only clerk keys may ask for voter tokens")
    if service.config.voter_key is None:
        raise ProblemError(
            503,
            "no-voter-key",
            "this server was started without --voter-key; paper ballots are not possible",
            "сервер запущено без ключа виборців; паперові бюлетені неможливі",
        )
    identity = verified.payload.get("identity")
    if not isinstance(identity, str):
        raise ProblemError(422, "bad-identity", "identity must be a string of digits")
    token = voter_token(service.config.voter_key, request.match_info["election"], identity)
    return web.json_response({"voter": token}, headers={"Cache-Control": "no-store"})
