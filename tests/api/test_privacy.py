"""Privacy: the identity numbers a clerk types never reach the database, a dump or the logs."""

from __future__ import annotations

import subprocess
import urllib.request
import uuid
from pathlib import Path

import aiohttp

from ledger.casting import Casting
from ledger.keys import SignerKey, sign_envelope
from tests.api.servers import UNLIMITED_CLERK, serving
from tests.factories import ELECTION, Keys, key_envelope, opened_ledger

IDENTITIES = ["3012345678", "2987654321", "3555000111", "1234509876"]


async def test_typed_identity_numbers_leave_no_trace(store_url: str, tmp_path: Path) -> None:
    """After the paper flow (token request, paper ballot, a refused one, a malformed number),
    neither the database files nor a dump nor the server's output contains a typed number."""
    keys = Keys()
    clerk = SignerKey.generate("clerk.city-council.anna")
    async with opened_ledger(store_url, keys) as ledger:
        await Casting(ledger).submit(
            key_envelope(keys, clerk, "clerk", polling_point="city-council")
        )
    keys.log.save(tmp_path / "log.key")
    (tmp_path / "voter.key").write_text(bytes(range(64, 96)).hex())

    with serving(store_url, tmp_path, args=UNLIMITED_CLERK) as (urls, _):
        base = f"{urls[0]}/v1/elections/{ELECTION}"
        async with aiohttp.ClientSession() as session:
            for n, identity in enumerate(IDENTITIES):
                typed = f"{identity[:4]} {identity[4:7]}-{identity[7:]}" if n % 2 else identity
                request = {
                    "type": "voter-lookup",
                    "election": ELECTION,
                    "polling_point": "city-council",
                    "nonce": str(uuid.uuid4()),
                }
                body = {"envelope": sign_envelope(request, clerk), "identity": typed}
                async with session.post(f"{base}/voter-tokens", json=body) as response:
                    assert response.status == 201
                    token = (await response.json())["voter"]
                for projects in (["L01", "S01"], ["L02", "L03", "L04"]):  # the second: refused
                    ballot = {
                        "type": "paper-ballot",
                        "election": ELECTION,
                        "voter": token,
                        "projects": projects,
                        "polling_point": "city-council",
                        "cast_at": "2018-10-05T10:00:00+03:00",
                        "nonce": str(uuid.uuid4()),
                    }
                    async with session.post(
                        f"{base}/paper-ballots", json=sign_envelope(ballot, clerk)
                    ) as response:
                        assert response.status in (201, 409)
            bad = {"type": "voter-lookup", "election": ELECTION, "polling_point": "city-council"}
            bad["nonce"] = str(uuid.uuid4())
            body = {"envelope": sign_envelope(bad, clerk), "identity": "30123x5678"}
            async with session.post(f"{base}/voter-tokens", json=body) as r:
                assert r.status == 422
                assert "30123x5678" not in await r.text()
        urllib.request.urlopen(f"{base}/results").read()
    output = b"".join(p.read_bytes() for p in tmp_path.glob("server-*.log"))

    if store_url.startswith("sqlite"):
        db = Path(store_url.removeprefix("sqlite:///"))
        stored = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    else:
        stored = subprocess.run(
            ["pg_dump", "--data-only", store_url], check=True, capture_output=True
        ).stdout
        assert b"uchast_entries" in stored
    assert b"paper-ballot" in stored and b"voter-token" not in stored
    for identity in [*IDENTITIES, "30123x5678"]:
        for haystack, where in ((stored, "database"), (output, "server output")):
            assert identity.encode() not in haystack, f"{identity} found in the {where}"
            assert identity[:8].encode() not in haystack, f"part of {identity} in the {where}"
