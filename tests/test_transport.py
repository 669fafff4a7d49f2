"""Transport rules (issue 11): whose X-Forwarded-For is believed, request body limits, malformed bodies,
and what a failed request leaves in the log."""
from __future__ import annotations

import gc
import ipaddress
import json
import logging
import random
import time
import tracemalloc
from dataclasses import replace

import httpx
import pytest
import pytest_asyncio
import uvicorn

from api import logs
from api.app import create_app
from api.cli import serve_options
from api.config import ConfigError, Settings, set_settings, settings
from api.services import members, ratelimit
from api.textcache import TextCache
from tests.conftest import new_phone

SMS = 'mutation($p: String!) { authSmsCodeRequest(input: {phone: $p}) { codeExpiresAt userErrors { code } } }'


def _peer() -> str:
    """An address of its own per test, so the process-wide SMS-per-address counter starts at 0."""
    return f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"


async def _sms_codes(client: httpx.AsyncClient, forwarded: list[str | None]) -> list[str | None]:
    """Asks for a code for a new phone once per entry, with that X-Forwarded-For; the error codes."""
    answers = []
    for hop in forwarded:
        headers = {"content-type": "application/json", **({"x-forwarded-for": hop} if hop else {})}
        response = await client.post("/graphql", json={"query": SMS, "variables": {"p": new_phone()}}, headers=headers)
        errors = response.json()["data"]["authSmsCodeRequest"]["userErrors"]
        answers.append(errors[0]["code"] if errors else None)
    return answers


def _rotating(n: int) -> list[str | None]:
    return [f"203.0.113.{i % 250 + 1}, 192.0.2.{i % 250 + 1}" for i in range(n)]


@pytest_asyncio.fixture
async def trusting(api):
    """Sets MALLPOINTS_TRUSTED_PROXIES for one test; the test's settings otherwise unchanged."""
    before = settings()

    def apply(*proxies: str) -> None:
        set_settings(replace(before, trusted_proxies=tuple(ipaddress.ip_network(p) for p in proxies)))

    yield apply
    set_settings(before)


# --- finding 2: X-Forwarded-For -------------------------------------------------------------------------

