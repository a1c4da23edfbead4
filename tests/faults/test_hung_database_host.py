"""Threat: a database host that hangs (a stopped machine: its sockets accept and never answer)
holds the server for ever, on connect or mid-query."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from ledger.errors import StoreUnavailableError
from ledger.postgres import PostgresStore

pytestmark = pytest.mark.postgres


class Proxy:
    """A TCP relay to ``target`` that can freeze: then it forwards nothing either way, and
    keeps every socket open, as a SIGSTOPped server would."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.frozen = asyncio.Event()
        self.server: asyncio.Server | None = None

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if self.frozen.is_set():
                    await asyncio.Event().wait()  # never
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.frozen.is_set():
            await asyncio.Event().wait()
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))


@contextlib.asynccontextmanager
async def proxy_to(pg_url: str) -> AsyncIterator[Proxy]:
    host, port = pg_url.split("@", 1)[1].split("/", 1)[0].split(":")
    proxy = Proxy((host, int(port)))
    proxy.server = await asyncio.start_server(proxy._handle, "127.0.0.1", 0)
    try:
        yield proxy
    finally:
        proxy.server.close()


def with_hosts(pg_url: str, hosts: list[str], options: str) -> str:
    host = pg_url.split("@", 1)[1].split("/", 1)[0]
    return pg_url.replace(host, ",".join(hosts)) + f"?target_session_attrs=read-write&{options}"


async def test_a_hung_first_host_does_not_hide_the_primary(pg_url: str) -> None:
    """The hung host is first in the multi-host URL: the store still connects, to the live
    one, within the per-host connect timeout (asyncpg alone would spend its whole timeout on
    the first host and fail)."""
    async with proxy_to(pg_url) as hung:
        hung.frozen.set()
        live = pg_url.split("@", 1)[1].split("/", 1)[0]
        store = PostgresStore(with_hosts(pg_url, [hung.host, live], "connect_timeout=1"))
        began = time.monotonic()
        await store.open()
        try:
            await store.create_log("hung-first")
            assert await store.size("hung-first") == 0
        finally:
            await store.close()
        assert time.monotonic() - began < 5


async def test_a_query_on_a_host_that_hangs_fails_as_unavailable_in_time(pg_url: str) -> None:
    """Connected through a host that then hangs: the next statement fails with
    StoreUnavailableError (503 for clients) after ``command_timeout``, not never; once the host
    answers again the same store serves again."""
    async with proxy_to(pg_url) as flaky:
        store = PostgresStore(
            with_hosts(pg_url, [flaky.host], "connect_timeout=1&command_timeout=1")
        )
        await store.open()
        try:
            await store.create_log("hangs")
            flaky.frozen.set()
            began = time.monotonic()
            with pytest.raises(StoreUnavailableError):
                await store.size("hangs")
            assert time.monotonic() - began < 3
            flaky.frozen.clear()
            for _ in range(50):  # the pool replaces the connections it gave up on
                try:
                    assert await store.size("hangs") == 0
                    break
                except StoreUnavailableError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("the store did not recover")
        finally:
            await store.close()
