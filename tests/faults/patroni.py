"""The Patroni cluster of the failover trials (``bench/patroni.py``), as the tests start it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from bench.patroni import PatroniCluster, cluster_root, problem
from tests.conftest import IN_CI


def require_patroni() -> None:
    """Skip locally, fail under CI=true, when Patroni, etcd or PostgreSQL 15 is missing."""
    missing = problem()
    if missing:
        if IN_CI:
            pytest.fail(missing)
        pytest.skip(missing)


def started_cluster() -> Iterator[PatroniCluster]:
    """A started cluster, stopped and removed afterwards (the session fixture's body)."""
    require_patroni()
    root = cluster_root()
    cluster = PatroniCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
