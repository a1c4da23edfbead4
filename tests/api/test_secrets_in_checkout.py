"""Finding: private keys landed in the working directory, often a git checkout (`voter.key` from
`init`, `<election>-keys/` from `import-pabulib`, `demo-data/` from the demo). Now a command not
told where puts keys in a private keys directory outside it (0700 directories, 0600 files)."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.cli import main
from tests.factories import EXAMPLE
from tests.tally.test_pabulib_import import BOERNEROWO, data_file


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The current directory is a git work tree; HOME is a fresh directory elsewhere."""
    work = tmp_path / "checkout"
    work.mkdir()
    if shutil.which("git") is not None:
        subprocess.run(["git", "init", "-q", str(work)], check=True)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("UCHAST_KEYS_DIR", raising=False)
    yield work


def files_under(directory: Path) -> list[Path]:
    return [
        Path(root, name)
        for root, dirs, names in os.walk(directory)
        if ".git" not in Path(root).relative_to(directory).parts
        for name in names
    ]


def assert_no_key_in(work: Path) -> None:
    """No key file, and no directory holding one, was written under ``work``."""
    found = [p for p in files_under(work) if p.suffix == ".key" or "keys" in p.parent.name]
    assert found == []


def assert_private(directory: Path, up_to: Path) -> None:
    """``directory`` and its parents below ``up_to`` are 0700; its files 0600."""
    current = directory
    while current != up_to:
        assert stat.S_IMODE(current.stat().st_mode) == 0o700, current
        current = current.parent
    files = list(directory.iterdir())
    assert files
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


def admin_key(tmp_path: Path) -> Path:
    path = tmp_path / "admin.key"
    assert main(["keygen", "admin.zhytomyr", "--out", str(path)]) == 0
    return path


def test_init_writes_no_key_in_the_checkout(
    checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`init` without --voter-key: the voter key is in $XDG_DATA_HOME/uchast/keys/<election>."""
    data = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    db = f"sqlite:///{tmp_path / 'u.db'}"
    assert main(["init", str(EXAMPLE), "--db", db, "--admin-key", str(admin_key(tmp_path))]) == 0
    assert_no_key_in(checkout)
    assert_private(data / "uchast" / "keys" / "zhytomyr-2018", up_to=data)
    assert [p.name for p in (data / "uchast" / "keys" / "zhytomyr-2018").iterdir()] == ["voter.key"]


def test_keys_dir_from_the_environment(
    checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$UCHAST_KEYS_DIR, when set, is the keys directory."""
    keys = tmp_path / "elsewhere" / "keys"
    monkeypatch.setenv("UCHAST_KEYS_DIR", str(keys))
    db = f"sqlite:///{tmp_path / 'u.db'}"
    assert main(["init", str(EXAMPLE), "--db", db, "--admin-key", str(admin_key(tmp_path))]) == 0
    assert_no_key_in(checkout)
    assert_private(keys / "zhytomyr-2018", up_to=tmp_path)


def test_import_pabulib_writes_no_key_in_the_checkout(checkout: Path, tmp_path: Path) -> None:
    """`import-pabulib` without --dir: its keys are in ~/.local/share/uchast/keys/<election>."""
    path = data_file(BOERNEROWO)
    db = f"sqlite:///{tmp_path / 'u.db'}"
    assert main(["import-pabulib", str(path), "--db", db, "--election", "boernerowo-2026"]) == 0
    assert_no_key_in(checkout)
    home = tmp_path / "home"
    keys = home / ".local" / "share" / "uchast" / "keys" / "boernerowo-2026"
    assert_private(keys, up_to=home)
    assert {"admin.key", "log.key", "site.key", "voter.key"} <= {p.name for p in keys.iterdir()}


def test_explicit_directory_is_used_and_made_private(checkout: Path, tmp_path: Path) -> None:
    """An explicit --dir is honoured as given; made new, it is 0700 (parents it made too)."""
    path = data_file(BOERNEROWO)
    db = f"sqlite:///{tmp_path / 'u.db'}"
    chosen = tmp_path / "chosen" / "keys"
    assert main(["import-pabulib", str(path), "--db", db, "--dir", str(chosen)]) == 0
    assert_private(chosen, up_to=tmp_path)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_demo_writes_no_key_in_the_checkout(checkout: Path, tmp_path: Path) -> None:
    """`uchast demo`: the database in ./demo-data, the keys in ~/.local/share/uchast/keys/demo;
    run twice, the keys are new and the directory still private."""
    argv = ["demo", "--voters", "20", "--exit-after-simulation"]
    assert main([*argv, "--port", str(free_port())]) == 0
    home = tmp_path / "home"
    keys = home / ".local" / "share" / "uchast" / "keys" / "demo"
    first = (keys / "voter.key").read_text()
    assert main([*argv, "--port", str(free_port())]) == 0
    assert_no_key_in(checkout)
    assert (checkout / "demo-data" / "uchast.db").exists()
    assert_private(keys, up_to=home)
    assert (keys / "voter.key").read_text() != first
