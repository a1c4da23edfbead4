"""The pages /clerk, /results, /receipt: served from the package, and driven end to end in headless
Chromium (Debian's /usr/bin/chromium through Playwright) against a real server on a SQLite store.

Browser tests skip locally when Chromium or Playwright is missing, and fail under CI=true.
Chromium resolves ``uchast.test`` to 127.0.0.1: a page opened there is on plain HTTP and not on a
loopback name, so it is not a secure context and has no WebCrypto, like a polling point's
``http://10.0.0.5:8080/clerk``.
Screenshots of each page go to /tmp/uchast-*.png for a look by eye.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from api.app import create_app
from api.pages import ASSETS, CSP, HERE
from api.service import ServiceConfig
from ledger.canonical import canonical
from ledger.keys import Envelope, SignerKey, verify_envelope
from tests.api.conftest import VOTER_KEY, VOTING_DAY
from tests.conftest import IN_CI
from tests.factories import ELECTION, Keys, ballot_envelope, opened_ledger, voter_token

CHROMIUM = "/usr/bin/chromium"
PLAIN_HTTP_HOST = "uchast.test"  # RFC 6761: never a real host
LAUNCH_ARGS = [
    f"--host-resolver-rules=MAP {PLAIN_HTTP_HOST} 127.0.0.1",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path("/tmp")
CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$")
TIMEOUT_MS = 10_000
VENDORED = ASSETS / "vendor-noble.js"
# A browser whose WebCrypto lacks Ed25519 (Chrome before 113, Firefox before 129, Safari before 17).
NO_ED25519_IN_WEBCRYPTO = """
for (const name of ["importKey", "generateKey", "sign", "verify"]) {
  const original = SubtleCrypto.prototype[name];
  SubtleCrypto.prototype[name] = function (...args) {
    const algorithm = name === "importKey" ? args[2] : args[0];
    if (String(algorithm?.name ?? algorithm).toLowerCase() === "ed25519") {
      return Promise.reject(new DOMException("Unrecognized algorithm name", "NotSupportedError"));
    }
    return original.apply(this, args);
  };
}
"""

# Online ballots in the log before the clerk starts: (voter number, projects).
SEEDED = [(n, ["L01", "S01"] if n % 3 else ["L02", "S02"]) for n in range(1, 13)]


def require_browser() -> None:
    """Skip locally, fail under CI=true, when Chromium or Playwright is missing."""
    problem = ""
    if shutil.which(CHROMIUM) is None:
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            problem = "playwright is not installed (pip install -e '.[dev]')"
    if problem:
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)


@dataclass
class Site:
    server: TestServer
    keys: Keys
    base: str
    http: ClientSession

    async def get_json(self, path: str) -> Any:
        async with self.http.get(self.base + path) as response:
            assert response.status == 200, await response.text()
            return await response.json()


@pytest.fixture
async def site(
    aiohttp_server: Callable[..., Awaitable[TestServer]], sqlite_url: str
) -> AsyncIterator[Site]:
    """A real server over SQLite with the example election, its keys and a few online ballots."""
    keys = Keys()
    async with opened_ledger(sqlite_url, keys):
        pass
    config = ServiceConfig(sqlite_url, keys.log, voter_key=VOTER_KEY, clock=lambda: VOTING_DAY)
    server = await aiohttp_server(create_app(config))
    base = f"http://127.0.0.1:{server.port}"
    async with ClientSession() as http:
        for n, projects in SEEDED:
            envelope = ballot_envelope(keys.site, voter_token(n), projects)
            async with http.post(f"{base}/v1/elections/{ELECTION}/ballots", json=envelope) as r:
                assert r.status == 201, await r.text()
        yield Site(server, keys, base, http)


@dataclass
class Browser:
    """One headless Chromium; every page it opens is watched for outside requests and errors."""

    browser: Any
    base: str
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)  # paths of every request the pages made

    async def page(
        self,
        path: str,
        *,
        lang: str | None = None,
        plain_http: bool = False,
        init_script: str | None = None,
    ) -> Any:
        """Open ``path``; ``plain_http`` opens it at http://uchast.test (no secure context) and
        ``init_script`` runs before any script of the page."""
        context = await self.browser.new_context(viewport={"width": 1200, "height": 900})
        if lang is not None:
            await context.add_init_script(f"localStorage.setItem('uchast.lang', '{lang}')")
        if init_script is not None:
            await context.add_init_script(init_script)

        async def route(route: Any) -> None:
            url = urlsplit(route.request.url)
            if url.hostname not in ("127.0.0.1", "localhost", PLAIN_HTTP_HOST):
                self.outside.append(route.request.url)
                await route.abort()
            else:
                self.fetched.append(url.path)
                await route.continue_()

        await context.route("**/*", route)
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        page.on(
            "console",
            lambda message: (
                self.errors.append(f"console: {message.text}")
                if message.type == "error" and "status of 4" not in message.text
                else None
            ),
        )
        base = self.base.replace("127.0.0.1", PLAIN_HTTP_HOST) if plain_http else self.base
        await page.goto(base + path)
        await page.wait_for_selector("body[data-ready=true]")
        return page


@pytest.fixture
async def browser(site: Site) -> AsyncIterator[Browser]:
    require_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        watched = Browser(chromium, site.base)
        try:
            yield watched
        finally:
            await chromium.close()
        assert watched.outside == [], "pages reached outside the server"
        assert watched.errors == [], "pages logged errors"


def vendored_parts() -> tuple[str, str]:
    """vendor-noble.js split into its header comment and the esbuild output after it."""
    source = VENDORED.read_text(encoding="utf-8")
    end = source.index("*/\n") + len("*/\n")
    return source[:end], source[end:]


def vendored_code() -> str:
    return vendored_parts()[1]


async def text(page: Any, selector: str) -> str:
    return str(await page.locator(selector).inner_text()).strip()


async def load_key(page: Any, keys: Keys) -> None:
    await page.fill("#key-text", keys.clerk.skey)
    await page.press("#key-text", "Enter")
    await page.wait_for_selector("#key-loaded:not([hidden])")


async def enter_ballot(page: Any, identity: str, projects: str) -> str:
    """Type a ballot the way a clerk does (number, Enter, projects, Enter); the status class."""
    await page.focus("#identity")
    await page.keyboard.type(identity)
    await page.keyboard.press("Enter")
    await page.keyboard.type(projects)
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#status:not(.busy)")
    return str(await page.get_attribute("#status", "class"))


# --------------------------------------------------------------------------- without a browser


@pytest.mark.parametrize("ci", [True, False])
def test_a_missing_browser_fails_under_ci_and_skips_locally(
    monkeypatch: pytest.MonkeyPatch, ci: bool
) -> None:
    """Without Chromium, a browser test fails under CI=true and skips elsewhere."""
    monkeypatch.setattr(sys.modules[__name__], "IN_CI", ci)
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", "/nonexistent/chromium")
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected, match="chromium is missing"):
        require_browser()


async def test_pages_are_served_with_their_assets_and_no_outside_reference(site: Site) -> None:
    """Each page is HTML under a strict CSP, and every file it refers to is served from here."""
    for path in ("/clerk", "/results", "/receipt"):
        async with site.http.get(site.base + path) as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            assert response.headers["Content-Security-Policy"] == CSP
            html = await response.text()
        assert (
            "http://" not in html and "https://" not in html and "//" not in html.replace("://", "")
        )
        for ref in re.findall(r'(?:src|href)="(/assets/[^"]+)"', html):
            async with site.http.get(site.base + ref) as response:
                assert response.status == 200, ref
    for asset in ASSETS.iterdir():
        if asset.suffix == ".txt":  # a licence notice: shown to people, never loaded by a page
            continue
        body = asset.read_text(encoding="utf-8")
        if asset == VENDORED:
            body = vendored_code()  # its header quotes the upstream licences, URLs and all
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", body), asset.name
    assert {p.name for p in HERE.glob("*.html")} == {"clerk.html", "results.html", "receipt.html"}


def test_vendored_noble_is_the_bundle_its_header_describes() -> None:
    """vendor-noble.js is byte for byte the esbuild output its header hashes: self-contained,
    exporting only what crypto.js uses, with both MIT notices."""
    header, code = vendored_parts()
    stated = re.search(r"its SHA-256 is\n \*   ([0-9a-f]{64})\n", header)
    assert stated is not None
    assert hashlib.sha256(code.encode("utf-8")).hexdigest() == stated.group(1)
    for pinned in ("@noble/ed25519@3.2.0", "@noble/hashes@2.4.0", "esbuild@0.28.2"):
        assert pinned in header
    notice = (ASSETS / "vendor-noble.LICENSE.txt").read_text(encoding="utf-8")
    for licence in (header, notice):
        assert licence.count("Permission is hereby granted, free of charge") == 2
        assert "Copyright (c) 2019 Paul Miller" in licence
        assert "Copyright (c) 2022 Paul Miller" in licence
    assert not re.search(r"^\s*import\b|\bimport\(|\brequire\(|\bfetch\(", code, re.M)
    exported = re.search(r"^export \{([^}]*)\};\s*$", code, re.M)
    assert exported is not None
    assert {name.strip() for name in exported.group(1).split(",")} == {
        "ed25519PublicKey",
        "ed25519Sign",
        "ed25519Verify",
        "sha256",
    }


async def test_log_key_elections_and_clock_endpoints(site: Site) -> None:
    """The pages' endpoints: the log's vkey and origin, the election list, the service clock."""
    key = await site.get_json(f"/v1/elections/{ELECTION}/log/key")
    assert key == {"vkey": site.keys.log.verifier.vkey, "origin": f"uchast.local/{ELECTION}"}
    listed = await site.get_json("/v1/elections")
    assert [e["id"] for e in listed["elections"]] == [ELECTION]
    assert listed["elections"][0]["title"]["uk"].startswith("Бюджет участі")
    assert (await site.get_json("/v1/clock"))["now"] == VOTING_DAY.isoformat()
    async with site.http.get(f"{site.base}/v1/elections/nowhere/log/key") as response:
        assert response.status == 404
        assert (await response.json())["code"] == "unknown-election"


# --------------------------------------------------------------------------- in Chromium


async def test_browser_canonical_json_and_signatures_match_the_server(
    site: Site, browser: Browser
) -> None:
    """canonicalize() in the page gives the server's RFC 8785 bytes, and a key loads with its id."""
    page = await browser.page("/receipt")
    samples: list[Any] = [
        {"b": 1, "a": [True, None, "x"], "é": "ü", "A": {"z": -7, "y": ""}},
        {
            "type": "paper-ballot",
            "projects": ["L07", "S12"],
            "cast_at": "2018-10-05T12:00:00+03:00",
        },
        {"esc": 'tab\t nl\n quote" back\\ ctl\u0001 \u2028', "emoji": "\U0001f5f3", "n": 2**53 - 1},
        {"\U0001f600": 1, "\ufb01": 2, "z": 3},  # UTF-16 order differs from code points here
    ]
    for sample in samples:
        got = await page.evaluate(
            "async (v) => (await import('/assets/common.js')).canonicalize(v)", sample
        )
        assert got.encode("utf-8") == canonical(sample), sample
    signed = await page.evaluate(
        """async ([skey, payload]) => {
            const crypto = await import('/assets/crypto.js');
            const signer = await crypto.importSignerKey(skey);
            return crypto.signEnvelope(payload, signer);
        }""",
        [site.keys.clerk.skey, samples[1]],
    )
    assert signed["key"] == site.keys.clerk.key_id
    verify_envelope(Envelope.parse(signed), site.keys.clerk.verifier)
    # Key strings whose base64 holds "+" (the separator of the other fields) parse too.
    plus = next(
        key
        for key in (SignerKey.generate("clerk.plus") for _ in range(500))
        if "+" in key.skey.split("+", 4)[4] and "+" in key.verifier.vkey.split("+", 2)[2]
    )
    ids = await page.evaluate(
        """async ([skey, vkey]) => {
            const crypto = await import('/assets/crypto.js');
            return [(await crypto.importSignerKey(skey)).keyId,
                    (await crypto.parseVerifierKey(vkey)).keyId];
        }""",
        [plus.skey, plus.verifier.vkey],
    )
    assert ids == [plus.key_id, plus.key_id]
    refused = await page.evaluate(
        """async (skey) => {
            const crypto = await import('/assets/crypto.js');
            try { await crypto.importSignerKey(skey); return null; } catch (e) { return e.code; }
        }""",
        site.keys.clerk.skey.replace(site.keys.clerk.key_id.split("+")[1], "00000000"),
    )
    assert refused == "key-hash"


