"""The Pabulib format: strict parsing, round trips, and real elections recounted and replayed."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.pabulib import (
    GreedySettings,
    PabulibBallot,
    PabulibError,
    PabulibFile,
    UnsupportedRuleError,
    UnsupportedVoteTypeError,
    ballots,
    breaches,
    budget_kopecks,
    candidates,
    categories,
    compare_funded,
    file_totals,
    file_votes,
    greedy_settings,
    max_length,
    max_sum_points,
    min_length,
    parse_pabulib,
    project_cost_kopecks,
    recount,
    recount_votes,
    rule,
    selected,
    threshold,
    vote_type,
    voting_method,
    write_pabulib,
)
from tally.winners import equal_shares, greedy
from tests.tally.oracle import Election

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PABULIB = DATA / "pabulib"
# Files with the other ballot kinds (knapsack, ordinal, cumulative): covered like the others.
KINDS = DATA / "pabulib-kinds"

WOLA = "Poland_Warszawa_2023_Wola.pb"
BOERNEROWO = "Poland_Warszawa_2026_Boernerowo_Lotnisko_Fort_Radiowo_Groty.pb"
GDYNIA = "Poland_Gdynia_2021_Babie_Doly__large.pb"
LODZ = "Poland_Lodz_2024_Andrzejow.pb"
CZESTOCHOWA = "Poland_Czestochowa_2024.pb"
BUDAPEST = "Hungary_Budapest_2025_XI_Ujbuda.pb"
ALEKSANDROW = "poland_warszawa_2017_aleksandrow.pb"  # knapsack (max_sum_cost)
CZYZYNY = "poland_krakow_2018_czyzyny.pb"  # ordinal, exactly 3
ANIOLKI = "poland_gdansk_2020_aniolki.pb"  # cumulative, 1-5 points

# The data README: each file whose funded set the city's rule reproduces, with that rule.
REPRODUCIBLE = {
    WOLA: "greedy",
    ALEKSANDROW: "greedy",
    BOERNEROWO: "greedy-threshold",
    GDYNIA: "greedy-no-skip",
    LODZ: "greedy-threshold",
    CZESTOCHOWA: "greedy",
}
KNOWN = [*REPRODUCIBLE, BUDAPEST, ALEKSANDROW, CZYZYNY, ANIOLKI]
ALL_FILES = sorted(
    {*KNOWN, *(p.name for p in PABULIB.glob("*.pb")), *(p.name for p in KINDS.glob("*.pb"))}
)


def data_path(name: str) -> Path:
    """Where a real file lives: the approval folder, or the folder of the other kinds."""
    return KINDS / name if (KINDS / name).exists() else PABULIB / name


@functools.cache
def load(name: str) -> PabulibFile:
    """A real file, parsed once per test run; skipped locally, failed under CI, when missing."""
    path = data_path(name)
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing")
        pytest.skip(f"{path} is missing")
    return parse_pabulib(path.read_text(encoding="utf-8"))


# --- real files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_FILES)
def test_real_file_parses_with_the_counts_its_meta_states(name: str) -> None:
    """Every real file parses; META num_projects and num_votes match its sections."""
    pb = load(name)
    assert len(pb.projects) == int(pb.meta["num_projects"])
    assert len(pb.votes) == int(pb.meta["num_votes"])
    assert budget_kopecks(pb.meta) > 0
    assert all(project_cost_kopecks(p) > 0 for p in pb.projects)


@pytest.mark.parametrize("name", ALL_FILES)
def test_real_file_recount_equals_its_totals(name: str) -> None:
    """Counting the VOTES rows gives exactly the file's own votes (approval) or score column
    (cumulative: points; ordinal: 3, 2, 1 by rank), and its votes column (voters) on every kind."""
    pb = load(name)
    assert recount(pb) == file_totals(pb)
    assert recount_votes(pb) == file_votes(pb)
    if vote_type(pb.meta) == "cumulative" and "votes" in pb.projects[0]:
        supporters = {p["project_id"]: 0 for p in pb.projects}
        for ballot in ballots(pb):
            for pid in ballot.projects:
                supporters[pid] += 1
        assert supporters == {p["project_id"]: int(p["votes"]) for p in pb.projects}


@pytest.mark.parametrize("name", ALL_FILES)
def test_real_file_round_trips(name: str) -> None:
    """Writing a parsed file and parsing it again gives the same file."""
    pb = load(name)
    assert parse_pabulib(write_pabulib(pb)) == pb


@pytest.mark.parametrize("name", sorted(REPRODUCIBLE))
def test_city_rule_funds_exactly_the_selected_projects(name: str) -> None:
    """greedy with the file's rule and threshold funds exactly the selected == 1 set."""
    pb = load(name)
    assert rule(pb.meta) == REPRODUCIBLE[name]
    comparison = compare_funded(pb)
    assert comparison.rule == REPRODUCIBLE[name]
    assert comparison.missing == frozenset()
    assert comparison.extra == frozenset()
    assert comparison.matches


