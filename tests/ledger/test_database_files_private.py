"""Finding: the SQLite database and its -wal/-shm files were created 0644, readable by every
local user; they hold every ballot and the voter tokens. They are now created 0600 whatever the
umask (SQLite gives the -wal and -shm files the database file's own mode)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.sqlite import SQLiteStore


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


async def test_database_files_are_created_private(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "uchast.db"
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    try:
        await store.create_log("test-2018")
        files = [path, path.with_name("uchast.db-wal"), path.with_name("uchast.db-shm")]
        modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
        assert modes == dict.fromkeys(modes, 0o600), modes
    finally:
        await store.close()