async def test_clerk_results_and_receipt_end_to_end(site: Site, browser: Browser) -> None:
    """A clerk enters ballots; results show them; a receipt verifies; English switch works."""
    clerk = await browser.page("/clerk")
    assert await text(clerk, "#status-headline") == "Спершу завантажте ключ реєстратора"
    await clerk.screenshot(path=str(SHOTS / "uchast-clerk-key.png"))
    await load_key(clerk, site.keys)
    assert await text(clerk, "#key-id") == site.keys.clerk.key_id
    assert await clerk.input_value("#key-text") == ""

    # Accepted: the receipt code, large, to hand to the voter; the number is gone from the field.
    assert "ok" in await enter_ballot(clerk, "1234567890", "l1 s03")
    assert await text(clerk, "#status-headline") == "ПРИЙНЯТО"
    receipt = await text(clerk, "#status-code")
    assert CODE.match(receipt)
    assert await clerk.input_value("#identity") == ""
    assert await clerk.input_value("#projects") == ""
    assert await clerk.evaluate("document.activeElement.id") == "identity"
    await clerk.screenshot(path=str(SHOTS / "uchast-clerk-accepted.png"))

    # Over the limit: the same voter, two more large projects.
    assert "refused" in await enter_ballot(clerk, "1234567890", "L03 L04")
    assert await text(clerk, "#status-headline") == "ПОНАД ЛІМІТ"
    assert "не більше 2" in await text(clerk, "#status-detail")
    assert await clerk.input_value("#identity") == ""

    # A project typed twice, for another voter.
    assert "refused" in await enter_ballot(clerk, "2222222222", "S05 S5")
    assert await text(clerk, "#status-headline") == "ПРОЄКТ ПОВТОРЕНО"

    # A spoiled ballot: Alt+S, reason 2, Enter.
    await clerk.keyboard.press("Alt+KeyS")
    await clerk.wait_for_selector("#spoiled-form:not([hidden])")
    await clerk.keyboard.press("2")
    await clerk.keyboard.press("Enter")
    await clerk.wait_for_selector("#status.spoiled")
    assert await text(clerk, "#status-headline") == "ЗІПСОВАНИЙ БЮЛЕТЕНЬ ЗАПИСАНО"
    assert await clerk.locator("#recent-body tr").count() == 4
    # The page never keeps the number: not in storage, not in the DOM.
    stored = await clerk.evaluate("JSON.stringify(Object.entries(localStorage))")
    assert "1234567890" not in stored
    assert "1234567890" not in await clerk.content()
    await clerk.screenshot(path=str(SHOTS / "uchast-clerk.png"), full_page=True)

    # English: the refusal message switches language too.
    assert "refused" in await enter_ballot(clerk, "1234567890", "L05 L06")
    await clerk.click("#lang-switch")
    assert await text(clerk, "#status-headline") == "OVER THE LIMIT"
    assert "at most 2" in await text(clerk, "#status-detail")
    await clerk.click("#lang-switch")

    # The server agrees: the ballot counts, paper channel, one spoiled.
    results = await site.get_json(f"/v1/elections/{ELECTION}/results")
    assert results["turnout"]["by_channel"]["paper"] == 1
    assert results["turnout"]["spoiled"] == 1
    votes = {p["id"]: p for c in results["categories"] for p in c["projects"]}
    assert votes["L01"]["votes_paper"] == 1 and votes["S03"]["votes_paper"] == 1

    # Results page: new totals, winners marked, checkpoint shown.
    page = await browser.page("/results")
    l01 = page.locator("li.project[data-project=L01]")
    assert await l01.get_attribute("data-votes") == str(votes["L01"]["votes"])
    assert votes["L01"]["votes"] == sum("L01" in p for _, p in SEEDED) + 1
    assert "funded" in str(await l01.get_attribute("class"))
    assert await page.locator("#turnout").get_attribute("data-voters") == str(len(SEEDED) + 1)
    size = results["log"]["size"]
    assert await text(page, "#cp-size") == str(size)
    assert await text(page, "#cp-root") == results["log"]["root"]
    assert await text(page, "#cp-origin") == f"uchast.local/{ELECTION}"
    assert "Бюджет" in await text(page, "section.category[data-category=large]")
    await page.screenshot(path=str(SHOTS / "uchast-results.png"), full_page=True)
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.wait_for_timeout(300)  # the charts redraw at the new width
    await page.screenshot(path=str(SHOTS / "uchast-results-phone.png"))

    # Receipt page: the code from the clerk page verifies in the browser.
    check = await browser.page("/receipt")
    await check.fill("#code", receipt.lower())
    await check.press("#code", "Enter")
    await check.wait_for_selector(f"body[data-checked='{receipt}']")
    assert await check.get_attribute("#verdict", "data-verdict") == "ok"
    assert await text(check, "#verdict-headline") == "Ваш бюлетень є в журналі (перевірено)"
    assert await check.locator("#checks li.pass").count() == 4
    assert await check.locator("#checks li.fail").count() == 0
    details = await text(check, "#details")
    assert "L01" in details and "S03" in details and receipt in details
    await check.screenshot(path=str(SHOTS / "uchast-receipt.png"), full_page=True)

    # English, remembered across a reload.
    await check.click("#lang-switch")
    assert await text(check, "#verdict-headline") == "Your ballot is in the log (verified)"
    assert await text(check, "#lang-switch") == "Українська"
    await check.reload()
    await check.wait_for_selector("body[data-ready=true]")
    assert await text(check, "h1") == "Check a receipt"
    assert await check.evaluate("document.documentElement.lang") == "en"
    await check.fill("#code", "ZZZZZ-ZZZZZ")
    await check.press("#code", "Enter")
    await check.wait_for_selector("body[data-checked='ZZZZZ-ZZZZZ']")
    assert await text(check, "#verdict-headline") == "Ballot not found"
    await check.screenshot(path=str(SHOTS / "uchast-receipt-en.png"), full_page=True)

    # WebCrypto did all of it: the vendored code was never fetched, no plain-HTTP notice shown.
    assert "/assets/vendor-noble.js" not in browser.fetched
    assert await check.locator("#plain-http").is_hidden()


