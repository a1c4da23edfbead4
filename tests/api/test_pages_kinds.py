"""The clerk and results pages for every ballot kind, in headless Chromium against a real server.

Each test runs an election of its own: the example with its large category made knapsack,
cumulative or ordinal (the small one stays approval, so every ballot mixes two kinds), and for
the ordinal one a category group (a voter votes in one of the two categories). The clerk types
the way the README says (points beside project numbers, ranks in typed order); every limit the
typed ballot alone breaks must show before Enter and be refused without a request, and a limit
only the log can know (the voter's earlier ballot) must come back as the server's own words.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from api.app import create_app
from api.service import ServiceConfig
from ledger.keys import sign_envelope
from tests.api.conftest import VOTER_KEY, VOTING_DAY
from tests.api.test_pages import (
    CHROMIUM,
    CODE,
    LAUNCH_ARGS,
    SHOTS,
    Browser,
    Site,
    enter_ballot,
    load_key,
    require_browser,
    text,
)
from tests.factories import ELECTION, EXAMPLE, Keys, opened_ledger, voter_token
from votes.election import election_from_dict, election_to_dict, parse_election_toml
from votes.errors import DomainError
from votes.rules import decide_ballot

LARGE = 'max_picks = 2\nbudget = "10 653 370.51"'
COSTS = {p.id: int(p.cost) for p in parse_election_toml(EXAMPLE.read_text("utf-8")).projects}
# The knapsack cap: L01 and L02 fit, rounded up to the next 100 000.00 UAH; a third large project
# (each costs more than that) does not.
CAP = -(-(COSTS["L01"] + COSTS["L02"]) // 10_000_000) * 10_000_000
KINDS = {
    "knapsack": f'ballot = "knapsack"\nmax_total_cost_kopecks = {CAP}',
    "cumulative": 'ballot = "cumulative"\nmax_points = 3\nmax_total_points = 5',
    "ordinal": 'ballot = "ordinal"\nmax_picks = 3',
}
GROUP = """
[[category_groups]]
id = "one-list"
categories = ["large", "small"]
max_categories = 1
"""


def uah(kopecks: int) -> str:
    """Money as the English pages write it: 1,889,600.38 UAH."""
    return f"{kopecks // 100:,}.{kopecks % 100:02d} UAH"


def kinds_definition(kind: str, *, group: bool = False) -> dict[str, Any]:
    """The example election with its large category of ``kind`` (and a group of both)."""
    source = EXAMPLE.read_text(encoding="utf-8")
    assert LARGE in source
    source = source.replace('id = "zhytomyr-2018"', f'id = "{ELECTION}"', 1)
    source = source.replace(LARGE, KINDS[kind] + '\nbudget = "10 653 370.51"')
    if group:
        source += GROUP
    return election_to_dict(parse_election_toml(source))


def online_ballot(keys: Keys, n: int, **fields: Any) -> dict[str, Any]:
    payload = {
        "type": "ballot",
        "election": ELECTION,
        "voter": voter_token(n),
        "cast_at": "2018-10-03T10:15:00+03:00",
        "nonce": str(uuid.uuid4()),
        **fields,
    }
    return sign_envelope(payload, keys.site)


SiteFactory = Callable[[dict[str, Any]], Awaitable[Site]]


@pytest.fixture
async def make_site(
    aiohttp_server: Callable[..., Awaitable[TestServer]], sqlite_url: str
) -> AsyncIterator[SiteFactory]:
    sessions: list[ClientSession] = []

    async def make(definition: dict[str, Any]) -> Site:
        keys = Keys()
        async with opened_ledger(sqlite_url, keys, definition=definition):
            pass
        config = ServiceConfig(sqlite_url, keys.log, voter_key=VOTER_KEY, clock=lambda: VOTING_DAY)
        server = await aiohttp_server(create_app(config))
        http = ClientSession()
        sessions.append(http)
        return Site(server, keys, f"http://127.0.0.1:{server.port}", http)

    yield make
    for http in sessions:
        await http.close()


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    require_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def open_clerk(chromium: Any, site: Site) -> tuple[Browser, Any]:
    browser = Browser(chromium, site.base)
    page = await browser.page("/clerk", lang="en")
    await load_key(page, site.keys)
    return browser, page


async def post(site: Site, envelope: dict[str, Any]) -> None:
    async with site.http.post(f"{site.base}/v1/elections/{ELECTION}/ballots", json=envelope) as r:
        assert r.status == 201, await r.text()


async def problems(page: Any) -> list[str]:
    """The problem codes the preview shows now, in order."""
    tags = await page.locator("#preview [data-problem]").all()
    return [str(await tag.get_attribute("data-problem")) for tag in tags]


async def typed(page: Any, ballot: str) -> list[str]:
    """Type ``ballot`` into the projects field (nothing sent); the problems shown at once."""
    await page.fill("#projects", "")
    await page.focus("#projects")
    await page.keyboard.type(ballot)
    return await problems(page)


async def enter(page: Any, identity: str, ballot: str) -> str:
    """Type a whole ballot into empty fields (the preview checks leave the projects typed)."""
    await page.fill("#projects", "")
    return await enter_ballot(page, identity, ballot)


async def refused_on_the_page(browser: Browser, page: Any, identity: str, ballot: str) -> str:
    """Enter a ballot the page must refuse by itself: nothing reaches the server. The detail."""
    before = len(browser.fetched)
    assert "refused" in await enter(page, identity, ballot)
    assert browser.fetched[before:] == []
    return await text(page, "#status-detail")


async def refused_by_the_server(page: Any, identity: str, ballot: str) -> dict[str, Any]:
    """Enter a ballot the server refuses (at the voter look-up, for a voter who can add nothing
    more, or the ballot itself); its problem, whose English text the page shows."""
    async with page.expect_response(lambda response: response.status >= 400) as answer:
        assert "refused" in await enter(page, identity, ballot)
    response = await answer.value
    assert response.status == 409
    problem: dict[str, Any] = await response.json()
    assert problem["message_en"] in await text(page, "#status-detail")
    assert f"({problem['code']})" in await text(page, "#status-detail")
    return problem


async def counted_payload(site: Site, page: Any) -> tuple[str, dict[str, Any]]:
    """The receipt code and payload of the ballot the page just saw accepted, as logged."""
    code = await text(page, "#status-code")
    assert CODE.match(code)
    answer = await site.get_json(f"/v1/elections/{ELECTION}/receipts/{code}")
    assert answer["status"] == "counted"
    payload: dict[str, Any] = answer["entry"]["envelope"]["payload"]
    return code, payload


async def results_by_project(site: Site) -> dict[str, dict[str, Any]]:
    results = await site.get_json(f"/v1/elections/{ELECTION}/results")
    return {p["id"]: p for c in results["categories"] for p in c["projects"]}


def clean(browser: Browser) -> None:
    assert browser.outside == [], "pages reached outside the server"
    assert browser.errors == [], "pages logged errors"


# --------------------------------------------------------------------------- knapsack


async def test_clerk_knapsack_running_cost_and_the_cap(
    make_site: SiteFactory, chromium: Any
) -> None:
    """Knapsack: the preview keeps the chosen projects' total cost against the cap; a ballot over
    the cap is refused on the page; one that fits counts; one that fits alone but not with the
    voter's earlier ballot comes back refused by the server, in its words."""
    site = await make_site(kinds_definition("knapsack"))
    browser, page = await open_clerk(chromium, site)
    hint = await text(page, "#entry-hint")
    assert "total cost within the cap" in hint and "project numbers (L07 S12)" in hint

    assert await typed(page, "l1 L02 s1") == []
    summary = await text(page, "#preview li[data-category=large]")
    assert "2 project(s)" in summary
    assert f"cost {uah(COSTS['L01'] + COSTS['L02'])} of {uah(CAP)}" in summary
    assert await typed(page, "L01 L02 L03") == ["over-cost-limit"]
    await page.screenshot(path=str(SHOTS / "uchast-clerk-knapsack.png"))

    detail = await refused_on_the_page(browser, page, "1111111111", "L01 L02 L03")
    assert await text(page, "#status-headline") == "OVER THE LIMIT"
    three = COSTS["L01"] + COSTS["L02"] + COSTS["L03"]
    assert f"cost {uah(three)}, at most {uah(CAP)}" in detail
    assert "(over-cost-limit)" in detail
    assert await page.input_value("#projects") == ""

    assert "ok" in await enter(page, "1111111111", "L01 L02 S01")
    _, payload = await counted_payload(site, page)
    assert payload["projects"] == ["L01", "L02", "S01"]
    assert "points" not in payload and "ranking" not in payload

    problem = await refused_by_the_server(page, "1111111111", "L03")
    assert problem["code"] == "over-cost-limit"
    assert await text(page, "#status-headline") == "OVER THE LIMIT"
    votes = await results_by_project(site)
    assert votes["L01"]["votes_paper"] == 1 and votes["L03"]["votes"] == 0
    clean(browser)


