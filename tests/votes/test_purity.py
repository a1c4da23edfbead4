"""votes/ is the pure domain: it imports no I/O library and none of the other packages.

This runs the imports; :mod:`tests.test_layers` reads every import statement of the sources,
those inside functions too, against the layers and a longer list of I/O libraries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import pkgutil, sys
FORBIDDEN = ("aiohttp", "asyncpg", "sqlite3", "_sqlite3", "psycopg", "ledger", "tally", "api")
for name in FORBIDDEN:
    sys.modules[name] = None  # any import of these now raises ImportError
import votes
for module in pkgutil.iter_modules(votes.__path__):
    __import__(f"votes.{module.name}")
loaded = sorted(
    name for name in sys.modules
    if name.split(".")[0] in FORBIDDEN and sys.modules[name] is not None
)
print("ok" if not loaded else f"loaded: {loaded}")
"""


def test_votes_imports_with_io_libraries_blocked() -> None:
    """Every votes module imports with aiohttp, asyncpg, sqlite3 and the other packages blocked."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