async def test_webcrypto_and_the_vendored_code_sign_and_hash_the_same_bytes(
    site: Site, browser: Browser
) -> None:
    """For the same key and message both Ed25519 engines give the same signature, each verifies
    the other's and refuses a changed one, and both SHA-256s agree with hashlib."""
    page = await browser.page("/receipt")
    skeys = [site.keys.clerk.skey, *(SignerKey.generate(f"clerk.{n}").skey for n in range(3))]
    payloads: list[Any] = [
        {
            "type": "paper-ballot",
            "projects": ["L07", "S12"],
            "cast_at": "2018-10-05T12:00:00+03:00",
        },
        {"type": "é", "emoji": "\U0001f5f3", "n": 2**53 - 1, "nested": {"b": [], "a": None}},
        {"type": "t"},
    ]
    sizes = [0, 1, 55, 56, 63, 64, 65, 1000]
    got = await page.evaluate(
        """async ([skeys, payloads, sizes]) => {
            const c = await import('/assets/crypto.js');
            const common = await import('/assets/common.js');
            const { webcrypto, noble } = c.ED25519_ENGINES;
            const b64 = common.b64encode;
            const out = { chosen: (await c.ed25519Engine()).name, pairs: [], checks: [], sha: [] };
            for (const skey of skeys) {
                const viaWeb = await c.importSignerKey(skey, webcrypto);
                const viaJs = await c.importSignerKey(skey, noble);
                for (const payload of payloads) {
                    out.pairs.push([
                        viaWeb.engine, await c.signEnvelope(payload, viaWeb),
                        viaJs.engine, await c.signEnvelope(payload, viaJs),
                    ]);
                    const message = common.concat(
                        c.SIGNING_CONTEXT, common.utf8(common.canonicalize(payload)));
                    const fromWeb = await viaWeb.sign(message);
                    const fromJs = await viaJs.sign(message);
                    const changed = fromJs.slice();
                    changed[5] ^= 1;
                    const pub = viaJs.publicKey;
                    out.checks.push([
                        b64(viaWeb.publicKey) === b64(pub),
                        await webcrypto.verify(pub, fromJs, message),
                        await noble.verify(pub, fromWeb, message),
                        await webcrypto.verify(pub, changed, message),
                        await noble.verify(pub, changed, message),
                        await webcrypto.verify(pub, fromJs.slice(0, 63), message),
                        await noble.verify(pub, fromJs.slice(0, 63), message),
                    ]);
                }
            }
            const js = await common.noble();
            for (const size of sizes) {
                const bytes = Uint8Array.from({ length: size }, (_, i) => i % 251);
                const viaWeb = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
                out.sha.push([common.hex(viaWeb), common.hex(js.sha256(bytes))]);
            }
            return out;
        }""",
        [skeys, payloads, sizes],
    )
    assert got["chosen"] == "webcrypto"  # the first choice wherever the browser has it
    assert len(got["pairs"]) == len(skeys) * len(payloads)
    for web_engine, via_web, js_engine, via_js in got["pairs"]:
        assert (web_engine, js_engine) == ("webcrypto", "noble")
        assert via_js == via_web
    for _, _, _, via_js in got["pairs"][: len(payloads)]:  # the first key is the clerk's
        verify_envelope(Envelope.parse(via_js), site.keys.clerk.verifier)
    for check in got["checks"]:
        assert check == [True, True, True, False, False, False, False]
    for size, (via_web, via_js) in zip(sizes, got["sha"], strict=True):
        expected = hashlib.sha256(bytes(i % 251 for i in range(size))).hexdigest()
        assert via_web == via_js == expected, size


