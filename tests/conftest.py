"""Test set-up: every database test runs on SQLite, and again on PostgreSQL when it is reachable
(in CI, CI=true, an unreachable PostgreSQL or Redis fails the run instead of skipping).

Each backend gets a database of its own for the session (a temporary SQLite file; a PostgreSQL
database named after the process), migrated with the committed migrations. Tests do not truncate:
each one makes its own members, merchants and keys, and the ledger invariant is checked over the
whole database after every test.
"""
from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import time
import uuid
from datetime import datetime, timezone

import httpx
import pytest
import pytest_asyncio

from api import db
from api.config import Settings, set_settings
from api.services import clock, integrations, merchants, signing, staff, tiers

PG_ADMIN_DSN = os.environ.get("MALLPOINTS_TEST_PG", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("MALLPOINTS_TEST_REDIS", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() == "true"
TEST_SECRET = "test-pos-secret"
TEST_SMS_CODE = "246810"


def pytest_collection_modifyitems(config, items):
    """Marks each test with the services it needs, from what it uses: `postgres` when it runs on the
    PostgreSQL backend (the `backend` parameter), `redis` when it takes the `redis` fixture or the Redis
    side of `gate`. `-m "not postgres and not redis"` then runs the suite without either server."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        fixtures = getattr(item, "fixturenames", ())
        if params.get("backend") == "postgres":
            item.add_marker(pytest.mark.postgres)
        if "redis" in fixtures or {params.get("gate"), params.get("counter")} & {"redis", "redis-cluster"}:
            item.add_marker(pytest.mark.redis)


def service_missing(what: str, reason: str) -> None:
    """Skip with a clear reason on a developer's machine; fail in CI."""
    message = f"{what} is not reachable ({reason}); " + (
        "CI must have it" if IN_CI else "start it to run these tests (they run in CI)"
    )
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def base_settings(url: str) -> Settings:
    return Settings(database_url=url, test_sms_code=TEST_SMS_CODE, demo_pos_secret=TEST_SECRET)


@pytest_asyncio.fixture(scope="session", params=["sqlite", "postgres"])
async def backend(request, tmp_path_factory):
    """The database of the session for one backend: migrated, with tiers and merchants loaded."""
    if request.param == "postgres":
        name = f"mallpoints_test_{os.getpid()}"
        try:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{name}"')
            await _pg_admin(f'CREATE DATABASE "{name}"')
        except Exception as exc:  # noqa: BLE001 - any failure to reach the server means "absent"
            service_missing("PostgreSQL", f"{PG_ADMIN_DSN}: {exc.__class__.__name__}")
        url = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}?minsize=2&maxsize=30"
    else:
        url = f"sqlite://{tmp_path_factory.mktemp('db')}/test.sqlite3"
    cfg = base_settings(url)
    set_settings(cfg)
    await db.migrate_db(cfg)
    await db.close_db()
    await db.init_db(cfg)
    from seeds.loader import load_demo

    await load_demo(with_history=False)
    from api.services import earning

    earning.reset_caches()  # earning (issue 3): member ids repeat across the two databases
    yield request.param
    earning.reset_caches()
    tiers.invalidate_cache()
    merchants.invalidate_cache()
    staff.invalidate_cache()
    integrations._keys.clear()
    await db.close_db()
    if request.param == "postgres":
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def _reset_clock():
    clock.freeze(None)
    yield
    clock.freeze(None)


@pytest_asyncio.fixture(autouse=True)
async def _ledger_invariant(request):
    """After every database test: the ledger adds up, everywhere."""
    yield
    if "backend" in request.fixturenames:
        await assert_ledger_invariant()
        await _retire_earning_config()


async def _retire_earning_config() -> None:
    """Earning (issue 3): rules, tasks and events a test made apply to every member, so they are
    archived after each test (the seeded default purchase rule stays)."""
    from api.services import earning

    async with db.transaction() as tx:
        await tx.execute("UPDATE earn_rule SET status = 'ARCHIVED' WHERE code <> 'DEFAULT_PURCHASE'"
                         " AND status <> 'ARCHIVED'")
        await tx.execute("UPDATE earn_rule SET status = 'ACTIVE' WHERE code = 'DEFAULT_PURCHASE'")
        await tx.execute("UPDATE earn_task SET status = 'ARCHIVED' WHERE status <> 'ARCHIVED'")
        await tx.execute("UPDATE mall_event SET status = 'ARCHIVED' WHERE status <> 'ARCHIVED'")
    earning.invalidate_cache()


async def assert_ledger_invariant() -> None:
    """Every account: balance = Σ entries = Σ lots' remainders (negative only as a DEBT lot); every
    lot: remaining = points + Σ moves; every entry: points = Σ lots it created + Σ its moves."""
    accounts = await db.fetch(
        """
        SELECT a.id, a.balance, COALESCE(e.total, 0) AS entries, COALESCE(l.total, 0) AS lots,
               COALESCE(l.debt, 0) AS debt
        FROM points_account a
        LEFT JOIN (SELECT account_id, SUM(points) AS total FROM points_entry GROUP BY account_id) e
          ON e.account_id = a.id
        LEFT JOIN (SELECT account_id, SUM(remaining) AS total,
                          SUM(CASE WHEN kind = 'DEBT' THEN remaining ELSE 0 END) AS debt
                   FROM points_lot GROUP BY account_id) l ON l.account_id = a.id
        WHERE a.balance <> COALESCE(e.total, 0) OR a.balance <> COALESCE(l.total, 0)
           OR (a.balance < 0 AND a.balance <> COALESCE(l.debt, 0))
        """
    )
    assert not accounts, f"accounts whose balance does not add up: {[dict(r) for r in accounts[:5]]}"
    lots = await db.fetch(
        "SELECT l.id, l.points, l.remaining, COALESCE(m.moved, 0) AS moved FROM points_lot l"
        " LEFT JOIN (SELECT lot_id, SUM(delta) AS moved FROM points_lot_move GROUP BY lot_id) m ON m.lot_id = l.id"
        " WHERE l.remaining <> l.points + COALESCE(m.moved, 0)"
    )
    assert not lots, f"lots whose moves do not add up: {[dict(r) for r in lots[:5]]}"
    entries = await db.fetch(
        "SELECT e.id, e.points, COALESCE(l.created, 0) AS created, COALESCE(m.moved, 0) AS moved FROM points_entry e"
        " LEFT JOIN (SELECT entry_id, SUM(points) AS created FROM points_lot WHERE kind = 'EARN' GROUP BY entry_id) l"
        " ON l.entry_id = e.id"
        " LEFT JOIN (SELECT entry_id, SUM(delta) AS moved FROM points_lot_move GROUP BY entry_id) m ON m.entry_id = e.id"
        " WHERE e.points <> COALESCE(l.created, 0) + COALESCE(m.moved, 0)"
    )
    assert not entries, f"entries whose lots and moves do not add up: {[dict(r) for r in entries[:5]]}"
    holds = await db.fetch(
        "SELECT h.id, h.status, h.points, e.points AS spent FROM points_hold h LEFT JOIN points_entry e"
        " ON e.id = h.entry_id WHERE (h.status = 'CAPTURED') <> (h.entry_id IS NOT NULL)"
        " OR (h.status = 'CAPTURED' AND e.points <> -h.points)"
    )
    assert not holds, f"holds and their captures disagree: {[dict(r) for r in holds[:5]]}"
    orders = await db.fetch(
        "SELECT o.id, o.status, o.points, e.points AS spent FROM mall_order o LEFT JOIN points_entry e"
        " ON e.id = o.spend_entry_id WHERE o.status IN ('PAID', 'REFUNDED') AND o.points > 0"
        " AND (e.id IS NULL OR e.points <> -o.points)"
    )
    assert not orders, f"paid orders without their exact spend: {[dict(r) for r in orders[:5]]}"
    # Earning (issue 3): pending points are outside the balance; a released row is exactly one EARN entry
    # of what was not cancelled, and a pending row has none.
    pending = await db.fetch(
        "SELECT p.id, p.status, p.points, p.points_cancelled, e.points AS booked FROM points_pending p"
        " LEFT JOIN points_entry e ON e.id = p.entry_id"
        " WHERE (p.status = 'PENDING' AND p.entry_id IS NOT NULL)"
        " OR (p.status = 'RELEASED' AND COALESCE(e.points, 0) <> p.points - p.points_cancelled)"
        " OR (p.status = 'RELEASED' AND e.id IS NOT NULL AND e.kind <> 'EARN')"
    )
    assert not pending, f"pending points that do not add up: {[dict(r) for r in pending[:5]]}"


# --- helpers used by the tests --------------------------------------------------------------

_counter = itertools.count(1)


def unique(prefix: str = "") -> str:
    return f"{prefix}{os.getpid() % 1000:03d}{next(_counter):06d}"


def new_phone() -> str:
    return f"+86139{int(time.time() * 1000) % 100000:05d}{next(_counter) % 1000:03d}"


class Api:
    """Calls the app over ASGI exactly as clients do (headers, signatures, JSON)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def post(self, query: str, variables: dict | None = None, *, token: str | None = None,
                   admin: bool = False, headers: dict | None = None, raw: bool = False):
        path = "/admin/graphql" if admin else "/graphql"
        all_headers = {"content-type": "application/json", **(headers or {})}
        if token:
            all_headers["authorization"] = f"Bearer {token}"
        response = await self.client.post(path, content=json.dumps({"query": query, "variables": variables or {}}),
                                          headers=all_headers)
        return response if raw else response.json()

    async def signed(self, query: str, variables: dict | None = None, *, key_id: str = "demo-pos",
                     secret: str = TEST_SECRET, timestamp: int | None = None, nonce: str | None = None,
                     tamper: bytes | None = None, raw: bool = False):
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        ts = str(int(clock.now().timestamp()) if timestamp is None else timestamp)
        nonce = nonce or uuid.uuid4().hex
        signature = hmac.new(secret.encode(), ts.encode() + b"\n" + nonce.encode() + b"\n" + body,
                             hashlib.sha256).hexdigest()
        response = await self.client.post("/graphql", content=tamper if tamper is not None else body, headers={
            "content-type": "application/json", "X-Mallpoints-Key": key_id, "X-Mallpoints-Timestamp": ts,
            "X-Mallpoints-Nonce": nonce, "X-Mallpoints-Signature": signature,
        })
        return response if raw else response.json()


@pytest.fixture(scope="session")
def redis_cluster_nodes():
    """A Redis Cluster of three masters started for the session (tests/redis_cluster.py), stopped after."""
    from tests import redis_cluster

    missing = redis_cluster.available()
    if missing:
        service_missing("Redis Cluster", f"{missing} not installed")
    nodes = redis_cluster.start()
    yield nodes
    nodes.stop()


async def _flushed(client):
    try:
        await client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means "absent"
        await client.aclose()
        service_missing("Redis", f"{REDIS_URL}: {exc.__class__.__name__}")
    await client.flushdb()
    return client


@pytest_asyncio.fixture
async def redis_single():
    """A real Redis (MALLPOINTS_TEST_REDIS; database 15 unless set), flushed before and after the test."""
    from redis.asyncio import from_url

    client = await _flushed(from_url(REDIS_URL, socket_connect_timeout=1))
    yield client
    await client.flushdb()
    await client.aclose()


@pytest_asyncio.fixture
async def redis_cluster(redis_cluster_nodes):
    """The session's Redis Cluster through the server's own cluster client (MALLPOINTS_REDIS_MODE=cluster),
    flushed before and after the test."""
    from api.app import redis_client

    client = await _flushed(redis_client(redis_cluster_nodes.url, "cluster"))
    yield client
    await client.flushdb()
    await client.aclose()


async def redis_keys(client, pattern: str) -> list:
    """KEYS on one Redis, or on every master of a Redis Cluster (a cluster client asks one node only)."""
    from redis.asyncio.cluster import RedisCluster

    if isinstance(client, RedisCluster):
        return await client.keys(pattern, target_nodes=RedisCluster.PRIMARIES)
    return await client.keys(pattern)


@pytest.fixture(params=["single", "cluster"])
def redis(request):
    """Each Redis test runs on one Redis and on a Redis Cluster of three masters (issue 15)."""
    return request.getfixturevalue(f"redis_{request.param}")


@pytest.fixture(params=["redis", "redis-cluster", "database"])
def gate(request, api):
    """Each test runs with the Redis gate in front (one Redis, then a Redis Cluster), and on the database
    alone."""
    if request.param == "database":
        return None
    client = request.getfixturevalue("redis_single" if request.param == "redis" else "redis_cluster")
    api.client._transport.app.state.redis = client
    return client


@pytest_asyncio.fixture
async def api(backend):
    from api.app import create_app

    app = create_app(manage_db=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield Api(client)


async def make_member(phone: str | None = None, *, at: datetime | None = None) -> tuple[int, str]:
    """A registered member and a token for them."""
    from api.services.members import register_member

    async with db.transaction() as tx:
        member_id = await register_member(tx, phone or new_phone(), at or clock.now())
    return member_id, signing.issue_token("member", member_id, 3600)


def code_for(member_id: int, at: datetime | None = None) -> str:
    """A member code issued now, or at `at` (a till that was offline scanned it then)."""
    return signing.issue_member_code(member_id, 120, issued_at=at)[0]


async def make_merchant() -> str:
    code = unique("T")
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO merchant (code, name, category, created_at) VALUES ($1, $2, '测试', $3)",
                         code, f"测试商户{code}", clock.now())
    merchants.invalidate_cache()
    return code


async def bind_demo_key(merchant_code: str) -> None:
    """Binds the demo key (secret TEST_SECRET) to another merchant."""
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO integration_key_merchant (key_id, merchant_id) SELECT k.id, m.id FROM integration_key k,"
            " merchant m WHERE k.key_id = 'demo-pos' AND m.code = $1", merchant_code,
        )
    integrations._keys.clear()


async def snapshot(member_id: int) -> dict:
    """Everything a failed call must leave untouched for this member."""
    rows = await db.fetch(
        "SELECT a.balance, (SELECT COUNT(*) FROM points_entry e WHERE e.account_id = a.id) AS entries,"
        " (SELECT COUNT(*) FROM points_lot l WHERE l.account_id = a.id) AS lots,"
        " (SELECT COALESCE(SUM(remaining), 0) FROM points_lot l WHERE l.account_id = a.id) AS remaining,"
        " (SELECT COUNT(*) FROM purchase p WHERE p.member_id = a.member_id) AS purchases,"
        " (SELECT COUNT(*) FROM till_payment t WHERE t.member_id = a.member_id) AS payments,"
        " m.growth_value, m.tier_id FROM points_account a JOIN member m ON m.id = a.member_id"
        " WHERE a.member_id = $1", member_id,
    )
    return {k: int(v) for k, v in dict(rows[0]).items()}


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


PURCHASE = """
mutation($input: PurchaseRecordInput!) {
  purchaseRecord(input: $input) {
    purchase { id receiptNo amountFen } pointsEarned pointsBalance
    userErrors { field message code }
  }
}"""
PAY = """
mutation($input: PointsPayInput!) {
  pointsPay(input: $input) { pointsSpent cashValueFen pointsBalance userErrors { field message code } }
}"""
REFUND = """
mutation($input: PurchaseRefundInput!) {
  purchaseRefund(input: $input) { pointsReversed pointsBalance userErrors { field message code } }
}"""


def purchase_input(member_id: int, amount_fen: int = 10000, *, merchant: str = "M001", receipt: str | None = None,
                   key: str | None = None, occurred_at: datetime | None = None, code: str | None = None) -> dict:
    return {
        "memberCode": code or code_for(member_id, occurred_at), "merchantCode": merchant, "receiptNo": receipt or unique("R"),
        "amountFen": amount_fen, "occurredAt": (occurred_at or clock.now()).isoformat(),
        "idempotencyKey": key or unique("K"),
    }


