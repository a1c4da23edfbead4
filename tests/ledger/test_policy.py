"""C2SP tlog-policy files: strict parsing naming the line, round trips, quorum evaluation."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.cosignature import CosignerKey
from ledger.keys import SignerKey
from ledger.policy import Group, Policy, PolicyError, WitnessLine, parse_policy

KEYS = [CosignerKey.of(SignerKey.from_seed(f"w{i}", bytes([i]) * 32).verifier) for i in range(8)]
LOG = SignerKey.from_seed("log", b"L" * 32).verifier


def _witness_lines(n: int) -> str:
    return "".join(f"witness W{i} {KEYS[i].vkey} http://w{i}.example/\n" for i in range(n))


def test_spec_example_shape() -> None:
    """Two levels of groups, any/all/k, comments, tabs and blank lines."""
    text = (
        f"# uchast\nlog {LOG.vkey}\n\n{_witness_lines(6)}"
        "group X\t2 W0 W1 W2\n  group Y any W3 W4 W5  \ngroup XY all X Y\nquorum XY\n"
    )
    policy = parse_policy(text)
    assert policy.quorum == "XY"
    assert [g.threshold for g in policy.groups] == [2, 1, 2]
    assert policy.witnesses[0].url == "http://w0.example/"
    assert policy.satisfied({"W0", "W2", "W5"})
    assert not policy.satisfied({"W0", "W3", "W5"})
    assert not policy.satisfied({"W0", "W1"})


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("quorum W0\n", 1, "not defined above"),
        (_witness_lines(1) + "quorum W0\nquorum W0\n", 3, "second quorum"),
        (_witness_lines(2) + "group G 3 W0 W1\nquorum G\n", 3, "threshold"),
        (_witness_lines(2) + "group G 0 W0 W1\nquorum G\n", 3, "threshold"),
        (_witness_lines(2) + "group G 2 W0 W0\nquorum G\n", 3, "listed twice"),
        (_witness_lines(1) + "group G any W0 G2\nquorum G\n", 2, "not defined above"),
        (_witness_lines(1) + "group W0 any W0\nquorum W0\n", 2, "defined twice"),
        (f"witness none {KEYS[0].vkey}\nquorum none\n", 1, "reserved"),
        (f"witness A {KEYS[0].vkey}\nwitness B {KEYS[0].vkey}\nquorum A\n", 2, "twice"),
        (f"witness A {LOG.vkey}\nquorum A\n", 1, "0x04"),
        (f"log {KEYS[0].vkey}\nquorum none\n", 1, "unsupported algorithm"),
        (f"log {LOG.vkey}\nlog {LOG.vkey}\nquorum none\n", 2, "twice"),
        ("quorum none\nwitnesses\n", 2, "unknown keyword"),
        ("quorum none\x0b\n", 1, "control character"),
        ("log\nquorum none\n", 1, "expected: log"),
    ],
)
def test_bad_line_is_named(text: str, line: int, message: str) -> None:
    """Every refusal names the line and what is wrong with it."""
    with pytest.raises(PolicyError, match=message) as caught:
        parse_policy(text)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"policy line {line}: ")


def test_no_quorum_line() -> None:
    """A policy must define its quorum, even if it is none."""
    with pytest.raises(PolicyError, match="no quorum"):
        parse_policy(_witness_lines(2))


def test_quorum_none_needs_nothing() -> None:
    """quorum none is met by no cosignature at all."""
    assert parse_policy("quorum none\n").satisfied(set())


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    n = draw(st.integers(1, 6))
    witnesses = tuple(
        WitnessLine(f"W{i}", KEYS[i], draw(st.sampled_from([None, f"http://w{i}/"])))
        for i in range(n)
    )
    names = [w.name for w in witnesses]
    groups = []
    for g in range(draw(st.integers(0, 3))):
        members = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
        threshold = draw(st.integers(1, len(members)))
        groups.append(Group(f"G{g}", threshold, tuple(members)))
        names.append(f"G{g}")
    quorum = draw(st.sampled_from([None, *names]))
    return Policy((), witnesses, tuple(groups), quorum)


@given(policies())
def test_render_parse_round_trip(policy: Policy) -> None:
    """A rendered policy parses back to the same policy."""
    assert parse_policy(policy.render()) == policy


@given(policies(), st.data())
def test_quorum_is_monotone(policy: Policy, data: st.DataObject) -> None:
    """More cosignatures never lose a met quorum; all witnesses always meet it."""
    names = [w.name for w in policy.witnesses]
    some = set(data.draw(st.lists(st.sampled_from(names), unique=True)))
    more = some | set(data.draw(st.lists(st.sampled_from(names), unique=True)))
    if policy.satisfied(some):
        assert policy.satisfied(more)
    assert policy.satisfied(names)
    assert policy.satisfied(set()) == (policy.quorum is None)


@settings(max_examples=50)
@given(st.integers(1, 6), st.data())
def test_k_of_n_counts_members(n: int, data: st.DataObject) -> None:
    """A k-of-n group is met exactly when k of its members cosigned; others do not count."""
    k = data.draw(st.integers(1, n))
    policy = parse_policy(
        _witness_lines(n + 1) + f"group Q {k} {' '.join(f'W{i}' for i in range(n))}\nquorum Q\n"
    )
    for size in range(n + 2):
        for chosen in itertools.islice(
            itertools.combinations([f"W{i}" for i in range(n + 1)], size), 20
        ):
            inside = len(set(chosen) - {f"W{n}"})
            assert policy.satisfied(set(chosen)) == (inside >= k)