@pytest.mark.parametrize("without", ["plain-http", "ed25519-in-webcrypto"])
async def test_clerk_and_receipt_pages_work_without_webcrypto(
    site: Site, browser: Browser, without: str
) -> None:
    """Over plain HTTP (no WebCrypto at all) or in a browser whose WebCrypto lacks Ed25519, the
    clerk signs a paper ballot the server counts and the receipt page verifies its proof, with
    the vendored code."""
    options: dict[str, Any] = (
        {"plain_http": True}
        if without == "plain-http"
        else {"init_script": NO_ED25519_IN_WEBCRYPTO}
    )
    clerk = await browser.page("/clerk", **options)
    secure, subtle, engine = await clerk.evaluate(
        """async () => [isSecureContext, typeof crypto.subtle,
                        (await (await import('/assets/crypto.js')).ed25519Engine()).name]"""
    )
    if without == "plain-http":
        assert (secure, subtle) == (False, "undefined")
        assert "HTTP" in await text(clerk, "#plain-http")
    else:
        assert (secure, subtle) == (True, "object")
        assert await clerk.locator("#plain-http").is_hidden()
    assert engine == "noble"
    await clerk.screenshot(path=str(SHOTS / f"uchast-clerk-{without}.png"))

    await load_key(clerk, site.keys)
    assert await text(clerk, "#key-id") == site.keys.clerk.key_id
    async with clerk.expect_response("**/paper-ballots") as answer:
        assert "ok" in await enter_ballot(clerk, "5555555555", "L05 S07")
    assert (await answer.value).status == 201
    receipt = await text(clerk, "#status-code")
    assert CODE.match(receipt)
    results = await site.get_json(f"/v1/elections/{ELECTION}/results")
    assert results["turnout"]["by_channel"]["paper"] == 1
    votes = {p["id"]: p for c in results["categories"] for p in c["projects"]}
    assert votes["L05"]["votes_paper"] == 1 and votes["S07"]["votes_paper"] == 1
    entry = (await site.get_json(f"/v1/elections/{ELECTION}/receipts/{receipt}"))["entry"]
    verify_envelope(Envelope.parse(entry["envelope"]), site.keys.clerk.verifier)

    check = await browser.page(f"/receipt?code={receipt}", **options)
    await check.wait_for_selector(f"body[data-checked='{receipt}']")
    assert await check.get_attribute("#verdict", "data-verdict") == "ok"
    assert await check.locator("#checks li.pass").count() == 4
    assert await check.locator("#checks li.fail").count() == 0
    await check.screenshot(path=str(SHOTS / f"uchast-receipt-{without}.png"), full_page=True)
    assert "/assets/vendor-noble.js" in browser.fetched


