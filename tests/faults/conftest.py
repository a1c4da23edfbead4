"""Fixtures of the fault trials."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.patroni import PatroniCluster
from tests.faults.patroni import started_cluster


@pytest.fixture(scope="session")
def patroni_cluster() -> Iterator[PatroniCluster]:
    """One Patroni cluster (etcd, a primary, a synchronous standby) for every failover trial:
    each trial works in its own database and leaves the cluster healthy again."""
    yield from started_cluster()
