"""Threat: a deployment that is broken before it starts — a config nginx, Prometheus or
systemd rejects, an alert on a metric that does not exist, a compose file pointing nowhere."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from aiohttp.test_utils import TestClient
from prometheus_client import generate_latest

from api.app import create_app
from api.service import ServiceConfig
from ledger.keys import SignerKey
from ledger.policy import parse_policy
from tally.audit.monitor import Metrics as MonitorMetrics
from tests.api.conftest import VOTER_KEY, VOTING_DAY
from tests.deploy.tools import (
    DEPLOY,
    ROOT,
    VENV_BIN,
    nginx_config_here,
    require_tool,
    upstream_servers,
)
from tests.factories import ELECTION, Keys, ballot_envelope, opened_ledger, voter_token

COMPOSE = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
ALERTS = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
DASHBOARD = json.loads((DEPLOY / "grafana" / "dashboards" / "uchast.json").read_text())


def test_compose_file_wires_the_stack_together() -> None:
    """PostgreSQL, two uchast instances built from deploy/Dockerfile, nginx, Prometheus and
    Grafana; every mounted file exists; nginx's upstreams and Prometheus's targets are the
    uchast services; secrets come from the git-ignored deploy/secrets."""
    services = COMPOSE["services"]
    assert set(services) >= {"postgres", "uchast-1", "uchast-2", "nginx", "prometheus", "grafana"}
    instances = [name for name in services if name.startswith("uchast-")]
    for name in instances:
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).exists()
        assert "@postgres:5432/" in service["environment"]["UCHAST_DB"]
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
        for secret in service["secrets"]:
            assert secret in COMPOSE["secrets"]
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), source
    for secret in COMPOSE["secrets"].values():
        assert secret["file"].startswith("./secrets/")
    assert "secrets/" in (DEPLOY / ".gitignore").read_text().split()
    nginx = (DEPLOY / "nginx" / "nginx.conf").read_text()
    for upstream in ("uchast", "uchast_read"):  # as shipped: no replica, reads on the primary's
        assert sorted(upstream_servers(nginx, upstream)) == sorted(f"{i}:8080" for i in instances)
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    [job] = [j for j in prometheus["scrape_configs"] if j["job_name"] == "uchast"]
    assert sorted(job["static_configs"][0]["targets"]) == sorted(f"{i}:8080" for i in instances)
    assert services["postgres"]["healthcheck"]["test"]


def test_nginx_accepts_its_configuration(tmp_path: Path) -> None:
    """`nginx -t` passes on deploy/nginx/nginx.conf (upstream host names pointed here)."""
    nginx = require_tool("nginx")
    config = nginx_config_here(tmp_path, [18081, 18082], 18080)
    done = subprocess.run(
        [nginx, "-t", "-c", str(config), "-p", str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def test_prometheus_config_rules_and_alert_unit_tests_pass(tmp_path: Path) -> None:
    """promtool: the config and the rules are valid, and alerts_test.yml's cases (each alert
    fires when it should, and a quiet night or a minority refusal does not) all pass."""
    promtool = require_tool("promtool")
    for name in ("prometheus.yml", "alerts.yml", "alerts_test.yml"):
        shutil.copy(DEPLOY / "prometheus" / name, tmp_path / name)
    config = tmp_path / "prometheus.yml"
    config.write_text(config.read_text().replace("/etc/prometheus/alerts.yml", "alerts.yml"))
    for command in (["check", "config", "prometheus.yml"], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run([promtool, *command], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    names = {rule["alert"] for group in ALERTS["groups"] for rule in group["rules"]}
    assert {"UchastCheckpointStale", "UchastProjectionLag", "UchastRefusalSpike"} <= names
    assert "UchastServerErrors" in names
    tested = (DEPLOY / "prometheus" / "alerts_test.yml").read_text()
    assert all(f"alertname: {name}" in tested for name in names), "an alert without a test"


def metric_names(expression: str) -> set[str]:
    return set(re.findall(r"\buchast_[a-z_]+\b", expression))


def family(name: str) -> str:
    """The metric family a sample name belongs to."""
    return re.sub(r"_(bucket|sum|count|total|created)$", "", name)


async def test_every_metric_the_alerts_and_dashboard_use_is_exported(
    aiohttp_client: Callable[[Any], Awaitable[TestClient[Any, Any]]], sqlite_url: str
) -> None:
    """Each uchast_* name in alerts.yml and the Grafana dashboard is a family that a real
    server's /metrics exposes (after an accepted and a refused ballot), or `uchast monitor`'s."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys):
        pass
    config = ServiceConfig(
        sqlite_url,
        keys.log,
        voter_key=VOTER_KEY,
        clock=lambda: VOTING_DAY,
        witness_policy=parse_policy("quorum none\n"),  # the witness metrics come with a policy
    )
    client = await aiohttp_client(create_app(config))
    path = f"/v1/elections/{ELECTION}/ballots"
    assert (
        await client.post(path, json=ballot_envelope(keys.site, voter_token(1), ["L01"]))
    ).status == 201
    stranger = SignerKey.generate("site.stranger")
    assert (
        await client.post(path, json=ballot_envelope(stranger, voter_token(2), ["L01"]))
    ).status == 401
    exposition = await (await client.get("/metrics")).text()
    exposition += generate_latest(MonitorMetrics().registry).decode()
    exported = {family(n) for n in re.findall(r"^# TYPE (uchast_[a-z_]+)", exposition, re.M)}
    assert exported, exposition[:500]
    used = {
        name
        for group in ALERTS["groups"]
        for rule in group["rules"]
        for name in metric_names(rule["expr"])
    }
    used |= {
        name
        for panel in DASHBOARD["panels"]
        for target in panel["targets"]
        for name in metric_names(target["expr"])
    }
    missing = sorted(name for name in used if family(name) not in exported)
    assert not missing, f"not exported by /metrics: {missing}"


