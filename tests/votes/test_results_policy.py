"""The election's ``results`` policy: ``open`` (the default) or ``sealed-until-close``; read
strictly, signed in the definition, fixed once voting opens, and read alike by the auditor."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from tally.audit.ballots import parse_definition
from tests.votes.factories import example_document, example_text
from votes.election import (
    RESULTS_POLICIES,
    check_amendment,
    election_from_dict,
    election_to_dict,
    parse_election_toml,
)
from votes.errors import ElectionDefinitionError, ElectionFrozenError


def sealed_toml() -> str:
    """The example file with the one line that seals it (as the README shows it)."""
    sealed = example_text().replace('\nresults = "open"\n', '\nresults = "sealed-until-close"\n')
    assert sealed != example_text()
    return sealed


def test_open_is_the_default() -> None:
    """An election file without ``results`` serves its results live."""
    election = parse_election_toml(example_text())
    assert election.results == "open"
    assert not election.results_sealed(election.voting_opens + timedelta(hours=1))


def test_the_sealing_line_is_read() -> None:
    """``results = "sealed-until-close"`` in the file seals the election."""
    election = parse_election_toml(sealed_toml())
    assert election.results == "sealed-until-close"


def test_sealed_until_the_close_and_not_a_moment_after() -> None:
    """Sealed before and during voting, open from ``voting_closes`` on (the window's own end)."""
    election = parse_election_toml(sealed_toml())
    closes = election.voting_closes
    assert election.results_sealed(election.voting_opens - timedelta(days=3))
    assert election.results_sealed(closes - timedelta(microseconds=1))
    assert not election.results_sealed(closes)
    assert not election.results_sealed(closes + timedelta(days=1))


@pytest.mark.parametrize("value", ["sealed", "Sealed-Until-Close", "", True, 1, ["open"], None])
def test_anything_else_is_refused_naming_the_field(value: Any) -> None:
    """A misspelt policy is an error on ``results`` listing both values, never a silent open."""
    document = example_document()
    document["results"] = value
    with pytest.raises(ElectionDefinitionError) as caught:
        election_from_dict(document)
    assert caught.value.field == "results"
    assert "open, sealed-until-close" in caught.value.message


def test_the_policy_is_in_the_signed_definition() -> None:
    """``election_to_dict`` (what the election entry carries, signed) writes the policy, also
    the default, and reads it back."""
    for policy in RESULTS_POLICIES:
        election = election_from_dict({**example_document(), "results": policy})
        data = election_to_dict(election)
        assert data["results"] == policy
        assert election_from_dict(data) == election


def test_it_cannot_change_once_voting_opens() -> None:
    """An amendment unsealing (or sealing) the election after voting opened is refused; before,
    it is allowed like any other change."""
    sealed = parse_election_toml(sealed_toml())
    unsealed = dataclasses.replace(sealed, results="open")
    check_amendment(sealed, unsealed, now=sealed.voting_opens - timedelta(seconds=1))
    with pytest.raises(ElectionFrozenError):
        check_amendment(sealed, unsealed, now=sealed.voting_opens)


@pytest.mark.parametrize(
    "value", ["open", "sealed-until-close", "sealed", "closed", "", None, True, 0, ["open"]]
)
def test_the_auditor_reads_the_policy_as_the_server_does(value: Any) -> None:
    """The auditor's mirror (tally.audit.ballots) accepts exactly the policies the domain does,
    with the same meaning."""
    data = election_to_dict(parse_election_toml(example_text()))
    data["results"] = value
    try:
        expected: str | None = election_from_dict(data).results
    except ElectionDefinitionError:
        expected = None
    try:
        found: str | None = parse_definition(data).results
    except ValueError:
        found = None
    assert found == expected


def test_the_auditor_defaults_to_open() -> None:
    """A definition written before the option existed (no ``results`` member) is open."""
    data = election_to_dict(parse_election_toml(example_text()))
    del data["results"]
    assert parse_definition(data).results == "open"
    assert election_from_dict(data).results == "open"
