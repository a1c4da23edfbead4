"""The ledger conformance suite on the embedded SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ledger.conformance import LedgerConformance


class TestSQLiteLedger(LedgerConformance):
    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'uchast.db'}"
