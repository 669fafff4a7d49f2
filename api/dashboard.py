"""The operators' dashboard at GET /admin/dashboard (issue 13): a static page that draws the mall's KPIs with
Apache ECharts, every script and stylesheet served from api/static/dashboard (ECharts' dist file committed
with its licence and notice); the page makes no request elsewhere. It reads the operators' GraphQL endpoint
with the operator's token, from a sign-in form or the URL fragment `#token=…` (never sent to the server)."""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from api.console import CONTENT_TYPES, Asset

STATIC_DIR = Path(__file__).resolve().parent / "static" / "dashboard"
PREFIX = "/admin/dashboard/static/"
FILES = ("echarts.min.js", "dashboard.js", "dashboard.css", "ECHARTS-LICENSE.txt", "ECHARTS-NOTICE.txt")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_ASSETS: dict[str, Asset] = {}


def assets() -> dict[str, Asset]:
    if not _ASSETS:
        for name in FILES:
            body = (STATIC_DIR / name).read_bytes()
            _ASSETS[name] = Asset(body, gzip.compress(body, 6, mtime=0), CONTENT_TYPES[Path(name).suffix],
                                  hashlib.sha256(body).hexdigest()[:16])
    return _ASSETS


def _url(name: str) -> str:
    return f"{PREFIX}{name}?v={assets()[name].etag}"


async def page(request: Request) -> HTMLResponse:
    body = f"""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>mallpoints · 运营看板 Dashboard</title>
<link rel="stylesheet" href="{_url('dashboard.css')}">
</head>
<body>
<header><h1>运营看板 <small>mallpoints dashboard</small></h1>
<form id="range"><label>From <input type="date" id="from" required></label>
<label>To <input type="date" id="to" required></label><button type="submit">Show</button>
<button type="button" id="signout">Sign out</button></form></header>
<section id="signin" hidden><h2>Sign in</h2><form id="login">
<label>Username <input id="username" autocomplete="username" required maxlength="64"></label>
<label>Password <input id="password" type="password" autocomplete="current-password" required maxlength="200"></label>
<button type="submit">Sign in</button><p id="login-error" role="alert"></p></form></section>
<main id="board" hidden>
<p id="status" role="status"></p>
<section id="cards"></section>
<section class="charts">
<figure><figcaption>Daily members and purchases</figcaption><div class="chart" id="chart-daily"></div></figure>
<figure><figcaption>Points flow</figcaption><div class="chart" id="chart-points"></div></figure>
<figure><figcaption>Lifecycle stages</figcaption><div class="chart" id="chart-lifecycle"></div></figure>
<figure><figcaption>Top merchants by member sales</figcaption><div class="chart" id="chart-merchants"></div></figure>
<figure><figcaption>Campaigns: messages, and buyers ‰ of target and holdout (14 days)</figcaption><div class="chart" id="chart-campaigns"></div></figure>
</section>
</main>
<footer>Charts: Apache ECharts (<a href="{_url('ECHARTS-LICENSE.txt')}">Apache License 2.0</a>,
<a href="{_url('ECHARTS-NOTICE.txt')}">notice</a>)</footer>
<script src="{_url('echarts.min.js')}"></script>
<script src="{_url('dashboard.js')}"></script>
</body>
</html>
"""
    return HTMLResponse(body, headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP,
                                       "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})


async def static_asset(request: Request) -> Response:
    asset = assets().get(request.path_params["name"])
    if asset is None:
        return Response("not found\n", status_code=404, media_type="text/plain")
    etag = f'"{asset.etag}"'
    versioned = request.query_params.get("v") == asset.etag
    headers = {"ETag": etag, "X-Content-Type-Options": "nosniff", "Vary": "Accept-Encoding",
               "Cache-Control": "public, max-age=31536000, immutable" if versioned else "no-cache"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    body = asset.body
    if "gzip" in request.headers.get("accept-encoding", ""):
        body, headers["Content-Encoding"] = asset.gzipped, "gzip"
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(body))
        return Response(status_code=200, headers=headers, media_type=asset.content_type)
    return Response(body, headers=headers, media_type=asset.content_type)
