"""Witness policies: C2SP tlog-policy files and quorum evaluation.

A policy names the logs it accepts, the witnesses it knows and the quorum of cosignatures a
checkpoint needs before it counts as published::

    log <vkey> [<url>]
    witness <name> <cosigner vkey> [<url>]
    group <name> <k|any|all> <member> [<member> ...]
    quorum <name|none>

Items are separated by ASCII spaces and tabs; blank lines and ``#`` comments are ignored. A
group or the quorum may only name witnesses and groups defined on earlier lines; a name is
defined once; ``none`` is reserved for the quorum. Log keys are checkpoint vkeys (type 0x01, as
``uchast keygen`` prints them); witness keys are ``cosignature/v1`` vkeys (type 0x04, as
``uchast witness --print-vkey`` prints them). Every error names its line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TypeVar

from ledger.cosignature import CosignerKey
from ledger.errors import KeyFormatError
from ledger.keys import VerifierKey

__all__ = ["Group", "LogLine", "Policy", "PolicyError", "WitnessLine", "parse_policy"]

K = TypeVar("K")

_ITEMS = re.compile(r"[ \t]+")
_DECIMAL = re.compile(r"[1-9][0-9]{0,5}")
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class PolicyError(ValueError):
    """The policy file is not a valid C2SP tlog-policy; ``line`` is its 1-based line number."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"policy line {line}: {message}" if line else f"policy: {message}")
        self.line = line


@dataclass(frozen=True)
class LogLine:
    """A log the policy accepts: its checkpoint key and optional URL."""

    key: VerifierKey
    url: str | None = None


@dataclass(frozen=True)
class WitnessLine:
    """A witness: its name in the policy, its cosigner key and optional submission URL."""

    name: str
    key: CosignerKey
    url: str | None = None


@dataclass(frozen=True)
class Group:
    """At least ``threshold`` of ``members`` (witness or group names) must have cosigned."""

    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    """A parsed policy. ``quorum`` None is ``quorum none``: no cosignature needed."""

    logs: tuple[LogLine, ...]
    witnesses: tuple[WitnessLine, ...]
    groups: tuple[Group, ...]
    quorum: str | None

    def witness_keys(self) -> dict[str, CosignerKey]:
        """Witness name -> cosigner key."""
        return {w.name: w.key for w in self.witnesses}

    def satisfied(self, cosigned: Collection[str]) -> bool:
        """Whether cosignatures by the witnesses named in ``cosigned`` meet the quorum."""
        if self.quorum is None:
            return True
        groups = {g.name: g for g in self.groups}
        memo: dict[str, bool] = {}

        def met(name: str) -> bool:
            if name not in memo:
                group = groups.get(name)
                if group is None:
                    memo[name] = name in cosigned
                else:
                    memo[name] = sum(met(m) for m in group.members) >= group.threshold
            return memo[name]

        return met(self.quorum)

    def render(self) -> str:
        """The policy as a file ``parse_policy`` reads back to an equal policy."""
        lines = [f"log {log.key.vkey}" + (f" {log.url}" if log.url else "") for log in self.logs]
        lines += [
            f"witness {w.name} {w.key.vkey}" + (f" {w.url}" if w.url else "")
            for w in self.witnesses
        ]
        lines += [f"group {g.name} {g.threshold} {' '.join(g.members)}" for g in self.groups]
        lines.append(f"quorum {self.quorum or 'none'}")
        return "".join(line + "\n" for line in lines)


def parse_policy(text: str) -> Policy:
    """Parse a tlog-policy file strictly; raise :class:`PolicyError` naming the first bad line."""
    logs: list[LogLine] = []
    witnesses: list[WitnessLine] = []
    groups: list[Group] = []
    defined: set[str] = set()
    quorum: tuple[str | None] | None = None
    publics: set[bytes] = set()
    log_publics: set[bytes] = set()
    for number, raw in enumerate(text.split("\n"), start=1):
        bad = _FORBIDDEN.search(raw)
        if bad:
            raise PolicyError(number, f"control character U+{ord(bad.group()):04X}")
        items = [item for item in _ITEMS.split(raw) if item]
        if not items or items[0].startswith("#"):
            continue
        keyword, args = items[0], items[1:]
        if keyword == "log":
            if len(args) not in (1, 2):
                raise PolicyError(number, "expected: log <vkey> [<url>]")
            key = _key(number, VerifierKey.parse, args[0])
            if key.public in log_publics:
                raise PolicyError(number, f"log key {key.name} is listed twice")
            log_publics.add(key.public)
            logs.append(LogLine(key, args[1] if len(args) == 2 else None))
        elif keyword == "witness":
            if len(args) not in (2, 3):
                raise PolicyError(number, "expected: witness <name> <vkey> [<url>]")
            name = _new_name(number, args[0], defined)
            cosigner = _key(number, CosignerKey.parse, args[1])
            if cosigner.public in publics:
                raise PolicyError(number, f"witness {name}: its key is listed twice")
            publics.add(cosigner.public)
            defined.add(name)
            witnesses.append(WitnessLine(name, cosigner, args[2] if len(args) == 3 else None))
        elif keyword == "group":
            if len(args) < 3:
                raise PolicyError(number, "expected: group <name> <k|any|all> <member>...")
            name = _new_name(number, args[0], defined)
            members = args[2:]
            for member in members:
                if member not in defined:
                    raise PolicyError(number, f"group {name}: {member!r} is not defined above")
            if len(set(members)) != len(members):
                raise PolicyError(number, f"group {name}: a member is listed twice")
            threshold = _threshold(number, args[1], len(members))
            defined.add(name)
            groups.append(Group(name, threshold, tuple(members)))
        elif keyword == "quorum":
            if len(args) != 1:
                raise PolicyError(number, "expected: quorum <name|none>")
            if quorum is not None:
                raise PolicyError(number, "a second quorum line")
            if args[0] != "none" and args[0] not in defined:
                raise PolicyError(number, f"quorum {args[0]!r} is not defined above")
            quorum = (None if args[0] == "none" else args[0],)
        else:
            raise PolicyError(number, f"unknown keyword {keyword!r}")
    if quorum is None:
        raise PolicyError(0, "no quorum line")
    return Policy(tuple(logs), tuple(witnesses), tuple(groups), quorum[0])


def _new_name(number: int, name: str, defined: set[str]) -> str:
    if name == "none":
        raise PolicyError(number, "'none' is reserved and cannot name a witness or group")
    if name in defined:
        raise PolicyError(number, f"{name!r} is defined twice")
    return name


def _threshold(number: int, text: str, members: int) -> int:
    if text == "any":
        return 1
    if text == "all":
        return members
    if not _DECIMAL.fullmatch(text) or not 1 <= int(text) <= members:
        raise PolicyError(number, f"threshold {text!r} must be any, all or 1..{members}")
    return int(text)


def _key(number: int, parse: Callable[[str], K], text: str) -> K:
    try:
        return parse(text)
    except KeyFormatError as exc:
        raise PolicyError(number, str(exc)) from None
