"""A throwaway PostgreSQL cluster of its own (initdb, pg_ctl) on a free port: for tests where
"another database" must be another server, which can be stopped while the main one runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.servers import free_port
from tests.conftest import IN_CI

PG_BIN = Path(os.environ.get("UCHAST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run ``command`` as the postgres user."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


class PgCluster:
    """A cluster in a temporary directory, trust authentication, user postgres, listening on
    127.0.0.1 at ``port``. ``stop`` and ``start`` it at will; ``remove`` drops it for good.

    ``standby_of``: instead of a new cluster, a hot standby of that (running) one, copied by
    ``pg_basebackup -R``: it streams the primary's WAL and answers reads only."""

    def __init__(self, standby_of: PgCluster | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="uchast-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        if standby_of is None:
            command = [
                *(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres"),
                *("--auth=trust", "-E", "UTF8", "--no-sync"),
            ]
        else:  # initdb's pg_hba.conf lets 127.0.0.1 replicate, trusted
            command = [
                *(str(PG_BIN / "pg_basebackup"), "-D", str(self.data), "-U", "postgres"),
                *("-h", "127.0.0.1", "-p", str(standby_of.port), "-R", "-X", "stream"),
                "--no-sync",
            ]
        subprocess.run(_as_postgres(command), check=True, capture_output=True)

    @property
    def url(self) -> str:
        """The cluster's ``postgres`` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            _as_postgres(
                [
                    *(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options),
                    *("-l", str(self.dir / "server.log"), "-w", "start"),
                ]
            ),
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        """Stop at once (no waiting for clients): as a cluster that is lost."""
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]),
            capture_output=True,
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def require_pg_bin() -> None:
    """Skip locally, fail under CI=true, without PostgreSQL's server programs."""
    if not (PG_BIN / "initdb").exists():
        message = f"no initdb in {PG_BIN} (set UCHAST_PG_BIN)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def replicated_pg_clusters() -> Iterator[tuple[PgCluster, PgCluster]]:
    """A fresh primary and a hot standby streaming from it, both running; removed afterwards.
    (A generator for a module- or session-scoped fixture: two clusters cost a few seconds.)"""
    require_pg_bin()
    primary = PgCluster()
    standby: PgCluster | None = None
    try:
        primary.start()
        standby = PgCluster(standby_of=primary)
        standby.start()
        yield primary, standby
    finally:
        if standby is not None:
            standby.remove()
        primary.remove()
