"""The operators' console at /admin/graphql: served from the project's own files, examples that
validate and run, static assets with their content types and caching; GET /graphql says where to go."""
from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

from graphql import build_schema, parse, validate

from api import console
from api.console_examples import EXAMPLES, WELCOME
from tests.test_operators import operator_token

ROOT = Path(__file__).resolve().parent.parent
ADMIN_SDL = build_schema((ROOT / "schema.admin.graphql").read_text(encoding="utf-8"))


def test_every_example_validates_against_the_operators_schema():
    assert {e.name for e in EXAMPLES} >= {"find-member", "adjust-points", "create-rule", "flash-sale",
                                          "parking-settlement"}
    for example in EXAMPLES:
        document = parse(example.query)
        assert validate(ADMIN_SDL, document) == [], example.name
        operations = [d for d in document.definitions if d.kind == "operation_definition"]
        assert len(operations) == 1 and operations[0].name is not None, example.name
        declared = {v.variable.name.value for v in operations[0].variable_definitions or ()}
        assert declared == set(example.variables), f"{example.name}: variables differ from the declared ones"
    assert validate(ADMIN_SDL, parse(WELCOME)) == []


def test_bundle_and_licences_are_committed():
    names = console.assets()
    assert set(names) == {"graphiql.js", "graphiql.css", "THIRD_PARTY_LICENSES.txt"}
    licences = names["THIRD_PARTY_LICENSES.txt"].body.decode()
    for package in ("graphiql 3.9.0", "react 18.3.1", "react-dom 18.3.1", "@graphiql/plugin-explorer 3.2.6",
                    "@graphiql/react 0.29.0", "graphiql-explorer", "graphql 16.9.0", "codemirror"):
        assert package in licences, package
    bundle = names["graphiql.js"].body.decode()
    assert "js-cookie" not in bundle and "unpkg.com" not in bundle and "cdn.jsdelivr" not in bundle


async def test_console_page_loads_only_local_assets(api):
    response = await api.client.get("/admin/graphql", headers={"accept": "text/html,application/xhtml+xml"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "default-src 'none'" in csp
    page = response.text
    urls = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(urls) == 2 and all(u.startswith("/admin/static/") for u in urls), urls
    config = json.loads(re.search(r'id="mallpoints-console-config">(.*?)</script>', page, re.S).group(1))
    assert config["endpoint"] == "/admin/graphql"
    assert [e["name"] for e in config["examples"]] == [e.name for e in EXAMPLES]
    for url in urls:
        asset = await api.client.get(url.replace("&amp;", "&"))
        assert asset.status_code == 200
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"


async def test_static_assets_types_and_caching(api):
    js = await api.client.get("/admin/static/graphiql.js", headers={"accept-encoding": "identity"})
    assert js.status_code == 200 and js.headers["content-type"] == "text/javascript; charset=utf-8"
    assert js.headers["cache-control"] == "no-cache"  # unversioned URL: revalidate
    assert js.headers["x-content-type-options"] == "nosniff"
    assert js.content == (console.STATIC_DIR / "graphiql.js").read_bytes()
    css = await api.client.get(console.asset_url("graphiql.css"))
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert css.headers["cache-control"] == "public, max-age=31536000, immutable"
    stale = await api.client.get("/admin/static/graphiql.css?v=0000")
    assert stale.headers["cache-control"] == "no-cache"
    again = await api.client.get("/admin/static/graphiql.js", headers={"if-none-match": js.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    zipped = await api.client.get("/admin/static/graphiql.js", headers={"accept-encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.content == js.content  # httpx decodes
    assert len(gzip.compress(js.content)) < len(js.content)
    licences = await api.client.get("/admin/static/THIRD_PARTY_LICENSES.txt")
    assert licences.headers["content-type"] == "text/plain; charset=utf-8"
    for missing in ("/admin/static/nope.js", "/admin/static/src/entry.jsx", "/admin/static/..%2Fconsole.py"):
        assert (await api.client.get(missing)).status_code == 404


async def test_example_queries_run_for_an_operator(api):
    token = await operator_token(api)
    for example in EXAMPLES:
        if not example.query.lstrip().startswith("query"):
            continue
        result = await api.post(example.query, example.variables, token=token, admin=True)
        assert "errors" not in result, (example.name, result)
        assert result["data"], example.name


async def test_get_graphql_points_to_the_console_and_docs(api):
    browser = await api.client.get("/graphql", headers={"accept": "text/html"})
    assert browser.status_code == 200 and browser.headers["content-type"].startswith("text/html")
    assert "http://test/admin/graphql" in browser.text and "docs/" in browser.text and "<script" not in browser.text
    machine = await api.client.get("/graphql")
    assert machine.status_code == 200 and machine.headers["content-type"] == "application/json"
    body = machine.json()
    assert body["operatorsConsole"] == "http://test/admin/graphql" and "POST" in body["message"]
    operators = await api.client.get("/admin/graphql", headers={"accept": "application/json"})
    assert operators.status_code == 200 and "operatorLogin" in operators.json()["message"]
    # a query or a mutation over GET is still refused, on both endpoints
    for path in ("/graphql", "/admin/graphql"):
        refused = await api.client.get(path, params={"query": "mutation { pointsExpireRun(input: {}) { lotsExpired } }"},
                                       headers={"accept": "text/html"})
        assert refused.status_code in (400, 405)
    assert (await api.client.get("/graphql", params={"query": "{ tiers { code } }"})).status_code in (400, 405)