# --------------------------------------------------------------------------- cumulative


async def test_clerk_cumulative_points_beside_project_numbers(
    make_site: SiteFactory, chromium: Any
) -> None:
    """Cumulative: "7:3" and "7 3" both give points; the preview shows each project's points and
    the running total against both limits; every points mistake shows at once and is refused on
    the page; the server refuses what only the voter's earlier ballot breaks."""
    site = await make_site(kinds_definition("cumulative"))
    browser, page = await open_clerk(chromium, site)
    assert "7:3 or 7 3" in await text(page, "#entry-hint")

    assert await typed(page, "l1:3 L2 2 s5") == []
    assert await page.get_attribute("#preview li[data-project=L01]", "data-points") == "3"
    assert await page.get_attribute("#preview li[data-project=L02]", "data-points") == "2"
    assert await page.get_attribute("#preview li[data-project=S05]", "data-kind") == "approval"
    assert "5 of 5 points" in await text(page, "#preview li[data-category=large]")

    assert await typed(page, "L01:4") == ["too-many-points-for-project"]
    assert await typed(page, "L01:3 L02:3") == ["too-many-points"]
    assert await typed(page, "L01 S01") == ["points-missing"]
    assert await typed(page, "L01:0") == ["points-not-positive"]
    assert await typed(page, "L01:1 S01:2") == ["points-not-cumulative"]
    await typed(page, "L01:3 L02:3")
    await page.screenshot(path=str(SHOTS / "uchast-clerk-cumulative.png"))

    detail = await refused_on_the_page(browser, page, "2222222222", "L01:3 L02:3")
    assert await text(page, "#status-headline") == "OVER THE LIMIT"
    assert "6 points in all, at most 5" in detail
    detail = await refused_on_the_page(browser, page, "2222222222", "L01 S01")
    assert await text(page, "#status-headline") == "POINTS WRONG"
    assert "L01:2 or L01 2" in detail

    assert "ok" in await enter(page, "2222222222", "L01:3 L02 2 S05")
    code, payload = await counted_payload(site, page)
    assert payload["points"] == {"L01": 3, "L02": 2}
    assert payload["projects"] == ["S05"]
    assert "ranking" not in payload

    problem = await refused_by_the_server(page, "2222222222", "L03:1")
    assert problem["code"] == "too-many-points"
    assert await text(page, "#status-headline") == "OVER THE LIMIT"

    # The receipt page shows the points.
    check = await browser.page(f"/receipt?code={code}", lang="en")
    await check.wait_for_selector(f"body[data-checked='{code}']")
    assert await check.get_attribute("#verdict", "data-verdict") == "ok"
    details = await text(check, "#details")
    assert "L01" in details and "3 pt" in details and "S05" in details
    clean(browser)


