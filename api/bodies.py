"""Reading request bodies strictly: JSON only, no duplicate keys, size-limited by the app."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from api.problems import ProblemError


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # The entry must hold the envelope as submitted; with duplicate keys there is no
            # single "as submitted" (parsers disagree on which one wins).
            raise ProblemError(
                400, "bad-json", f"duplicate key {key!r} in JSON", f"ключ {key!r} повторюється"
            )
        result[key] = value
    return result


async def read_json(request: web.Request) -> Any:
    """The request's JSON body; 415 for another content type, 400 for malformed JSON."""
    if request.content_type != "application/json":
        raise ProblemError(
            415,
            "unsupported-media-type",
            "send the body as application/json",
            "надсилайте тіло запиту як application/json",
        )
    raw = await request.read()
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProblemError(
            400, "bad-json", f"malformed JSON: {exc}", "тіло запиту не є коректним JSON"
        ) from None
