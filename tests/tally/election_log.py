"""Real election logs for the auditor's tests: written through the real write path
(:class:`ledger.casting.Casting` over a signed Ledger on SQLite, as the vote endpoints do), then
exported with ``uchast export log``'s own function."""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger.casting import Casting, create_election
from ledger.export import export_log
from ledger.keys import SignerKey, sign_envelope
from ledger.log import Ledger
from ledger.store import open_store
from tests.factories import ELECTION, Keys, voter_token
from votes import rules
from votes.election import election_from_dict, election_to_dict
from votes.receipts import receipt_code, receipt_tag

NOW = datetime(2018, 10, 5, 12, 0, tzinfo=UTC)
CAST_AT = "2018-10-03T10:15:00+03:00"


def definition(**overrides: Any) -> dict[str, Any]:
    """A small election: two categories of three projects, two polling points, greedy."""
    document: dict[str, Any] = {
        "id": ELECTION,
        "title": {"uk": "Тестове голосування", "en": "Test election"},
        "timezone": "Europe/Kyiv",
        "voting_opens": "2018-10-01T00:00:00+03:00",
        "voting_closes": "2018-10-10T23:59:59+03:00",
        # Entries are recorded on the real clock, long after 2018: keep paper open.
        "paper_deadline": "2100-01-01T00:00:00+00:00",
        "categories": [
            {
                "id": "large",
                "title": {"uk": "Великі", "en": "Large"},
                "max_picks": 2,
                "budget_kopecks": 300_000_00,
                "max_cost_kopecks": 200_000_00,
            },
            {
                "id": "small",
                "title": {"uk": "Малі", "en": "Small"},
                "max_picks": 2,
                "budget_kopecks": 100_000_00,
                "max_cost_kopecks": 60_000_00,
            },
        ],
        "projects": [
            {
                "id": f"L0{i}",
                "title": {"uk": f"Великий {i}", "en": f"Large {i}"},
                "category": "large",
                "cost_kopecks": cost,
                "district": "centre",
            }
            for i, cost in ((1, 150_000_00), (2, 120_000_00), (3, 90_000_00))
        ]
        + [
            {
                "id": f"S0{i}",
                "title": {"uk": f"Малий {i}", "en": f"Small {i}"},
                "category": "small",
                "cost_kopecks": cost,
                "district": "north",
            }
            for i, cost in ((1, 50_000_00), (2, 40_000_00), (3, 30_000_00))
        ],
        "polling_points": [
            {"id": "council", "title": {"uk": "Міська рада", "en": "City council"}},
            {"id": "district-1", "title": {"uk": "Район 1", "en": "District 1"}},
        ],
        "rule": {
            "method": "greedy",
            "min_votes": 0,
            "tie_break": ["cost-ascending", "lottery"],
            "seed": "test-2018/seed",
        },
        "multiple_ballots": True,
        "double_entry": False,
    }
    document.update(overrides)
    return election_to_dict(election_from_dict(document))


@dataclass
class AuditKeys(Keys):
    """The factories' keys plus a second clerk at the council (double entry needs two) and one
    at district 1."""

    clerk2: SignerKey = field(default_factory=lambda: SignerKey.generate("clerk.council.petro"))
    clerk3: SignerKey = field(default_factory=lambda: SignerKey.generate("clerk.district-1.maria"))


