"""Write endpoints: online ballots, paper ballots (and spoiled ones), voids, voter tokens.

Each handler: verify the signature first (so an unsigned request learns nothing), read the
voter's entries (a DCB read), let :mod:`votes.rules` decide, append with the DCB condition
"nothing of this voter/nonce was written after my read". If that condition fails, another
ballot of the same voter got in between: decide again on fresh history (bounded retries).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web
from eventsourcing.dcb.api import DCBAppendCondition, DCBQuery, DCBQueryItem

from api.bodies import read_json
from api.keys import SERVICE
from api.problems import ProblemError
from ledger.errors import ConditionFailedError
from ledger.log import Appended, Ledger, VerifiedEnvelope, entry_object
from ledger.store import StoredEntry
from votes import rules
from votes.election import Election, election_to_dict
from votes.receipts import receipt_code, receipt_tag
from votes.tokens import voter_token

routes = web.RouteTableDef()

MAX_ATTEMPTS = 8

Decide = Callable[[Sequence[rules.PriorEntry]], rules.Decision]


def prior_entry(entry: StoredEntry) -> rules.PriorEntry:
    envelope = entry_object(entry.data)["envelope"]
    return rules.PriorEntry(entry.position, entry.type, envelope["payload"], envelope["key"])


def receipt(entry: StoredEntry, *, replay: bool = False, code: str | None = None) -> dict[str, Any]:
    """The receipt of ``entry``; ``code``, its receipt code, if the caller has it at hand
    (otherwise it is derived from the signature in the entry)."""
    if code is None:
        code = receipt_code(base64.b64decode(entry_object(entry.data)["envelope"]["sig"]))
    return {
        "receipt": code,
        "position": entry.position,
        "leaf_hash": base64.b64encode(entry.leaf_hash).decode(),
        "type": entry.type,
        "replay": replay,
    }


def condition_for(decision: rules.Decision, head: int) -> DCBAppendCondition:
    items = [DCBQueryItem(tags=[tag]) for tag in decision.condition_tags]
    return DCBAppendCondition(DCBQuery(items), after=head)


async def decide_and_append(
    ledger: Ledger,
    verified: VerifiedEnvelope,
    read_tags: Sequence[str],
    decide: Decide,
    *,
    extra_tags: Sequence[str] = (),
) -> tuple[StoredEntry, bool]:
    """Read, decide, append; on a lost race, again. Returns (entry, is_replay)."""
    for _ in range(MAX_ATTEMPTS):
        history, head = await ledger.tagged(list(read_tags))
        decision = decide([prior_entry(e) for e in history])
        if decision.replay_of is not None:
            [original] = await ledger.entries(decision.replay_of, decision.replay_of + 1)
            return original, True
        try:
            appended: Appended = await ledger.append_verified(
                verified,
                tags=[*decision.tags, *extra_tags],
                condition=condition_for(decision, head),
            )
        except ConditionFailedError:
            continue
        return appended.entry, False
    raise ProblemError(
        503,
        "busy",
        "too many concurrent ballots for this voter; retry with the same nonce",
        "забагато одночасних бюлетенів цього виборця; повторіть з тим самим nonce",
    )


def now(request: web.Request) -> datetime:
    return request.app[SERVICE].clock()


def expect_type(verified: VerifiedEnvelope, *types: str) -> None:
    found = verified.payload.get("type")
    if found not in types:
        raise ProblemError(
            422,
            "wrong-type",
            f"this endpoint takes payloads of type {' or '.join(types)}, not {found!r}",
            f"ця адреса приймає лише {' або '.join(types)}",
        )


def accepted(entry: StoredEntry, replay: bool, code: str | None = None) -> web.Response:
    """201 with the receipt of the entry just written (``code``: its receipt code, if known), or
    200 with the original's for a replay (whose envelope may have been signed by another key)."""
    body = receipt(entry, replay=replay, code=None if replay else code)
    return web.json_response(body, status=200 if replay else 201)


