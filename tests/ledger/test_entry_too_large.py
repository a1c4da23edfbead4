"""Threat: an entry too long for a C2SP entry bundle (its length prefix is 16 bits). Served, it
would be cut or corrupt every bundle after it. The log takes entries of up to 65,535 bytes,
served byte for byte, and refuses a longer one before anything is written: through the ledger,
`uchast init` and `uchast import-pabulib` (an election definition is the one entry that can grow
that large), answered over HTTP as 413 `entry-too-large`."""

from __future__ import annotations

import asyncio
import copy
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from api.cli import main
from api.problems import problem_middleware
from ledger.casting import Casting, check_election_size, create_election
from ledger.errors import EntryTooLargeError
from ledger.keys import sign_envelope
from ledger.store import open_store
from ledger.tiles import MAX_ENTRY_SIZE, Tile, read_tile
from tests.factories import (
    ELECTION,
    EXAMPLE,
    Keys,
    election_envelope,
    example_definition,
    opened_ledger,
)
from tests.ledger.conformance import cast
from votes.election import election_from_dict


def padded(definition: dict[str, Any], padding: int) -> dict[str, Any]:
    """The definition with its English title grown by ``padding`` ASCII bytes."""
    grown = copy.deepcopy(definition)
    grown["title"]["en"] += "x" * padding
    return grown


async def election_entry_size(url: str, keys: Keys, definition: dict[str, Any]) -> int:
    """The stored size of the election entry a log gets for ``definition``."""
    async with opened_ledger(url, keys, register=False) as ledger:
        await ledger.append(election_envelope(keys, definition=definition))
        [entry] = await ledger.entries(0, 1)
        return len(entry.data)


async def test_an_entry_of_65535_bytes_is_served_and_one_more_byte_is_refused(
    tmp_path: Path,
) -> None:
    """65,535 bytes: appended, and its bundle is 0xFFFF and the entry byte for byte; 65,536:
    EntryTooLargeError with both numbers, and the log stays empty (no entry, no checkpoint)."""
    keys = Keys()
    base = example_definition()
    small = await election_entry_size(f"sqlite:///{tmp_path / 'probe.db'}", keys, base)
    exact = padded(base, MAX_ENTRY_SIZE - small)

    url = f"sqlite:///{tmp_path / 'exact.db'}"
    async with opened_ledger(url, keys, register=False) as ledger:
        await ledger.append(election_envelope(keys, definition=exact))
        [entry] = await ledger.entries(0, 1)
        assert len(entry.data) == MAX_ENTRY_SIZE
        checkpoint = await ledger.latest_checkpoint()
        assert checkpoint is not None and checkpoint.size == 1
        bundle = await read_tile(ledger.store, ELECTION, Tile(0, 0, 1, entries=True), 1)
        assert bundle == b"\xff\xff" + entry.data

    url = f"sqlite:///{tmp_path / 'over.db'}"
    async with opened_ledger(url, keys, register=False) as ledger:
        with pytest.raises(EntryTooLargeError) as refused:
            await ledger.append(election_envelope(keys, definition=padded(exact, 1)))
        assert (refused.value.size, refused.value.limit) == (MAX_ENTRY_SIZE + 1, MAX_ENTRY_SIZE)
        assert await ledger.size() == 0
        assert await ledger.latest_checkpoint() is None
        assert await ledger.entries(0, 10) == []


async def test_the_check_before_init_measures_what_the_log_would_store(tmp_path: Path) -> None:
    """check_election_size (what init and import-pabulib ask before writing anything) passes
    the election whose first entry create_election stores at exactly 65,535 bytes, and refuses
    it one byte longer, as the log itself does."""
    keys = Keys()
    voter_key = bytes(range(32))
    base = example_definition()

    async def stored_size(definition: dict[str, Any], name: str) -> int:
        async with opened_ledger(f"sqlite:///{tmp_path / name}", keys, register=False) as ledger:
            await create_election(
                Casting(ledger), election_from_dict(definition), keys.admin, voter_key
            )
            [entry] = await ledger.entries(0, 1)
            return len(entry.data)

    exact = padded(base, MAX_ENTRY_SIZE - await stored_size(base, "probe.db"))
    assert await stored_size(exact, "exact.db") == MAX_ENTRY_SIZE
    check_election_size(election_from_dict(exact), keys.admin, voter_key)
    over = election_from_dict(padded(exact, 1))
    with pytest.raises(EntryTooLargeError) as refused:
        check_election_size(over, keys.admin, voter_key)
    assert refused.value.size == MAX_ENTRY_SIZE + 1
    with pytest.raises(EntryTooLargeError):
        await stored_size(padded(exact, 1), "over.db")


