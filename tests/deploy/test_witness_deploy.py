"""The deploy files run a witness: the systemd unit's command cosigns and keeps its state across
a restart; the compose service's command is `uchast witness` on the port its health check asks;
the image's entrypoint hands `serve` the witness policy."""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from api.cli import build_parser, cmd_witness
from ledger.cosignature import CosignerKey, verified_cosignatures
from ledger.keys import SignerKey
from tests.api.servers import free_port
from tests.deploy.test_dead_on_arrival import base_env, environment_file, exec_start, running
from tests.deploy.tools import DEPLOY, VENV_BIN
from tests.witnessing import ToyLog

LOG_KEY = SignerKey.from_seed("uchast.zhytomyr.example/log", b"L" * 32)


def post(url: str, data: bytes) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_systemd_witness_unit_cosigns_and_remembers(tmp_path: Path) -> None:
    """uchast-witness.service's ExecStart with the example environment (the log vkey filled
    in): it cosigns, and after a restart it still holds the size it cosigned."""
    witness = SignerKey.generate("witness.civic-watch.example")
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    witness.save(credentials / "witness.key")
    env = environment_file(DEPLOY / "systemd" / "witness.env.example")
    assert env["UCHAST_WITNESS_LOGS"].startswith("--log ")
    env["UCHAST_WITNESS_LOGS"] = f"--log {LOG_KEY.verifier.vkey}"
    env["STATE_DIRECTORY"] = str(tmp_path)
    command = exec_start("uchast-witness.service", {"d": str(credentials)}, env)
    assert command[0] == "/opt/uchast/bin/uchast"
    command[0] = str(VENV_BIN / "uchast")
    port = free_port()
    command[command.index("--port") + 1] = str(port)
    log = ToyLog(LOG_KEY, "uchast.zhytomyr.example/zhytomyr-2018")
    log.grow(9)
    url = f"http://127.0.0.1:{port}/add-checkpoint"
    with running(command, {**base_env(), **env}, port, tmp_path / "witness.log"):
        status, line = post(url, log.request(0))
        assert status == 200
        keys = {"civic": CosignerKey.of(witness.verifier)}
        assert len(verified_cosignatures(log.note() + line.decode(), keys)) == 1
    assert (tmp_path / "witness.db").exists()
    with running(command, {**base_env(), **env}, port, tmp_path / "witness-2.log"):
        assert post(url, log.request(0)) == (409, b"9\n")


def test_compose_witness_service_runs_uchast_witness() -> None:
    """The compose witness is `uchast witness` with its key from the secrets, its state on its
    own volume, listening where the image's health check looks."""
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    service = compose["services"]["witness"]
    command = [
        part.replace(
            "${UCHAST_LOG_VKEY:-set UCHAST_LOG_VKEY to the log's vkey}", LOG_KEY.verifier.vkey
        )
        for part in service["command"]
    ]
    args = build_parser().parse_args(command)
    assert args.func is cmd_witness
    assert args.key == "/run/secrets/witness.key" and "witness.key" in service["secrets"]
    assert str(args.port) == service["environment"]["UCHAST_PORT"]
    assert args.log == [LOG_KEY.verifier.vkey]
    [volume] = service["volumes"]
    assert args.db.startswith("sqlite:///" + volume.split(":")[1].split()[0] + "/")
    assert volume.split(":")[0] in compose["volumes"]


def test_entrypoint_hands_serve_the_witness_policy(tmp_path: Path) -> None:
    """UCHAST_WITNESS_POLICY becomes `serve --witness-policy FILE`; unset, no such option."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "uchast").write_text('#!/bin/sh\necho "$@"\n')
    (fake / "uchast").chmod(0o755)
    env = {"PATH": f"{fake}:{os.environ['PATH']}", "UCHAST_DB": "postgresql://x@y/z"}
    entrypoint = shutil.which("sh") or "/bin/sh"
    script = str(DEPLOY / "docker-entrypoint.sh")
    with_policy = subprocess.run(
        [entrypoint, script, "serve"],
        env={**env, "UCHAST_WITNESS_POLICY": "/etc/uchast/witness/policy"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--witness-policy /etc/uchast/witness/policy" in with_policy
    without = subprocess.run(
        [entrypoint, script, "serve"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "--witness-policy" not in without
