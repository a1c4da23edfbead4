"""The uchast command line as an administrator uses it: keys, init, amend, keys add, export."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from api.cli import build_parser, main
from tests.factories import EXAMPLE


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    """`--help` works for the program and each subcommand."""
    commands = [
        [],
        ["keygen"],
        ["init"],
        ["amend"],
        ["keys", "add"],
        ["keys", "revoke"],
        ["serve"],
        ["demo"],
        ["export", "log"],
    ]
    for command in commands:
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args([*command, "--help"])
        assert exit_.value.code == 0
        assert "usage: uchast" in capsys.readouterr().out


def test_administrator_flow(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """keygen, init, amend (before opening only), keys add and export, with one-line errors."""
    db = f"sqlite:///{tmp_path / 'u.db'}"
    admin, site = tmp_path / "admin.key", tmp_path / "site.key"
    status, out, _ = run(capsys, "keygen", "admin.zhytomyr", "--out", str(admin))
    assert status == 0 and out.startswith("admin.zhytomyr+")
    assert stat.S_IMODE(admin.stat().st_mode) == 0o600
    status, _, err = run(capsys, "keygen", "admin.zhytomyr", "--out", str(admin))
    assert status == 2 and err.count("\n") == 1 and "exists" in err
    status, site_vkey, _ = run(capsys, "keygen", "site.e-dem", "--out", str(site))

    voter_key = str(tmp_path / "voter.key")
    args = ["--db", db, "--admin-key", str(admin), "--voter-key", voter_key]
    status, out, _ = run(capsys, "init", str(EXAMPLE), *args)
    assert status == 0 and "zhytomyr-2018 created" in out
    assert stat.S_IMODE(Path(voter_key).stat().st_mode) == 0o600
    status, _, err = run(capsys, "init", str(EXAMPLE), *args)
    assert status == 2 and "already exists" in err

    amended = tmp_path / "amended.toml"
    amended.write_text(EXAMPLE.read_text().replace('seed = "', 'seed = "amended-', 1))
    admin_args = ["--db", db, "--admin-key", str(admin)]
    status, _, err = run(
        capsys, "amend", str(amended), *admin_args, "--clock", "2018-10-02T12:00:00+03:00"
    )
    assert status == 1 and err.count("\n") == 1 and "opened" in err.lower()
    status, out, _ = run(
        capsys, "amend", str(amended), *admin_args, "--clock", "2018-09-20T12:00:00+03:00"
    )
    assert status == 0 and "amended at log position 1" in out

    status, out, _ = run(
        capsys, "keys", "add", *admin_args, "--role", "site", "--vkey", site_vkey.strip()
    )
    assert status == 0 and "registered site.e-dem+" in out
    status, _, err = run(capsys, "keys", "add", *admin_args, "--role", "site", "--vkey", "junk")
    assert status == 1 and err.startswith("uchast: ") and err.count("\n") == 1

    out_file = tmp_path / "log.jsonl"
    status, _, _ = run(capsys, "export", "log", "--db", db, "--out", str(out_file))
    lines = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert status == 0 and lines[0]["format"] == "uchast-log/1" and lines[0]["size"] == 3
    assert [line["index"] for line in lines if "index" in line] == [0, 1, 2]
    assert lines[2]["entry"]["type"] == "election-amended"

    status, _, err = run(capsys, "export", "log", "--db", f"sqlite:///{tmp_path}/none/x.db")
    assert status != 0 and err.count("\n") == 1


def test_void_through_a_running_server(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sqlite_url: str
) -> None:
    """`uchast void` signs with the supervisor's key and sends the void to the server, which
    checks it like any write: the ballot leaves the count, a second void of it and a void
    signed by a non-supervisor key are refused with the server's reason, one line each."""
    import asyncio
    import urllib.request

    from ledger.casting import Casting
    from tests.api.servers import serving
    from tests.factories import ELECTION, Keys, ballot_envelope, opened_ledger, voter_token

    keys = Keys()

    async def prepare() -> int:
        async with opened_ledger(sqlite_url, keys) as ledger:
            cast = await Casting(ledger).submit(ballot_envelope(keys.site, voter_token(1), ["L01"]))
            return cast.position

    position = asyncio.run(prepare())
    keys.log.save(tmp_path / "log.key")
    keys.supervisor.save(tmp_path / "supervisor.key")
    keys.site.save(tmp_path / "site.key")
    (tmp_path / "voter.key").write_text(bytes(range(32)).hex())

    with serving(sqlite_url, tmp_path) as (urls, _):
        void = ["void", str(position), "--reason", "entered twice", "--server", urls[0]]
        assert main([*void, "--key", str(tmp_path / "supervisor.key")]) == 0
        out = capsys.readouterr().out
        assert f"voided entry {position} of {ELECTION}" in out
        with urllib.request.urlopen(f"{urls[0]}/v1/elections/{ELECTION}/results") as response:
            results = json.load(response)
        assert results["turnout"]["voided"] == 1
        assert all(p["votes"] == 0 for c in results["categories"] for p in c["projects"])

        assert main([*void, "--key", str(tmp_path / "supervisor.key")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("uchast: void refused (void-refused):") and "\n" not in err
        assert main([*void, "--key", str(tmp_path / "site.key")]) == 2
        assert "void refused (role-forbidden)" in capsys.readouterr().err

    assert main([*void, "--key", str(tmp_path / "supervisor.key")]) == 2
    assert "cannot reach the server" in capsys.readouterr().err
