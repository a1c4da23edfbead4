"""Reading request bodies strictly: JSON only, no duplicate keys, size-limited by the app."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from api.problems import ProblemError

# Envelopes nest three levels; anything past this is refused before a recursive walk sees it.
MAX_DEPTH = 32
_TOO_DEEP = object()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)  # built in C; a duplicate shows as a shorter dict
    if len(result) != len(pairs):
        # The entry must hold the envelope as submitted; with duplicate keys there is no
        # single "as submitted" (parsers disagree on which one wins).
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ProblemError(
                    400, "bad-json", f"duplicate key {key!r} in JSON", f"ключ {key!r} повторюється"
                )
            seen.add(key)
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
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
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