class ElectionLog:
    """Writes entries to one election's ledger through the write path the API uses."""

    def __init__(self, ledger: Ledger, keys: AuditKeys, document: dict[str, Any]) -> None:
        self.ledger = ledger
        self.casting = Casting(ledger, lambda: NOW)
        self.keys = keys
        self.election = election_from_dict(document)

    async def _submit(self, envelope: dict[str, Any]) -> int:
        cast = await self.casting.submit(envelope)
        assert not cast.replay, "tests never replay"
        return cast.position

    async def ballot(self, voter: int, projects: list[str], *, cast_at: str = CAST_AT) -> int:
        """An online ballot by the site key, decided by the rules."""
        payload = {
            "type": "ballot",
            "election": ELECTION,
            "voter": voter_token(voter),
            "projects": projects,
            "cast_at": cast_at,
            "nonce": str(uuid.uuid4()),
        }
        envelope = sign_envelope(payload, self.keys.site)
        return await self._submit(envelope)

    async def paper(
        self,
        voter: int,
        projects: list[str],
        *,
        clerk: SignerKey | None = None,
        point: str = "council",
    ) -> int:
        """A paper ballot keyed by a clerk, decided by the rules."""
        signer = clerk or self.keys.clerk
        payload = {
            "type": "paper-ballot",
            "election": ELECTION,
            "voter": voter_token(voter),
            "projects": projects,
            "cast_at": CAST_AT,
            "nonce": str(uuid.uuid4()),
            "polling_point": point,
        }
        envelope = sign_envelope(payload, signer)
        return await self._submit(envelope)

    async def lookup(self, voter: int, *, point: str = "council") -> int:
        """A clerk's voter-token lookup (as the /clerk page makes before a paper ballot): the
        token only in its tag, decided by the rules."""
        payload = {
            "type": "voter-lookup",
            "election": ELECTION,
            "polling_point": point,
            "nonce": str(uuid.uuid4()),
        }
        cast = await self.casting.submit(
            sign_envelope(payload, self.keys.clerk), token=voter_token(voter)
        )
        assert not cast.replay, "tests never replay"
        return cast.position

    async def spoiled(self, point: str = "council") -> int:
        payload = {
            "type": "spoiled-ballot",
            "election": ELECTION,
            "polling_point": point,
            "reason": "unreadable",
            "cast_at": CAST_AT,
            "nonce": str(uuid.uuid4()),
        }
        envelope = sign_envelope(payload, self.keys.clerk)
        return await self._submit(envelope)

    async def void(self, position: int, reason: str = "entered by mistake") -> int:
        payload = {
            "type": "void",
            "election": ELECTION,
            "entry": position,
            "reason": reason,
            "nonce": str(uuid.uuid4()),
        }
        return await self._submit(sign_envelope(payload, self.keys.supervisor))

    async def smuggle(self, payload: dict[str, Any], signer: SignerKey, tags: list[str]) -> int:
        """Append straight through the Ledger, with no rule asked (what a broken server does).
        A ballot or paper ballot gets its receipt tag, as the write path gives it."""
        envelope = sign_envelope(payload, signer)
        if payload.get("type") in ("ballot", "paper-ballot"):
            tags = [*tags, receipt_tag(receipt_code(base64.b64decode(envelope["sig"])))]
        appended = await self.ledger.append(envelope, tags=tags)
        return appended.position


@asynccontextmanager
async def election_log(url: str, keys: AuditKeys, **overrides: Any) -> AsyncIterator[ElectionLog]:
    """An opened ledger with the election defined and site, clerk, clerk2, supervisor keys."""
    document = definition(**overrides)
    store = open_store(url)
    await store.open()
    ledger = Ledger(store, ELECTION, log_signer=keys.log, verify_workers=0)
    await ledger.open()
    try:
        log = ElectionLog(ledger, keys, document)
        if await ledger.size() == 0:
            await create_election(
                log.casting,
                log.election,
                keys.admin,
                b"\0" * 32,
                [
                    (keys.site, "site", None),
                    (keys.clerk, "clerk", "council"),
                    (keys.clerk2, "clerk", "council"),
                    (keys.supervisor, "supervisor", None),
                    (keys.clerk3, "clerk", "district-1"),
                ],
            )
        yield log
    finally:
        await ledger.close()
        await store.close()


async def export(url: str, path: Path) -> bytes:
    """``uchast export log`` of the test election into ``path``; returns the bytes."""
    store = open_store(url)
    await store.open()
    try:
        out = io.BytesIO()
        await export_log(store, ELECTION, out)
    finally:
        await store.close()
    path.write_bytes(out.getvalue())
    return out.getvalue()


async def standard_log(log: ElectionLog) -> None:
    """About 30 entries: online and paper ballots, a spoiled ballot and a void."""
    for n in range(16):
        picks = [["L01", "S01"], ["L02", "L03"], ["S02"], ["L01", "L02", "S03"]][n % 4]
        await log.ballot(n, picks)
    await log.ballot(0, ["L03"])  # a second ballot within the limits
    await log.paper(100, ["L01", "S02"])
    await log.paper(101, ["L02"], clerk=log.keys.clerk3, point="district-1")
    await log.spoiled()
    wrong = await log.paper(102, ["S03"])
    await log.void(wrong)
    await log.paper(102, ["S01"])
    await log.ballot(103, ["L03", "S03"])


def tags_of(payload: dict[str, Any], target: rules.PriorEntry | None = None) -> list[str]:
    """The tags the rules give an accepted entry, so that only the rule itself is broken."""
    tags = [f"nonce:{payload['nonce']}"]
    if "voter" in payload:
        tags.append(f"voter:{payload['voter']}")
    tags += [f"project:{p}" for p in payload.get("projects", [])]
    if "polling_point" in payload:
        tags.append(f"point:{payload['polling_point']}")
    if payload["type"] == "void":
        tags.append(f"void-of:{payload['entry']}")
        if target is not None and "voter" in target.payload:
            tags.append(f"voter:{target.payload['voter']}")
    return tags