async def test_receipt_page_refuses_a_tampered_proof_or_a_foreign_log_key(
    site: Site, browser: Browser
) -> None:
    """The receipt page verifies rather than trusts: a changed proof hash or log key fails."""
    envelope = ballot_envelope(site.keys.site, voter_token(999), ["L09"])
    async with site.http.post(
        f"{site.base}/v1/elections/{ELECTION}/ballots", json=envelope
    ) as response:
        code = (await response.json())["receipt"]
    page = await browser.page("/receipt")

    async def tamper(route: Any) -> None:
        response = await route.fetch()
        body = await response.json()
        first = body["proof"]["hashes"][0]
        body["proof"]["hashes"][0] = ("B" if first[0] == "A" else "A") + first[1:]
        await route.fulfill(response=response, body=json.dumps(body))

    await page.route("**/receipts/**", tamper)
    await page.fill("#code", code)
    await page.press("#code", "Enter")
    await page.wait_for_selector(f"body[data-checked='{code}']")
    assert await page.get_attribute("#verdict", "data-verdict") == "refused"
    assert await text(page, "#verdict-headline") == "ПЕРЕВІРКА НЕ ПРОЙШЛА"
    failed = await page.locator("#checks li.fail").get_attribute("data-check")
    assert failed == "receipt.check.inclusion"

    other = Keys().log.verifier.vkey
    foreign = await browser.page(f"/receipt?vkey={other.replace('+', '%2B')}&code={code}")
    await foreign.wait_for_selector(f"body[data-checked='{code}']")
    assert await foreign.get_attribute("#verdict", "data-verdict") == "refused"
    failed = await foreign.locator("#checks li.fail").all()
    assert [await f.get_attribute("data-check") for f in failed] == [
        "receipt.check.signature",
        "receipt.check.inclusion",
    ]


