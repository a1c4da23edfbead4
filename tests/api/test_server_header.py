"""Finding: every answer named the exact server software (``Server: Python/3.11 aiohttp/3.x``),
telling an attacker which published advisories to try."""

from __future__ import annotations

from tests.api.conftest import Setup
from tests.factories import ELECTION


async def test_the_server_header_names_no_version(service: Setup) -> None:
    for method, path in (
        ("GET", "/healthz"),
        ("GET", f"/v1/elections/{ELECTION}/results"),
        ("GET", "/no/such/page"),
        ("POST", f"/v1/elections/{ELECTION}/ballots"),
    ):
        response = await service.client.request(method, path)
        assert response.headers["Server"] == "uchast", (path, response.headers["Server"])