# --------------------------------------------------------------------------- ordinal and groups


async def test_clerk_ordinal_ranks_in_typed_order(make_site: SiteFactory, chromium: Any) -> None:
    """Ordinal: the typed order is the rank (shown 1, 2, 3); more ranks than allowed or a
    project ranked twice show at once; a second ranking of the same voter is the server's
    refusal, in English and then in Ukrainian."""
    site = await make_site(kinds_definition("ordinal"))
    browser, page = await open_clerk(chromium, site)
    assert "the first is rank 1" in await text(page, "#entry-hint")

    assert await typed(page, "l3 L1 l02") == []
    ranks = {
        project: await page.get_attribute(f"#preview li[data-project={project}]", "data-rank")
        for project in ("L03", "L01", "L02")
    }
    assert ranks == {"L03": "1", "L01": "2", "L02": "3"}
    assert "1." in await text(page, "#preview li[data-project=L03]")
    assert "3 of 3 ranks" in await text(page, "#preview li[data-category=large]")
    assert await typed(page, "L01 L02 L03 L04") == ["limit-exceeded"]
    assert await typed(page, "L01 L01") == ["project-repeated"]
    await typed(page, "l3 L1 l02")
    await page.screenshot(path=str(SHOTS / "uchast-clerk-ordinal.png"))

    detail = await refused_on_the_page(browser, page, "3333333333", "L01 L02 L03 L04")
    assert await text(page, "#status-headline") == "OVER THE LIMIT"
    assert "4 projects chosen, at most 3 allowed" in detail

    # Two ranks of three, and a small project.
    assert "ok" in await enter(page, "3333333333", "L03 L01 S02")
    _, payload = await counted_payload(site, page)
    assert payload["ranking"] == ["L03", "L01"]
    assert payload["projects"] == ["S02"]
    assert "points" not in payload

    problem = await refused_by_the_server(page, "3333333333", "L04")
    assert problem["code"] == "ranking-exists"
    assert await text(page, "#status-headline") == "ALREADY RANKED"
    # Ukrainian: the server's Ukrainian text replaces the English one.
    await page.click("#lang-switch")
    assert await text(page, "#status-headline") == "РЕЙТИНГ УЖЕ Є"
    assert problem["message_uk"] in await text(page, "#status-detail")
    clean(browser)


