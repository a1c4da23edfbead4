"""Many elections, many clusters: one `uchast serve --routes FILE` serves elections whose logs
are on different PostgreSQL servers (the main one and a second, its own initdb). Ballots land on
their election's cluster; a new election is placed on a cluster while serving; a cluster that is
lost takes only its own elections down."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from api.routing import RoutesError, parse_routes, redact
from api.service import Service, ServiceConfig
from ledger.casting import Casting
from ledger.errors import UnknownElectionError
from ledger.log import Ledger
from ledger.store import open_store
from tests.api.servers import ROOT, free_port, serving
from tests.factories import (
    EXAMPLE,
    Keys,
    ballot_envelope,
    election_envelope,
    key_envelope,
    voter_token,
)
from tests.pg_cluster import PgCluster

ALPHA, BETA, GAMMA = "alpha-2018", "beta-2018", "gamma-2018"
PASSWORD = "s3cret-pw-of-delta"


async def define(url: str, election: str, keys: Keys) -> None:
    """The example election as ``election`` on ``url``, with the site key registered."""
    store = open_store(url)
    await store.open()
    ledger = Ledger(store, election, log_signer=keys.log)
    await ledger.open()
    try:
        casting = Casting(ledger)
        await casting.submit(election_envelope(keys, election))
        await casting.submit(key_envelope(keys, keys.site, "site", election=election))
    finally:
        await ledger.close()
        await store.close()


def ballots_by_log(url: str) -> dict[str, int]:
    """Ballot entries per election log, counted by SQL on the database at ``url``."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT l.id, count(e.position) FROM uchast_logs l LEFT JOIN uchast_entries e"
            " ON e.log = l.id AND e.type = 'ballot' GROUP BY l.id"
        ).fetchall()
    return {log: count for log, count in rows}


def write_routes(path: Path, routes: dict[str, str]) -> None:
    """Replace the routing file at once (written aside, renamed), as an operator's tool would."""
    text = "[elections]\n" + "".join(f'{e} = "{url}"\n' for e, url in routes.items())
    aside = path.with_suffix(".new")
    aside.write_text(text)
    os.replace(aside, path)


@dataclass
class Voting:
    """A client of one server: casts distinct voters' ballots and reads results."""

    session: aiohttp.ClientSession
    base: str
    keys: Keys
    voters: int = 0

    async def cast(self, election: str, projects: tuple[str, ...] = ("L01", "S01")) -> int:
        self.voters += 1
        envelope = ballot_envelope(
            self.keys.site, voter_token(self.voters), list(projects), election=election
        )
        url = f"{self.base}/v1/elections/{election}/ballots"
        async with self.session.post(url, json=envelope) as response:
            await response.read()
            return response.status

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(f"{self.base}{path}") as response:
            return response.status, await response.json(content_type=None)

    async def votes(self, election: str, project: str) -> int:
        status, document = await self.get(f"/v1/elections/{election}/results")
        assert status == 200, document
        for category in document["categories"]:
            for item in category["projects"]:
                if item["id"] == project:
                    return int(item["votes"])
        raise AssertionError(project)


