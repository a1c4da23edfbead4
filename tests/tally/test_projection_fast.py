"""The tally's fast path (canonical ballots read from their bytes, days cached by the hour)
counts exactly what the straightforward path (``json.loads`` of every entry) counts."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.canonical import canonical
from tally.projection import Tally, _day_of
from tests.votes.factories import token, zhytomyr_with

PROJECTS = ["L01", "L02", "S01", "S02", "Ł03", "a,b", "x\\y"]
KYIV = ZoneInfo("Europe/Kyiv")
ZONES = [
    UTC,
    KYIV,
    timezone(timedelta(hours=3)),
    timezone(timedelta(hours=5, minutes=30)),
    timezone(-timedelta(hours=5, minutes=30)),
    timezone(timedelta(hours=23, minutes=59)),
]


def entry(
    payload: dict[str, Any], *, style: str = "canonical", key: str = "site.e-dem+0a1b2c3d"
) -> bytes:
    """An entry's bytes: canonical as the ledger stores it, or another valid JSON spelling."""
    obj = {
        "envelope": {"key": key, "payload": payload, "sig": "c2ln"},
        "recorded_at": "2018-10-03T07:15:00.000000Z",
        "tags": ["voter:" + str(payload.get("voter")), "project:L01"],
        "type": payload.get("type"),
    }
    if style == "canonical":
        return canonical(obj)
    if style == "spaced":
        return json.dumps(obj, sort_keys=True).encode()
    return json.dumps(obj, ensure_ascii=True).encode()  # members out of canonical order


def state(tally: Tally) -> tuple[Any, ...]:
    """Everything a tally holds, as plain data (zero counts kept)."""
    return (
        dict(tally.votes),
        dict(tally.scores),
        dict(tally.by_channel),
        dict(tally.by_point),
        dict(tally.by_day),
        dict(tally.ballots),
        dict(tally.voter_ballots),
        {voter: set(channels) for voter, channels in tally.voter_channels.items()},
        tally.voters_by_channel(),
        tally.spoiled,
        tally.voided,
        tally.entries,
        tally.position,
    )


async def run(tally: Tally, entries: list[bytes]) -> type[BaseException] | None:
    """Apply ``entries`` in order; the type of the first error, if one stops the tally."""

    async def fetch(position: int) -> dict[str, Any]:
        return dict(json.loads(entries[position]))

    for position, data in enumerate(entries):
        try:
            await tally.apply(position, data, fetch)
        except Exception as exc:
            return type(exc)
    return None


async def run_many(tally: Tally, entries: list[bytes]) -> type[BaseException] | None:
    """Apply ``entries`` with :meth:`Tally.apply_data`, as a rebuild does."""

    async def fetch(position: int) -> dict[str, Any]:
        return dict(json.loads(entries[position]))

    try:
        await tally.apply_data(0, entries, fetch)
    except Exception as exc:
        return type(exc)
    return None


def both(double_entry: bool, entries: list[bytes]) -> tuple[Tally, Tally]:
    """The same entries through the fast tally (one by one and in a batch) and the
    straightforward one: the same outcome."""
    election = zhytomyr_with(double_entry=double_entry)
    fast, many, slow = Tally(election), Tally(election), Tally(election, fast=False)
    outcome = asyncio.run(run(slow, entries))
    assert asyncio.run(run(fast, entries)) == outcome
    assert asyncio.run(run_many(many, entries)) == outcome
    assert state(fast) == state(slow) == state(many)
    return fast, slow


def stamp(moment: datetime, form: int) -> str:
    """``moment`` in one of the ways a client may write it (some outside the cached form)."""
    text = [
        moment.isoformat(),
        moment.isoformat(timespec="minutes"),
        moment.isoformat(timespec="microseconds"),
        moment.isoformat(timespec="milliseconds"),
        moment.isoformat().replace("+00:00", "Z"),
        moment.isoformat().replace("T", " "),
        moment.replace(tzinfo=None).isoformat(),
        moment.isoformat() + "junk",
    ][form]
    return text