async def test_clerk_category_group(make_site: SiteFactory, chromium: Any) -> None:
    """A group of the two categories, at most one per voter: a ballot in both shows at once and
    is refused on the page; a voter who voted in one is refused the other by the server."""
    site = await make_site(kinds_definition("cumulative", group=True))
    browser, page = await open_clerk(chromium, site)
    assert await typed(page, "L01:2 S01") == ["too-many-categories"]
    assert "Group one-list: 2 of 1 categories" in await text(page, "#preview li[data-group]")
    await page.screenshot(path=str(SHOTS / "uchast-clerk-group.png"))
    detail = await refused_on_the_page(browser, page, "4444444444", "L01:2 S01")
    assert await text(page, "#status-headline") == "OVER THE LIMIT"
    assert "votes in 2 categories (large, small), at most 1" in detail

    assert "ok" in await enter(page, "4444444444", "S01")
    assert await typed(page, "L01:2") == []
    problem = await refused_by_the_server(page, "4444444444", "L01:2")
    assert problem["code"] == "too-many-categories"
    assert await text(page, "#status-headline") == "OVER THE LIMIT"
    clean(browser)


# --------------------------------------------------------------------------- results


@pytest.mark.parametrize("kind", ["cumulative", "ordinal", "knapsack"])
async def test_results_page_shows_scores_and_the_ballot_rule(
    make_site: SiteFactory, chromium: Any, kind: str
) -> None:
    """The results page: each category's ballot rule in words, per project score beside its
    voters, and winners ranked by score."""
    site = await make_site(kinds_definition(kind))
    # Three voters; scores differ from votes where points or positions count.
    ballots: list[dict[str, Any]]
    if kind == "cumulative":
        ballots = [{"points": {"L05": 1, "L06": 3}}, {"points": {"L05": 1}}, {"points": {"L06": 2}}]
        scores = {"L05": (2, 2), "L06": (5, 2)}
    elif kind == "ordinal":
        ballots = [{"ranking": ["L06", "L05"]}, {"ranking": ["L05"]}, {"ranking": ["L06", "L07"]}]
        scores = {"L05": (5, 2), "L06": (6, 2), "L07": (2, 1)}
    else:
        ballots = [{"projects": ["L01", "L02"]}, {"projects": ["L01"]}, {"projects": ["L02"]}]
        scores = {"L01": (2, 2), "L02": (2, 2)}
    for n, fields in enumerate(ballots, start=1):
        await post(site, online_ballot(site.keys, 500 + n, **fields))

    served = await results_by_project(site)
    for project, (score, votes) in scores.items():
        assert (served[project]["score"], served[project]["votes"]) == (score, votes)

    browser = Browser(chromium, site.base)
    page = await browser.page("/results", lang="en")
    large = page.locator("section.category[data-category=large]")
    rule = await text(page, "section.category[data-category=large] .ballot-rule")
    expected_rule = {
        "cumulative": [
            "Points ballot (cumulative): up to 3 points to a project, up to 5 in all.",
            "A project's score is the sum of the points voters gave it.",
        ],
        "ordinal": [
            "Ranking ballot (ordinal): a voter ranks up to 3 projects in order of preference.",
            "first place 3 points, each next place 1 fewer, down to 1.",
        ],
        "knapsack": [
            f"Budget ballot (knapsack): the chosen projects may cost at most {uah(CAP)}",
            "A project's score is the number of voters who chose it.",
        ],
    }[kind]
    for line in expected_rule:
        assert line in rule
    small_rule = await text(page, "section.category[data-category=small] .ballot-rule")
    assert "Approval ballot: a voter supports up to 2 projects." in small_rule
    assert "Winners by score" in await text(page, "#rules")
    for project, (score, votes) in scores.items():
        row = large.locator(f"li.project[data-project={project}]")
        assert await row.get_attribute("data-score") == str(score)
        assert await row.get_attribute("data-votes") == str(votes)
        if kind != "knapsack":
            assert f"voters: {votes}" in await row.locator(".votes").inner_text()
    # Winners by score: the first rows are the projects by score, highest first.
    order = [
        str(await row.get_attribute("data-project"))
        for row in await large.locator("li.project").all()
    ][: len(scores)]
    assert order == sorted(scores, key=lambda p: (-scores[p][0], order.index(p)))
    assert "funded" in str(await large.locator("li.project").first.get_attribute("class"))
    await page.screenshot(path=str(SHOTS / f"uchast-results-{kind}.png"), full_page=True)
    clean(browser)


