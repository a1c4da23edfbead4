"""Threat: an image or a unit that does not start, or starts something else than intended.
Their command lines are run here directly (no Docker engine, no systemd as PID 1)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.api.servers import free_port
from tests.deploy.tools import DEPLOY, VENV_BIN
from tests.faults.trial import Trial, run_load

pytestmark = pytest.mark.slow


@contextmanager
def running(
    command: list[str], env: Mapping[str, str], port: int, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``command`` and wait for /healthz on ``port``; stop it afterwards."""
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=dict(env), stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except OSError:
                    assert process.poll() is None, log.read_text()
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.1)
            yield process
        finally:
            process.terminate()
            process.wait(timeout=30)


def base_env() -> dict[str, str]:
    return {"PATH": f"{VENV_BIN}:{os.environ['PATH']}", "HOME": os.environ.get("HOME", "/")}


def health_check_command() -> list[str]:
    """The image's HEALTHCHECK command, as Docker would run it."""
    text = (DEPLOY / "Dockerfile").read_text()
    [check] = re.findall(r"^HEALTHCHECK [^\n]*\\\n\s+CMD (\[.*\])$", text, re.M)
    command: list[str] = json.loads(check)
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


async def test_image_entrypoint_serves_votes_as_configured(pg_url: str, tmp_path: Path) -> None:
    """deploy/docker-entrypoint.sh with the compose file's kind of environment: it execs
    `uchast serve` with every setting (rate limits per role included), the image's health check
    passes against it (and fails against a dead port), ballots go in and audit; other commands
    run `uchast` itself; without UCHAST_DB it stops with one clear line."""
    trial = await Trial.create(pg_url, tmp_path)
    port = free_port()
    env = {
        **base_env(),
        "UCHAST_DB": pg_url,
        "UCHAST_LOG_KEY": str(tmp_path / "log.key"),
        "UCHAST_VOTER_KEY": str(tmp_path / "voter.key"),
        "UCHAST_HOST": "127.0.0.1",
        "UCHAST_PORT": str(port),
        "UCHAST_RATE_LIMIT": "50",
        "UCHAST_RATE_LIMIT_SITE": "5000",
    }
    entrypoint = ["sh", str(DEPLOY / "docker-entrypoint.sh")]
    with running([*entrypoint, "serve"], env, port, tmp_path / "image.log") as process:
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert b"serve" in cmdline and b"--voter-key" in cmdline, cmdline
        assert b"site=5000" in cmdline and b"--rate-limit-role" in cmdline
        check = subprocess.run(health_check_command(), env={**env}, timeout=10)
        assert check.returncode == 0
        url = f"http://127.0.0.1:{port}"
        book = await run_load(trial, lambda: [url], trial.electorate(), 150, concurrency=8)
        await trial.check(book, [url])
    dead = subprocess.run(
        health_check_command(), env={**env, "UCHAST_PORT": str(free_port())}, timeout=10
    )
    assert dead.returncode != 0, "the health check passes without a server"

    keygen = subprocess.run(
        [*entrypoint, "keygen", "clerk.city-council.new", "--out", str(tmp_path / "new.key")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert keygen.returncode == 0 and keygen.stdout.startswith("clerk.city-council.new+")
    unset = {k: v for k, v in env.items() if k != "UCHAST_DB"}
    failed = subprocess.run([*entrypoint], env=unset, capture_output=True, text=True)
    assert failed.returncode != 0
    assert "UCHAST_DB" in failed.stderr and len(failed.stderr.strip().splitlines()) == 1


def exec_start(unit: str, specifiers: Mapping[str, str], env: Mapping[str, str]) -> list[str]:
    """The unit's ExecStart= as systemd would run it: %-specifiers replaced, ${VAR} as one
    word, $VAR split on white space."""
    [line] = re.findall(r"^ExecStart=(.+)$", (DEPLOY / "systemd" / unit).read_text(), re.M)
    for name, value in specifiers.items():
        line = line.replace(f"%{name}", value)
    words: list[str] = []
    for word in shlex.split(line):
        bare = re.fullmatch(r"\$([A-Z_]+)", word)
        if bare:
            words.extend(env.get(bare.group(1), "").split())
        else:
            words.append(re.sub(r"\$\{([A-Z_]+)\}", lambda m: env.get(m.group(1), ""), word))
    return words


def environment_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


async def test_systemd_unit_exec_start_serves_votes(pg_url: str, tmp_path: Path) -> None:
    """uchast@.service's ExecStart with the example environment file (database pointed at the
    test database) and its credentials directory: /healthz and /readyz answer, ballots go in
    and audit, and the per-key rate limit of the example is in force."""
    trial = await Trial.create(pg_url, tmp_path)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    for name in ("log.key", "voter.key"):
        shutil.copy(tmp_path / name, credentials / name)
    port = free_port()
    env = {**environment_file(DEPLOY / "systemd" / "uchast.env.example"), "UCHAST_DB": pg_url}
    env["UCHAST_DEPLOYMENT"] = "uchast.local"  # the trial's checkpoints use this origin
    env["STATE_DIRECTORY"] = str(tmp_path)  # systemd sets it for StateDirectory=
    command = exec_start("uchast@.service", {"i": str(port), "d": str(credentials)}, env)
    assert command[0] == "/opt/uchast/bin/uchast"
    command[0] = str(VENV_BIN / "uchast")
    assert "--rate-limit-role" in command and "site=5000" in command
    with running(command, {**base_env(), **env}, port, tmp_path / "unit.log"):
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/readyz", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        book = await run_load(trial, lambda: [url], trial.electorate(), 150, concurrency=8)
        await trial.check(book, [url])