def test_gdynia_turnout_award_is_outside_the_rule() -> None:
    """Gdynia's selected=2 project (turnout award) is neither expected nor funded by the rule."""
    pb = load(GDYNIA)
    award = {p["project_id"] for p in pb.projects if p["selected"] == "2"}
    assert award
    comparison = compare_funded(pb)
    assert not award & (comparison.expected | comparison.ours)
    assert greedy_settings(pb.meta) == GreedySettings(skip=False, min_votes=50)


@pytest.mark.parametrize("name", [WOLA, CZESTOCHOWA])
def test_skipping_matters_on_real_data(name: str) -> None:
    """Where the city skipped, stopping at the first misfit would fund a different set."""
    pb = load(name)
    no_skip = greedy(candidates(pb), budget_kopecks(pb.meta), skip=False)
    assert frozenset(no_skip.funded) != selected(pb)


def test_budapest_differences_are_reported() -> None:
    """Budapest's rule is unknown: plain greedy is run and every difference is reported."""
    pb = load(BUDAPEST)
    comparison = compare_funded(pb)
    print(
        f"\n{BUDAPEST}: rule {comparison.rule}; selected {sorted(comparison.expected)}; "
        f"ours {sorted(comparison.ours)}; missing {sorted(comparison.missing)}; "
        f"extra {sorted(comparison.extra)}"
    )
    assert "fallback" in comparison.rule
    assert comparison.missing == comparison.expected - comparison.ours
    assert comparison.extra == comparison.ours - comparison.expected
    assert comparison.matches == (not comparison.missing and not comparison.extra)


@pytest.mark.parametrize("name", ALL_FILES)
def test_real_ballots_respect_the_stated_limits(name: str) -> None:
    """Every ballot of these real files keeps to its file's stated limits and names its
    channel (some Warsaw 2017 files do not: see the over-cap tests)."""
    pb = load(name)
    low, high, points = min_length(pb.meta), max_length(pb.meta), max_sum_points(pb.meta)
    for ballot in ballots(pb):
        assert low is None or len(ballot.projects) >= low
        assert high is None or len(ballot.projects) <= high
        assert points is None or vote_type(pb.meta) != "cumulative" or sum(ballot.points) <= points
        assert ballot.voting_method in (None, "internet", "paper")
    assert breaches(pb) == []


def test_ballots_over_their_files_limits_are_found_by_voter() -> None:
    """A knapsack file with a ballot over max_sum_cost, one too short and a cumulative file with
    too many points: each breach names the voter, the line, the limit and the ballot's value."""
    pb = load(ALEKSANDROW)
    costs = {p["project_id"]: project_cost_kopecks(p) for p in pb.projects}
    cap = int(pb.meta["max_sum_cost"]) * 100
    every = ",".join(costs)
    assert sum(costs.values()) > cap
    pb.votes[3] = {**pb.votes[3], "vote": every}
    pb.votes[7] = {**pb.votes[7], "vote": ""}
    found = breaches(pb)
    assert [(b.voter_id, b.key, b.stated, b.value) for b in found] == [
        (pb.votes[3]["voter_id"], "max_sum_cost", cap, sum(costs.values())),
        (pb.votes[7]["voter_id"], "min_length", 1, 0),
    ]
    assert found[0].line == pb.vote_lines[3]
    assert str(found[0]) == (
        f"voter {pb.votes[3]['voter_id']} (line {pb.vote_lines[3]}): max_sum_cost 110411, "
        f"the ballot has {sum(costs.values()) // 100}"
    )
    cumulative = parse_pabulib(CUMULATIVE.replace("1;A,B;8,2", "1;A,B;9,2"))
    assert [(b.voter_id, b.key, b.stated, b.value) for b in breaches(cumulative)] == [
        ("1", "max_sum_points", 10, 11)
    ]
    capped = parse_pabulib(
        CUMULATIVE.replace("max_sum_points;10", "max_sum_points;10\nmax_points;6")
    )
    assert [(b.voter_id, b.key, b.value) for b in breaches(capped)] == [("1", "max_points", 8)]


