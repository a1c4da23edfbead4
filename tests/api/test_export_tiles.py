"""`uchast export tiles` writes the tiled log exactly as the server serves it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from api.cli import main
from api.service import ServiceConfig
from ledger.tiles import tiles_for_size
from tests.factories import ELECTION, Keys, opened_ledger
from tests.ledger.conformance import cast

ClientFactory = Callable[[Any], Awaitable[TestClient[Any, Any]]]


def files_under(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


async def test_exported_files_are_what_the_routes_serve(
    aiohttp_client: ClientFactory, store_url: str, tmp_path: Path
) -> None:
    """Every file of the export is byte for byte the HTTP resource of the same path, and the
    files are exactly the checkpoint and the tiles of its size; a rerun on a grown log adds
    the new tiles and replaces the checkpoint."""
    keys = Keys()
    out = tmp_path / "tiles"
    async with opened_ledger(store_url, keys) as ledger:
        for start in range(0, 300, 100):
            await asyncio.gather(*(cast(ledger, keys, n) for n in range(start, start + 100)))
        argv = ["export", "tiles", "--db", store_url, "--election", ELECTION, "--out", str(out)]
        assert await asyncio.to_thread(main, argv) == 0
        first = files_under(out)
        await cast(ledger, keys, 1000)
        size = await ledger.size()
    assert await asyncio.to_thread(main, argv) == 0
    exported = files_under(out)

    expected = {"checkpoint", *(t.path for t in tiles_for_size(size))}
    older_partials = {path for path in first if path not in expected}
    assert older_partials == {"tile/0/001.p/48", "tile/entries/001.p/48"}
    assert set(exported) == expected | older_partials
    assert all(exported[path] == data for path, data in first.items() if path != "checkpoint")

    client = await aiohttp_client(create_app(ServiceConfig(store_url, keys.log)))
    for path, data in exported.items():
        response = await client.get(f"/v1/elections/{ELECTION}/log/{path}")
        assert response.status == 200, path
        assert await response.read() == data, path
    assert not list(out.rglob(".tmp-*"))
    assert (out / "tile/0/000").stat().st_mode & 0o777 == 0o644


async def test_export_refuses_a_log_without_checkpoint(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No checkpoint, nothing to agree with: one clear line, exit 2, no files."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys, register=False):
        pass
    out = tmp_path / "tiles"
    argv = ["export", "tiles", "--db", sqlite_url, "--election", ELECTION, "--out", str(out)]
    assert await asyncio.to_thread(main, argv) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert not out.exists()


async def test_export_writes_the_published_cosigned_checkpoint(
    sqlite_url: str, tmp_path: Path
) -> None:
    """With witnesses, the server publishes the latest cosigned checkpoint (its lines added):
    the export writes that one, and the tiles of its size."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys) as ledger:
        await cast(ledger, keys, 0)
        cosigned = await ledger.latest_checkpoint()
        assert cosigned is not None
        note = cosigned.note + "— witness.example AAAA\n"
        await ledger.store.save_cosigned_checkpoint(ledger.log_id, cosigned.size, note)
        await cast(ledger, keys, 1)
        assert await ledger.size() == cosigned.size + 1
    out = tmp_path / "tiles"
    argv = ["export", "tiles", "--db", sqlite_url, "--election", ELECTION, "--out", str(out)]
    assert await asyncio.to_thread(main, argv) == 0
    assert (out / "checkpoint").read_text() == note
    assert set(files_under(out)) == {"checkpoint", *(t.path for t in tiles_for_size(cosigned.size))}
