"""Threat: a lost clerk or site key keeps signing after the admin revoked it."""

from __future__ import annotations

import asyncio

import pytest

from ledger.errors import KeyRevokedError
from tests.factories import Keys, ballot_envelope, opened_ledger, revoke_envelope, voter_token


async def test_revocation_takes_effect_at_its_log_position(store_url: str) -> None:
    """Racing a revocation, a key's entries sequenced before it stand and after it are refused."""
    keys = Keys()
    async with opened_ledger(store_url, keys) as ledger:
        ballots = [
            ledger.append(ballot_envelope(keys.site, voter_token(n), ["L01"])) for n in range(60)
        ]
        revoke = ledger.append(revoke_envelope(keys, keys.site))
        results = await asyncio.gather(*ballots[:30], revoke, *ballots[30:], return_exceptions=True)
        revocation = results[30]
        assert not isinstance(revocation, BaseException)
        outcomes = results[:30] + results[31:]
        accepted = [r for r in outcomes if not isinstance(r, BaseException)]
        refused = [r for r in outcomes if isinstance(r, BaseException)]
        assert accepted and refused
        assert all(a.position < revocation.position for a in accepted)
        assert all(isinstance(r, KeyRevokedError) for r in refused)
        assert all(r.at == revocation.position for r in refused)  # type: ignore[attr-defined]
        with pytest.raises(KeyRevokedError):
            await ledger.append(ballot_envelope(keys.site, voter_token(999), ["L01"]))
        assert await ledger.size() == 4 + len(accepted) + 1
