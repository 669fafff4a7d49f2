"""Transport rules (issue 11): whose X-Forwarded-For is believed, request body limits, malformed bodies,
and what a failed request leaves in the log."""
from __future__ import annotations

import ipaddress
import random
from dataclasses import replace

import httpx
import pytest
import pytest_asyncio
import uvicorn

from api.app import create_app
from api.cli import serve_options
from api.config import ConfigError, Settings, set_settings, settings
from api.services import members, ratelimit
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
    for key in ("sms:127.0.0.1", "sms:203.0.113.1", "sms:192.0.2.1"):
        monkeypatch.delitem(ratelimit._local, key, raising=False)
    config = uvicorn.Config(create_app(manage_db=False), log_config=None, lifespan="off", **serve_options(settings()))
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

    config = uvicorn.Config(probe, log_config=None, lifespan="off", **options)
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
