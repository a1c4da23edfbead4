"""The ledger conformance suite on PostgreSQL (a fresh database per test)."""

from __future__ import annotations

import pytest

from tests.ledger.conformance import LedgerConformance


class TestPostgresLedger(LedgerConformance):
    @pytest.fixture
    def url(self, pg_url: str) -> str:
        return pg_url