def test_paper_ballots_are_told_apart() -> None:
    """Wola's file records which ballots were cast on paper."""
    methods = [b.voting_method for b in ballots(load(WOLA))]
    assert methods.count("paper") == 29
    assert methods.count("internet") == 6731


# --- parsing, by hand ----------------------------------------------------------------------------

SMALL = '''META
key;value
description;"Test; with ""quotes"""
country;Ukraine
unit;Zhytomyr
instance;2018
num_projects;3
num_votes;3
budget;15219100.73
vote_type;approval
rule;greedy-threshold
min_length;1
max_length;2
min_project_score_threshold;2
PROJECTS
project_id;cost;votes;name;category;selected
L01;1500000;2;Сквер;"greenery,sport";1
L02;1350000.5;2;Стадіон;sport;0
S01;450000,25;1;Лава;None;0
VOTES
voter_id;vote;voting_method
1;L01,L02;internet
2;L02,L01;paper
3;S01;None
'''


def test_parse_small_file() -> None:
    """Sections become dicts of strings, quoted fields unquoted, rows in file order."""
    pb = parse_pabulib(SMALL)
    assert pb.meta["description"] == 'Test; with "quotes"'
    assert pb.meta["budget"] == "15219100.73"
    assert [p["project_id"] for p in pb.projects] == ["L01", "L02", "S01"]
    assert pb.projects[0] == {
        "project_id": "L01",
        "cost": "1500000",
        "votes": "2",
        "name": "Сквер",
        "category": "greenery,sport",
        "selected": "1",
    }
    assert pb.votes[1] == {"voter_id": "2", "vote": "L02,L01", "voting_method": "paper"}
    assert pb.project_lines == [17, 18, 19]
    assert pb.vote_lines == [22, 23, 24]


def test_interpretation_helpers() -> None:
    """Money in exact kopecks, vote type, lengths, threshold, rule, categories, channel."""
    pb = parse_pabulib(SMALL)
    assert budget_kopecks(pb.meta) == 1_521_910_073
    assert [project_cost_kopecks(p) for p in pb.projects] == [150_000_000, 135_000_050, 45_000_025]
    assert vote_type(pb.meta) == "approval"
    assert (min_length(pb.meta), max_length(pb.meta), max_sum_points(pb.meta)) == (1, 2, None)
    assert threshold(pb.meta) == 2
    assert rule(pb.meta) == "greedy-threshold"
    assert greedy_settings(pb.meta) == GreedySettings(skip=True, min_votes=2)
    assert [categories(p) for p in pb.projects] == [("greenery", "sport"), ("sport",), ()]
    assert [voting_method(v) for v in pb.votes] == ["internet", "paper", None]
    assert selected(pb) == {"L01"}
    assert ballots(pb)[0] == PabulibBallot("1", ("L01", "L02"), (), "internet")
    assert recount(pb) == file_totals(pb) == {"L01": 2, "L02": 2, "S01": 1}
    pb.meta["budget"] = "2000000"
    comparison = compare_funded(pb)
    assert comparison.ours == {"L02"}  # cheaper of the tied two; S01 is below the threshold
    assert comparison.missing == {"L01"}


def test_bom_and_crlf_are_accepted() -> None:
    """A UTF-8 byte order mark and CRLF line ends parse like the plain text."""
    assert parse_pabulib("\ufeff" + SMALL.replace("\n", "\r\n")) == parse_pabulib(SMALL)


def test_write_then_parse_round_trips_and_writes_minimal_quoting() -> None:
    """write_pabulib gives text that parses back to the same file; quoting only where needed."""
    pb = parse_pabulib(SMALL)
    text = write_pabulib(pb)
    assert parse_pabulib(text) == pb
    assert 'description;"Test; with ""quotes"""\n' in text
    assert "L01;1500000;2;Сквер;greenery,sport;1\n" in text


def test_write_empty_sections() -> None:
    """Empty PROJECTS and VOTES still get a header, so the text parses back."""
    pb = PabulibFile(meta={"budget": "0"}, projects=[], votes=[])
    assert (
        write_pabulib(pb)
        == "META\nkey;value\nbudget;0\nPROJECTS\nproject_id;cost\nVOTES\nvoter_id;vote\n"
    )
    assert parse_pabulib(write_pabulib(pb)) == pb


def test_write_refuses_ragged_rows() -> None:
    """Rows of one section must share their columns."""
    pb = PabulibFile(
        meta={}, projects=[{"project_id": "1", "cost": "5"}, {"project_id": "2"}], votes=[]
    )
    with pytest.raises(ValueError, match="PROJECTS row 1"):
        write_pabulib(pb)


