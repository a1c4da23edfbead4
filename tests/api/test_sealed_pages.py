"""The pages of a sealed election in Chromium: /results shows turnout and when results open, no
project, and fills in by itself at the close; /receipt verifies what it can while the entry is
withheld (the checkpoint's signature, the leaf hash's inclusion) and says so."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestServer

from tests.api.test_pages import CHROMIUM, LAUNCH_ARGS, Browser, require_browser, text
from tests.api.test_sealed_results import (
    BALLOTS,
    CLOSES,
    Site,
    open_site,
    sealed_definition,
)


@pytest.fixture
async def sealed(
    aiohttp_server: Callable[..., Awaitable[TestServer]], sqlite_url: str
) -> AsyncIterator[Site]:
    async for site in open_site(aiohttp_server, sqlite_url, sealed_definition()):
        yield site


@pytest.fixture
async def browser(sealed: Site) -> AsyncIterator[Browser]:
    require_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        watched = Browser(chromium, sealed.base)
        try:
            yield watched
        finally:
            await chromium.close()
        assert watched.outside == [], "pages reached outside the server"
        assert watched.errors == [], "pages logged errors"


async def test_results_page_shows_turnout_until_the_close_then_the_totals(
    sealed: Site, browser: Browser
) -> None:
    """Sealed: turnout, the close time, no category; after the close, without a reload, the
    categories and their votes."""
    page = await browser.page("/results?refresh=300", lang="en")
    assert await page.get_attribute("body", "data-sealed") == "true"
    banner = await text(page, "#sealed")
    assert "sealed until voting closes" in banner and "Europe/Kyiv" in banner
    assert "2018" in banner
    assert await page.locator("section.category").count() == 0
    assert await page.locator("#turnout").get_attribute("data-voters") == str(len(BALLOTS))
    assert not await page.locator("#csv-link").is_visible()

    sealed.clock.now = CLOSES
    await page.wait_for_selector("body[data-sealed=false]")
    assert not await page.locator("#sealed").is_visible()
    l01 = page.locator("li.project[data-project=L01]")
    assert await l01.get_attribute("data-votes") == str(
        sum(1 for _, picks in BALLOTS if "L01" in picks)
    )


async def test_receipt_page_verifies_the_proof_and_withholds_the_picks(
    sealed: Site, browser: Browser
) -> None:
    """A sealed ballot's receipt: counted, the two checks that need no entry pass, the page says
    the picks are shown after the close and shows none."""
    code = sealed.receipts[0]
    page = await browser.page(f"/receipt?code={code}", lang="en")
    await page.wait_for_selector(f"body[data-checked='{code}']")
    assert await page.get_attribute("#verdict", "data-verdict") == "ok"
    headline = await text(page, "#verdict-headline")
    assert headline == "Recorded in the log (contents sealed until voting closes)"
    checks = await page.locator("#checks li").evaluate_all(
        "items => items.map(i => [i.dataset.check, i.className])"
    )
    assert checks == [
        ["receipt.check.signature", "pass"],
        ["receipt.check.inclusion", "pass"],
    ]
    note = await text(page, "#sealed-note")
    assert "sealed until voting closes" in note
    details = await text(page, "#details")
    assert "L01" not in details and "L02" not in details
