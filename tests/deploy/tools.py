"""Shared by the deploy tests: where things are, external tools, rewriting configs for here."""

from __future__ import annotations

import os
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


def upstream_servers(text: str, name: str) -> list[str]:
    """The ``host:port`` of every server (not commented out) of nginx upstream ``name``."""
    match = re.search(rf"(?ms)^\s*upstream {name} \{{\n(.*?)^\s*\}}", text)
    assert match is not None, f"no upstream {name}"
    return re.findall(r"(?m)^\s*server (\S+?)[ ;]", match.group(1))


def nginx_config_here(
    tmp: Path, backends: list[int], listen: int, read_backends: list[int] | None = None
) -> Path:
    """deploy/nginx/nginx.conf pointed at local backends (the ``uchast`` upstream; the
    ``uchast_read`` one too, unless ``read_backends`` names others), listening on ``listen``,
    with its pid, temporary files and cache under ``tmp``."""
    text = (DEPLOY / "nginx" / "nginx.conf").read_text()
    for name, ports in (("uchast", backends), ("uchast_read", read_backends or backends)):
        block = re.search(rf"(?ms)^\s*upstream {name} \{{\n.*?^\s*\}}", text)
        assert block is not None, name
        servers = upstream_servers(text, name)
        assert len(servers) == len(ports), servers
        here = block.group(0)
        for server, port in zip(servers, ports, strict=True):
            here = re.sub(rf"(?m)^(\s*server ){re.escape(server)}", rf"\g<1>127.0.0.1:{port}", here)
        text = text.replace(block.group(0), here, 1)
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    text = text.replace("pid /tmp/nginx.pid;", f"pid {tmp}/nginx.pid;")
    text = text.replace("proxy_cache_path /var/cache/nginx-uchast", f"proxy_cache_path {tmp}/cache")
    if os.geteuid() == 0:  # workers as nobody could not enter tmp (0700) to write the cache
        text = text.replace("worker_processes", "user root;\nworker_processes", 1)
    text = text.replace("http {", f"http {{\n    client_body_temp_path {tmp}/body;\n"
                        f"    proxy_temp_path {tmp}/proxy;", 1)  # fmt: skip
    path = tmp / "nginx.conf"
    path.write_text(text)
    return path