def uchast(*argv: str) -> None:
    """Run the CLI as the operator does; it must succeed."""
    run = subprocess.run(
        [sys.executable, "-m", "api.cli", *argv], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr


@pytest.fixture
def keydir(tmp_path: Path) -> Iterator[Path]:
    """The server's log key and (unused by online ballots) voter key."""
    keys = Keys()
    keys.log.save(tmp_path / "log.key")
    (tmp_path / "voter.key").write_text(os.urandom(32).hex())
    yield tmp_path


async def test_elections_on_two_clusters_served_by_one_server(
    pg_url: str, second_pg_cluster: PgCluster, keydir: Path
) -> None:
    """Alpha on the main cluster (--db), beta on a second one (routing file): each ballot lands
    on its election's cluster and the results are each election's own. Gamma, initialised on
    the second cluster and added to the routing file while serving, is served without a
    restart, and steady ballots to alpha and beta meanwhile all succeed. A routing file that
    would move beta while it is served is refused: beta stays on its cluster."""
    keys = Keys()
    other = second_pg_cluster.url
    await define(pg_url, ALPHA, keys)
    await define(other, BETA, keys)
    routes = keydir / "routes.toml"
    write_routes(routes, {BETA: other})

    with serving(pg_url, keydir, args=["--routes", str(routes)]) as (urls, _):
        async with aiohttp.ClientSession() as session:
            voting = Voting(session, urls[0], keys)
            status, listing = await voting.get("/v1/elections")
            assert [e["id"] for e in listing["elections"]] == [ALPHA, BETA]

            assert [await voting.cast(ALPHA) for _ in range(3)] == [201] * 3
            assert [await voting.cast(BETA, ("L02", "S02")) for _ in range(2)] == [201] * 2
            assert ballots_by_log(pg_url) == {ALPHA: 3}
            assert ballots_by_log(other) == {BETA: 2}
            assert await voting.votes(ALPHA, "L01") == 3 and await voting.votes(ALPHA, "L02") == 0
            assert await voting.votes(BETA, "L02") == 2 and await voting.votes(BETA, "L01") == 0

            steady: list[tuple[str, int]] = []
            stop = asyncio.Event()

            async def steadily() -> None:
                while not stop.is_set():
                    for election in (ALPHA, BETA):
                        steady.append((election, await voting.cast(election)))
                    steady.append(("results", (await voting.get(f"/v1/elections/{BETA}"))[0]))
                    await asyncio.sleep(0.01)

            load = asyncio.create_task(steadily())
            assert (await voting.get(f"/v1/elections/{GAMMA}"))[0] == 404
            election_file = keydir / "gamma.toml"
            election_file.write_text(
                EXAMPLE.read_text().replace('id = "zhytomyr-2018"', f'id = "{GAMMA}"', 1)
            )
            keys.admin.save(keydir / "admin.key")
            await asyncio.to_thread(
                uchast, "init", str(election_file), "--db", other,
                "--admin-key", str(keydir / "admin.key"),
                "--voter-key", str(keydir / "gamma-voter.key"),
            )  # fmt: skip
            await asyncio.to_thread(
                uchast, "keys", "add", "--db", other, "--election", GAMMA,
                "--admin-key", str(keydir / "admin.key"),
                "--role", "site", "--vkey", keys.site.verifier.vkey,
            )  # fmt: skip
            write_routes(routes, {BETA: other, GAMMA: other})
            status, definition = await voting.get(f"/v1/elections/{GAMMA}")
            assert status == 200 and definition["id"] == GAMMA
            assert await voting.cast(GAMMA, ("L03",)) == 201
            await asyncio.sleep(0.2)
            stop.set()
            await load

            assert len(steady) >= 9 and {s for _, s in steady} <= {200, 201}, steady
            assert ballots_by_log(other)[GAMMA] == 1 and GAMMA not in ballots_by_log(pg_url)
            assert await voting.votes(GAMMA, "L03") == 1
            on_alpha = ballots_by_log(pg_url)[ALPHA]
            assert await voting.votes(ALPHA, "L01") == on_alpha
            assert await voting.votes(BETA, "L01") == ballots_by_log(other)[BETA] - 2

            # Moving a served election would split its log across two databases: refused.
            write_routes(routes, {BETA: pg_url, GAMMA: other})
            before = ballots_by_log(other)[BETA]
            assert (await voting.get("/readyz"))[0] == 200  # reads the changed file
            assert await voting.cast(BETA) == 201
            assert ballots_by_log(other)[BETA] == before + 1
            assert BETA not in ballots_by_log(pg_url)
    log = next(keydir.glob("server-*.log")).read_text()
    assert f"moves election {BETA}" in log and "refused" in log


async def test_a_lost_cluster_takes_down_only_its_elections(
    pg_url: str, second_pg_cluster: PgCluster, keydir: Path
) -> None:
    """With the second cluster stopped, beta (on it) answers 503 store-unavailable while alpha
    takes ballots and serves results; /readyz stays ready and names the cluster unavailable.
    Started again, the cluster serves beta again. A routed database that never answered (its
    URL with a password) shows in /readyz and the server's log without the password."""
    keys = Keys()
    other = second_pg_cluster.url
    await define(pg_url, ALPHA, keys)
    await define(other, BETA, keys)
    nowhere = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{free_port()}/uchast"
    routes = keydir / "routes.toml"
    write_routes(routes, {BETA: other, "delta-2018": nowhere})

    with serving(pg_url, keydir, args=["--routes", str(routes)]) as (urls, _):
        async with aiohttp.ClientSession() as session:
            voting = Voting(session, urls[0], keys)
            status, ready = await voting.get("/readyz")
            assert status == 200 and ready["database"] == "degraded", ready
            assert ready["clusters"] == {
                redact(pg_url): {"database": "ok", "elections": [ALPHA]},
                other: {"database": "ok", "elections": [BETA]},
                redact(nowhere): {"database": "unavailable", "elections": ["delta-2018"]},
            }
            assert PASSWORD not in str(ready) and "***" in redact(nowhere)
            status, problem = await voting.get("/v1/elections/delta-2018")
            assert status == 503 and problem["code"] == "store-unavailable"
            assert "127.0.0.1" not in str(problem), problem  # no database address to the public
            assert await voting.cast(ALPHA) == 201 and await voting.cast(BETA) == 201

            second_pg_cluster.stop()
            status, problem = await voting.get(f"/v1/elections/{BETA}/results")
            assert status == 503 and problem["code"] == "store-unavailable"
            assert await voting.cast(BETA) == 503
            assert [await voting.cast(ALPHA) for _ in range(3)] == [201] * 3
            assert await voting.votes(ALPHA, "L01") == 4
            status, ready = await voting.get("/readyz")
            assert status == 200 and ready["status"] == "ready"
            assert ready["clusters"][other] == {"database": "unavailable", "elections": [BETA]}
            assert ALPHA in ready["elections"] and BETA not in ready["elections"]
            status, listing = await voting.get("/v1/elections")
            assert status == 200 and [e["id"] for e in listing["elections"]] == [ALPHA]

            second_pg_cluster.start()
            for _ in range(100):
                if await voting.cast(BETA) == 201:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("beta not served after its cluster came back")
            assert ballots_by_log(other) == {BETA: 2}
    log = next(keydir.glob("server-*.log")).read_text()
    assert PASSWORD not in log and redact(nowhere) in log


def test_routing_file_is_read_strictly() -> None:
    """Anything but [elections] of election id = storage URL is an error naming the place;
    a password in a refused URL is not repeated."""
    default = "sqlite:///uchast.db"
    routes = parse_routes('[elections]\nlviv-2019 = "postgresql://u@b/db"\n', default)
    assert routes.url_of("lviv-2019") == "postgresql://u@b/db"
    assert routes.url_of("kyiv-2020") == default
    assert routes.urls() == [default, "postgresql://u@b/db"]
    assert parse_routes("[elections]\n", default).elections == {}
    refused = {
        "[elections\n": "not TOML",
        "": "no [elections] table",
        "elections = 1\n": "no [elections] table",
        '[elections]\nlviv-2019 = "x"\n[other]\n': "unknown top-level key(s) 'other'",
        '[elections]\n"Lviv 2019" = "sqlite:///x.db"\n': "'Lviv 2019' is not an election id",
        "[elections]\nlviv-2019 = 5\n": "elections.lviv-2019: expected a storage URL string",
        '[elections]\nlviv-2019 = "mysql://u:pw@h/db"\n': "'mysql://u:***@h/db': not a storage",
        '[elections]\nlviv-2019 = "postgresql://"\n': "names no database",
    }
    for text, reason in refused.items():
        with pytest.raises(RoutesError, match=r"routes\.toml") as error:
            parse_routes(text, default, "routes.toml")
        assert reason in str(error.value) and "pw@" not in str(error.value), str(error.value)


def test_redact_hides_passwords() -> None:
    """Passwords in the authority or the query never survive; the rest stays recognisable."""
    assert redact("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgresql://u@h/db?password=pw&sslmode=require") == (
        "postgresql://u@h/db?password=***&sslmode=require"
    )
    assert redact("postgresql://u:p@ss@h/db") == "postgresql://u:***@h/db"
    assert redact("sqlite:///var/lib/uchast.db") == "sqlite:///var/lib/uchast.db"
    assert redact("postgresql:/u:pw@h/db") == "***"


def test_serve_refuses_an_invalid_routing_file(tmp_path: Path) -> None:
    """`uchast serve --routes` with a bad file: one line naming the problem, exit 2."""
    routes = tmp_path / "routes.toml"
    routes.write_text('[elections]\nlviv-2019 = "postgresql:/u:pw@h/db"\n')
    Keys().log.save(tmp_path / "log.key")
    run = subprocess.run(
        [sys.executable, "-m", "api.cli", "serve", "--log-key", str(tmp_path / "log.key"),
         "--routes", str(routes), "--db", f"sqlite:///{tmp_path / 'u.db'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.startswith("uchast: ") and "not a storage URL" in run.stderr
    assert "lviv-2019" in run.stderr and "pw" not in run.stderr


async def test_sighup_rereads_the_routing_file(tmp_path: Path) -> None:
    """SIGHUP re-reads the routing file even when it looks unchanged (same inode, size and
    modification time); until then an election the file newly names is unknown."""
    keys = Keys()
    a, b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    zeta = "zeta-2018"
    await define(a, ALPHA, keys)
    await define(b, BETA, keys)
    await define(b, zeta, keys)
    routes = tmp_path / "routes.toml"
    routes.write_text(f'[elections]\n{BETA} = "{b}"\n#eta-2018 = "{b}"\n')
    before = os.stat(routes)
    service = Service(ServiceConfig(a, keys.log, routes_file=routes))
    await service.open()
    try:
        assert await service.election_ids() == [ALPHA, BETA]
        with routes.open("r+") as file:  # the same bytes but one: zeta named
            file.write(f'[elections]\n{BETA} = "{b}"\nzeta-2018 = "{b}"\n')
        os.utime(routes, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert os.stat(routes).st_ino == before.st_ino
        with pytest.raises(UnknownElectionError):
            await service.ledger(zeta)
        assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, None)  # else kill below
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.sleep(0.1)
        assert (await service.ledger(zeta)).store.url == b
        assert await service.election_ids() == [ALPHA, BETA, zeta]
    finally:
        await service.close()
