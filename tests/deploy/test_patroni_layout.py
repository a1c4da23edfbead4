"""Threat: the high-availability layout in deploy/patroni/ is not what the failover trials ran:
a config Patroni rejects, a standby that is not synchronous, a primary that goes on alone."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.patroni import DCS, PATRONI, cluster_root
from tests.deploy.tools import DEPLOY
from tests.faults.patroni import require_patroni

NODES = sorted((DEPLOY / "patroni").glob("db*.yml"))
# Patroni checks that it could listen on the addresses; the layout's are not this machine's.
NOT_HERE = re.compile(r"^\S+\.listen \S+ didn't pass validation: 'Port \d+ is already in use\.'$")


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


@pytest.mark.parametrize("path", NODES, ids=lambda p: p.name)
def test_patroni_accepts_each_node(path: Path) -> None:
    require_patroni()
    run = subprocess.run([PATRONI, "--validate-config", str(path)], capture_output=True, text=True)
    problems = [
        line
        for line in (run.stdout + run.stderr).splitlines()
        if line.strip() and not NOT_HERE.match(line.strip())
    ]
    assert not problems, problems


def test_two_nodes_one_scope_distinct_names_and_addresses() -> None:
    nodes = [load(p) for p in NODES]
    assert len(nodes) >= 2
    assert len({n["scope"] for n in nodes}) == 1
    for key in ("name",):
        assert len({n[key] for n in nodes}) == len(nodes)
    assert len({n["postgresql"]["connect_address"] for n in nodes}) == len(nodes)
    assert len({n["restapi"]["connect_address"] for n in nodes}) == len(nodes)


def test_the_layout_guarantees_what_the_trials_ran() -> None:
    """Synchronous and strict (no acknowledgement on the primary alone), immediate failover of a
    crashed primary, pg_rewind, etcd's v2 API: as in the trials' cluster; and a watchdog."""
    for path in NODES:
        node = load(path)
        dcs = node["bootstrap"]["dcs"]
        for key in ("synchronous_mode", "synchronous_mode_strict", "maximum_lag_on_failover"):
            assert dcs[key] == DCS[key], (path.name, key)
        assert dcs["primary_start_timeout"] == DCS["primary_start_timeout"] == 0
        assert dcs["postgresql"]["use_pg_rewind"] is DCS["postgresql"]["use_pg_rewind"] is True
        assert dcs["postgresql"]["parameters"]["synchronous_commit"] == "on"
        assert "etcd" in node and "etcd3" not in node
        assert node["watchdog"]["mode"] == "required"


def test_etcd_serves_the_v2_api_patroni_uses() -> None:
    etcd = load(DEPLOY / "patroni" / "etcd.conf.yml")
    assert etcd["enable-v2"] is True
    members = etcd["initial-cluster"].split(",")
    assert len(members) >= 3, "fewer than three etcd members: losing one loses the quorum"


def test_cluster_root_is_reachable_by_postgres() -> None:
    root = cluster_root()
    try:
        assert root.stat().st_mode & 0o005 == 0o005
    finally:
        root.rmdir()
