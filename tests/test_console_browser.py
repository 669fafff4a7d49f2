"""The operators' console in a real browser, with the network cut to loopback: headless Chromium
(Debian's /usr/bin/chromium driven by playwright) loads /admin/graphql from a live server, signs in
through the console's sign-in helper, opens the "Find a member" example, runs it through GraphiQL and
reads the result. Every request whose host is not 127.0.0.1 is blocked and the test fails if one was
attempted; the token is in GraphiQL's Headers tab and survives a reload (GraphiQL's own storage)."""
from __future__ import annotations

import asyncio
import importlib.util
import json
import os
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from tests.conftest import IN_CI, make_member, new_phone
from tests.live_server import serving

CHROMIUM = os.environ.get("MALLPOINTS_TEST_CHROMIUM", "/usr/bin/chromium")


@pytest_asyncio.fixture
async def live_server(backend):
    async with serving() as url:
        yield url


@pytest.fixture
def chromium_path() -> str:
    missing = None
    if not os.path.exists(CHROMIUM):
        missing = f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium; .ci/run installs it)"
    elif importlib.util.find_spec("playwright") is None:
        missing = "playwright is not installed (pip install -e '.[test]')"
    if missing and IN_CI:
        pytest.fail(missing + "; CI must have it", pytrace=False)
    if missing:
        pytest.skip(missing + "; the browser test runs in CI")
    return CHROMIUM


async def _wait_until(page, expression: str, seconds: float = 15) -> None:
    """page.wait_for_function evaluates with eval(), which the console's CSP (rightly) refuses."""
    for _ in range(int(seconds * 10)):
        if await page.evaluate(expression):
            return
        await asyncio.sleep(0.1)
    state = await page.evaluate("[...document.querySelectorAll('.CodeMirror')].map(e => e.CodeMirror.getValue())")
    raise AssertionError(f"timed out waiting for {expression}; the editors hold {state}")


def _editor_value(selector: str) -> str:
    return f"document.querySelector({json.dumps(selector)}).CodeMirror.getValue()"


async def test_console_runs_a_query_offline(chromium_path, live_server):
    from playwright.async_api import async_playwright

    phone = new_phone()
    await make_member(phone)

    blocked: list[str] = []
    page_errors: list[str] = []

    async def loopback_only(route):
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            blocked.append(route.request.url)
            await route.abort()

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, headless=True,
                                           args=["--no-proxy-server", "--disable-background-networking"])
        try:
            context = await browser.new_context()
            await context.route("**/*", loopback_only)
            page = await context.new_page()
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            await page.goto(f"{live_server}/admin/graphql")
            await page.wait_for_selector(".graphiql-container", timeout=30_000)
            await _wait_until(page, "document.querySelector('.graphiql-query-editor .CodeMirror')"
                                    ".CodeMirror.getValue().includes('query Tiers')")  # the welcome tab

            await page.get_by_label("Show Sign in").click()
            await page.fill("input[name=username]", "admin")
            await page.fill("input[name=password]", "admin-demo-password")
            await page.get_by_role("button", name="Sign in", exact=True).click()
            await page.wait_for_selector("text=Signed in as admin", timeout=15_000)
            headers = json.loads(await page.evaluate(_editor_value(".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror")))
            assert headers["Authorization"].startswith("Bearer ")

            await page.get_by_label("Add tab").click()  # a new tab starts with the token too
            await _wait_until(page, "document.querySelectorAll('.graphiql-tab').length === 2")
            await _wait_until(page, "[...document.querySelectorAll('.graphiql-editor-tool .graphiql-editor .CodeMirror')]"
                                    ".some(e => e.CodeMirror.getValue().includes('Bearer '))")

            await page.get_by_label("Show Examples").click()
            await page.click("button[data-example=find-member]")
            await _wait_until(page, "document.querySelector('.graphiql-query-editor .CodeMirror')"
                                    ".CodeMirror.getValue().includes('query FindMember')")
            # GraphiQL reads the operation's name 100 ms after an edit; the tab's title shows it
            await _wait_until(page, "document.querySelector('.graphiql-tab-active').textContent.includes('FindMember')")
            await page.evaluate("""digits => {
              const editors = [...document.querySelectorAll('.graphiql-editor-tool .graphiql-editor .CodeMirror')];
              const variables = editors.find(e => e.CodeMirror.getValue().includes('search'));
              variables.CodeMirror.setValue(JSON.stringify({search: digits}));
            }""", phone[-8:])
            await page.click(".graphiql-execute-button")
            await _wait_until(page, "document.querySelector('.result-window .CodeMirror')"
                                    ".CodeMirror.getValue().includes('phoneMasked')")
            result = json.loads(await page.evaluate(_editor_value(".result-window .CodeMirror")))
            assert "errors" not in result, result
            nodes = [edge["node"] for edge in result["data"]["members"]["edges"]]
            assert len(nodes) == 1 and nodes[0]["pointsBalance"] == 0, nodes

            await asyncio.sleep(1)  # GraphiQL stores its tabs 500 ms after the last change
            await page.reload()
            await page.wait_for_selector(".graphiql-container", timeout=30_000)
            stored = await page.evaluate("localStorage.getItem('graphiql:tabState')")
            assert "Bearer " in stored, "the token is kept in GraphiQL's own storage"
        finally:
            await browser.close()
    assert blocked == [], f"requests left the machine: {blocked}"
    assert page_errors == [], page_errors

