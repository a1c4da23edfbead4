"""Reading request bodies strictly: JSON only, no duplicate keys, size-limited by the app, and
read within a deadline."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from api.problems import Handler, ProblemError, problem_response

BODY_TIMEOUT = 10.0
"""Seconds a request's whole body may take to arrive once its headers are in: a body trickled
a byte at a time would otherwise hold its connection, and its handler, open for as long as the
sender likes. Ten seconds is 64 KiB (the size limit) at about 50 kbit/s."""

# Envelopes nest three levels; anything past this is refused before a recursive walk sees it.
MAX_DEPTH = 32
_TOO_DEEP = object()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)  # built in C; a duplicate shows as a shorter dict
    if len(result) != len(pairs):
        # The entry must hold the envelope as submitted; with duplicate keys there is no
        # single "as submitted" (parsers disagree on which one wins).
        # Which key is not said: a refusal never echoes what the request carried.
        raise ProblemError(
            400,
            "bad-json",
            "a key is repeated in a JSON object",
            "ключ у JSON-об'єкті повторюється",
        )
    return result


_PARSED = web.RequestKey("parsed_body", tuple)
"""The request's key for its body as parsed by :func:`parsed_body`: parsed once, shared by the
rate limiter (the envelope's key) and the handler."""


async def read_json(request: web.Request) -> Any:
    """The request's JSON body; 415 for another content type, 400 for malformed JSON."""
    if request.content_type != "application/json":
        raise ProblemError(
            415,
            "unsupported-media-type",
            "send the body as application/json",
            "надсилайте тіло запиту як application/json",
        )
    return await parsed_body(request)


async def parsed_body(request: web.Request) -> Any:
    """The body parsed as :func:`parse_json` parses it (whatever the content type), once per
    request: a second call answers the first's value, or raises its problem again."""
    parsed = request.get(_PARSED)
    if parsed is None:
        try:
            parsed = (True, parse_json(await request.read()))
        except ProblemError as exc:
            parsed = (False, exc)
        request[_PARSED] = parsed
    ok, value = parsed
    if not ok:
        raise value
    return value


def parse_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8, no repeated key in an object, at most MAX_DEPTH levels deep; else
    :class:`ProblemError` 400 ``bad-json``."""
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError:
        raise ProblemError(
            400, "bad-json", "the body is not UTF-8", "тіло запиту не є текстом UTF-8"
        ) from None
    except json.JSONDecodeError as exc:
        # The parser's message names a position, never the text found there.
        raise ProblemError(
            400, "bad-json", f"malformed JSON: {exc}", "тіло запиту не є коректним JSON"
        ) from None
    except RecursionError:
        value = _TOO_DEEP  # nested past the parser's stack: deeper than MAX_DEPTH anyway
    # Nesting needs an opening bracket per level: with few brackets there is nothing to walk.
    brackets = raw.count(b"[") + raw.count(b"{")
    if value is _TOO_DEEP or (brackets > MAX_DEPTH and _too_deep(value)):
        raise ProblemError(
            400,
            "bad-json",
            f"JSON nested deeper than {MAX_DEPTH} levels",
            f"JSON вкладено глибше ніж {MAX_DEPTH} рівнів",
        )
    return value


def _too_deep(value: Any) -> bool:
    """Whether ``value`` nests lists/objects deeper than MAX_DEPTH (checked without recursion:
    everything downstream, canonical encoding included, may then recurse safely)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


async def wait_for_body(request: web.Request) -> web.StreamResponse | None:
    """Read the whole body, if there is one, within BODY_TIMEOUT seconds; None once it is in,
    else the 408 problem+json ``body-timeout`` already sent (and the connection closed), to be
    returned as the answer. aiohttp keeps the body read here for the handler (``request.read()``
    again costs nothing)."""
    if request.body_exists and request.content.is_eof():
        # Already all here (a ballot comes in the headers' packet): nothing to wait for, and
        # wait_for's task would cost about 17 µs of CPU per request.
        await request.read()
    elif request.body_exists:
        try:
            await asyncio.wait_for(request.read(), BODY_TIMEOUT)
        except TimeoutError:
            response = problem_response(
                408,
                "body-timeout",
                f"the request body did not arrive within {BODY_TIMEOUT:g} s",
                f"тіло запиту не надійшло за {BODY_TIMEOUT:g} с",
            )
            # Sent now and the connection dropped: aiohttp would otherwise linger, reading
            # the rest of the trickle for another 10 s before closing.
            response.force_close()
            await response.prepare(request)
            await response.write_eof()
            request.protocol.force_close()
            return response
    return None


@web.middleware
async def body_deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
    """:func:`wait_for_body`, then the handler. With rate limits on, the rate limiter's
    middleware takes this one's place and does the same first (api/ratelimit.py)."""
    refused = await wait_for_body(request)
    return refused if refused is not None else await handler(request)