async def test_serve_believes_no_forwarded_for_by_default(api, monkeypatch):
    """`mallpoints serve` with MALLPOINTS_TRUSTED_PROXIES unset: a caller on loopback (uvicorn's default
    trusted address) who rotates X-Forwarded-For still meets the per-address SMS limit."""
    monkeypatch.setattr(ratelimit, "_local", {})  # the process table of this test only (loopback is shared)
    config = uvicorn.Config(create_app(manage_db=False), lifespan="off", **serve_options(settings()))
    config.load()
    transport = httpx.ASGITransport(app=config.loaded_app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answers = await _sms_codes(client, _rotating(members.SMS_PER_CLIENT_PER_HOUR + 1))
    assert answers[:-1] == [None] * members.SMS_PER_CLIENT_PER_HOUR
    assert answers[-1] == "RATE_LIMITED"


async def test_serve_passes_trusted_proxies_to_uvicorn(api, trusting):
    """With a trusted proxy configured, uvicorn believes that proxy's header (and only that proxy's)."""
    trusting("10.20.0.0/16")
    options = serve_options(settings())
    assert options["proxy_headers"] is True and options["forwarded_allow_ips"] == ["10.20.0.0/16"]
    seen = []

    async def probe(scope, receive, send):
        seen.append(scope["client"][0])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    config = uvicorn.Config(probe, lifespan="off", **options)
    config.load()
    for peer in ("10.20.3.4", "127.0.0.1"):
        transport = httpx.ASGITransport(app=config.loaded_app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await client.get("/", headers={"x-forwarded-for": "203.0.113.9"})
    assert seen == ["203.0.113.9", "127.0.0.1"]


async def test_forwarded_for_ignored_without_trusted_proxies(api):
    """The app's own client address (the one the resolvers give the limits): with no trusted proxy,
    a rotating X-Forwarded-For changes nothing."""
    transport = httpx.ASGITransport(app=create_app(manage_db=False), client=(_peer(), 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answers = await _sms_codes(client, _rotating(members.SMS_PER_CLIENT_PER_HOUR + 1))
    assert answers[-1] == "RATE_LIMITED" and answers.count(None) == members.SMS_PER_CLIENT_PER_HOUR


async def test_forwarded_for_believed_from_a_trusted_proxy_only(api, trusting):
    trusting("198.18.0.0/16")
    client_behind_proxy = f"203.0.113.{random.randrange(1, 255)}"
    transport = httpx.ASGITransport(app=create_app(manage_db=False), client=(_peer(), 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        # Through the proxy, each forwarded address is counted on its own ...
        rotating = [f"192.0.2.{random.randrange(1, 255)}, 198.51.100.{i + 1}" for i in range(members.SMS_PER_CLIENT_PER_HOUR + 1)]
        assert await _sms_codes(client, rotating) == [None] * len(rotating)
        # ... and one client behind it meets its own limit, whatever it writes further left.
        spoofed = [f"10.{i}.0.1, {client_behind_proxy}" for i in range(members.SMS_PER_CLIENT_PER_HOUR + 1)]
        answers = await _sms_codes(client, spoofed)
    assert answers[:-1] == [None] * members.SMS_PER_CLIENT_PER_HOUR and answers[-1] == "RATE_LIMITED"


def test_client_address_rules():
    cfg = Settings.from_env({"MALLPOINTS_TRUSTED_PROXIES": "10.0.0.5, 172.16.0.0/12 ,::1"})
    assert cfg.client_address("203.0.113.7", ["1.2.3.4"]) == "203.0.113.7"  # not a proxy: its header is ignored
    assert cfg.client_address("10.0.0.5", ["1.2.3.4, 203.0.113.7"]) == "203.0.113.7"  # nearest untrusted hop
    assert cfg.client_address("10.0.0.5", ["1.2.3.4", "203.0.113.7, 172.16.4.4"]) == "203.0.113.7"
    assert cfg.client_address("::1", []) == "::1"
    assert cfg.client_address("10.0.0.5", ["172.20.0.1"]) == "172.20.0.1"  # only proxies: the farthest
    assert cfg.client_address("10.0.0.6", ["1.2.3.4"]) == "10.0.0.6"
    assert cfg.client_address(None, ["1.2.3.4"]) is None
    assert Settings.from_env({}).trusted_proxies == ()
    assert Settings.from_env({}).client_address("127.0.0.1", ["1.2.3.4"]) == "127.0.0.1"
    with pytest.raises(ConfigError, match="MALLPOINTS_TRUSTED_PROXIES"):
        Settings.from_env({"MALLPOINTS_TRUSTED_PROXIES": "10.0.0.5,proxy.internal"})


# --- findings 6 and 7: body limits and malformed bodies -----------------------------------------------------

@pytest_asyncio.fixture
async def http(api):
    """The app as a server runs it: an exception in the app is an HTTP 500, not a test error."""
    transport = httpx.ASGITransport(app=create_app(manage_db=False), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest_asyncio.fixture
async def limits(api):
    before = settings()

    def apply(public: int, admin: int) -> None:
        set_settings(replace(before, max_body_bytes=public, admin_max_body_bytes=admin))

    yield apply
    set_settings(before)


def _request_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1
    assert body["errors"][0]["extensions"] == {"code": code}
    assert isinstance(body["errors"][0]["message"], str)
    return body["errors"][0]["message"]


async def _raw_call(app, path: str, chunks, *, content_length: int | None):
    """Calls the ASGI app with a body streamed in `chunks` (an iterator); how many chunks it pulled."""
    pulled = 0
    headers = [(b"content-type", b"application/json"), (b"host", b"test")]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("198.18.0.1", 40000), "server": ("test", 80), "state": {}, "app": app}
    sent = []

    async def receive():
        nonlocal pulled
        pulled += 1
        chunk = next(chunks, b"")
        return {"type": "http.request", "body": chunk, "more_body": bool(chunk)}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), pulled


def _endless(size: int = 64 * 1024, count: int = 160):
    """10 MB of blanks in 64 KiB chunks (bounded: code that reads everything must not exhaust memory)."""
    for _ in range(count - 1):
        yield b" " * size
    yield b""


@pytest.mark.parametrize("path,limit", [("/graphql", 128 * 1024), ("/admin/graphql", 1024 * 1024)])
async def test_body_over_the_limit_refused_before_it_is_read(api, path, limit):
    """A declared Content-Length over the limit is refused without reading a byte; a body streamed
    without one is refused once the bytes counted pass the limit (the default limits)."""
    app = create_app(manage_db=False)
    app.state.redis = None
    started = time.perf_counter()
    status, body, pulled = await _raw_call(app, path, _endless(), content_length=10_000_000)
    declared_seconds = time.perf_counter() - started
    assert (status, pulled) == (413, 0) and body["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    status, body, pulled = await _raw_call(app, path, _endless(), content_length=None)
    assert status == 413 and body["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert pulled == limit // (64 * 1024) + 1
    assert declared_seconds < 0.5


async def test_body_limits_configurable_per_endpoint(http, limits):
    limits(2048, 8192)
    query = "{ __typename } #" + "x" * 3000
    message = _request_error(await http.post("/graphql", json={"query": query}), 413, "PAYLOAD_TOO_LARGE")
    assert "2048" in message
    admin = await http.post("/admin/graphql", json={"query": query})
    assert admin.status_code == 200 and admin.json() == {"data": {"__typename": "Query"}}
    _request_error(await http.post("/admin/graphql", json={"query": query + "x" * 6000}), 413, "PAYLOAD_TOO_LARGE")
    small = await http.post("/graphql", json={"query": "{ __typename }"})
    assert small.json() == {"data": {"__typename": "Query"}}
    assert Settings.from_env({"MALLPOINTS_MAX_BODY_BYTES": "65536"}).max_body_bytes == 65536
    assert Settings.from_env({"MALLPOINTS_ADMIN_MAX_BODY_BYTES": "2097152"}).admin_max_body_bytes == 2097152
    with pytest.raises(ConfigError, match="MALLPOINTS_MAX_BODY_BYTES"):
        Settings.from_env({"MALLPOINTS_MAX_BODY_BYTES": "lots"})


async def test_oversized_queries_refused_fast_and_not_kept(http):
    """The attack of finding 6: a 10 MB body, then 20 distinct 1 MB query texts. Before: the 10 MB body
    was read and parsed (HTTP 200 after 1.6 s) and every text stayed in the parse caches."""
    started = time.perf_counter()
    response = await http.post("/graphql", content=b'{"query": "{ __typename } #' + b"x" * 10_000_000 + b'"}',
                               headers={"content-type": "application/json"})
    elapsed = time.perf_counter() - started
    _request_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert elapsed < 0.5
    gc.collect()
    tracemalloc.start()
    try:
        kept_before = tracemalloc.get_traced_memory()[0]
        for i in range(20):
            body = b'{"query": "{ __typename } #%d' % i + b"y" * 1_000_000 + b'"}'
            response = await http.post("/graphql", content=body, headers={"content-type": "application/json"})
            assert response.status_code == 413
            del body, response
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - kept_before
    finally:
        tracemalloc.stop()
    assert kept < 2_000_000, f"{kept} bytes kept after 20 refused 1 MB queries"
    print(f"\n10 MB body refused in {elapsed * 1000:.0f} ms; {kept:,} bytes kept after 20 refused 1 MB queries")


NESTED_PUBLIC = b"[" * 60_000 + b"]" * 60_000  # under the public limit of 128 KiB
NESTED_ADMIN = b"[" * 100_000 + b"]" * 100_000
MALFORMED = {
    "null": b"null", "42": b"42", "empty list": b"[]", "batch": b'[{"query": "{ __typename }"}]', "string": b'"{ tiers { name } }"',
    "invalid UTF-8": b'{"query": "{ __typename } #\xff\xfe"}', "not JSON": b"{query: tiers}", "truncated": b'{"query": "{ tiers',
    "non-string query": b'{"query": 42}', "query object": b'{"query": {"tiers": 1}}',
    "variables list": b'{"query": "{ __typename }", "variables": []}', "variables string": b'{"query": "{ __typename }", "variables": "{}"}',
    "operationName number": b'{"query": "{ __typename }", "operationName": 5}',
    "extensions list": b'{"query": "{ __typename }", "extensions": [1]}',
    "nested variables": b'{"query": "{ __typename }", "variables": {"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}}",
}


@pytest.mark.parametrize("path", ["/graphql", "/admin/graphql"])
@pytest.mark.parametrize("name", [*MALFORMED, "nested 60,000 or 100,000 deep"])
async def test_malformed_body_is_a_400_request_error(http, path, name):
    raw = MALFORMED.get(name) or (NESTED_PUBLIC if path == "/graphql" else NESTED_ADMIN)
    response = await http.post(path, content=raw, headers={"content-type": "application/json"})
    _request_error(response, 400, "BAD_REQUEST")


@pytest.mark.parametrize("content_type", ["text/plain", "application/graphql", "multipart/form-data; boundary=x",
                                          "application/x-www-form-urlencoded", "application/json; charset=latin-1"])
@pytest.mark.parametrize("raw", [b"null", b"\xff\xfe", b"[" * 50_000, b"query=%7Btiers%7D"])
async def test_no_body_is_an_internal_error(http, content_type, raw):
    """Whatever the content type says, a malformed body is a client error, never a 500."""
    for path in ("/graphql", "/admin/graphql"):
        response = await http.post(path, content=raw, headers={"content-type": content_type})
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text[:200])


# --- finding 11: what failed requests leave in the log --------------------------------------------------

SECRETS = ("918273", "Zq9-s3cret-77", "Pw-4471-hidden", "+8613912345678", "13912345678", "424242424")
FAILING = [
    # an unknown field next to an inline SMS code and phone (validation error)
    ('mutation Login { authSmsLogin(input: {phone: "+8613912345678", code: "918273"}) { tokn } }', None, "/graphql"),
    # an inline staff password with a wrong selection, and one cut short (syntax error)
    ('mutation Staff { merchantStaffLogin(input: {username: "clerk1", password: "Zq9-s3cret-77"}) { nope } }', None, "/graphql"),
    ('mutation { merchantStaffLogin(input: {username: "clerk1", password: "Zq9-s3cret-77"}) { token ', None, "/graphql"),
    # a variable of the wrong type whose value is a code
    ('mutation Code($c: String!) { authSmsLogin(input: {phone: "+8613912345678", code: $c}) { token } }',
     {"c": 424242424}, "/graphql"),
    # an operator's password inline, and a wrong argument type
    ('mutation Op { operatorLogin(input: {username: "admin", password: "Pw-4471-hidden", extra: 1}) { token } }', None,
     "/admin/graphql"),
    ('mutation { operatorLogin(input: {username: "admin", password: 918273}) { token } }', None, "/admin/graphql"),
]


async def test_failed_requests_leave_no_secrets_or_query_texts_in_the_log(http, caplog):
    caplog.set_level(logging.DEBUG)
    for query, variables, path in FAILING:
        response = await http.post(path, json={"query": query, "variables": variables})
        assert response.status_code in (200, 400) and response.json()["errors"], response.text
    text = "\n".join(record.getMessage() + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
                     for record in caplog.records)
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} is in the log"
    for query, _, _ in FAILING:
        assert query[:40] not in text
    errors = [r for r in caplog.records if r.name == "strawberry.execution"]
    assert errors, "the failed requests were not logged at all"
    # client mistakes: INFO, no traceback, named by operation and query hash
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in errors)
    assert any("operation=Login" in r.getMessage() and f"query_sha256={logs.query_hash(FAILING[0][0])}" in r.getMessage()
               for r in errors)


def test_log_mask():
    assert logs.mask("Variable '$c' got invalid value 424242424; String cannot represent 'x'") == \
        "Variable '…' got invalid value …; String cannot represent '…'"
    assert logs.mask('Expected value of type "String!", found "918273".\n\nGraphQL request:1:2') == \
        "Expected value of type '…', found '…'."


async def test_repeated_redis_failures_summarised(api, caplog):
    """Redis unreachable: 25 requests that each meet a Redis gate leave one traceback, not 25."""
    from api.app import redis_client

    app = create_app(manage_db=False)
    app.state.redis = redis_client("redis://127.0.0.1:1/0")  # nothing listens on port 1
    logs.forget_repeats()
    caplog.set_level(logging.DEBUG)
    transport = httpx.ASGITransport(app=app, client=(_peer(), 40000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await _sms_codes(client, [None] * 15)
    finally:
        await app.state.redis.aclose()
    gate_records = [r for r in caplog.records if r.name in logs.REDIS_GATE_LOGGERS]
    assert gate_records, "the Redis failure was not logged at all"
    per_message: dict[str, int] = {}
    for record in gate_records:
        per_message[str(record.msg)] = per_message.get(str(record.msg), 0) + 1
    assert max(per_message.values()) == 1, per_message


def test_text_cache_bounded_by_bytes():
    cache: TextCache[int] = TextCache(max_bytes=1000, max_text_bytes=400)
    for i in range(10):
        cache.put(f"{i}" * 300, i)
    assert cache.bytes <= 1000 and len(cache) == 3
    assert cache.get("9" * 300) == 9 and cache.get("0" * 300) is None
    cache.get("7" * 300)  # used: kept ahead of 8
    cache.put("a" * 300, 10)
    assert "7" * 300 in cache and "8" * 300 not in cache
    cache.put("b" * 401, 11)  # longer than one text may be
    assert "b" * 401 not in cache and cache.bytes <= 1000


async def test_prepared_cache_keeps_valid_texts_only_within_its_bytes(http):
    """The public endpoint's prepared path: a failing text is never kept, and the texts kept stay
    within the cache's byte bound however many distinct valid texts arrive (each one under the body limit)."""
    app = http._transport.app
    executor = next(route.endpoint.prepared for route in app.routes if getattr(route, "path", "") == "/graphql")
    failing = ["{ tiers { nope } } #%d" % i for i in range(5)] + ["{ tiers { name } #%d" % i for i in range(5)]
    for query in failing:
        response = await http.post("/graphql", json={"query": query})
        assert response.json()["errors"]
    assert not any(query in executor.cache for query in failing)
    valid = "{ __typename } #"
    for i in range(60):  # 60 distinct texts of 100 KB: 6 MB, over the 4 MiB of texts (8 MiB with their tokens)
        response = await http.post("/graphql", json={"query": valid + str(i) + "x" * 100_000})
        assert response.json() == {"data": {"__typename": "Query"}}
    assert 0 < executor.cache.bytes <= executor.cache.max_bytes == 4 * 1024 * 1024
    assert valid + "59" + "x" * 100_000 in executor.cache and valid + "0" + "x" * 100_000 not in executor.cache