async def _context(request: web.Request) -> tuple[Ledger, Election, VerifiedEnvelope]:
    service = request.app[SERVICE]
    election_id = request.match_info["election"]
    ledger = await service.ledger(election_id)
    body = await read_json(request)
    verified = await ledger.verify(body)
    return ledger, await service.election(election_id), verified


@routes.post("/v1/elections/{election}/ballots")
async def post_ballot(request: web.Request) -> web.Response:
    ledger, election, verified = await _context(request)
    expect_type(verified, "ballot")
    payload = verified.payload
    at = now(request)
    code = receipt_code(verified.envelope.sig)
    entry, replay = await decide_and_append(
        ledger,
        verified,
        rules.read_tags_for_ballot(payload),
        lambda history: rules.decide_ballot(
            election, payload, history, now=at, key=verified.envelope.key
        ),
        extra_tags=[receipt_tag(code)],
    )
    return accepted(entry, replay, code)


@routes.get("/v1/elections/{election}")
async def get_election(request: web.Request) -> web.Response:
    """The election's definition, as its first entry holds it (money in kopecks)."""
    election = await request.app[SERVICE].election(request.match_info["election"])
    return web.json_response(election_to_dict(election))


@routes.post("/v1/elections/{election}/paper-ballots")
async def post_paper_ballot(request: web.Request) -> web.Response:
    ledger, election, verified = await _context(request)
    expect_type(verified, "paper-ballot", "spoiled-ballot")
    payload = verified.payload
    at = now(request)
    check_clerk_point(ledger, verified)
    key = verified.envelope.key
    code = receipt_code(verified.envelope.sig)
    if payload["type"] == "paper-ballot":
        entry, replay = await decide_and_append(
            ledger,
            verified,
            rules.read_tags_for_ballot(payload),
            lambda history: rules.decide_ballot(election, payload, history, now=at, key=key),
            extra_tags=[receipt_tag(code)],
        )
    else:
        entry, replay = await decide_and_append(
            ledger,
            verified,
            rules.read_tags_for_spoiled(payload),
            lambda history: rules.decide_spoiled(election, payload, history, now=at),
        )
    return accepted(entry, replay, code)


def check_clerk_point(ledger: Ledger, verified: VerifiedEnvelope) -> None:
    """A clerk key registered for a polling point may enter ballots only for that point."""
    record = ledger.registry.get(verified.envelope.key)
    point = record.polling_point if record is not None else None
    if point is not None and verified.payload.get("polling_point") != point:
        raise ProblemError(
            403,
            "wrong-polling-point",
            f"this clerk key serves polling point {point!r}",
            f"цей ключ реєстратора належить дільниці {point!r}",
        )


@routes.post("/v1/elections/{election}/voids")
async def post_void(request: web.Request) -> web.Response:
    ledger, election, verified = await _context(request)
    expect_type(verified, "void")
    payload = verified.payload
    at = now(request)
    position = payload.get("entry")
    target = None
    if isinstance(position, int) and not isinstance(position, bool) and position >= 0:
        found = await ledger.entries(position, position + 1)
        target = prior_entry(found[0]) if found else None
    entry, replay = await decide_and_append(
        ledger,
        verified,
        rules.read_tags_for_void(payload),
        lambda history: rules.decide_void(election, payload, target, history, now=at),
    )
    return accepted(entry, replay, receipt_code(verified.envelope.sig))


@routes.post("/v1/elections/{election}/voter-tokens")
async def post_voter_token(request: web.Request) -> web.Response:
    """A clerk turns a typed identity number into the voter token. Nothing is written or logged:
    the number lives only in this request's memory."""
    service = request.app[SERVICE]
    ledger = await service.ledger(request.match_info["election"])
    verified = await ledger.verify(await read_json(request), check_role=False)
    expect_type(verified, "voter-token")
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
    token = voter_token(service.config.voter_key, identity)
    return web.json_response({"voter": token}, headers={"Cache-Control": "no-store"})
