"""Shared by the deploy tests: where things are, external tools, rewriting configs for here."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
VENV_BIN = ROOT / ".venv" / "bin"


def require_tool(name: str) -> str:
    """The tool's path; skip locally, fail under CI=true, when it is not installed
    (.ci/run installs nginx and prometheus's promtool)."""
    path = shutil.which(name) or (
        f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None
    )
    if path is None:
        message = f"{name} is not installed (apt-get install nginx-light prometheus)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def nginx_config_here(tmp: Path, backends: list[int], listen: int) -> Path:
    """deploy/nginx/nginx.conf pointed at local backends, listening on ``listen``, with its
    pid and temporary files under ``tmp``."""
    text = (DEPLOY / "nginx" / "nginx.conf").read_text()
    servers = re.findall(r"server (uchast-\d+:8080)", text)
    assert len(servers) == len(backends), servers
    for server, port in zip(servers, backends, strict=True):
        text = text.replace(f"server {server}", f"server 127.0.0.1:{port}")
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    text = text.replace("pid /tmp/nginx.pid;", f"pid {tmp}/nginx.pid;")
    text = text.replace("http {", f"http {{\n    client_body_temp_path {tmp}/body;\n"
                        f"    proxy_temp_path {tmp}/proxy;", 1)  # fmt: skip
    path = tmp / "nginx.conf"
    path.write_text(text)
    return path