# --------------------------------------------------------------------------- page against rules

STRICT = {
    "knapsack": 'ballot = "knapsack"\nmax_total_cost = "2 000 000.00"\n'
    'min_total_cost = "900 000.00"\nmin_picks = 1\nmax_picks = 3',
    "cumulative": 'ballot = "cumulative"\nmax_points = 3\nmax_total_points = 5\n'
    "min_total_points = 2\nmax_picks = 3",
    "ordinal": 'ballot = "ordinal"\nmax_picks = 3\nmin_picks = 2',
}


def strict_definition(kind: str) -> dict[str, Any]:
    """One ballot per voter (so every minimum is the page's to refuse too), every limit of
    ``kind`` set, and the group of both categories."""
    source = EXAMPLE.read_text(encoding="utf-8")
    source = source.replace('id = "zhytomyr-2018"', f'id = "{ELECTION}"', 1)
    source = source.replace("multiple_ballots = true", "multiple_ballots = false", 1)
    source = source.replace(LARGE, STRICT[kind] + '\nbudget = "10 653 370.51"') + GROUP
    return election_to_dict(parse_election_toml(source))


def random_ballot(rng: random.Random, kind: str) -> str:
    """What a clerk might type: distinct known projects, each syntax, either case."""
    parts = []
    for project in rng.sample([f"L{n:02d}" for n in range(1, 9)], rng.randint(0, 4)):
        shown = project.lower() if rng.random() < 0.3 else project
        if kind == "cumulative":
            points = rng.randint(1, 4)
            shown += f":{points}" if rng.random() < 0.5 else f" {points}"
        parts.append(shown)
    parts += rng.sample([f"S{n:02d}" for n in range(1, 6)], rng.randint(0, 3))
    rng.shuffle(parts)
    return rng.choice([" ", ", ", ";"]).join(parts)


@pytest.mark.parametrize("kind", ["knapsack", "cumulative", "ordinal"])
async def test_the_page_refuses_exactly_what_the_rules_refuse_a_first_ballot(
    make_site: SiteFactory, chromium: Any, kind: str
) -> None:
    """Differential, 300 random typed ballots per kind: where the page finds a limit broken, the
    server's rules refuse the ballot it would send with one of the page's codes; where it finds
    none, they accept it (a voter's first ballot, one ballot per voter)."""
    definition = strict_definition(kind)
    site = await make_site(definition)
    browser = Browser(chromium, site.base)
    page = await browser.page("/clerk")
    rng = random.Random(f"pages-{kind}")
    texts = [random_ballot(rng, kind) for _ in range(300)]
    readings = await page.evaluate(
        """async ([texts, election]) => {
            const { readBallot } = await import('/assets/ballot.js');
            const projects = new Map(election.projects.map((p) => [p.id, p]));
            return texts.map((text) => {
                const read = readBallot(text, election, projects);
                const problems = read.problems.map((p) => [p.code, p.certain]);
                return { fields: read.fields, problems };
            });
        }""",
        [texts, definition],
    )
    election = election_from_dict(definition)
    refused = accepted = 0
    for n, (typed_text, reading) in enumerate(zip(texts, readings, strict=True)):
        if not reading["fields"]:
            continue
        page_codes = {code for code, certain in reading["problems"]}
        assert all(certain for _, certain in reading["problems"]), typed_text
        payload = {
            "type": "ballot",
            "election": ELECTION,
            "voter": voter_token(10_000 + n),
            **reading["fields"],
            "cast_at": "2018-10-03T10:15:00+03:00",
            "nonce": str(uuid.uuid4()),
        }
        try:
            decide_ballot(election, payload, [], now=VOTING_DAY)
        except DomainError as error:
            assert error.code in page_codes, (typed_text, error.code, page_codes)
            refused += 1
        else:
            assert not page_codes, (typed_text, page_codes)
            accepted += 1
    assert refused > 30 and accepted > 30, (refused, accepted)
    clean(browser)


