"""An app on a real store with the example election, its keys registered, on 2018's clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from api.service import ServiceConfig
from tests.factories import Keys, opened_ledger

VOTING_DAY = datetime(2018, 10, 5, 12, 0, tzinfo=ZoneInfo("Europe/Kyiv"))
VOTER_KEY = bytes(range(32))


@dataclass
class Setup:
    client: TestClient[Any, Any]
    keys: Keys
    url: str


@pytest.fixture
async def service(
    aiohttp_client: Callable[[Any], Awaitable[TestClient[Any, Any]]], sqlite_url: str
) -> AsyncIterator[Setup]:
    keys = Keys()
    async with opened_ledger(sqlite_url, keys):
        pass
    config = ServiceConfig(sqlite_url, keys.log, voter_key=VOTER_KEY, clock=lambda: VOTING_DAY)
    client = await aiohttp_client(create_app(config))
    yield Setup(client, keys, sqlite_url)