def _replace(old: str, new: str) -> str:
    assert old in SMALL
    return SMALL.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", None, "ends before META"),
        ("key;value\n", 1, "start with the META"),
        (_replace("PROJECTS\n", "VOTES\n"), 15, "expected PROJECTS"),
        (_replace("VOTES\n", ""), 20, "PROJECTS row has 3 fields"),
        (SMALL[: SMALL.index("VOTES")], 19, "ends before VOTES"),
        (SMALL[: SMALL.index("voter_id")], 20, "ends before VOTES header"),
        (SMALL + "META\n", 25, "no more sections"),
        (_replace("key;value", "key;val"), 2, "key;value"),
        (_replace("country;Ukraine", "country;Ukraine;extra"), 4, "3 fields"),
        (_replace("country;Ukraine", "unit;Ukraine"), 5, "'unit' repeated"),
        (_replace("project_id;cost;votes", "id;cost;votes"), 16, "project_id"),
        (_replace("L02;1350000.5", "L01;1350000.5"), 18, "'L01' repeated"),
        (_replace("2;L02,L01;paper", "2;L02,L01"), 23, "2 fields"),
        (_replace("3;S01;None", "1;S01;None"), 24, "voter_id '1' repeated"),
        (_replace("voter_id;vote;voting_method", "voter_id;votes;voting_method"), 21, "vote"),
        (_replace("selected\n", "selected;cost\n"), 16, "repeats a column"),
        (_replace('"Test; with ""quotes"""', '"Test"x'), 3, "bad CSV"),
    ],
)
def test_malformed_files_are_refused_with_the_line(
    text: str, line: int | None, fragment: str
) -> None:
    """Structural errors raise PabulibError naming the offending line."""
    with pytest.raises(PabulibError, match=fragment) as caught:
        parse_pabulib(text)
    assert caught.value.line == line


@pytest.mark.parametrize("amount", ["12.345", "1 000", "-5", "5e3", "", "0x10", "1.2.3"])
def test_amounts_must_be_exact_minor_units(amount: str) -> None:
    """Amounts with fractions of a kopeck, signs, exponents or separators are refused."""
    with pytest.raises(PabulibError):
        budget_kopecks({"budget": amount})


@pytest.mark.parametrize(
    ("amount", "kopecks"),
    [
        ("0", 0),
        ("1", 100),
        ("0.01", 1),
        ("1,5", 150),
        ("15219100.73", 1_521_910_073),
        ("7.10", 710),
    ],
)
def test_amounts_convert_exactly(amount: str, kopecks: int) -> None:
    """Main units with up to two decimals (point or comma) convert exactly to kopecks."""
    assert budget_kopecks({"budget": amount}) == kopecks


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("1;L01,L02;internet", "1;L01,L09;internet", "unknown project 'L09'"),
        ("1;L01,L02;internet", "1;L01,L01;internet", "twice"),
        ("1;L01,L02;internet", "1;L01,,L02;internet", "unknown project ''"),
    ],
)
def test_bad_ballots_are_refused_with_the_line(old: str, new: str, fragment: str) -> None:
    """Ballots naming unknown or repeated projects raise PabulibError at their line."""
    pb = parse_pabulib(_replace(old, new))
    with pytest.raises(PabulibError, match=fragment) as caught:
        ballots(pb)
    assert caught.value.line == 22


CUMULATIVE = """META
key;value
budget;100
vote_type;cumulative
rule;greedy
max_sum_points;10
PROJECTS
project_id;cost;votes;score
A;60;2;13
B;50;1;2
VOTES
voter_id;vote;points
1;A,B;8,2
2;A;5
3;;
"""


def test_cumulative_ballots_and_points() -> None:
    """Cumulative ballots pair projects with points; totals are points; empty ballots count."""
    pb = parse_pabulib(CUMULATIVE)
    assert [b.weights() for b in ballots(pb)] == [{"A": 8, "B": 2}, {"A": 5}, {}]
    assert recount(pb) == file_totals(pb) == {"A": 13, "B": 2}
    assert max_sum_points(pb.meta) == 10
    assert [(c.votes, c.score) for c in candidates(pb)] == [(2, 13), (1, 2)]


def test_cumulative_points_must_pair_with_projects() -> None:
    """A points list that does not match the vote list is refused at its line."""
    pb = parse_pabulib(CUMULATIVE.replace("1;A,B;8,2", "1;A,B;8"))
    with pytest.raises(PabulibError, match="2 projects but 1 points") as caught:
        ballots(pb)
    assert caught.value.line == 13


