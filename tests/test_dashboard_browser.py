"""Issue 13 item 6: the operators' dashboard in headless Chromium with the network cut to loopback: on the
demo mall (seeds/) it opens signed in from the URL fragment, draws its KPI cards and four ECharts charts with
data, and makes no request elsewhere; without a token it asks the operator to sign in, and signing in there
draws the same charts. Plus the page's HTTP manners (CSP, no external URL, the committed ECharts licence)."""
from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit

import pytest

from api.services import signing
from tests.test_console_browser import chromium_path, live_server  # noqa: F401 - fixtures
from tests.test_operator_roles import token_for

pytestmark = pytest.mark.asyncio

CHARTS = ("chart-daily", "chart-points", "chart-lifecycle", "chart-merchants", "chart-campaigns")


async def _wait(page, expression: str, seconds: float = 30) -> None:
    for _ in range(int(seconds * 10)):
        if await page.evaluate(expression):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {expression}: {await page.evaluate('window.mallpointsDashboard && window.mallpointsDashboard.error')}")


async def _series_points(page, chart: str) -> int:
    """How many data points of the chart's series are non-zero, read from ECharts' own instance."""
    return await page.evaluate("""id => {
      const c = echarts.getInstanceByDom(document.getElementById(id));
      return c.getOption().series.flatMap(s => s.data).map(d => typeof d === 'object' ? d.value : d)
              .filter(v => v !== 0 && v !== null && v !== undefined).length;
    }""", chart)


async def test_dashboard_draws_the_demo_malls_month(chromium_path, live_server):  # noqa: F811
    from playwright.async_api import async_playwright

    from seeds.loader import load_demo

    await load_demo(with_history=True)
    _, token = await token_for("AUDITOR")
    blocked: list[str] = []
    errors: list[str] = []

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
            context = await browser.new_context(viewport={"width": 1400, "height": 1000})
            await context.route("**/*", loopback_only)
            page = await context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            await page.goto(f"{live_server}/admin/dashboard#token={token}")
            await _wait(page, "window.mallpointsDashboard && window.mallpointsDashboard.ready")
            assert "#token" not in page.url  # the fragment is dropped from the address bar
            data = await page.evaluate("window.mallpointsDashboard.data")
            assert data["kpis"]["purchases"] > 0 and data["kpis"]["membersActive"] > 0
            assert len(data["kpis"]["daily"]) == 30
            assert sum(d["members"] for d in data["lifecycleDistribution"]) >= 50
            assert len(data["topMerchants"]) >= 3
            assert any(e["node"]["sent"] > 0 for e in data["campaigns"]["edges"])  # the demo's win-back campaign
            for chart in CHARTS:
                assert await _series_points(page, chart) > 0, chart
                assert await page.evaluate(f"!!document.querySelector('#{chart} canvas')"), chart
            cards = await page.locator("#cards .card").count()
            assert cards >= 12
            assert await page.locator("#signin").is_hidden()

            # Without a token: the sign-in form, then the same board.
            fresh = await context.new_page()
            fresh.on("pageerror", lambda exc: errors.append(str(exc)))
            await fresh.goto(f"{live_server}/admin/dashboard")
            await fresh.wait_for_selector("#signin:not([hidden])", timeout=15_000)
            assert await fresh.locator("#board").is_hidden()
            await fresh.fill("#username", "admin")
            await fresh.fill("#password", "admin-demo-password")
            await fresh.click("#login button[type=submit]")
            await _wait(fresh, "window.mallpointsDashboard && window.mallpointsDashboard.ready")
            assert await _series_points(fresh, "chart-daily") > 0
        finally:
            await browser.close()
    assert blocked == [], f"requests left the machine: {blocked}"
    assert errors == [], errors


async def test_dashboard_page_manners(api):
    page = await api.client.get("/admin/dashboard")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "default-src 'none'" in csp
    # Every script, stylesheet and link is the server's own.
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert urls and all(u.startswith("/admin/dashboard/static/") for u in urls), urls
    for url in urls:
        got = await api.client.get(url)
        assert got.status_code == 200, url
        assert "immutable" in got.headers["cache-control"]
    licence = await api.client.get(next(u for u in urls if "LICENSE" in u))
    assert "Apache License" in licence.text
    script = await api.client.get(next(u for u in urls if "echarts.min.js" in u))
    assert len(script.content) > 500_000 and b"echarts" in script.content[:5000].lower()
    assert (await api.client.get("/admin/dashboard/static/nope.js")).status_code == 404
    assert signing  # the token of the browser test is an ordinary operator token
