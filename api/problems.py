"""RFC 9457 problem documents: every refusal and failure leaves the service as one of these.

One middleware renders every domain and ledger error through the table of :mod:`api.messages`
(status, English and Ukrainian texts by ``code``); handlers never build error responses
themselves.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from api.messages import render
from votes.errors import DomainError

log = logging.getLogger("uchast.api")

PROBLEM_JSON = "application/problem+json"


class ProblemError(Exception):
    """A problem raised by the API layer itself (bad query parameters, unknown election...)."""

    def __init__(
        self,
        status: int,
        code: str,
        message_en: str,
        message_uk: str | None = None,
        *,
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message_en)
        self.status = status
        self.code = code
        self.message_en = message_en
        self.message_uk = message_uk or message_en
        self.data = data or {}  # extension members of the problem document


NEVER_HERE = frozenset({"read-only"})
"""503 problems that no retry to the same server can change: answered without Retry-After."""


def problem_body(
    status: int, code: str, message_en: str, message_uk: str, **extra: Any
) -> dict[str, Any]:
    """The problem document, as JSON-ready members."""
    return {
        "type": f"urn:uchast:problem:{code}",
        "title": code.replace("-", " ").capitalize(),
        "status": status,
        "code": code,
        "detail": message_en,
        "message_en": message_en,
        "message_uk": message_uk,
        **extra,
    }


def problem_response(
    status: int, code: str, message_en: str, message_uk: str, **extra: Any
) -> web.Response:
    body = problem_body(status, code, message_en, message_uk, **extra)
    # A 404 is cacheable by default (RFC 9111 §4.2.2): a CDN in front of the tiles would go on
    # serving "no such tile" after the tile exists. No refusal is worth keeping.
    headers = {"Cache-Control": "no-store"}
    if status == 503 and code not in NEVER_HERE:
        headers["Retry-After"] = "5"
    return web.Response(
        status=status,
        body=json.dumps(body, ensure_ascii=False).encode(),
        content_type=PROBLEM_JSON,
        headers=headers,
    )


def problem_document(exc: BaseException) -> dict[str, Any] | None:
    """The problem document :func:`to_problem` answers for ``exc`` (None if it is not a domain
    error): what an item of a batch answers in place of a response."""
    if isinstance(exc, ProblemError):
        return problem_body(exc.status, exc.code, exc.message_en, exc.message_uk, **exc.data)
    if isinstance(exc, DomainError):
        rendered = render(exc)
        if rendered is not None:
            return problem_body(
                rendered.status, rendered.code, rendered.en, rendered.uk, **rendered.members
            )
    return None


def to_problem(exc: BaseException) -> web.Response | None:
    """The problem response for a domain error, or None if ``exc`` is not one."""
    if isinstance(exc, ProblemError):
        return problem_response(exc.status, exc.code, exc.message_en, exc.message_uk, **exc.data)
    if isinstance(exc, DomainError):
        rendered = render(exc)
        if rendered is None:
            return None
        return problem_response(
            rendered.status, rendered.code, rendered.en, rendered.uk, **rendered.members
        )
    return None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# aiohttp's own refusals: (code, Ukrainian message). The English one is aiohttp's text.
_HTTP_PROBLEMS: dict[int, tuple[str, str]] = {
    404: ("not-found", "Такої адреси немає."),
    405: ("method-not-allowed", "Цей метод не підтримується за цією адресою."),
    413: ("too-large", "Тіло запиту завелике."),
}


def http_problem(exc: web.HTTPException) -> web.Response:
    """The problem document for an aiohttp HTTP error (unknown path, wrong method, body over
    the size limit...), keeping its ``Allow`` header."""
    code, message_uk = _HTTP_PROBLEMS.get(exc.status, ("http-error", exc.reason))
    text = exc.text or ""
    message_en = text.split(": ", 1)[1] if text.startswith(f"{exc.status}: ") else text
    response = problem_response(exc.status, code, message_en or exc.reason, message_uk)
    if "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn domain errors and HTTP errors into problem+json; never leak a traceback."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return http_problem(exc)
    except Exception as exc:
        response = to_problem(exc)
        if response is not None:
            return response
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(
            500, "internal-error", "Internal error; it has been logged.", "Внутрішня помилка."
        )
