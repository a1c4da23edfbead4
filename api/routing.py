"""Which database holds which election: the routing file of ``uchast serve --routes FILE``.

Elections are independent logs, so one server can serve several whose logs live on different
PostgreSQL clusters. The routing file names, per election, the storage URL of its log; an
election it does not name is in the ``--db`` database. For example::

    # /etc/uchast/routes.toml
    [elections]
    zhytomyr-2018 = "postgresql://uchast@pg-a.internal/uchast"
    lviv-2019 = "postgresql://uchast@pg-b.internal/uchast"

The file is read strictly: anything else in it (another table, a key that is no election id, a
value that is no storage URL) is an error naming the place, and a server does not start on it.
While serving, the file is read again on SIGHUP and whenever its modification time changes
(checked when an election not yet served is asked for), so an election can be placed on a new
cluster without stopping the others (:class:`api.service.Service`).

URLs may carry passwords (``postgresql://user:secret@host/db``); :func:`redact` is what logs,
errors and ``/readyz`` show instead. Better still, keep passwords out of the file: asyncpg reads
``PGPASSWORD`` and ``~/.pgpass`` like libpq.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ledger.store import STORES

# As votes.election's election ids (the routing file may name elections not initialised yet).
_ELECTION_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,62}", re.ASCII)
_SECRET_PARAMS = frozenset({"password", "passfile", "sslpassword"})


class RoutesError(ValueError):
    """The routing file cannot be used: unreadable, not TOML, or not in the routing format.
    The message names the file and the place; it never contains a password."""


def redact(url: str) -> str:
    """``url`` without its password (in the authority or as a query parameter): what may be
    logged or shown."""
    scheme, separator, _ = url.partition("://")
    if not separator:  # not a URL: nothing in it can be told apart from a password
        return "***"
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user, colon, _ = userinfo.partition(":")
            netloc = f"{user}:***@{hostport}" if colon else f"{user}@{hostport}"
        query = urlencode(
            [
                (name, "***" if name.lower() in _SECRET_PARAMS else value)
                for name, value in parse_qsl(parts.query, keep_blank_values=True)
            ],
            safe="*",
        )
        if (netloc, query) == (parts.netloc, parts.query):
            return url  # nothing to hide (urlunsplit would also drop sqlite:///'s empty host)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:  # not a URL urlsplit reads: show its scheme only
        return f"{scheme}://***"


@dataclass(frozen=True)
class Routes:
    """Election id -> storage URL; elections not named are in ``default``."""

    default: str
    elections: Mapping[str, str] = field(default_factory=dict)

    def url_of(self, election: str) -> str:
        """The storage URL of ``election``'s log."""
        return self.elections.get(election, self.default)

    def urls(self) -> list[str]:
        """Every distinct storage URL, the default first."""
        return list(dict.fromkeys([self.default, *self.elections.values()]))


def check_url(url: str) -> str | None:
    """Why ``url`` is not a storage URL ``open_store`` accepts, or None."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in STORES:
        return "not a storage URL: use sqlite:///PATH or postgresql://..."
    if not rest.strip("/"):
        return "names no database"
    if any(c.isspace() for c in url):
        return "contains white space"
    return None


def parse_routes(text: str, default: str, source: str = "routing file") -> Routes:
    """The routes in ``text`` (TOML), elections not named going to ``default``.

    :class:`RoutesError` on anything but one ``[elections]`` table of election id = URL."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RoutesError(f"{source}: not TOML: {exc}") from None
    unknown = sorted(set(document) - {"elections"})
    if unknown:
        raise RoutesError(
            f"{source}: unknown top-level key(s) {', '.join(map(repr, unknown))}; "
            "expected only an [elections] table of election = storage URL"
        )
    table = document.get("elections")
    if not isinstance(table, dict):
        raise RoutesError(f"{source}: no [elections] table of election = storage URL")
    elections: dict[str, str] = {}
    for election, url in table.items():
        where = f"{source}: elections.{election}"
        if _ELECTION_ID.fullmatch(election) is None:
            raise RoutesError(
                f"{source}: {election!r} is not an election id "
                "(lower-case letters, digits and '-', 2 to 63 characters)"
            )
        if not isinstance(url, str):
            raise RoutesError(f"{where}: expected a storage URL string, not {type(url).__name__}")
        problem = check_url(url)
        if problem is not None:
            raise RoutesError(f"{where} = {redact(url)!r}: {problem}")
        elections[election] = url
    return Routes(default, elections)


@dataclass(frozen=True)
class RoutesFile:
    """A routing file and what identifies the version read (to notice it changed)."""

    path: Path

    def stamp(self) -> tuple[int, int, int] | None:
        """(inode, size, mtime in ns) of the file now; None if it cannot be looked at."""
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def read(self, default: str) -> Routes:
        """The file's routes; :class:`RoutesError` if it cannot be read or is not valid."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
            raise RoutesError(f"cannot read routing file {self.path}: {reason}") from None
        return parse_routes(text, default, str(self.path))