moments = st.datetimes(
    min_value=datetime(2018, 3, 24),
    max_value=datetime(2018, 11, 2),
    timezones=st.sampled_from(ZONES),
)
# Voters the rules would not take, as a log may still hold them: the tally keeps a voter token as
# its bytes and any other voter as its string, and must never mistake one for another.
ODD_VOTERS = [token(0xABC).upper(), token(0xABC), token(2)[:-1], token(3) + "0", "voter-7", ""]
ballot_op = st.tuples(
    st.sampled_from(["ballot", "paper-ballot"]),
    st.one_of(st.integers(0, 4), st.sampled_from(ODD_VOTERS)),
    st.lists(st.sampled_from(PROJECTS), max_size=4),
    moments,
    st.integers(0, 7),
    st.sampled_from([None, "city-council", "bohunskyi"]),
    st.sampled_from(["canonical", "canonical", "canonical", "spaced", "ascii"]),
    st.booleans(),
)
operation = st.one_of(
    ballot_op,
    ballot_op,
    ballot_op,
    st.tuples(st.just("void"), st.integers(0, 30)),
    st.tuples(st.just("spoiled-ballot"), st.integers(0, 4)),
)


def build(operations: list[tuple[Any, ...]]) -> list[bytes]:
    entries: list[bytes] = []
    for n, op in enumerate(operations):
        if op[0] == "void":
            payload: dict[str, Any] = {
                "type": "void",
                "election": "zhytomyr-2018",
                "entry": min(op[1], max(len(entries) - 1, 0)),
                "reason": "x",
                "nonce": f"n{n}",
            }
            entries.append(entry(payload, key="supervisor.main+44444444"))
        elif op[0] == "spoiled-ballot":
            payload = {
                "type": "spoiled-ballot",
                "election": "zhytomyr-2018",
                "voter": token(op[1]),
                "polling_point": "city-council",
                "reason": "other",
                "cast_at": "2018-10-03T10:15:00+03:00",
                "nonce": f"n{n}",
            }
            entries.append(entry(payload))
        else:
            kind, voter, projects, moment, form, point, style, extra = op
            payload = {
                "type": kind,
                "election": "zhytomyr-2018",
                "voter": voter if isinstance(voter, str) else token(voter),
                "projects": projects,
                "cast_at": stamp(moment, form),
                "nonce": f"n{n}",
            }
            if point is not None:
                payload["polling_point"] = point
            if extra:
                payload["note"] = "an extra field"
            key = (
                "clerk.city-council.olena+11111111"
                if n % 2
                else "clerk.city-council.petro+22222222"
            )
            entries.append(entry(payload, style=style, key=key))
    return entries


@settings(max_examples=300, deadline=None)
@given(st.booleans(), st.lists(operation, max_size=30))
def test_fast_tally_equals_the_straightforward_one(
    double_entry: bool, operations: list[tuple[Any, ...]]
) -> None:
    """Any mix of ballots (canonical or not, odd timestamps, extra fields), paper ballots,
    spoiled ballots and voids leaves the fast and the straightforward tally identical."""
    both(double_entry, build(operations))


CANONICAL = {
    "type": "ballot",
    "election": "zhytomyr-2018",
    "voter": token(1),
    "projects": ["L01", "S01"],
    "cast_at": "2018-10-03T10:15:00+03:00",
    "nonce": "n1",
}


def variant(change: str) -> bytes:
    data = entry(dict(CANONICAL))
    replacements = {
        "escaped voter": (token(1).encode(), b"\\u0030" + token(1)[1:].encode()),
        "escaped project": (b'"L01"', b'"L\\u00301"'),
        "control character": (b'"S01"', b'"S\x0101"'),
        "trailing bytes": (data, data + b" "),
        "leading space": (data, b" " + data),
        "number project": (b'"L01"', b"7"),
        "nested project": (b'"L01"', b'["L01"]'),
        "null point": (b'"nonce":"n1",', b'"nonce":"n1","polling_point":null,'),
        "duplicate key": (b'"type":"ballot"}', b'"type":"ballot","type":"void"}'),
        "unterminated": (data, data[:-1]),
        "invalid utf-8": (b'"L01"', b'"L\xff1"'),
        "surrogate": (b'"L01"', b'"L\xed\xa0\x801"'),
        "invalid utf-8 in sig": (b'"c2ln"', b'"c2\xffln"'),
        "non-ascii key": (b'"site.e-dem+', b'"\xd1\x81\xd0\xb0\xd0\xb9\xd1\x82.e-dem+'),
    }
    old, new = replacements[change]
    assert old in data
    return data.replace(old, new, 1)


