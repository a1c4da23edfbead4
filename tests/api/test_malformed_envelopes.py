"""Threat: whatever bytes or JSON anyone posts, signed or not, to every write endpoint of a real
`uchast serve` process. No crash, no 5xx, every refusal a problem document."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from ledger.errors import EnvelopeError
from ledger.keys import SignerKey, sign_envelope
from tests.api.servers import serving
from tests.factories import ELECTION, Keys, opened_ledger

ENDPOINTS = ["ballots", "paper-ballots", "voids", "voter-tokens"]
pytestmark = pytest.mark.slow

FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Server:
    host: str
    port: int
    keys: Keys
    process: subprocess.Popen[bytes]
    output: Path
    connection: http.client.HTTPConnection | None = None
    last: str = ""  # the last refusal's code

    def post(self, endpoint: str, body: bytes, content_type: str = "application/json") -> int:
        """POST and check the answer's form; return the status."""
        assert self.process.poll() is None, "the server died"
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        path = f"/v1/elections/{ELECTION}/{endpoint}"
        try:
            self.connection.request("POST", path, body, {"Content-Type": content_type})
            response = self.connection.getresponse()
        except (http.client.HTTPException, OSError):
            self.connection.close()
            self.connection = None
            raise
        data = response.read()
        status = response.status
        assert status < 500, (status, data[:300])
        self.last = ""
        if status >= 400:
            assert response.getheader("Content-Type", "").startswith("application/problem+json")
            self.last = json.loads(data)["code"]
            assert self.last
        return status


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One embedded-store server with the example election and every kind of key registered."""
    directory = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{directory / 'uchast.db'}"
    keys = Keys()

    async def setup() -> None:
        async with opened_ledger(url, keys):
            pass

    asyncio.run(setup())
    keys.log.save(directory / "log.key")
    (directory / "voter.key").write_text(bytes(range(32)).hex())
    with serving(url, directory) as (urls, processes):
        host, port = urls[0].removeprefix("http://").split(":")
        yield Server(host, int(port), keys, processes[0], directory)
    output = b"".join(p.read_bytes() for p in directory.glob("server-*.log"))
    assert b"Traceback" not in output and b"unhandled error" not in output, output[-2000:]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=16,
)


def either(valid: st.SearchStrategy[Any], *odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field's value: mostly valid, else odd but plausible, else any JSON."""
    odd_or_json = st.one_of(*odd, json_values) if odd else json_values
    return st.sampled_from([True] * 9 + [False]).flatmap(
        lambda good: valid if good else odd_or_json
    )


FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "voter": either(
        st.text("0123456789abcdef", min_size=64, max_size=64), st.text(), st.just("A" * 64)
    ),
    "projects": either(
        st.lists(st.sampled_from(["L01", "L02", "L03", "S01", "S02"]), max_size=2, unique=True),
        st.lists(st.sampled_from(["L01", "L02", "L03", "S01", "S02", "X99", ""]), max_size=5),
    ),
    "cast_at": either(
        st.sampled_from(["2018-10-05T10:00:00+03:00", "2018-10-01T00:00:00+03:00"]),
        st.sampled_from(["2018-10-05T10:00:00", "2018-13-45", "2018-10-11T00:00:00+03:00"]),
        st.datetimes().map(lambda d: d.isoformat()),
    ),
    "nonce": either(st.uuids().map(str), st.text(max_size=40)),
    "polling_point": either(st.just("city-council"), st.sampled_from(["bohunskyi-council", "x"])),
    "entry": either(st.integers(min_value=0, max_value=40), st.integers(-(2**63), 2**63)),
    "identity": either(st.text("0123456789", min_size=10, max_size=10), st.text(max_size=14)),
    "reason": either(st.sampled_from(["too-many-marks", "unreadable"]), st.text(max_size=5)),
}
# The fields each type takes, and the endpoint it belongs to.
SHAPES: dict[str, tuple[str, list[str]]] = {
    "ballot": ("ballots", ["voter", "projects", "cast_at", "nonce"]),
    "paper-ballot": ("paper-ballots", ["voter", "projects", "polling_point", "cast_at", "nonce"]),
    "spoiled-ballot": ("paper-ballots", ["polling_point", "reason", "cast_at", "nonce"]),
    "void": ("voids", ["entry", "reason", "nonce"]),
    "voter-token": ("voter-tokens", ["identity", "nonce"]),
    "election": ("ballots", ["voter", "nonce"]),
    "x": ("voids", ["nonce"]),
}
ROLES = {
    "ballot": "site",
    "paper-ballot": "clerk",
    "spoiled-ballot": "clerk",
    "voter-token": "clerk",
    "void": "supervisor",
}


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A payload of some type with its fields (one maybe missing, one maybe foreign), and the
    endpoint it is posted to (usually its own)."""
    kind = draw(st.sampled_from(sorted(SHAPES)))
    endpoint, fields = SHAPES[kind]
    payload: dict[str, Any] = {
        "type": draw(either(st.just(kind), st.sampled_from(sorted(SHAPES)))),
        "election": draw(either(st.just(ELECTION), st.sampled_from(["", "kyiv-2018"]))),
    }
    for name in fields:
        payload[name] = draw(FIELDS[name])
    if draw(st.integers(0, 9)) == 0:
        del payload[draw(st.sampled_from(sorted(payload)))]
    if draw(st.integers(0, 9)) == 0:
        payload[draw(st.sampled_from(sorted(FIELDS)))] = draw(json_values)
    if draw(st.integers(0, 9)) == 0:
        endpoint = draw(st.sampled_from(ENDPOINTS))
    return endpoint, payload


signatures = st.one_of(
    st.binary(min_size=64, max_size=64).map(lambda b: base64.b64encode(b).decode()),
    st.text(max_size=100),
    json_values,
)


@FUZZ
@given(body=st.binary(max_size=2048), endpoint=st.sampled_from(ENDPOINTS))
def test_arbitrary_bytes(server: Server, body: bytes, endpoint: str) -> None:
    """Any bytes as a JSON body: a 4xx problem, never a 5xx."""
    assert 400 <= server.post(endpoint, body) < 500


@FUZZ
@given(value=json_values, endpoint=st.sampled_from(ENDPOINTS))
def test_arbitrary_json(server: Server, value: Any, endpoint: str) -> None:
    """Any JSON value (NaN and infinities included) as the body: a 4xx problem."""
    assert 400 <= server.post(endpoint, json.dumps(value).encode()) < 500


@FUZZ
@given(
    request=requests(),
    key=either(st.sampled_from(["site.e-dem+00000000", "site.e-dem", "a+b+c"]), st.text()),
    sig=signatures,
    extra=st.dictionaries(st.sampled_from(["payload", "key", "sig", "x"]), json_values),
)
def test_envelope_shaped_forgeries(
    server: Server, request: tuple[str, Any], key: Any, sig: Any, extra: dict[str, Any]
) -> None:
    """Envelopes with any payload, key name and signature, real keys' names included: a 4xx."""
    registered = [server.keys.site, server.keys.clerk, server.keys.supervisor]
    endpoint, payload = request
    envelope = {"payload": payload, "key": key, "sig": sig, **extra}
    if isinstance(key, str) and key.startswith("site.e-dem"):
        envelope["key"] = registered[len(key) % 3].verifier.key_id
    assert 400 <= server.post(endpoint, json.dumps(envelope).encode()) < 500


@FUZZ
@given(
    request=requests(),
    signer=st.sampled_from(["own"] * 5 + ["site", "clerk", "supervisor", "admin", "stranger"]),
)
def test_validly_signed_nonsense(server: Server, request: tuple[str, Any], signer: str) -> None:
    """Correctly signed envelopes of registered keys with arbitrary field values reach the
    rules: each is accepted (201/200) or refused with a 4xx problem, never a 5xx."""
    endpoint, payload = request
    if signer == "own":  # the role that may write this type
        signer = ROLES.get(str(payload.get("type")), "site")
    key: SignerKey = (
        SignerKey.generate("site.stranger")
        if signer == "stranger"
        else getattr(server.keys, signer)
    )
    try:
        envelope = sign_envelope(payload, key)
    except EnvelopeError:
        assume(False)
    status = server.post(endpoint, json.dumps(envelope).encode())
    event(f"{endpoint} {status} {server.last}")


def test_other_content_types_and_huge_bodies(server: Server) -> None:
    """Form posts are 415 and bodies over the size limit 413, on every endpoint."""
    for endpoint in ENDPOINTS:
        assert server.post(endpoint, b"a=1", "application/x-www-form-urlencoded") == 415
        assert server.post(endpoint, b"[" * 70_000) == 413
