"""Where private keys live on disk: a private directory outside the checkout.

Commands that make keys without being told where (``uchast init``, ``import-pabulib``, ``demo``)
put them in :func:`keys_root` ``/ <election>/``: ``$UCHAST_KEYS_DIR``, else
``$XDG_DATA_HOME/uchast/keys``, else ``~/.local/share/uchast/keys``. Never the current directory,
which is often a git checkout. Every directory made here is mode 0700 and every key file 0600,
created exclusively: an existing key file is never replaced or silently reused.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["keys_root", "new_voter_key", "private_directory", "write_private"]


def keys_root() -> Path:
    """The default keys directory (not created here)."""
    explicit = os.environ.get("UCHAST_KEYS_DIR")
    if explicit:
        return Path(explicit).expanduser()
    data = os.environ.get("XDG_DATA_HOME")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(data) if data and Path(data).is_absolute() else Path.home() / ".local" / "share"
    return base / "uchast" / "keys"


def private_directory(path: Path) -> Path:
    """``path``, made if missing: each directory created here (parents too) gets mode 0700;
    one that already exists keeps its mode."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made meanwhile by someone else: not ours to chmod
        directory.chmod(0o700)  # mkdir's mode passes through the umask
    return path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file ``path`` of mode 0600; FileExistsError if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            fd = -1
            out.write(text)
    except BaseException:
        if fd != -1:
            os.close(fd)
        path.unlink(missing_ok=True)  # never leave a half-written key behind
        raise


def new_voter_key(path: Path) -> bytes:
    """A new voter key (32 random bytes), written as hex to the new file ``path`` (mode 0600)
    in a directory made private if new; FileExistsError if ``path`` exists."""
    key = secrets.token_bytes(32)
    private_directory(path.parent)
    write_private(path, key.hex() + "\n")
    return key