# --------------------------------------------------------------------------- the example files

EXAMPLES = EXAMPLE.parent
# (file, its own election id and polling point, what a clerk types, the payload's choices,
#  a typed ballot the page refuses at once and its code)
EXAMPLE_BALLOTS = [
    (
        "knapsack-district.toml",
        ("knapsack-example-2026", "district-office"),
        "w1 w-4 W03",
        {"projects": ["W-01", "W-04", "W-03"]},
        ("W-01 W-02 W-04", "over-cost-limit"),
    ),
    (
        "cumulative-city.toml",
        ("cumulative-example-2026", "town-hall"),
        "t1:3 T-02 2 t3 2",
        {"points": {"T-01": 3, "T-02": 2, "T-03": 2}},
        ("T-01:3 T-02:3 T-03:2", "too-many-points"),
    ),
    (
        "ordinal-districts.toml",
        ("ordinal-example-2026", "city-hall"),
        "n3 n1 N-2 c2 c1 c3",
        {"ranking": ["N-3", "N-1", "N-2", "C-2", "C-1", "C-3"]},
        ("N-1 N-2", "too-few-picks"),
    ),
]


def example_definition_in_2018(name: str, election: str, point: str) -> dict[str, Any]:
    """An example file as the test server runs it: the test election's id, the clerk's polling
    point and the test clock's window (October 2018); every limit as in the file."""
    source = (EXAMPLES / name).read_text(encoding="utf-8")
    source = source.replace(f'id = "{election}"', f'id = "{ELECTION}"', 1)
    source = source.replace(f'id = "{point}"', 'id = "city-council"', 1)
    for was, now in (("2026-06-01", "2018-10-01"), ("2026-06-14", "2018-10-10")):
        source = source.replace(was, now)
    source = source.replace("2026-06-16", "2018-10-11")
    return election_to_dict(parse_election_toml(source))


@pytest.mark.parametrize(
    ("name", "ids", "ballot", "choices", "refused"),
    EXAMPLE_BALLOTS,
    ids=[row[0] for row in EXAMPLE_BALLOTS],
)
async def test_clerk_takes_the_example_elections(
    make_site: SiteFactory,
    chromium: Any,
    name: str,
    ids: tuple[str, str],
    ballot: str,
    choices: dict[str, Any],
    refused: tuple[str, str],
) -> None:
    """Each example file beside zhytomyr-2018.toml: short numbers resolve to its project ids
    ("t1" is T-01), a valid ballot counts with the choices in its kind's field, a broken limit
    shows at once, and the results page states every category's rule."""
    site = await make_site(example_definition_in_2018(name, *ids))
    browser, page = await open_clerk(chromium, site)
    assert await typed(page, ballot) == []
    assert "ok" in await enter(page, "5555555555", ballot)
    _, payload = await counted_payload(site, page)
    assert {k: payload[k] for k in ("projects", "points", "ranking") if k in payload} == choices
    bad, code = refused
    assert code in await typed(page, bad)

    results = await browser.page("/results", lang="en")
    for category in (await site.get_json(f"/v1/elections/{ELECTION}"))["categories"]:
        rule = await text(results, f"section.category[data-category={category['id']}] .ballot-rule")
        assert rule.startswith(
            {
                "knapsack": "Budget ballot (knapsack)",
                "cumulative": "Points ballot (cumulative)",
                "ordinal": "Ranking ballot (ordinal)",
            }[category["ballot"]]
        )
        if category.get("min_picks") == category["max_picks"]:
            assert f"Exactly {category['max_picks']} project(s)." in rule
    await results.screenshot(path=str(SHOTS / f"uchast-results-{name[:-5]}.png"), full_page=True)
    clean(browser)
