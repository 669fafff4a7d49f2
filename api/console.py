"""The operators' console at GET /admin/graphql: GraphiQL with the explorer plugin, a sign-in helper
and the daily jobs' examples, every script and stylesheet served from api/static/console (built once
from the npm packages, see api/static/console/src/build.sh); the page makes no request elsewhere.

Also the short page that GET /graphql answers a browser with."""
from __future__ import annotations

import gzip
import hashlib
import html
import json
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from api.console_examples import EXAMPLES, WELCOME

STATIC_DIR = Path(__file__).resolve().parent / "static" / "console"
STATIC_PREFIX = "/admin/static/"
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".txt": "text/plain; charset=utf-8"}
# The page itself: scripts, styles, fonts and requests only from this server (GraphiQL sets inline styles).
CONSOLE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
               "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
DOCS = "README.md and docs/ in the mallpoints source (docs/integrations.md for POS and parking systems)"


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    content_type: str
    etag: str


def _load_assets() -> dict[str, Asset]:
    assets = {}
    for name in ("graphiql.js", "graphiql.css", "THIRD_PARTY_LICENSES.txt"):
        body = (STATIC_DIR / name).read_bytes()
        assets[name] = Asset(body, gzip.compress(body, 6, mtime=0), CONTENT_TYPES[Path(name).suffix],
                             hashlib.sha256(body).hexdigest()[:16])
    return assets


_ASSETS: dict[str, Asset] = {}


def assets() -> dict[str, Asset]:
    if not _ASSETS:
        _ASSETS.update(_load_assets())
    return _ASSETS


def asset_url(name: str) -> str:
    """The versioned URL of an asset: a new build gets a new URL, so a browser may keep it for a year."""
    return f"{STATIC_PREFIX}{name}?v={assets()[name].etag}"


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


def console_config(endpoint: str = "/admin/graphql") -> dict:
    return {"endpoint": endpoint, "welcome": WELCOME, "examples": [example.as_json() for example in EXAMPLES]}


def console_page() -> HTMLResponse:
    # "</" cannot close the script element early once escaped; the JSON stays valid.
    config = json.dumps(console_config(), ensure_ascii=False).replace("</", "<\\/")
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mallpoints · operators' console</title>
<link rel="stylesheet" href="{html.escape(asset_url('graphiql.css'))}">
<style>html, body, #graphiql {{ height: 100%; margin: 0; }}</style>
</head>
<body>
<div id="graphiql">Loading the operators' console…
<noscript>The console needs JavaScript. Without it, POST GraphQL to /admin/graphql with
<code>Authorization: Bearer &lt;operator token&gt;</code>.</noscript></div>
<script type="application/json" id="mallpoints-console-config">{config}</script>
<script src="{html.escape(asset_url('graphiql.js'))}"></script>
</body>
</html>
"""
    return HTMLResponse(page, headers={"Cache-Control": "no-cache", "Content-Security-Policy": CONSOLE_CSP,
                                       "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "").lower()


def public_endpoint_info(request: Request) -> Response:
    """GET /graphql without a query: what this endpoint is and where to go instead of a bare 404."""
    console = str(request.url.replace(path="/admin/graphql", query=""))
    if not wants_html(request):
        return JSONResponse({
            "message": "This is the mallpoints public GraphQL endpoint: send POST requests with a JSON body "
                       "{\"query\": …, \"variables\": …}. Queries over GET are off here and mutations never run over GET.",
            "operatorsConsole": console, "docs": DOCS,
        })
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mallpoints · public GraphQL endpoint</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40em; margin: 3em auto; line-height: 1.5">
<h1>mallpoints public GraphQL endpoint</h1>
<p>Apps, POS and parking systems send <code>POST /graphql</code> with a JSON body
<code>{{"query": …, "variables": …}}</code>. This endpoint has no IDE and no introspection, and never runs a
mutation over GET.</p>
<p>Operators: the console (GraphiQL) is at <a href="{html.escape(console)}">{html.escape(console)}</a>.</p>
<p>Docs: {html.escape(DOCS)}.</p>
</body></html>
"""
    return HTMLResponse(page, headers={"Cache-Control": "no-cache",
                                       "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})


def admin_endpoint_info(request: Request) -> Response:
    """GET /admin/graphql without a query from something that is not a browser."""
    return JSONResponse({
        "message": "This is the mallpoints operators' GraphQL endpoint: POST {\"query\": …, \"variables\": …} with "
                   "Authorization: Bearer <operator token> (from operatorLogin). Open this URL in a browser for the console.",
        "operatorsConsole": str(request.url.replace(query="")), "docs": DOCS,
    })