@pytest.mark.parametrize("double_entry", [False, True])
@pytest.mark.parametrize(
    "change",
    [
        "escaped voter",
        "escaped project",
        "control character",
        "trailing bytes",
        "leading space",
        "number project",
        "nested project",
        "null point",
        "duplicate key",
        "unterminated",
        "invalid utf-8",
        "surrogate",
        "invalid utf-8 in sig",
        "non-ascii key",
    ],
)
def test_unusual_entry_bytes_are_read_alike(change: str, double_entry: bool) -> None:
    """Entry bytes off the canonical form (escapes, control characters, stray bytes, other
    types, duplicate members, bad UTF-8) give the same tally, or the same error, both ways."""
    both(double_entry, [entry(dict(CANONICAL)), variant(change)])


@pytest.mark.parametrize("fast", [True, False])
def test_voters_are_told_apart_by_their_exact_strings(fast: bool) -> None:
    """A voter token is kept as its 32 bytes, yet every view, save and restore gives back the
    exact string: the same digits in capitals, one digit short or one too many, or any other
    string are other voters."""
    election = zhytomyr_with(double_entry=False)
    voter = token(0xABC)  # its capitals differ
    voters = [voter, voter.upper(), voter[:-1], voter + "0", "voter-7", "виборець"]
    payloads = [{**CANONICAL, "voter": v, "nonce": v} for v in voters]
    payloads.append({**CANONICAL, "voter": voter, "nonce": "n2", "type": "paper-ballot"})
    tally = Tally(election, fast=fast)
    assert asyncio.run(run(tally, [entry(payload) for payload in payloads])) is None
    assert tally.voter_ballots == {v: 1 for v in voters} | {voter: 2}
    assert tally.voters == len(voters) and tally.voter_channels[voter] == {"online", "paper"}
    point = tally.save_point()
    assert point.items() == {v: 1 for v in voters} | {voter: 1 + (1 << 32)}
    restored = Tally.restore(election, point.state, point.items(), fast=fast)
    assert state(restored) == state(tally)

    async def fetch(position: int) -> dict[str, Any]:
        raise AssertionError("nothing is voided here")

    again = {**CANONICAL, "voter": voter.upper(), "nonce": "n3"}
    asyncio.run(tally.apply(tally.position, entry(again), fetch))
    failed = tally.save_point()
    assert failed.items() == {voter.upper(): 2} and not failed.replace
    tally.unsaved(failed)  # not written: the next save writes that voter again, by its string
    assert tally.save_point().items() == failed.items()


def test_canonical_ballots_take_the_fast_path() -> None:
    """Canonical online and paper ballots are read without JSON; others are not."""
    tally = Tally(zhytomyr_with(double_entry=False))
    paper = {**CANONICAL, "type": "paper-ballot", "polling_point": "city-council"}
    assert tally._apply_fast(entry(dict(CANONICAL)))
    assert tally._apply_fast(entry(paper))
    assert not tally._apply_fast(entry(dict(CANONICAL), style="spaced"))
    assert not tally._apply_fast(entry({**CANONICAL, "note": "x"}))
    assert not Tally(zhytomyr_with(double_entry=True))._apply_fast(entry(paper))
    assert tally.votes == {"L01": 2, "S01": 2} and tally.by_point[("L01", "city-council")] == 1


@settings(max_examples=500, deadline=None)
@given(moments, st.integers(0, 7))
def test_cached_day_equals_the_definition(moment: datetime, form: int) -> None:
    """The day of any timestamp, cached by hour or minute or not, is the one fromisoformat and
    the election's zone give (across Kyiv's clock changes and odd offsets)."""
    tally = Tally(zhytomyr_with())
    text = stamp(moment, form)
    try:
        expected: str | type[Exception] = _day_of(text, KYIV)
    except ValueError:
        expected = ValueError
    for _ in range(2):  # computed, then cached
        try:
            got: str | type[Exception] = tally._day(text)
        except ValueError:
            got = ValueError
        assert got == expected