ORDINAL = """META
key;value
budget;100
vote_type;ordinal
rule;greedy
min_length;1
max_length;3
PROJECTS
project_id;cost;votes;score
A;60;3;8
B;50;2;5
C;10;1;1
VOTES
voter_id;vote
1;A,B,C
2;B,A
3;A
"""


def test_ordinal_ballots_score_by_position() -> None:
    """An ordinal vote is a ranking, most preferred first: k, k-1, ... with k = max_length;
    votes count the voters who ranked a project at all; a longer ranking is refused."""
    pb = parse_pabulib(ORDINAL)
    assert [b.weights() for b in ballots(pb)] == [
        {"A": 3, "B": 2, "C": 1},
        {"B": 3, "A": 2},
        {"A": 3},
    ]
    assert recount(pb) == file_totals(pb) == {"A": 8, "B": 5, "C": 1}
    assert recount_votes(pb) == file_votes(pb) == {"A": 3, "B": 2, "C": 1}
    with pytest.raises(PabulibError, match="a ranking of 4 but max_length is 3"):
        ballots(
            parse_pabulib(
                ORDINAL.replace("C;10;1;1", "C;10;1;1\nD;5;0;0").replace("1;A,B,C", "1;A,B,C,D")
            )
        )


def test_scoring_ballots_are_unsupported() -> None:
    """Valid but uninterpreted vote types raise UnsupportedVoteTypeError naming the META line."""
    kind = "scoring"
    pb = parse_pabulib(CUMULATIVE.replace("vote_type;cumulative", f"vote_type;{kind}"))
    assert vote_type(pb.meta) == kind
    for operation in (ballots, recount, file_totals):
        with pytest.raises(UnsupportedVoteTypeError, match=kind) as caught:
            operation(pb)
        assert caught.value.line == 4


def test_unknown_vote_type_is_unsupported() -> None:
    """A vote_type outside the format raises UnsupportedVoteTypeError."""
    with pytest.raises(UnsupportedVoteTypeError, match="choose-1"):
        vote_type({"vote_type": "choose-1"})


def test_rules_other_than_greedy_are_unsupported_for_replay() -> None:
    """greedy_settings refuses rules it cannot reproduce; compare_funded falls back and says so."""
    with pytest.raises(UnsupportedRuleError, match="equalshares"):
        greedy_settings({"rule": "equalshares"})
    pb = parse_pabulib(
        CUMULATIVE.replace("rule;greedy", "rule;unknown")
        .replace("votes;score", "votes;score;selected")
        .replace("A;60;2;13", "A;60;2;13;1")
        .replace("B;50;1;2", "B;50;1;2;0")
    )
    comparison = compare_funded(pb)
    assert comparison.rule == "greedy (fallback for rule 'unknown')"
    assert comparison.matches


# --- round trip, generated -----------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)


@st.composite
def pabulib_files(draw: st.DrawFn) -> PabulibFile:
    """Files with arbitrary text values: separators, quotes, line breaks, Unicode."""
    meta = draw(st.dictionaries(_text, _text, max_size=5))
    extra = draw(
        st.lists(_text.filter(lambda k: k not in ("project_id", "cost")), unique=True, max_size=3)
    )
    project_ids = draw(st.lists(_text, unique=True, max_size=4))
    projects = [
        {"project_id": pid, "cost": draw(_text), **{k: draw(_text) for k in extra}}
        for pid in project_ids
    ]
    voter_ids = draw(st.lists(_text, unique=True, max_size=4))
    votes = [{"voter_id": vid, "vote": draw(_text)} for vid in voter_ids]
    return PabulibFile(meta=meta, projects=projects, votes=votes)


@settings(max_examples=200, deadline=None)
@given(pabulib_files())
def test_generated_files_round_trip(pb: PabulibFile) -> None:
    """Any file write_pabulib can write parses back equal, whatever its values hold."""
    assert parse_pabulib(write_pabulib(pb)) == pb


# --- real files against pabutools ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name", [pytest.param(WOLA, marks=pytest.mark.slow), BOERNEROWO, GDYNIA, LODZ, BUDAPEST]
)
def test_real_approval_election_matches_pabutools(name: str) -> None:
    """On real approval ballots greedy and equal shares fund what pabutools funds."""
    pb = load(name)
    cands, budget = candidates(pb), budget_kopecks(pb.meta)
    approvals = [list(b.projects) for b in ballots(pb)]
    oracle = Election(cands, budget, approvals)
    assert frozenset(greedy(cands, budget, tie_break=[]).funded) == oracle.greedy()
    ours = equal_shares(cands, budget, approvals, completion="none", tie_break=[])
    assert frozenset(ours.funded) == oracle.equal_shares("none", increment=100)