def test_grafana_dashboard_and_provisioning_agree() -> None:
    """The dashboard is well-formed JSON with unique panel ids, every target has a query on
    the provisioned data source, and the provisioning points where compose mounts it."""
    datasource = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "uchast.yml").read_text()
    )["providers"][0]
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == datasource["uid"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"])
    mounts = COMPOSE["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert datasource["url"] == "http://prometheus:9090"


def test_systemd_units_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the service template (as uchast@8081), the backup
    service and its timer, with the executables where an install puts them (here: the
    virtualenv, and deploy/backup.sh as uchast-backup)."""
    analyze = require_tool("systemd-analyze")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "uchast").symlink_to(VENV_BIN / "uchast")
    (bin_dir / "uchast-backup").symlink_to(DEPLOY / "backup.sh")
    units = {
        "uchast@8081.service": "uchast@.service",
        "uchast-backup.service": "uchast-backup.service",
        "uchast-backup.timer": "uchast-backup.timer",
    }
    for target, source in units.items():
        text = (DEPLOY / "systemd" / source).read_text()
        (tmp_path / target).write_text(text.replace("/opt/uchast/bin/", f"{bin_dir}/"))
    done = subprocess.run(
        [analyze, "verify", "--man=no", *(str(tmp_path / name) for name in units)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_is_multi_stage_non_root_with_a_health_check() -> None:
    """At least two stages; the final one runs as a non-root user, checks /healthz, and its
    entrypoint and every copied path exist in the repository."""
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)$", text, re.M)
    assert len(stages) >= 2, stages
    final = text.split(f"AS {stages[-1]}", 1)[1]
    user = re.findall(r"^USER (\S+)$", final, re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", final, re.M)
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert (ROOT / source).exists(), source
    entrypoint = json.loads(re.findall(r"^ENTRYPOINT (.+)$", final, re.M)[-1])
    assert entrypoint == ["uchast-entrypoint"]
    assert "COPY deploy/docker-entrypoint.sh /usr/local/bin/uchast-entrypoint" in final
    assert (DEPLOY / "docker-entrypoint.sh").stat().st_mode & 0o111