async def test_clerk_page_refuses_a_damaged_key_and_shows_server_refusals(
    site: Site, browser: Browser, tmp_path: Path
) -> None:
    """A damaged key is refused; a key file loads; server refusals show in the page's words."""
    page = await browser.page("/clerk", lang="en")
    await page.fill("#key-text", "PRIVATE+KEY+clerk+deadbeef+AAAA")
    await page.press("#key-text", "Enter")
    assert "not a clerk key" in await text(page, "#key-error")
    key_file = tmp_path / "clerk.key"
    key_file.write_text(site.keys.clerk.skey + "\n", encoding="utf-8")
    await page.set_input_files("#key-file", str(key_file))
    await page.wait_for_selector("#key-loaded:not([hidden])")
    assert await text(page, "#key-id") == site.keys.clerk.key_id
    assert "refused" in await enter_ballot(page, "3333333333", "L99")
    assert await text(page, "#status-headline") == "UNKNOWN PROJECT"
    await page.fill("#projects", "Д07 S1 S1")  # Ukrainian layout: Д is the L key
    preview = await text(page, "#preview")
    assert "L07" in preview and "repeated" in preview
    await page.keyboard.press("Escape")
    assert await page.input_value("#projects") == ""
    assert "refused" in await enter_ballot(page, "12", "L07")
    assert await text(page, "#status-headline") == "BAD IDENTITY NUMBER"


