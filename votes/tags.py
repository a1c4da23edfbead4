"""The tag vocabulary of an election's log.

Tags index entries for the DCB reads and append conditions that keep per-voter limits true under
concurrency: a decision reads the entries carrying some tags, and the append fails if an entry
carrying any of them was committed after that read. The ledger adds ``key:<key id>`` itself.

- ``voter:<token>`` — every ballot, paper ballot and spoiled ballot of the voter, and every void
  of one of them;
- ``nonce:<nonce>`` — the entry submitted with that nonce (idempotent retries);
- ``void-of:<position>`` — the void of the entry at that position;
- ``project:<id>`` — every ballot or paper ballot supporting the project;
- ``point:<id>`` — every paper or spoiled ballot entered at the polling point;
- ``lookup:<token>`` — every clerk's lookup of the voter's token (never ``voter:``, so a lookup
  is no part of the voter's history and never counts);
- ``definition`` (:data:`DEFINITION_TAG`) — the election entry and every amendment of it.
"""

from __future__ import annotations

__all__ = [
    "DEFINITION_TAG",
    "lookup_tag",
    "nonce_tag",
    "point_tag",
    "project_tag",
    "void_tag",
    "voter_tag",
]

DEFINITION_TAG = "definition"
"""The tag of the entries that define the election: its first entry and each amendment."""


def voter_tag(token: str) -> str:
    """The tag of the entries concerning the voter with ``token``."""
    return f"voter:{token}"


def nonce_tag(nonce: str) -> str:
    """The tag of the entry submitted with ``nonce``."""
    return f"nonce:{nonce}"


def void_tag(position: int) -> str:
    """The tag of the void of the entry at ``position``."""
    return f"void-of:{position}"


def project_tag(project: str) -> str:
    """The tag of the ballots supporting ``project``."""
    return f"project:{project}"


def point_tag(point: str) -> str:
    """The tag of the paper entries made at polling point ``point``."""
    return f"point:{point}"


def lookup_tag(token: str) -> str:
    """The tag of the clerks' lookups of the voter with ``token``."""
    return f"lookup:{token}"
