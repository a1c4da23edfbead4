"""The packages point one way: votes <- ledger <- tally <- api, and tally/audit/ stands alone.

Every import statement counts: at module level, inside a function, under ``TYPE_CHECKING``. A
lazy import is still a dependency (and the usual way layers erode), so the sources are read with
:mod:`ast` rather than imported. Each failure names the offending import as ``file:line``.

:mod:`tests.votes.test_purity` imports every ``votes`` module with the I/O libraries blocked (what
runs); this file reads what the sources say, everywhere they say it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("votes", "ledger", "tally", "api")
AUDIT = "tally.audit"
# What a layer may import: itself and the layers below it. The auditor imports none of the
# server, so that a reader of tally/audit/ reads every line that decides the verdict.
RANK = {"votes": 0, "ledger": 1, "tally": 2, AUDIT: 2, "api": 3}
# votes/ is the pure domain: no database, network, file system, process or event loop.
IO_LIBRARIES = frozenset(
    {
        "aiohttp", "asyncpg", "sqlite3", "_sqlite3", "psycopg", "psycopg2", "requests", "httpx",
        "urllib", "http", "socket", "ssl", "select", "selectors", "asyncio", "subprocess",
        "multiprocessing", "concurrent", "os", "io", "pathlib", "shutil", "tempfile", "glob",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Import:
    """One import statement's target, where it is written."""

    importer: str
    target: str
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}: {self.importer} imports {self.target}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the four packages (sub-packages included), by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                found[_module_name(path)] = path
    return found


def _imports_of(name: str, path: Path) -> Iterator[Import]:
    known = modules()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, path, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from pkg import mod`` depends on the module; ``from mod import name`` on mod.
            targets = (f"{base}.{alias.name}" for alias in node.names)
            for target in dict.fromkeys(t if t in known else base for t in targets):
                yield Import(name, target, path, node.lineno)


@cache
def imports() -> tuple[Import, ...]:
    """Every import statement of every module, anywhere in its source."""
    return tuple(found for name, path in modules().items() for found in _imports_of(name, path))


def layer(module: str) -> str | None:
    """The layer a module belongs to; None for anything outside the four packages."""
    if module == AUDIT or module.startswith(AUDIT + "."):
        return AUDIT
    top = module.split(".")[0]
    return top if top in RANK else None


def allowed(importer: str, target: str) -> bool:
    """Whether a module of layer ``importer`` may import one of layer ``target``."""
    if importer == AUDIT:
        return target == AUDIT
    return RANK[target] <= RANK[importer]


def against_the_layers() -> list[Import]:
    wrong = []
    for found in imports():
        source, target = layer(found.importer), layer(found.target)
        if source is not None and target is not None and not allowed(source, target):
            wrong.append(found)
    return wrong


def test_layers_point_one_way() -> None:
    """No module imports from a higher layer, and tally/audit/ imports nothing of the server."""
    wrong = [str(i) for i in against_the_layers()]
    assert not wrong, "imports against votes <- ledger <- tally <- api:\n" + "\n".join(wrong)


def _cycle_through(start: str, graph: dict[str, dict[str, Import]]) -> list[Import]:
    """The shortest chain of imports from ``start`` back to itself (breadth first)."""
    came_from: dict[str, Import] = {}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for target, found in sorted(graph.get(module, {}).items()):
                if target == start:
                    chain = [found]
                    while chain[0].importer != start:
                        chain.insert(0, came_from[chain[0].importer])
                    return chain
                if target not in came_from:
                    came_from[target] = found
                    following.append(target)
        frontier = following
    return []


def test_no_import_cycle() -> None:
    """No chain of imports between the packages' modules leads back to where it started."""
    known = modules()
    graph: dict[str, dict[str, Import]] = {}
    for found in imports():
        if found.target in known and found.target != found.importer:
            graph.setdefault(found.importer, {}).setdefault(found.target, found)
    cycles: dict[frozenset[str], list[Import]] = {}
    for module in sorted(graph):
        chain = _cycle_through(module, graph)
        if chain:
            cycles.setdefault(frozenset(i.importer for i in chain), chain)
    report = ["\n".join(f"  {i}" for i in chain) for chain in cycles.values()]
    assert not report, "import cycles:\n" + "\n\n".join(report)


def test_votes_imports_no_io_library() -> None:
    """votes/ names no database, network, file or process library, even inside a function."""
    wrong = [
        str(i)
        for i in imports()
        if layer(i.importer) == "votes" and i.target.split(".")[0] in IO_LIBRARIES
    ]
    assert not wrong, "votes/ is the pure domain:\n" + "\n".join(wrong)


def test_the_reader_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The checker itself: imports in functions, under TYPE_CHECKING and relative ones count."""
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    import api.app\n"
        "def f() -> None:\n"
        "    from . import store\n"
        "    from .merkle import NodeId\n",
        encoding="utf-8",
    )
    found = [(i.target, i.line) for i in _imports_of("ledger.probe", source)]
    assert ("api.app", 3) in found
    assert ("ledger.store", 5) in found
    assert ("ledger.merkle", 6) in found
    assert not allowed("ledger", "api")
    assert not allowed(AUDIT, "tally")
    assert allowed("api", AUDIT)