async def test_results_page_refreshes_by_itself(site: Site, browser: Browser) -> None:
    """A ballot cast while the results page is open shows up without a reload."""
    page = await browser.page("/results?refresh=300")
    before = int(await page.get_attribute("body", "data-size") or 0)
    l40 = page.locator("li.project[data-project=L40]")
    await page.click("section.category[data-category=large] button")  # show all 40
    assert await l40.get_attribute("data-votes") == "0"
    envelope = ballot_envelope(site.keys.site, voter_token(4040), ["L40"])
    async with site.http.post(f"{site.base}/v1/elections/{ELECTION}/ballots", json=envelope) as r:
        assert r.status == 201
    await page.wait_for_selector(f"body[data-size='{before + 1}']")
    assert await l40.get_attribute("data-votes") == "1"
    assert await text(page, "#cp-size") == str(before + 1)


async def test_clerk_resends_a_ballot_whose_answer_was_lost(site: Site, browser: Browser) -> None:
    """The ballot reached the log but its answer was lost: resending counts it once, same code."""
    page = await browser.page("/clerk")
    await load_key(page, site.keys)

    async def lose_answer(route: Any) -> None:
        await route.fetch()  # the server records the ballot...
        await route.abort()  # ...and the page never hears back

    await page.route("**/paper-ballots", lose_answer)
    assert "refused" in await enter_ballot(page, "4444444444", "L11")
    assert await text(page, "#status-headline") == "НЕМАЄ ЗВ’ЯЗКУ — бюлетень, можливо, не записано"
    await page.unroute("**/paper-ballots")
    await page.click("#retry")
    await page.wait_for_selector("#status.ok")
    assert await text(page, "#status-headline") == "УЖЕ ЗАПИСАНО (повторне надсилання)"
    code = await text(page, "#status-code")
    answer = await site.get_json(f"/v1/elections/{ELECTION}/receipts/{code}")
    assert answer["status"] == "counted"
    assert answer["entry"]["envelope"]["payload"]["projects"] == ["L11"]
    results = await site.get_json(f"/v1/elections/{ELECTION}/results")
    assert results["turnout"]["by_channel"]["paper"] == 1
    browser.errors[:] = [e for e in browser.errors if "net::ERR_FAILED" not in e]
