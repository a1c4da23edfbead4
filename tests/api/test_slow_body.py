"""Attack: a request body trickled a byte at a time, holding a connection (and its handler) open.

Found: a body sent at one byte per 10 s stayed open 150 s. The whole body must now arrive within
``api.bodies.BODY_TIMEOUT`` seconds (10 s) of the request's headers, or the request is answered
408 problem+json ``body-timeout`` and the connection closed.
"""

from __future__ import annotations

import asyncio
import json

import pytest

import api.bodies
from tests.api.conftest import Setup
from tests.factories import ELECTION


async def test_a_trickled_body_is_cut_off(service: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the timeout at 1 s, a body sent one byte every 0.3 s is answered 408 within about
    a second and the connection is closed; a body sent at once is not affected."""
    monkeypatch.setattr(api.bodies, "BODY_TIMEOUT", 1.0, raising=False)
    server = service.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        f"POST /v1/elections/{ELECTION}/ballots HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n".encode()
    )
    await writer.drain()
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def trickle() -> None:
        for _ in range(1000):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.3)

    trickling = asyncio.create_task(trickle())
    try:
        answer = await asyncio.wait_for(reader.read(), timeout=5)  # read() = until closed
    finally:
        trickling.cancel()
        writer.close()
    elapsed = loop.time() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), head
    assert json.loads(body)["code"] == "body-timeout"
    assert elapsed < 3
    fine = await service.client.post(f"/v1/elections/{ELECTION}/ballots", json={})
    assert fine.status == 400


def test_the_default_body_timeout_is_ten_seconds_at_most() -> None:
    assert api.bodies.BODY_TIMEOUT <= 10
