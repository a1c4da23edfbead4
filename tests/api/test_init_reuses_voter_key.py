"""Finding: `uchast init` silently reused an existing `voter.key`, so one voter key served every
election and two elections' first entries published the same `voter_key_id`. Now init always
makes a new voter key, refuses a `--voter-key` file that exists, and refuses a key whose id
another election of the same database already names."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from api.cli import main
from ledger.entry import entry_payload
from ledger.store import open_store
from tests.factories import EXAMPLE


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def election_file(tmp_path: Path, election: str) -> Path:
    path = tmp_path / f"{election}.toml"
    path.write_text(EXAMPLE.read_text().replace('id = "zhytomyr-2018"', f'id = "{election}"', 1))
    return path


def voter_key_ids(db: Path) -> dict[str, str]:
    """Each election's published voter key id, read from its first entry."""

    async def read() -> dict[str, str]:
        store = open_store(f"sqlite:///{db}")
        await store.open()
        try:
            return {
                log: entry_payload((await store.read(log, 0, 1))[0].data)["voter_key_id"]
                for log in await store.log_ids()
            }
        finally:
            await store.close()

    return asyncio.run(read())


@pytest.fixture
def admin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "admin.key"
    assert run(capsys, "keygen", "admin.zhytomyr", "--out", str(path))[0] == 0
    return path


def test_existing_voter_key_file_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, admin: Path
) -> None:
    """A stray voter.key is never picked up: one line, non-zero exit, nothing written."""
    stray = tmp_path / "voter.key"
    stray.write_text(bytes(range(32)).hex() + "\n")
    db = tmp_path / "u.db"
    args = ["--db", f"sqlite:///{db}", "--admin-key", str(admin), "--voter-key", str(stray)]
    status, out, err = run(capsys, "init", str(EXAMPLE), *args)
    assert status != 0 and out == ""
    assert err.count("\n") == 1 and "already exists" in err and "never reuses" in err
    assert stray.read_text() == bytes(range(32)).hex() + "\n"
    assert not db.exists()


def test_each_election_gets_its_own_voter_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, admin: Path
) -> None:
    """Two elections initialised in one database publish two different voter key ids."""
    db = tmp_path / "u.db"
    for election in ("zhytomyr-2018", "zhytomyr-2019"):
        key = tmp_path / election / "voter.key"
        args = ["--db", f"sqlite:///{db}", "--admin-key", str(admin), "--voter-key", str(key)]
        assert run(capsys, "init", str(election_file(tmp_path, election)), *args)[0] == 0
    ids = voter_key_ids(db)
    assert sorted(ids) == ["zhytomyr-2018", "zhytomyr-2019"]
    assert ids["zhytomyr-2018"] != ids["zhytomyr-2019"]
    first = (tmp_path / "zhytomyr-2018" / "voter.key").read_text()
    assert first != (tmp_path / "zhytomyr-2019" / "voter.key").read_text()


def test_voter_key_id_of_another_election_is_refused(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    admin: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Should the new key's id be one another election of the database already names, init
    refuses in one line and writes neither the key file nor an election."""
    monkeypatch.setattr("api.cli.secrets.token_bytes", lambda n: b"\x07" * n)
    db = tmp_path / "u.db"
    base = ["--db", f"sqlite:///{db}", "--admin-key", str(admin), "--voter-key"]
    first = election_file(tmp_path, "zhytomyr-2018")
    assert run(capsys, "init", str(first), *base, str(tmp_path / "2018.key"))[0] == 0
    second = election_file(tmp_path, "zhytomyr-2019")
    status, out, err = run(capsys, "init", str(second), *base, str(tmp_path / "2019.key"))
    assert status != 0 and out == ""
    assert err.count("\n") == 1 and "zhytomyr-2018" in err and "never reused" in err
    assert not (tmp_path / "2019.key").exists()
    assert list(voter_key_ids(db)) == ["zhytomyr-2018"]


def test_default_voter_key_goes_to_a_new_file_per_election(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    admin: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without --voter-key, init writes <keys dir>/<election>/voter.key; a second init of the
    same election id (another database) finds that file and refuses instead of reusing it."""
    keys = tmp_path / "keys"
    monkeypatch.setenv("UCHAST_KEYS_DIR", str(keys))
    first = ["--db", f"sqlite:///{tmp_path / 'a.db'}", "--admin-key", str(admin)]
    status, out, _ = run(capsys, "init", str(EXAMPLE), *first)
    assert status == 0 and str(keys / "zhytomyr-2018" / "voter.key") in out
    second = ["--db", f"sqlite:///{tmp_path / 'b.db'}", "--admin-key", str(admin)]
    status, _, err = run(capsys, "init", str(EXAMPLE), *second)
    assert status != 0 and err.count("\n") == 1 and "already exists" in err
    assert not (tmp_path / "b.db").exists()
