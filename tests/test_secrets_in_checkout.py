"""Findings: private keys written into the checkout (``voter.key``, ``<election>-keys/`` from
``import-pabulib``) were not ignored by git; dependencies were floors only, with no lock file or
hashes, and the floors admitted aiohttp releases with published advisories."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCKS = {"requirements.lock": False, "requirements-dev.lock": True}  # name: with dev deps


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout"
)
def test_private_keys_in_the_checkout_are_ignored() -> None:
    paths = [
        "voter.key",
        "log.key",
        "admin.key",
        "keys/site.key",
        "zhytomyr-2018-keys/admin.key",
        "zhytomyr-2018-keys/voter.key",
        "demo-data/keys/clerk.key",
    ]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    assert sorted(ignored) == sorted(paths)


def requirement_names(specs: list[str]) -> set[str]:
    return {
        re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0].lower().replace("_", "-") for spec in specs
    }


def test_every_dependency_is_locked_with_hashes() -> None:
    """Each lock pins every requirement of pyproject.toml (runtime; runtime and dev) and all
    that they pull in, exactly (==) and with sha256 hashes."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = requirement_names(project["dependencies"])
    dev = requirement_names(project["optional-dependencies"]["dev"])
    for name, with_dev in LOCKS.items():
        text = (ROOT / name).read_text()
        entries = re.findall(
            r"^([A-Za-z0-9_.-]+)==(\S+) \\\n((?:\s+--hash=sha256:[0-9a-f]{64}.*\n)+)", text, re.M
        )
        pinned = {n.lower().replace("_", "-") for n, _, _ in entries}
        requirement_lines = [line for line in text.splitlines() if line and line[0].isalnum()]
        assert len(requirement_lines) == len(entries), f"{name}: a requirement without hashes"
        assert runtime | (dev if with_dev else set()) <= pinned, name


def test_installs_use_the_locks() -> None:
    """The image and `make` (hence CI) install the locked, hashed dependencies, then uchast
    without resolving dependencies again."""
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "pip install --no-compile --require-hashes -r requirements.lock" in dockerfile
    assert re.search(r"pip install --no-compile --no-deps \.", dockerfile)
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet --require-hashes -r requirements-dev.lock" in makefile
    assert "pip install --quiet --no-deps -e ." in makefile
    assert "-e '.[dev]'" not in makefile


def test_floors_are_past_known_advisories() -> None:
    specs = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = {
        m.group(1): tuple(int(p) for p in m.group(2).split("."))
        for m in (re.match(r"([a-z-]+)>=([\d.]+)", s) for s in specs)
        if m
    }
    assert floors["aiohttp"] >= (3, 14, 3)
    assert floors["cryptography"] >= (50, 0, 0)
    assert floors["tqdm"] >= (4, 66, 3)
