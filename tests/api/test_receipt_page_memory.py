"""Threat: a log rewritten or rolled back between two visits of a voter. The receipt page
remembers the last checkpoint it verified (localStorage, per log origin) and on the next visit
checks in the browser that the new checkpoint extends it and is signed by the same log key,
warning when it does not."""

from __future__ import annotations

import base64
import json
from typing import Any

from ledger.merkle import MemoryTree
from tests.api.test_pages import Browser, Site, browser, site  # noqa: F401 (fixtures)
from tests.factories import ELECTION, ballot_envelope, voter_token


async def _cast(site: Site, n: int) -> str:  # noqa: F811
    envelope = ballot_envelope(site.keys.site, voter_token(n), ["L04"])
    async with site.http.post(f"{site.base}/v1/elections/{ELECTION}/ballots", json=envelope) as r:
        assert r.status == 201, await r.text()
        return str((await r.json())["receipt"])


async def _visit(page: Any, site: Site, code: str) -> str:  # noqa: F811
    """Open the receipt page for ``code`` and return what it says about the log it remembers."""
    await page.goto(f"{site.base}/receipt?code={code}")
    await page.wait_for_selector(f"body[data-checked='{code}']")
    assert await page.get_attribute("#verdict", "data-verdict") == "ok"
    return str(await page.get_attribute("#log-memory", "data-state"))


async def test_the_page_checks_the_log_only_grew_since_the_last_visit(
    site: Site,  # noqa: F811
    browser: Browser,  # noqa: F811
) -> None:
    """First visit: remembered. The log grows: consistent. An older genuine checkpoint: behind,
    no alarm. A remembered checkpoint larger than the log (rollback) or one the log does not
    extend (rewrite): a warning, and the page keeps the old memory rather than the suspect
    checkpoint."""
    code = await _cast(site, 500)
    context = await browser.browser.new_context()
    page = await context.new_page()
    assert await _visit(page, site, code) == "first"
    origin = (await site.get_json(f"/v1/elections/{ELECTION}/log/key"))["origin"]
    key = f"uchast.checkpoint.{origin}"
    first = json.loads(await page.evaluate(f"localStorage.getItem({json.dumps(key)})"))

    for n in range(501, 505):
        await _cast(site, n)
    assert await _visit(page, site, code) == "consistent"
    grown = json.loads(await page.evaluate(f"localStorage.getItem({json.dumps(key)})"))
    assert int(grown["size"]) > int(first["size"])
    assert await page.locator("#proof-link").get_attribute("href") == (
        f"/v1/elections/{ELECTION}/receipts/{code}/proof"
    )
    # Every visit checks, with or without a code: here nothing changed since the last one.
    await page.goto(f"{site.base}/receipt")
    await page.wait_for_selector("body[data-ready=true]")
    assert await page.get_attribute("#log-memory", "data-state") == "unchanged"

    # A receipt proved against an older genuine checkpoint (as a lagging cosigned one would
    # be): the log proves the remembered one extends it, so no alarm, and the memory stays.
    position = (await site.get_json(f"/v1/elections/{ELECTION}/receipts/{code}"))["position"]
    kept = (await site.get_json(f"/v1/elections/{ELECTION}/log/checkpoints"))["checkpoints"]
    older = next(c for c in kept if position < c["size"] < int(grown["size"]))
    proof = await site.get_json(
        f"/v1/elections/{ELECTION}/log/proof/inclusion?index={position}&size={older['size']}"
    )

    async def answer_with_older(route: Any) -> None:
        response = await route.fetch()
        body = await response.json()
        body["checkpoint"] = older["note"]
        body["proof"] = {"index": position, "size": older["size"], "hashes": proof["hashes"]}
        await route.fulfill(response=response, body=json.dumps(body))

    await page.route(f"**/receipts/{code}", answer_with_older)
    assert await _visit(page, site, code) == "behind"
    assert json.loads(await page.evaluate(f"localStorage.getItem({json.dumps(key)})")) == grown
    await page.unroute(f"**/receipts/{code}")

    forged_root = base64.b64encode(bytes(32)).decode()
    for memory, state in (
        ({"size": str(int(grown["size"]) + 1000), "root": grown["root"]}, "rollback"),
        ({"size": first["size"], "root": forged_root}, "inconsistent"),
    ):
        await page.evaluate(
            f"localStorage.setItem({json.dumps(key)}, {json.dumps(json.dumps(memory))})"
        )
        assert await _visit(page, site, code) == state
        assert await page.get_attribute("#log-memory", "class") == "banner bad"
        assert "комісію" in str(await page.locator("#log-memory").inner_text())
        kept = json.loads(await page.evaluate(f"localStorage.getItem({json.dumps(key)})"))
        assert kept == memory

    # The same log presented under another key than the one this browser verified it with:
    # whatever the new key signs proves nothing about the old log. Warned, memory kept.
    log_vkey = (await site.get_json(f"/v1/elections/{ELECTION}/log/key"))["vkey"]
    assert grown["vkey"] == log_vkey  # what the page verified with is remembered
    swapped = {**grown, "vkey": grown["vkey"] + "-another"}
    await page.evaluate(
        f"localStorage.setItem({json.dumps(key)}, {json.dumps(json.dumps(swapped))})"
    )
    assert await _visit(page, site, code) == "key-changed"
    assert await page.get_attribute("#log-memory", "class") == "banner bad"
    assert "ключем" in str(await page.locator("#log-memory").inner_text())
    kept = json.loads(await page.evaluate(f"localStorage.getItem({json.dumps(key)})"))
    assert kept == swapped
    await context.close()


async def test_the_browsers_consistency_check_agrees_with_the_server(
    browser: Browser,  # noqa: F811
) -> None:
    """crypto.js accepts the server's RFC 9162 consistency proof for every pair of sizes up to
    17, and refuses it with one hash changed or against another root."""
    tree = MemoryTree()
    tree.extend([b"leaf %d" % i for i in range(17)])
    cases = []
    for new in range(1, 18):
        for old in range(1, new + 1):
            proof = tree.consistency_proof(old, new)
            b64 = [base64.b64encode(h).decode() for h in proof]
            roots = [base64.b64encode(tree.root(s)).decode() for s in (old, new)]
            cases.append([old, new, *roots, b64])
    page = await browser.page("/receipt")
    verdicts = await page.evaluate(
        """async (cases) => {
            const { consistencyProblem: check } = await import('/assets/crypto.js');
            const { b64decode: raw } = await import('/assets/common.js');
            const out = [];
            for (const [m, n, oldRoot, newRoot, proof] of cases) {
                const [r1, r2, hashes] = [raw(oldRoot), raw(newRoot), proof.map(raw)];
                const good = await check(m, n, r1, r2, hashes);
                let bad = null;
                if (hashes.length) {
                    const changed = hashes.map((h) => h.slice());
                    changed[changed.length - 1][0] ^= 1;
                    bad = await check(m, n, r1, r2, changed);
                } else {
                    bad = await check(m, n, r1, new Uint8Array(32), hashes);
                }
                out.push([good, bad]);
            }
            return out;
        }""",
        cases,
    )
    assert all(good is None for good, _ in verdicts)
    assert all(bad is not None for _, bad in verdicts)