async def test_a_refused_entry_does_not_disturb_its_batch(store_url: str) -> None:
    """An oversized entry appended (unruled, as a broken writer would) among concurrent ballots
    is refused alone; the ballots are appended, and every bundle parses."""
    keys = Keys()
    async with opened_ledger(store_url, keys) as ledger:
        size = await ledger.size()
        oversized = sign_envelope(
            {
                "type": "ballot",
                "election": ELECTION,
                "voter": "ab" * 32,
                "projects": ["L01"],
                "padding": "x" * MAX_ENTRY_SIZE,
            },
            keys.site,
        )
        results = await asyncio.gather(
            *(cast(ledger, keys, n) for n in range(10)),
            ledger.append(oversized),
            return_exceptions=True,
        )
        assert isinstance(results[-1], EntryTooLargeError)
        assert results[-1].size > MAX_ENTRY_SIZE
        assert sorted(r for r in results[:-1] if isinstance(r, int)) == list(range(size, size + 10))
        assert await ledger.size() == size + 10
        entries = await ledger.entries(0, size + 10)
        bundle = await read_tile(
            ledger.store, ELECTION, Tile(0, 0, size + 10, entries=True), size + 10
        )
        assert bundle is not None
        at, found = 0, []
        while at < len(bundle):
            (length,) = struct.unpack_from(">H", bundle, at)
            found.append(bundle[at + 2 : at + 2 + length])
            at += 2 + length
        assert found == [e.data for e in entries]


def test_init_refuses_an_election_too_large_before_writing_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`uchast init` of an election whose definition would exceed the limit: exit 1 with the
    sizes, no voter key file, no log in the database."""
    admin = tmp_path / "admin.key"
    assert main(["keygen", "admin.zhytomyr", "--out", str(admin)]) == 0
    text = EXAMPLE.read_text(encoding="utf-8")
    title = 'en = "Zhytomyr participatory budget 2018"'
    assert title in text
    big = tmp_path / "big.toml"
    big.write_text(text.replace(title, title[:-1] + "x" * 70_000 + '"', 1), encoding="utf-8")
    db = tmp_path / "u.db"
    voter_key = tmp_path / "voter.key"
    capsys.readouterr()
    argv = ["init", str(big), "--db", f"sqlite:///{db}", "--admin-key", str(admin)]
    assert main([*argv, "--voter-key", str(voter_key)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "65535 bytes" in err and "Nothing was written" in err
    assert not voter_key.exists()
    assert not db.exists() or asyncio.run(_log_ids(f"sqlite:///{db}")) == []


async def _log_ids(url: str) -> list[str]:
    store = open_store(url)
    await store.open()
    try:
        return await store.log_ids()
    finally:
        await store.close()


def _pabulib_with_projects(count: int, name_length: int) -> str:
    """An approval election in Pabulib format with ``count`` long-named projects, one vote."""
    projects = "\n".join(
        f"{i};1000;{int(i == 1)};Project {i} {'y' * name_length};;{int(i == 1)}"
        for i in range(1, count + 1)
    )
    return (
        "META\nkey;value\ndescription;Too many projects\ncountry;Poland\nunit;Testowo\n"
        f"instance;2026\nnum_projects;{count}\nnum_votes;1\nbudget;1000\nvote_type;approval\n"
        "rule;greedy\ndate_begin;01.06.2025\ndate_end;15.06.2025\nmax_length;4\nlanguage;pl\n"
        "currency;PLN\n"
        "PROJECTS\nproject_id;cost;votes;name;category;selected\n"
        f"{projects}\n"
        "VOTES\nvoter_id;vote\n1;1\n"
    )


def test_pabulib_import_refuses_a_definition_too_large_before_writing_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`uchast import-pabulib` of a file with 400 long-named projects: refused with the sizes
    before any key file or log is made; the same file with 40 projects imports."""
    db = tmp_path / "u.db"
    keys = tmp_path / "keys"
    big = tmp_path / "Poland_Testowo_2026.pb"
    big.write_text(_pabulib_with_projects(400, 150), encoding="utf-8")
    argv = ["import-pabulib", str(big), "--db", f"sqlite:///{db}", "--dir", str(keys)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "bytes; the log takes entries of at most 65535 bytes" in err, err
    assert not keys.exists()
    assert not db.exists() or asyncio.run(_log_ids(f"sqlite:///{db}")) == []

    big.write_text(_pabulib_with_projects(40, 150), encoding="utf-8")
    assert main(argv) == 0, capsys.readouterr()


async def test_http_answers_413_entry_too_large() -> None:
    """The refusal leaves the API as a 413 problem with the sizes as members."""

    async def handler(_: web.Request) -> web.Response:
        raise EntryTooLargeError(70_123, MAX_ENTRY_SIZE)

    app = web.Application(middlewares=[problem_middleware])
    app.router.add_post("/append", handler)
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/append", json={})
        assert response.status == 413
        assert response.content_type == "application/problem+json"
        body = json.loads(await response.text())
    assert body["code"] == "entry-too-large"
    assert (body["size"], body["limit"]) == (70_123, 65_535)
    assert body["message_uk"] and body["message_en"].startswith("The entry would be 70123 bytes")
