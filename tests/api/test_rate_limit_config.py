"""How `uchast serve`'s rate-limit flags reach the limiter: on by default, per role."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.app import create_app
from api.cli import build_parser
from api.ratelimit import LIMITER, ROLE_RATES, UNVERIFIED_RATE, envelope_key
from api.service import ServiceConfig
from ledger.keys import SignerKey


def config(tmp_path: Path, **options: object) -> ServiceConfig:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    return ServiceConfig(url, SignerKey.generate("uchast.local/log"), **options)  # type: ignore[arg-type]


def test_limits_are_on_without_flags(tmp_path: Path) -> None:
    """With no flag at all every role has its own rate and unverified requests theirs."""
    limiter = create_app(config(tmp_path))[LIMITER]
    for role, (rate, _) in ROLE_RATES.items():
        assert limiter.rate_for(role) == rate
    assert limiter.rate_for("clerk") <= 1.0  # a clerk types at human speed


def test_a_role_lifted_and_all_turned_off(tmp_path: Path) -> None:
    """`--rate-limit-role clerk=0` lifts one role only; `--no-rate-limit` removes the limiter."""
    lifted = create_app(config(tmp_path, role_rate_limits=(("clerk", 0.0),)))[LIMITER]
    assert lifted.rate_for("clerk") == 0.0 and lifted.rate_for("site") == ROLE_RATES["site"][0]
    assert LIMITER not in create_app(config(tmp_path, rate_limiting=False))


def test_serve_flags(tmp_path: Path) -> None:
    """The serve command line parses into the same settings."""
    args = build_parser().parse_args(
        ["serve", "--db", "sqlite:///x.db", "--log-key", "log.key", "--no-rate-limit"]
    )
    assert args.no_rate_limit and args.rate_limit_unverified is None
    args = build_parser().parse_args(
        [
            "serve",
            "--db",
            "sqlite:///x.db",
            "--log-key",
            "log.key",
            "--rate-limit-unverified",
            "50",
            "--rate-limit-role",
            "clerk=0.5",
        ]
    )
    assert not args.no_rate_limit and args.rate_limit_unverified == 50.0
    assert args.rate_limit_role == [("clerk", 0.5)]
    assert UNVERIFIED_RATE[0] == ServiceConfig.unverified_rate_limit


def test_lookup_limit_flag() -> None:
    """`--lookup-limit BURST/SECONDS` parses; a malformed one is refused by the parser."""
    base = ["serve", "--db", "sqlite:///x.db", "--log-key", "log.key"]
    assert build_parser().parse_args(base).lookup_limit is None
    assert build_parser().parse_args([*base, "--lookup-limit", "0/0"]).lookup_limit == (0, 0.0)
    assert build_parser().parse_args([*base, "--lookup-limit", "3/10"]).lookup_limit == (3, 10.0)
    with pytest.raises(SystemExit):
        build_parser().parse_args([*base, "--lookup-limit", "fast"])


def test_a_lookup_body_is_charged_to_its_envelopes_key() -> None:
    """The limiter reads the key of a lookup's nested envelope, like any other envelope's."""
    assert envelope_key(b'{"envelope": {"key": "clerk.a+01234567"}, "identity": "1"}') == (
        "clerk.a+01234567"
    )
    assert envelope_key(b'{"payload": {}, "key": "site.b+89abcdef", "sig": ""}') == (
        "site.b+89abcdef"
    )
