"""The OpenAPI document at /openapi.json describes what the service does: every route is in it, and
schemathesis, generating requests from it against a real `uchast serve`, meets no 5xx and no
response outside the document (status, content type, body schema)."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.openapi import DOCUMENT
from api.service import ServiceConfig
from ledger.keys import SignerKey, sign_envelope
from tests.api.servers import serving
from tests.factories import ELECTION, Keys, ballot_envelope, opened_ledger
from votes.receipts import receipt_code

CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    """The app's routes (method, path template) and the document's operations are the same set."""
    app = create_app(ServiceConfig("sqlite:///unused.db", SignerKey.generate("uchast.local/log")))
    served = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("formatter") or info.get("path") or info.get("prefix", "") + "/{name}"
        if route.method != "HEAD":
            served.add((route.method.lower(), path.replace("//", "/")))
    documented = {(method, path) for path, item in DOCUMENT["paths"].items() for method in item}
    assert served == documented


def test_document_is_openapi_3_1_with_the_problem_schema() -> None:
    """OpenAPI 3.1, and the problem schema requires code and both messages."""
    assert DOCUMENT["openapi"].startswith("3.1")
    problem = DOCUMENT["components"]["schemas"]["Problem"]
    assert {"code", "message_uk", "message_en", "status"} <= set(problem["required"])
    envelope = DOCUMENT["components"]["schemas"]["SignedEnvelope"]
    assert envelope["required"] == ["payload", "key", "sig"]


KEYS = Keys()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server on the embedded store with the example election, on 2018's clock."""
    directory = tmp_path_factory.mktemp("openapi")
    url = f"sqlite:///{directory / 'uchast.db'}"

    async def setup() -> None:
        async with opened_ledger(url, KEYS):
            pass

    asyncio.run(setup())
    KEYS.log.save(directory / "log.key")
    (directory / "voter.key").write_text(bytes(range(32)).hex())
    with serving(url, directory) as (urls, _):
        yield urls[0]
    output = b"".join(p.read_bytes() for p in directory.glob("server-*.log"))
    assert b"Traceback" not in output and b"unhandled error" not in output, output[-2000:]


def signed(signer: SignerKey, **payload: Any) -> dict[str, Any]:
    return sign_envelope({"election": ELECTION, "nonce": str(uuid.uuid4()), **payload}, signer)


def with_real_examples(document: dict[str, Any]) -> dict[str, Any]:
    """The document, with validly signed envelopes as the write endpoints' examples and the
    receipt code of the example ballot, so generated requests also reach what lies behind the
    signature check (receipts, replays, refusals by the rules, voter tokens)."""
    document = json.loads(json.dumps(document))
    ballot = ballot_envelope(KEYS.site, "ab" * 32, ["L01", "S01"])
    at = "2018-10-05T11:00:00+03:00"
    examples = {
        "ballots": ballot,
        "paper-ballots": signed(
            KEYS.clerk,
            type="paper-ballot",
            voter="cd" * 32,
            projects=["L02"],
            polling_point="city-council",
            cast_at=at,
        ),
        "voids": signed(KEYS.supervisor, type="void", entry=4, reason="entered twice"),
        "ballot-batches": {"envelopes": [ballot_envelope(KEYS.site, "ef" * 32, ["L02"])]},
        "voter-tokens": {
            "envelope": signed(KEYS.clerk, type="voter-lookup", polling_point="city-council"),
            "identity": "1234567890",
        },
    }
    for endpoint, envelope in examples.items():
        operation = document["paths"][f"/v1/elections/{{election}}/{endpoint}"]["post"]
        content = operation["requestBody"]["content"]["application/json"]
        content["examples"] = {"signed": {"value": envelope}}
    code = receipt_code(base64.b64decode(ballot["sig"]))
    for parameter in document["paths"]["/v1/elections/{election}/receipts/{code}"]["get"][
        "parameters"
    ]:
        if parameter["name"] == "code":
            parameter["examples"] = {"real": {"value": code}}
    return document


schema = schemathesis.openapi.from_dict(with_real_examples(DOCUMENT))
# Most requests name the test election (the rest would only meet `unknown-election`).
schema.config.update(parameters={"path.election": ELECTION})


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_service_conforms_to_its_document(case: Any, live: str) -> None:
    """Generated requests get documented answers: no 5xx, refusals are problem+json."""
    case.call_and_validate(base_url=live, checks=CHECKS, timeout=30)


def test_openapi_json_is_served(live: str) -> None:
    """GET /openapi.json returns this module's document as JSON."""
    with urllib.request.urlopen(f"{live}/openapi.json", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/json")
        assert json.loads(response.read()) == json.loads(json.dumps(DOCUMENT))
