"""Shared fixtures: real databases (SQLite files, PostgreSQL databases created and dropped)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.pg_cluster import PgCluster

PG_ADMIN_URL = os.environ.get("UCHAST_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI") == "true"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"

_pg_status: str | None = None


def _postgres_problem() -> str:
    """Empty when the PostgreSQL server answers, else why not."""
    global _pg_status
    if _pg_status is None:
        try:
            import psycopg

            with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
                _pg_status = ""
        except Exception as exc:
            _pg_status = f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc}"
    return _pg_status


def require_postgres() -> None:
    """Skip locally, fail under CI=true, when PostgreSQL is missing."""
    problem = _postgres_problem()
    if problem:
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)


def require_shared(path: Path) -> Path:
    if not path.exists():
        if IN_CI:
            pytest.fail(f"{path} is missing")
        pytest.skip(f"{path} is missing")
    return path


def create_pg_database() -> str:
    import psycopg

    name = f"uchast_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    require_postgres()
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'uchast.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each store in turn: the conformance suite runs against both."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'uchast.db'}"
    else:
        require_postgres()
        url = create_pg_database()
        try:
            yield url
        finally:
            drop_pg_database(url)


@pytest.fixture
def second_pg_cluster() -> Iterator[PgCluster]:
    """Another PostgreSQL server, running (its own initdb, data directory and port; user
    postgres, trust), removed afterwards: the main one at 127.0.0.1:5432 is left as it is."""
    from tests.pg_cluster import PgCluster, require_pg_bin

    require_pg_bin()
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
