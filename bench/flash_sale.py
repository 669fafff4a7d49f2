"""Flash-sale load test: N members press "buy" on one sale of S units at the same moment, over HTTP,
with the Redis gate and on the database alone, measured in one run beside the raw rate of the
conditional stock update through asyncpg.

    python -m bench.flash_sale [--members 2000] [--stock 100] [--workers 2] [--phases redis,db,raw]
                               [--database-url postgres://postgres@127.0.0.1:5432/mallpoints_bench_flash]
                               [--redis-url redis://127.0.0.1:6379/11]

What one run does (see bench/README.md):
  1. creates a fresh database (its name must start with `mallpoints_bench`), applies the committed
     migrations, loads the demo seeds and bulk-inserts --members members with their points accounts
     (bench/purchase_load.py's set-up), then gives every member --points points (an ADJUST entry, its
     EARN lot expiring in a year, the cached balance: balance = Σ entries = Σ lots);
  2. phase "redis": flushes the bench's Redis database (db 11 by default, nothing else), starts
     `uvicorn api.app:create_app --factory --workers W` with MALLPOINTS_REDIS_URL, signs in as the
     operator `admin` and creates through the admin GraphQL a product (once) and a flash sale of
     --stock units at --price points, on now, one per member (with Redis the server loads the sale's
     gate as it creates it); opens one keep-alive connection per member, primes each with a GET
     (so every connection is accepted by a worker before the contest), warms both workers up (a
     read-only query, then redeems on a warm-up sale that is sold out from the start), waits 11 s
     (--pause: PostgreSQL's statistics catch up), then fires all N `flashSaleRedeem` mutations at
     once (one per member, a unique idempotency key each) and waits for every answer;
  3. phase "db": the same with a new sale and the server restarted without MALLPOINTS_REDIS_URL;
  4. phase "raw": the server stopped, a fresh flash_sale row of --stock units and N concurrent tasks
     over an asyncpg pool of --raw-pool connections, each running the conditional update
     `UPDATE flash_sale SET stock = stock - 1 WHERE id = $1 AND stock >= 1` once (row count checked);
     --rounds R repeats phases 2 and 3 R times, alternating their order; the ratios are medians;
  5. after every phase: checks straight from PostgreSQL (orders = S, stock = 0, at most one order per
     member, every member's points exact, the ledger invariant, no negative balance, ...) and prints
     PASS/FAIL lines; then a summary with the ratio of sold-out answer rates, Redis / database alone,
     against the 3x target;
  6. always stops the server, drops the database and flushes the bench's Redis database.

A benchmark is a figure, not a test: a failed check is printed loudly in the summary, and the exit
status is 0 unless the run itself broke.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.purchase_load import (
    BENCH_SECRET_KEY,
    DB_PREFIX,
    CpuProbe,
    HttpConnection,
    Server,
    admin_execute,
    asyncpg_dsn,
    connect,
    database_name,
    describe_app_source,
    log,
    pct,
    prepare_database,
    start_profilers,
    with_database,
)

DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/mallpoints_bench_flash"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"  # db 11 is the flash-sale bench's; 12-15 belong to others
RESERVED_REDIS_DBS = range(12, 16)
TARGET_SOLD_OUT_RATIO = 3.0  # sold-out answers with Redis >= 3x the rate of the database-only path
ALL_PHASES = ("redis", "db", "raw")
ADMIN_USERNAME = "admin"  # seeds/demo.json

REDEEM_QUERY = ("mutation($i: FlashSaleRedeemInput!) { flashSaleRedeem(input: $i) {"
                " order { id } pointsBalance userErrors { code } } }")
WARM_QUERY = "{ viewer { member { pointsBalance } } }"
RAW_UPDATE = "UPDATE flash_sale SET stock = stock - 1 WHERE id = $1 AND stock >= 1"

# Columns the bench writes with raw SQL; a NOT NULL column without a default that is missing here
# means the schema moved on (checked before writing; Tortoise emits no database defaults).
SQL_WRITES = {
    "points_entry": {"id", "account_id", "kind", "points", "balance_after", "reason", "source_type", "occurred_at"},
    "points_lot": {"id", "account_id", "kind", "points", "remaining", "earned_at"},
    "points_account": {"id", "member_id", "balance", "updated_at"},
    "flash_sale": {"id", "product_id", "title", "points_price", "stock", "stock_total", "per_member_limit",
                   "starts_at", "ends_at", "status", "created_at", "updated_at"},
    "product": {"id", "kind", "name", "image_urls", "validity_days", "points_price", "cash_price_fen", "stock",
                "status", "created_at", "updated_at"},
}


# --- small helpers ---------------------------------------------------------------------------------

def global_id(type_name: str, pk: int) -> str:
    from api.schema.ids import to_global_id

    return to_global_id(type_name, pk)


def raise_fd_limit(needed: int) -> tuple[int, int]:
    """One socket per member in the bench, and as many in the server (inherited limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def socket_count(pid: int) -> int:
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    n = 0
    for name in names:
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


async def check_columns(conn) -> None:
    rows = await conn.fetch(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = ANY($1::text[]) AND is_nullable = 'NO' AND column_default IS NULL",
        list(SQL_WRITES),
    )
    missing = sorted(f"{r['table_name']}.{r['column_name']}" for r in rows
                     if r["column_name"] not in SQL_WRITES[r["table_name"]])
    if missing:
        raise RuntimeError("the raw SQL of bench/flash_sale.py does not set these required columns: "
                           + ", ".join(missing) + " (the schema changed; update the bench's INSERTs)")


# --- set-up: points, product and sales -------------------------------------------------------------

async def give_points(conn, points: int) -> int:
    """Every account (all fresh, balance 0, no entries) gets `points` the way an operator's ADJUST
    credit does: an entry, its EARN lot (expiring in a year) and the cached balance."""
    async with conn.transaction():
        n = await conn.fetchval(
            """
            WITH ent AS (
              INSERT INTO points_entry (account_id, kind, points, balance_after, reason, source_type, source_ref,
                                        occurred_at, expires_at)
              SELECT id, 'ADJUST', $1, $1, 'bench: flash-sale float', 'bench', NULL, now(), now() + interval '1 year'
              FROM points_account RETURNING id, account_id
            ), lot AS (
              INSERT INTO points_lot (account_id, kind, entry_id, points, remaining, earned_at, expires_at)
              SELECT account_id, 'EARN', id, $1, $1, now(), now() + interval '1 year' FROM ent RETURNING 1
            ), acct AS (  -- (a data-modifying CTE runs whether or not it is referenced)
              UPDATE points_account SET balance = $1, updated_at = now()
            )
            SELECT count(*) FROM lot
            """,
            points,
        )
    await conn.execute("ANALYZE")
    return int(n)


async def sql_product(conn, price: int) -> int:
    now = datetime.now(UTC)
    return await conn.fetchval(
        "INSERT INTO product (kind, name, description, image_urls, validity_days, points_price, cash_price_fen, stock,"
        " status, created_at, updated_at) VALUES ('COUPON', 'bench: flash-sale coupon', NULL, '[]', 30, $1, 0, 0,"
        " 'ACTIVE', $2, $2) RETURNING id", price, now)


async def sql_sale(conn, product_id: int, title: str, price: int, stock: int, stock_total: int | None = None) -> int:
    now = datetime.now(UTC)
    return await conn.fetchval(
        "INSERT INTO flash_sale (product_id, title, points_price, stock, stock_total, per_member_limit, starts_at,"
        " ends_at, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 1, $6, $7, 'ACTIVE', $8, $8)"
        " RETURNING id", product_id, title, price, stock, stock if stock_total is None else stock_total,
        now - timedelta(seconds=5), now + timedelta(hours=2), now)


class AdminApi:
    """The operators' endpoint, for setting a sale up the way an operator does."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.token: str | None = None

    async def call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables}, separators=(",", ":")).encode()
        auth = f"Authorization: Bearer {self.token}\r\n" if self.token else ""
        head = (f"POST /admin/graphql HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Type: application/json\r\n"
                f"{auth}Content-Length: {len(body)}\r\n\r\n")
        conn = await asyncio.wait_for(connect(self.port), 10)
        try:
            status, raw = await asyncio.wait_for(conn.request(head.encode() + body), 30)
        finally:
            conn.close()
        if status != 200:
            raise RuntimeError(f"admin GraphQL answered HTTP {status}: {raw[:300]!r}")
        doc = json.loads(raw)
        if doc.get("errors"):
            raise RuntimeError(f"admin GraphQL errors: {doc['errors']}")
        return doc["data"]

    async def login(self, password: str) -> None:
        data = await self.call(
            "mutation($i: OperatorLoginInput!) { operatorLogin(input: $i) { token userErrors { code message } } }",
            {"i": {"username": ADMIN_USERNAME, "password": password}})
        payload = data["operatorLogin"]
        if not payload.get("token"):
            raise RuntimeError(f"operatorLogin failed: {payload.get('userErrors')}")
        self.token = payload["token"]

    async def product(self, price: int) -> int:
        data = await self.call(
            "mutation($i: ProductCreateInput!) { productCreate(input: $i) { product { id } userErrors { code message } } }",
            {"i": {"kind": "COUPON", "name": "bench: flash-sale coupon", "pointsPrice": price, "stock": 0}})
        payload = data["productCreate"]
        if payload.get("userErrors") or not payload.get("product"):
            raise RuntimeError(f"productCreate failed: {payload.get('userErrors')}")
        return _pk_of(payload["product"]["id"], "Product")

    async def sale(self, product_id: int, title: str, price: int, stock: int) -> int:
        now = datetime.now(UTC)
        data = await self.call(
            "mutation($i: FlashSaleCreateInput!) { flashSaleCreate(input: $i) { flashSale { id } userErrors { code message } } }",
            {"i": {"productId": global_id("Product", product_id), "title": title, "pointsPrice": price, "stock": stock,
                   "perMemberLimit": 1, "startsAt": (now - timedelta(seconds=5)).isoformat(),
                   "endsAt": (now + timedelta(hours=2)).isoformat()}})
        payload = data["flashSaleCreate"]
        if payload.get("userErrors") or not payload.get("flashSale"):
            raise RuntimeError(f"flashSaleCreate failed: {payload.get('userErrors')}")
        return _pk_of(payload["flashSale"]["id"], "FlashSale")


def _pk_of(gid: str, type_name: str) -> int:
    from api.schema.ids import from_global_id

    parsed = from_global_id(gid, type_name)
    if parsed is None:
        raise RuntimeError(f"not a {type_name} id: {gid}")
    return parsed[1]


# --- the server ---------------------------------------------------------------------------------------

class FlashServer(Server):
    """purchase_load's Server with a listen backlog and a keep-alive timeout that suit N connections
    opened before the contest (uvicorn's defaults: backlog 2048, idle keep-alive 5 s)."""

    def __init__(self, args, env: dict[str, str], logdir: Path, label: str) -> None:
        super().__init__(args, env, logdir)
        self.backlog = args.backlog
        self.log_path = logdir / f"uvicorn-{label}.log"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "uvicorn", self.app, "--factory", "--host", "127.0.0.1",
               "--port", str(self.port), "--workers", str(self.workers), "--backlog", str(self.backlog),
               "--timeout-keep-alive", "600", "--no-access-log", "--log-level", "warning"]
        log(f"starting server: {' '.join(cmd[1:])}")
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parent.parent, env=self.env, stdout=logf,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_counts(self, since: int = 0) -> Counter:
        """Lines of interest written to the server's log after byte `since`."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                text = f.read().decode(errors="replace")
        except OSError:
            return Counter()
        out: Counter = Counter()
        for line in text.splitlines():
            for word in ("WARNING", "ERROR", "Traceback", "Redis unavailable", "gate not loaded",
                         "could not undo", "masked error"):
                if word in line:
                    out[word] += 1
        return out


# --- the HTTP contest ---------------------------------------------------------------------------------

@dataclass
class Contest:
    name: str  # "redis", "db"; with --rounds: "redis#2", ...
    kind: str  # "redis" or "db"
    sale_id: int = 0
    members: int = 0
    workers_conns: dict[int, int] = field(default_factory=dict)
    outcomes: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # all answers, sorted
    sold_out_latencies: list[float] = field(default_factory=list)
    ok_latencies: list[float] = field(default_factory=list)
    wall: float = 0.0  # first send to last answer
    send_spread: float = 0.0  # first send to last send
    sold_out_wall: float = 0.0  # first send to the last sold-out answer
    sold_out_after: float | None = None  # first send to the S-th success seen
    buyers: dict[int, tuple[int | None, int | None]] = field(default_factory=dict)  # member -> (order, balance)
    exceptions: Counter = field(default_factory=Counter)
    top_errors: Counter = field(default_factory=Counter)
    cpu: dict[str, Any] = field(default_factory=dict)
    pg_stats: dict[str, int] = field(default_factory=dict)
    redis_stats: dict[str, int] = field(default_factory=dict)
    stats0: dict[str, int] = field(default_factory=dict)
    profiles: list[Path] = field(default_factory=list)
    log_offset: int = 0
    log_counts: Counter = field(default_factory=Counter)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    gate: str = ""

    @property
    def fallbacks(self) -> int:
        return self.log_counts.get("Redis unavailable", 0)

    @property
    def rps(self) -> float:
        return self.members / self.wall if self.wall else 0.0

    @property
    def sold_out(self) -> int:
        return self.outcomes.get("OUT_OF_STOCK", 0)

    @property
    def sold_out_rate(self) -> float:
        return self.sold_out / self.sold_out_wall if self.sold_out_wall else 0.0


TABLE_STATS_SQL = """
SELECT relname, seq_scan + COALESCE(idx_scan, 0) AS scans, n_tup_ins AS ins, n_tup_upd AS upd
FROM pg_stat_user_tables WHERE relname = ANY($1::text[])
"""
STAT_TABLES = ("flash_sale", "idempotency_record", "mall_order", "product", "points_account")
# PostgreSQL 15 publishes a backend's statistics at most once a second; a backend that goes idle
# within a second of its last flush publishes only after 10 s (PGSTAT_IDLE_INTERVAL), or when it exits.
# So: the contest starts more than 10 s after the warm-up, and the counters are read after the
# server (hence its backends) stopped.
STATS_IDLE_INTERVAL = 10.0


async def db_counters(probe: CpuProbe) -> dict[str, int]:
    """pg_stat_database (commits, rollbacks, rows) and per-table scans/inserts of the bench database.
    Counts include rolled-back work (an insert that was rolled back still counts as inserted)."""
    out: dict[str, int] = {}
    if probe.stats_conn is not None:
        await probe.stats_conn.execute("SELECT pg_stat_force_next_flush()")  # this connection's own reads
    base = await probe.db_stats()
    if base:
        out.update(base)
    if probe.stats_conn is not None:
        for r in await probe.stats_conn.fetch(TABLE_STATS_SQL, list(STAT_TABLES)):
            out[f"{r['relname']}.scans"] = int(r["scans"])
            out[f"{r['relname']}.ins"] = int(r["ins"])
            out[f"{r['relname']}.upd"] = int(r["upd"])
    return out


async def redis_counters(client: Any) -> dict[str, int]:
    """Server-wide INFO figures (other users of this Redis add to them; small over a contest)."""
    if client is None:
        return {}
    stats, clients = await client.info("stats"), await client.info("clients")
    out = {"connections_received": int(stats.get("total_connections_received", 0)),
           "commands": int(stats.get("total_commands_processed", 0)),
           "rejected": int(stats.get("rejected_connections", 0)),
           "connected_clients": int(clients.get("connected_clients", 0))}
    for name, value in (await client.info("commandstats")).items():
        if isinstance(value, dict) and "calls" in value:
            out[f"cmd:{name.removeprefix('cmdstat_')}"] = int(value["calls"])
    return out


def classify(status: int, raw: bytes) -> tuple[str, int | None, int | None, str | None]:
    """(outcome, order pk, points balance, top-level error text) of one answer."""
    if status != 200:
        return f"HTTP_{status}", None, None, None
    doc = json.loads(raw)
    if doc.get("errors"):
        e = doc["errors"][0]
        code = (e.get("extensions") or {}).get("code") or "GRAPHQL_ERROR"
        return f"ERROR:{code}", None, None, f"{code}: {str(e.get('message'))[:100]}"
    payload = (doc.get("data") or {}).get("flashSaleRedeem")
    if payload is None:
        return "NULL_PAYLOAD", None, None, None
    codes = [e.get("code") or "?" for e in payload.get("userErrors") or []]
    if codes:
        return "+".join(codes), None, None, None
    order = payload.get("order")
    if not order:
        return "NO_ORDER", None, None, None
    return "OK", _pk_of(order["id"], "MallOrder"), payload.get("pointsBalance"), None


def request_bytes(port: int, token: str, query: str, variables: dict[str, Any]) -> bytes:
    body = json.dumps({"query": query, "variables": variables}, separators=(",", ":")).encode()
    head = (f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def open_connections(port: int, n: int, wave: int = 250) -> list[HttpConnection]:
    conns: list[HttpConnection] = []
    for start in range(0, n, wave):
        batch = await asyncio.gather(*(asyncio.wait_for(connect(port), 30) for _ in range(min(wave, n - start))))
        conns.extend(batch)
    # Prime: one cheap request each (a 404, no database), so that every connection has been accepted
    # by a worker and sits in its event loop before the contest (not in the listen backlog).
    prime = f"GET /bench-prime HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    for start in range(0, n, wave):
        answers = await asyncio.gather(*(asyncio.wait_for(c.request(prime), 30) for c in conns[start:start + wave]))
        bad = [s for s, _ in answers if s != 404]
        if bad:
            raise RuntimeError(f"priming the connections: unexpected HTTP {bad[:5]}")
    return conns


async def warm_up(conns: list[HttpConnection], port: int, tokens: list[str], member_ids: list[int], spread: int,
                  rounds: int, redeem_rounds: int, warm_sale_id: int, tag: str) -> Counter:
    """Unmeasured, over `spread` connections spread over the list (so over both workers), as many at
    once: `rounds` of a read-only query (grows each worker's database pool to its maximum), then
    `redeem_rounds` of flashSaleRedeem on a sold-out warm-up sale (the redeem document is parsed and
    cached, the sold-out path runs, and with Redis the gate's connection pool grows as it would
    have on a server that has answered a sale before; no order results)."""
    if spread <= 0:
        return Counter()
    step = max(1, len(conns) // spread)
    chosen = list(range(0, len(conns), step))[:spread]
    seen: Counter = Counter()

    async def one(k: int, data: bytes) -> None:
        status, raw = await asyncio.wait_for(conns[k].request(data), 60)
        doc = json.loads(raw) if status == 200 else {}
        seen["ok" if status == 200 and not doc.get("errors") else f"HTTP_{status}/{str(doc.get('errors'))[:60]}"] += 1

    async def redeem(k: int, r: int) -> None:
        variables = {"i": {"flashSaleId": global_id("FlashSale", warm_sale_id),
                           "idempotencyKey": f"warm-{tag}-{r}-{member_ids[k]}"}}
        status, raw = await asyncio.wait_for(conns[k].request(request_bytes(port, tokens[k], REDEEM_QUERY, variables)), 60)
        seen["redeem " + (classify(status, raw)[0] if status == 200 else f"HTTP_{status}")] += 1

    for _ in range(rounds):
        await asyncio.gather(*(one(k, request_bytes(port, tokens[k], WARM_QUERY, {})) for k in chosen))
    for r in range(redeem_rounds):
        await asyncio.gather(*(redeem(k, r) for k in chosen))
    return seen


async def fire(contest: Contest, conns: list[HttpConnection], requests: list[bytes], member_ids: list[int],
               stock: int, timeout: float) -> None:
    """All N requests at once: every task waits on one event, then writes its request and waits for
    its answer. Times are taken per request (its own write to its answer)."""
    go = asyncio.Event()
    parked = [0]
    sends = [0.0] * len(conns)
    dones = [0.0] * len(conns)
    results: list[tuple[str, int | None, int | None]] = [("", None, None)] * len(conns)

    async def one(k: int) -> None:
        parked[0] += 1
        await go.wait()
        sends[k] = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                status, raw = await conns[k].request(requests[k])
            outcome, order_id, balance, top = classify(status, raw)
            if top:
                contest.top_errors[top] += 1
        except Exception as exc:  # noqa: BLE001 - counted, the contest goes on
            contest.exceptions[f"{exc.__class__.__name__}: {str(exc)[:100]}"] += 1
            outcome, order_id, balance = f"EXCEPTION:{exc.__class__.__name__}", None, None
        dones[k] = time.perf_counter()
        results[k] = (outcome, order_id, balance)

    tasks = [asyncio.create_task(one(k)) for k in range(len(conns))]
    while parked[0] < len(tasks):  # every task is parked on the event
        await asyncio.sleep(0.01)
    go.set()
    await asyncio.gather(*tasks)

    t0 = min(sends)
    contest.send_spread = max(sends) - t0
    contest.wall = max(dones) - t0
    ok_times = []
    for k, (outcome, order_id, balance) in enumerate(results):
        contest.outcomes[outcome] += 1
        latency = dones[k] - sends[k]
        contest.latencies.append(latency)
        if outcome == "OUT_OF_STOCK":
            contest.sold_out_latencies.append(latency)
            contest.sold_out_wall = max(contest.sold_out_wall, dones[k] - t0)
        elif outcome == "OK":
            contest.ok_latencies.append(latency)
            ok_times.append(dones[k] - t0)
            contest.buyers[member_ids[k]] = (order_id, balance)
    ok_times.sort()
    if len(ok_times) >= stock:
        contest.sold_out_after = ok_times[stock - 1]
    for values in (contest.latencies, contest.sold_out_latencies, contest.ok_latencies):
        values.sort()


async def run_http_phase(args, name: str, kind: str, server: FlashServer, sale_id: int, warm_sale_id: int,
                         member_ids: list[int], tokens: list[str], run_tag: str, probe: CpuProbe,
                         redis_client: Any) -> Contest:
    contest = Contest(name, kind, sale_id, len(member_ids))
    workers = server.worker_pids()
    before = {pid: socket_count(pid) for pid in workers}
    t = time.perf_counter()
    conns = await open_connections(server.port, len(member_ids))
    contest.workers_conns = {pid: socket_count(pid) - before[pid] for pid in workers}
    log(f"phase {name}: {len(conns)} connections open and primed in {time.perf_counter() - t:.1f}s;"
        f" per worker {contest.workers_conns}")
    try:
        t = time.perf_counter()
        warm = await warm_up(conns, server.port, tokens, member_ids, args.warm_connections, args.warm_rounds,
                             args.warm_redeems, warm_sale_id, f"{run_tag}-{name}")
        if warm:
            log(f"phase {name}: warm-up {dict(warm)} in {time.perf_counter() - t:.1f}s")
        gid = global_id("FlashSale", sale_id)
        requests = [request_bytes(server.port, tokens[k], REDEEM_QUERY,
                                  {"i": {"flashSaleId": gid, "idempotencyKey": f"fs-{run_tag}-{name}-{m}"}})
                    for k, m in enumerate(member_ids)]
        await asyncio.sleep(args.pause)  # > 10 s: the warm-up's statistics are published before the contest's count
        profilers = []
        if args.profile_dir is not None:  # py-spy on every worker over the contest (it needs a moment to attach)
            profilers = start_profilers(server.worker_pids(), args.profile_dir, name.replace("#", "-"),
                                        args.profile_seconds, args.profile_rate)
            await asyncio.sleep(1.0)
        contest.stats0, redis0 = await db_counters(probe), await redis_counters(redis_client)
        contest.log_offset = server.log_size()
        snap0 = probe.snapshot()
        log(f"phase {name}: {len(requests)} flashSaleRedeem at once on sale {sale_id} ({args.stock} units)")
        await fire(contest, conns, requests, member_ids, args.stock, args.timeout)
        snap1 = probe.snapshot()
        redis1 = await redis_counters(redis_client)
        contest.cpu = CpuProbe.diff(snap0, snap1)
        contest.redis_stats = {k: redis1[k] - redis0.get(k, 0) for k in redis1}
        for proc, path in profilers:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            contest.profiles.append(path)
        if redis1:
            contest.redis_stats["connected_clients"] = redis1["connected_clients"]
    finally:
        for c in conns:
            c.close()
    return contest


# --- the raw conditional update ------------------------------------------------------------------------

@dataclass
class RawPhase:
    attempts: int
    pool: int
    sale_id: int = 0
    wall: float = 0.0
    sold_out_after: float | None = None
    updated: int = 0
    not_updated: int = 0
    errors: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, Any] = field(default_factory=dict)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.attempts / self.wall if self.wall else 0.0


async def run_raw(args, dsn: str, product_id: int, probe: CpuProbe) -> RawPhase:
    import asyncpg

    phase = RawPhase(args.members, args.raw_pool)
    pool = await asyncpg.create_pool(dsn, min_size=args.raw_pool, max_size=args.raw_pool)
    try:
        async with pool.acquire() as conn:
            phase.sale_id = await sql_sale(conn, product_id, "bench: raw conditional update", args.price, args.stock)
        # Warm: every pooled connection prepares the statement (on a row that does not exist).
        conns = [await pool.acquire() for _ in range(args.raw_pool)]
        for conn in conns:
            await conn.execute(RAW_UPDATE, 0)
        for conn in conns:
            await pool.release(conn)
        go = asyncio.Event()
        parked = [0]
        starts = [0.0] * args.members
        dones = [0.0] * args.members
        outcome = [""] * args.members

        async def one(k: int) -> None:
            parked[0] += 1
            await go.wait()
            starts[k] = time.perf_counter()
            try:
                async with pool.acquire() as conn:
                    status = await conn.execute(RAW_UPDATE, phase.sale_id)
                outcome[k] = "updated" if status == "UPDATE 1" else ("not" if status == "UPDATE 0" else status)
            except Exception as exc:  # noqa: BLE001
                outcome[k] = f"{exc.__class__.__name__}: {str(exc)[:80]}"
            dones[k] = time.perf_counter()

        tasks = [asyncio.create_task(one(k)) for k in range(args.members)]
        while parked[0] < len(tasks):
            await asyncio.sleep(0.01)
        snap0 = probe.snapshot()
        log(f"phase raw: {args.members} conditional updates at once over an asyncpg pool of {args.raw_pool}"
            f" on flash_sale {phase.sale_id} ({args.stock} units)")
        go.set()
        await asyncio.gather(*tasks)
        snap1 = probe.snapshot()
        phase.cpu = CpuProbe.diff(snap0, snap1)
        t0 = min(starts)
        phase.wall = max(dones) - t0
        ok_times = sorted(dones[k] - t0 for k in range(args.members) if outcome[k] == "updated")
        phase.updated = len(ok_times)
        phase.not_updated = sum(1 for o in outcome if o == "not")
        phase.errors.update(o for o in outcome if o not in ("updated", "not"))
        if len(ok_times) >= args.stock:
            phase.sold_out_after = ok_times[args.stock - 1]
        phase.latencies = sorted(dones[k] - starts[k] for k in range(args.members))
        async with pool.acquire() as conn:
            stock = await conn.fetchval("SELECT stock FROM flash_sale WHERE id = $1", phase.sale_id)
        phase.checks = [
            (f"exactly {args.stock} updates took a unit", phase.updated == args.stock, f"{phase.updated} did"),
            (f"the other {args.members - args.stock} updated no row", phase.not_updated == args.members - args.stock,
             f"{phase.not_updated} did, errors {dict(phase.errors)}"),
            ("flash_sale.stock = 0", stock == 0, f"stock {stock}"),
        ]
    finally:
        await pool.close()
    return phase


# --- verification -----------------------------------------------------------------------------------------

async def verify_http(conn, contest: Contest, args, member_ids: list[int], bought: Counter, sale_ids: list[int],
                      redis_client: Any) -> None:
    """Straight from PostgreSQL, after the contest. `bought` (member -> units over the bench's sales so
    far, as the clients saw them) is updated with this phase's buyers."""
    S, N, price, P = args.stock, len(member_ids), args.price, args.points
    checks = contest.checks
    for m in contest.buyers:
        bought[m] += 1

    orders = await conn.fetchrow(
        "SELECT count(*) AS n, count(*) FILTER (WHERE status = 'PAID') AS paid, count(DISTINCT member_id) AS members,"
        " COALESCE(max(quantity), 0) AS max_qty, COALESCE(sum(points), 0) AS points FROM mall_order"
        " WHERE flash_sale_id = $1", contest.sale_id)
    checks.append((f"orders of the sale = {S}, all PAID", orders["n"] == S and orders["paid"] == S,
                   f"{orders['n']} orders, {orders['paid']} PAID"))
    sale = await conn.fetchrow("SELECT stock, stock_total FROM flash_sale WHERE id = $1", contest.sale_id)
    checks.append(("flash_sale.stock = 0", sale["stock"] == 0 and sale["stock_total"] == S,
                   f"stock {sale['stock']} of {sale['stock_total']}"))
    multi = await conn.fetchval(
        "SELECT count(*) FROM (SELECT member_id FROM mall_order WHERE flash_sale_id = $1 GROUP BY member_id"
        " HAVING count(*) > 1 OR sum(quantity) > 1) t", contest.sale_id)
    checks.append(("every buyer has at most one order (one unit)", multi == 0 and orders["max_qty"] <= 1,
                   f"{multi} members with more"))
    db_buyers = {r["member_id"]: r["id"] for r in await conn.fetch(
        "SELECT member_id, id FROM mall_order WHERE flash_sale_id = $1 AND status = 'PAID'", contest.sale_id)}
    seen = {m: order for m, (order, _) in contest.buyers.items()}
    checks.append(("the orders are exactly the successes the members saw (member and order id)", db_buyers == seen,
                   (f"{len(db_buyers)} in the database, {len(seen)} seen,"
                    f" {len(set(db_buyers.items()) ^ set(seen.items()))} differ")))
    expected_answers = {"OK": S, "OUT_OF_STOCK": N - S}
    others = {k: v for k, v in contest.outcomes.items() if k not in expected_answers}
    checks.append((f"answers: {S} successes and {N - S} sold out, nothing else",
                   contest.outcomes.get("OK", 0) == S and contest.sold_out == N - S and not others,
                   f"{dict(contest.outcomes)}"))

    # Points: every member's balance from the clients' view (P - price x units bought so far), and the
    # balance each buyer was told.
    rows = await conn.fetch("SELECT a.member_id, a.balance FROM points_account a WHERE a.member_id = ANY($1::bigint[])",
                            member_ids)
    balances = {r["member_id"]: r["balance"] for r in rows}
    wrong = [m for m in member_ids if balances.get(m) != P - price * bought[m]]
    checks.append((f"every member's points exact (buyers {P} - {price} per unit bought so far, others {P})",
                   not wrong, f"{len(wrong)} differ, e.g. member {wrong[:1]}: "
                   + (f"{balances.get(wrong[0])} vs {P - price * bought[wrong[0]]}" if wrong else "")))
    told = [m for m, (_, bal) in contest.buyers.items() if bal != P - price * bought[m]]
    checks.append(("every buyer was told their new balance (pointsBalance)", not told, f"{len(told)} differ"))
    spent = await conn.fetchval(
        "SELECT count(*) FROM points_account a WHERE a.member_id = ANY($1::bigint[]) AND a.balance <> $2 -"
        " COALESCE((SELECT sum(o.points) FROM mall_order o WHERE o.member_id = a.member_id AND o.status = 'PAID'"
        " AND o.flash_sale_id = ANY($3::int[])), 0)", member_ids, P, sale_ids)
    checks.append(("every member's balance = points given - points of their PAID orders", spent == 0,
                   f"{spent} differ"))
    ledger = await conn.fetchrow(
        """
        SELECT count(*) FILTER (WHERE a.balance <> COALESCE(e.s, 0)) AS ne_entries,
               count(*) FILTER (WHERE a.balance <> COALESCE(l.s, 0)) AS ne_lots,
               count(*) FILTER (WHERE a.balance < 0) AS negative
        FROM points_account a
        LEFT JOIN (SELECT account_id, sum(points) s FROM points_entry GROUP BY 1) e ON e.account_id = a.id
        LEFT JOIN (SELECT account_id, sum(remaining) s FROM points_lot GROUP BY 1) l ON l.account_id = a.id
        WHERE a.member_id = ANY($1::bigint[])
        """, member_ids)
    checks.append(("ledger: balance = Σ entries = Σ lots remaining, every account",
                   ledger["ne_entries"] == 0 and ledger["ne_lots"] == 0,
                   f"{ledger['ne_entries']} differ from entries, {ledger['ne_lots']} from lots"))
    checks.append(("no negative balance", ledger["negative"] == 0, f"{ledger['negative']} negative"))
    linked = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE e.id IS NULL OR e.points <> -o.points OR e.kind <> 'SPEND') AS bad_entry,"
        " count(*) FILTER (WHERE (SELECT count(*) FROM voucher v WHERE v.order_id = o.id) <> o.quantity) AS bad_vouchers"
        " FROM mall_order o LEFT JOIN points_entry e ON e.id = o.spend_entry_id WHERE o.flash_sale_id = $1",
        contest.sale_id)
    checks.append(("every order has its SPEND entry (-price) and its voucher",
                   linked["bad_entry"] == 0 and linked["bad_vouchers"] == 0,
                   f"{linked['bad_entry']} without the entry, {linked['bad_vouchers']} without the voucher"))
    if redis_client is not None:
        tag = f"mallpoints:fs:{{{contest.sale_id}}}"
        stock, buyers = await redis_client.get(f"{tag}:stock"), await redis_client.hlen(f"{tag}:buyers")
        contest.gate = f"gate after the contest: stock {stock.decode() if stock else None}, {buyers} buyers"
        checks.append(("the Redis gate agrees: stock 0, S buyers", stock is not None and int(stock) == 0 and buyers == S,
                       contest.gate))


# --- reporting ----------------------------------------------------------------------------------------------

def print_checks(checks: list[tuple[str, bool, str]]) -> bool:
    ok = True
    for label, good, detail in checks:
        ok &= good
        print(f"  [{'PASS' if good else 'FAIL'}] {label}" + ("" if good else f": {detail}"))
    return ok


def print_cpu(cpu: dict[str, Any]) -> None:
    if not cpu:
        return
    wall = cpu["wall"]
    print(f"  CPU over the contest ({wall:.2f}s wall = {2 * wall:.2f} core-s on 2 cores): load generator"
          f" {cpu['client']:.2f}s, server {cpu['server']:.2f}s {cpu['server_by_pid'] or ''}, PostgreSQL {cpu['pg']:.2f}s;"
          f" machine busy {cpu['machine_busy']:.2f}s, idle {cpu['machine_idle']:.2f}s; noise: other databases"
          f" {cpu['pg_other_dbs']:.2f}s, other processes {cpu['others']:.2f}s")


def print_contest(c: Contest, args) -> None:
    lat, so, okl = c.latencies, c.sold_out_latencies, c.ok_latencies
    print()
    print(f"phase {c.name}: {c.members} members at once on {args.stock} units"
          f" ({'Redis gate in front' if c.kind == 'redis' else 'database alone'}), sale {c.sale_id}")
    print(f"  wall {c.wall:.3f}s (first send to last answer; the sends took {ms(c.send_spread)} ms),"
          f" {c.rps:,.0f} requests/s")
    print(f"  latency per request: p50 {ms(pct(lat, .5))} ms, p95 {ms(pct(lat, .95))} ms, p99 {ms(pct(lat, .99))} ms,"
          f" max {ms(lat[-1]) if lat else '-'} ms")
    print(f"  outcomes: {dict(c.outcomes.most_common())}")
    if c.sold_out_after is not None:
        print(f"  the {args.stock}th success arrived {ms(c.sold_out_after)} ms after the first send;"
              f" successes: p50 {ms(pct(okl, .5))} ms, max {ms(okl[-1]) if okl else '-'} ms")
    print(f"  sold-out answers: {c.sold_out:,} in {c.sold_out_wall:.3f}s (first send to the last sold-out answer)"
          f" = {c.sold_out_rate:,.0f}/s; their latency p50 {ms(pct(so, .5))} ms, p95 {ms(pct(so, .95))} ms,"
          f" p99 {ms(pct(so, .99))} ms")
    print_cpu(c.cpu)
    if c.pg_stats:
        st, n = c.pg_stats, c.members
        g = st.get
        print(f"  PostgreSQL work per request (pg_stat_*, from just before the contest to the server's exit; incl."
              f" rolled-back work): {g('xact_commit', 0) / n:.2f}"
              f" commits, {g('xact_rollback', 0) / n:.2f} rollbacks; flash_sale read {g('flash_sale.scans', 0) / n:.2f}x,"
              f" idempotency_record inserts {g('idempotency_record.ins', 0) / n:.2f}, product read"
              f" {g('product.scans', 0) / n:.2f}x, points_account read {g('points_account.scans', 0) / n:.2f}x,"
              f" mall_order inserts {g('mall_order.ins', 0) / n:.3f}")
    if c.redis_stats:
        rs = c.redis_stats
        top = sorted(((k[4:], v) for k, v in rs.items() if k.startswith("cmd:") and v > 0), key=lambda kv: -kv[1])
        print(f"  Redis over the contest (INFO, whole server): {rs['commands']:,} commands"
              f" ({', '.join(f'{k} {v:,}' for k, v in top[:6])}), {rs['connections_received']:,} new connections,"
              f" {rs['rejected']} rejected; {rs['connected_clients']} clients connected afterwards")
    if c.workers_conns:
        print(f"  connections per worker: {c.workers_conns}")
    if c.gate:
        print(f"  {c.gate}")
    if c.kind == "redis":
        print(f"  requests the gate could not serve (server log 'Redis unavailable, the database decides alone'):"
              f" {c.fallbacks}; these ran the database path")
    if c.log_counts:
        print(f"  server log: {dict(c.log_counts)}")
    for text, count in c.top_errors.most_common(5):
        print(f"  top-level error x{count}: {text}")
    for text, count in c.exceptions.most_common(5):
        print(f"  exception x{count}: {text}")
    for path in c.profiles:
        print(f"  profile: {path}")
    print("  checks (from PostgreSQL):")
    print_checks(c.checks)


def print_raw(r: RawPhase, args) -> None:
    lat = r.latencies
    print()
    print(f"phase raw: {r.attempts} concurrent tasks, asyncpg pool of {r.pool} connections, flash_sale {r.sale_id}"
          f" ({args.stock} units), `{RAW_UPDATE}` once each, autocommit")
    print(f"  wall {r.wall:.3f}s, {r.rate:,.0f} attempts/s; {r.updated} took a unit, {r.not_updated} updated no row"
          + (f", errors {dict(r.errors)}" if r.errors else ""))
    if r.sold_out_after is not None:
        print(f"  the {args.stock}th unit was taken {ms(r.sold_out_after)} ms after the start"
              f" ({args.stock / r.sold_out_after:,.0f} decrements/s while units lasted)")
    print(f"  latency per attempt (incl. waiting for a pooled connection): p50 {ms(pct(lat, .5))} ms,"
          f" p95 {ms(pct(lat, .95))} ms, p99 {ms(pct(lat, .99))} ms")
    print_cpu(r.cpu)
    print("  checks:")
    print_checks(r.checks)


def _median(values: list[float]) -> float:
    values = sorted(v for v in values if not math.isnan(v))
    if not values:
        return float("nan")
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def print_summary(contests: dict[str, Contest], raw: RawPhase | None, args) -> dict[str, Any]:
    print()
    print(f"summary (one run; {args.members} members, {args.stock} units, {args.workers} workers; ratios are what"
          " count on a shared machine)")
    print(f"  {'phase':<30} {'wall s':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
          f" {'sold-out/s':>10} {'s-o p50':>8} {'sold out at':>11} {'gate→db':>7}  checks")
    out: dict[str, Any] = {"phases": {}}
    all_ok = True
    for name, c in contests.items():
        good = all(g for _, g, _ in c.checks)
        all_ok &= good
        label = ("HTTP, Redis gate" if c.kind == "redis" else "HTTP, database alone") + (
            f", round {name.split('#')[1]}" if "#" in name else "")
        so_at = f"{ms(c.sold_out_after)} ms" if c.sold_out_after is not None else "-"
        print(f"  {label:<30} {c.wall:>7.3f} {c.rps:>8,.0f} {ms(pct(c.latencies, .5)):>8} {ms(pct(c.latencies, .95)):>8}"
              f" {ms(pct(c.latencies, .99)):>8} {c.sold_out_rate:>10,.0f} {ms(pct(c.sold_out_latencies, .5)):>8}"
              f" {so_at:>11} {c.fallbacks if c.kind == 'redis' else '-':>7}  {'PASS' if good else 'FAIL'}")
        out["phases"][name] = {
            "kind": c.kind, "wall_s": round(c.wall, 4), "rps": round(c.rps, 1),
            "p50_ms": round(pct(c.latencies, .5) * 1000, 2), "p95_ms": round(pct(c.latencies, .95) * 1000, 2),
            "p99_ms": round(pct(c.latencies, .99) * 1000, 2), "sold_out": c.sold_out,
            "sold_out_wall_s": round(c.sold_out_wall, 4), "sold_out_per_s": round(c.sold_out_rate, 1),
            "sold_out_p50_ms": round(pct(c.sold_out_latencies, .5) * 1000, 2),
            "sold_out_after_ms": None if c.sold_out_after is None else round(c.sold_out_after * 1000, 2),
            "outcomes": dict(c.outcomes), "checks_pass": good, "failed_checks": [l for l, g, _ in c.checks if not g],
            "cpu_s": {k: round(v, 3) for k, v in c.cpu.items() if isinstance(v, float)},
            "pg_stats": c.pg_stats, "redis_stats": c.redis_stats, "server_log": dict(c.log_counts)}
    if raw is not None:
        good = all(g for _, g, _ in raw.checks)
        all_ok &= good
        so_at = f"{ms(raw.sold_out_after)} ms" if raw.sold_out_after is not None else "-"
        print(f"  {'raw UPDATE, asyncpg pool ' + str(raw.pool):<30} {raw.wall:>7.3f} {raw.rate:>8,.0f}"
              f" {ms(pct(raw.latencies, .5)):>8} {ms(pct(raw.latencies, .95)):>8} {ms(pct(raw.latencies, .99)):>8}"
              f" {'-':>10} {'-':>8} {so_at:>11} {'-':>7}  {'PASS' if good else 'FAIL'}")
        out["phases"]["raw"] = {
            "wall_s": round(raw.wall, 4), "attempts_per_s": round(raw.rate, 1), "pool": raw.pool, "updated": raw.updated,
            "p50_ms": round(pct(raw.latencies, .5) * 1000, 2),
            "sold_out_after_ms": None if raw.sold_out_after is None else round(raw.sold_out_after * 1000, 2),
            "checks_pass": good}
    print("  req/s: members ÷ wall (first send to last answer). sold-out/s: OUT_OF_STOCK answers ÷ the time from the"
          " first send to the last\n  sold-out answer. s-o p50: median latency of a sold-out answer. sold out at: when"
          " the S-th success (raw: the S-th decrement) arrived.\n  gate→db: requests the Redis gate could not serve"
          " (the server logged 'Redis unavailable'), which the database answered instead.")
    redis_runs = [c for c in contests.values() if c.kind == "redis"]
    db_runs = [c for c in contests.values() if c.kind == "db"]
    if redis_runs and db_runs:
        pairs = list(zip(redis_runs, db_runs))
        ratios = [r.sold_out_rate / d.sold_out_rate if d.sold_out_rate else float("nan") for r, d in pairs]
        rps_ratios = [r.rps / d.rps if d.rps else float("nan") for r, d in pairs]
        lat_ratios = [pct(d.sold_out_latencies, .5) / pct(r.sold_out_latencies, .5) if r.sold_out_latencies
                      else float("nan") for r, d in pairs]
        ratio, rps_ratio, lat_ratio = _median(ratios), _median(rps_ratios), _median(lat_ratios)
        if len(pairs) > 1:
            print("  per round, Redis ÷ database alone: sold-out/s " + ", ".join(f"{x:.2f}x" for x in ratios)
                  + "; req/s " + ", ".join(f"{x:.2f}x" for x in rps_ratios) + " (below: medians)")
        verdict = "met" if ratio >= TARGET_SOLD_OUT_RATIO else "NOT met"
        print(f"  sold-out answers/s, Redis ÷ database alone: {ratio:.2f}x   (target ≥ {TARGET_SOLD_OUT_RATIO:.0f}x:"
              f" {verdict}); median sold-out latency, database ÷ Redis: {lat_ratio:.2f}x")
        print(f"  requests/s overall, Redis ÷ database alone: {rps_ratio:.2f}x")
        out["ratios"] = {"sold_out_rate_redis_over_db": round(ratio, 3), "rps_redis_over_db": round(rps_ratio, 3),
                         "sold_out_p50_db_over_redis": round(lat_ratio, 3), "per_round_sold_out": ratios,
                         "target": TARGET_SOLD_OUT_RATIO, "target_met": ratio >= TARGET_SOLD_OUT_RATIO}
    if raw is not None and raw.rate:
        parts = [f"{name} {c.rps / raw.rate:.3f}" for name, c in contests.items()]
        if parts:
            print(f"  HTTP requests/s ÷ raw conditional updates/s ({raw.rate:,.0f}/s): " + ", ".join(parts))
    fallbacks = sum(c.fallbacks for c in redis_runs)
    if fallbacks:
        print(f"  note: {fallbacks} requests of the Redis phase(s) went to the database because the gate could not serve"
              " them (see gate→db and the server log)")
    if all_ok:
        print("  correctness: every check PASSED in every phase (no oversell, no double order, points exact)")
    else:
        failed = [f"{n}: {label} ({detail})" for n, c in contests.items() for label, g, detail in c.checks if not g]
        if raw is not None:
            failed += [f"raw: {label} ({detail})" for label, g, detail in raw.checks if not g]
        print()
        print("  " + "!" * 100)
        print("  !!! CORRECTNESS CHECKS FAILED:")
        for line in failed:
            print(f"  !!!   {line}")
        print("  " + "!" * 100)
    out["all_checks_pass"] = all_ok
    return out


# --- main ---------------------------------------------------------------------------------------------------

def http_plan(args) -> list[tuple[str, str]]:
    """(name, kind) of the HTTP contests in order: the phases as given, repeated --rounds times, every
    other round in the opposite order (so that a drift of the machine's load does not favour one)."""
    kinds = [p for p in args.phase_list if p in ("redis", "db")]
    plan = []
    for r in range(args.rounds):
        for kind in (kinds if r % 2 == 0 else kinds[::-1]):
            plan.append((kind if args.rounds == 1 else f"{kind}#{r + 1}", kind))
    return plan


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.flash_sale", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", type=int, default=2000, help="members, one request each per phase (2000)")
    p.add_argument("--stock", type=int, default=100, help="units per sale (100)")
    p.add_argument("--price", type=int, default=100, help="points per unit (100)")
    p.add_argument("--points", type=int, default=None,
                   help="points every member starts with (default: enough for every HTTP contest, at least 1000)")
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat the HTTP phases this many times, alternating their order; ratios are medians (1)")
    p.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (2)")
    p.add_argument("--pool-min", type=int, default=2, help="server pool minsize per worker (2)")
    p.add_argument("--pool-max", type=int, default=20, help="server pool maxsize per worker (20)")
    p.add_argument("--raw-pool", type=int, default=20, help="asyncpg connections of the raw phase (20)")
    p.add_argument("--backlog", type=int, default=4096, help="uvicorn's listen backlog (4096)")
    p.add_argument("--phases", default=",".join(ALL_PHASES), help=f"comma-separated, in order: {','.join(ALL_PHASES)}")
    p.add_argument("--sale-setup", choices=("admin", "sql"), default="admin",
                   help="create product and sales through the admin GraphQL as an operator does (default; with"
                        " Redis the gate is loaded at creation) or by SQL (the gate then loads on the first request)")
    p.add_argument("--warm-connections", type=int, default=200,
                   help="connections that send the unmeasured warm-up queries (200; 0: no warm-up)")
    p.add_argument("--warm-rounds", type=int, default=1, help="warm-up rounds of a read-only query (1)")
    p.add_argument("--warm-redeems", type=int, default=2,
                   help="warm-up rounds of flashSaleRedeem on a sold-out warm-up sale (2; 0: a cold Redis pool)")
    p.add_argument("--pause", type=float, default=STATS_IDLE_INTERVAL + 1,
                   help="seconds between the warm-up and the contest (11: more than PostgreSQL's 10 s, so that the"
                        " warm-up's statistics are published before the contest's are counted)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds one request may take (120)")
    p.add_argument("--app", default="api.app:create_app", help="the server's app factory (module:function)")
    p.add_argument("--database-url", default=DEFAULT_DB_URL,
                   help=f"bench database, created and dropped; its name must start with {DB_PREFIX}")
    p.add_argument("--admin-database", default="postgres", help="database to connect to for CREATE/DROP DATABASE")
    p.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                   help="Redis of the redis phase; its database is FLUSHED at the start and the end (db 11)")
    p.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON to this file")
    p.add_argument("--profile-dir", type=Path, default=None,
                   help="record every server worker with py-spy (collapsed stacks) over each HTTP contest; perturbs"
                        " the figures; summarise with python -m bench.profile_summary DIR/redis-worker*.txt")
    p.add_argument("--profile-seconds", type=int, default=5, help="py-spy recording length (5)")
    p.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second (100)")
    p.add_argument("--no-uvloop", action="store_true", help="run the load generator on asyncio's own loop")
    args = p.parse_args(argv)
    args.phase_list = [x.strip() for x in args.phases.split(",") if x.strip()]
    unknown = set(args.phase_list) - set(ALL_PHASES)
    if unknown:
        p.error(f"unknown phases: {', '.join(sorted(unknown))}")
    if not 1 <= args.stock < args.members:
        p.error("--stock must be at least 1 and below --members (the sale must sell out)")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    contests = args.rounds * len([x for x in args.phase_list if x in ("redis", "db")])
    if args.points is None:
        args.points = max(1000, args.price * contests)
    if args.points < args.price * contests:
        p.error(f"--points must cover one unit in each HTTP contest (at least {contests} x --price)")
    if not database_name(args.database_url).startswith(DB_PREFIX):
        p.error(f"the bench database's name must start with {DB_PREFIX} (it is dropped at the end)")
    if urlsplit(args.database_url).hostname not in ("127.0.0.1", "localhost", "::1"):
        p.error("the bench only talks to a local PostgreSQL (127.0.0.1)")
    redis_db = urlsplit(args.redis_url).path.lstrip("/") or "0"
    if not redis_db.isdigit() or int(redis_db) in RESERVED_REDIS_DBS:
        p.error("--redis-url: Redis databases 12-15 belong to other users of this machine (the bench flushes its own)")
    return args


async def amain(args) -> int:
    dbname = database_name(args.database_url)
    admin_dsn = asyncpg_dsn(with_database(args.database_url, args.admin_database))
    dsn = asyncpg_dsn(args.database_url)
    parts = urlsplit(args.database_url)
    server_db_url = urlunsplit((parts.scheme, parts.netloc, parts.path,
                                f"minsize={args.pool_min}&maxsize={args.pool_max}", ""))
    os.environ.update({"MALLPOINTS_ENV": "development", "MALLPOINTS_DATABASE_URL": server_db_url,
                       "MALLPOINTS_SECRET_KEY": BENCH_SECRET_KEY})
    os.environ.pop("MALLPOINTS_REDIS_URL", None)
    from api.config import Settings

    admin_password = Settings.from_env().admin_password
    env_db = dict(os.environ)
    env_redis = {**env_db, "MALLPOINTS_REDIS_URL": args.redis_url}
    limit = raise_fd_limit(2 * args.members + 1024)

    print(f"mallpoints flash-sale load test: phases {','.join(args.phase_list)}; {args.members} members at once on"
          f" {args.stock} units at {args.price} points; {args.workers} workers (pool {args.pool_min}-{args.pool_max} each);"
          f" {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; open files limit {limit[0]}")
    print(f"app under test: {describe_app_source()}")
    logdir = Path(tempfile.mkdtemp(prefix="mallpoints-flash-"))
    run_tag = os.urandom(3).hex()
    contests: dict[str, Contest] = {}
    raw: RawPhase | None = None
    server: FlashServer | None = None
    db_created = False
    stats_conn = None
    redis_client = None
    product_id: int | None = None
    warm_sale_id: int | None = None
    sale_ids: list[int] = []
    bought: Counter = Counter()
    import asyncpg

    try:
        if "redis" in args.phase_list:
            from redis.asyncio import from_url

            redis_client = from_url(args.redis_url, socket_connect_timeout=2, socket_timeout=10)
            await redis_client.flushdb()
            log(f"flushed {args.redis_url}")
        log(f"creating database {dbname}")
        await admin_execute(admin_dsn, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        await admin_execute(admin_dsn, f'CREATE DATABASE "{dbname}"')
        db_created = True
        await prepare_database(args, args.database_url)
        stats_conn = await asyncpg.connect(dsn)
        await check_columns(stats_conn)
        t = time.perf_counter()
        given = await give_points(stats_conn, args.points)
        member_ids = [r["member_id"] for r in await stats_conn.fetch(
            "SELECT member_id FROM points_account ORDER BY member_id")]
        log(f"gave {given} members {args.points} points each in {time.perf_counter() - t:.1f}s")
        if len(member_ids) != args.members:
            raise RuntimeError(f"expected {args.members} members, found {len(member_ids)}")
        from api.services.signing import issue_token

        tokens = [issue_token("member", m, 3 * 3600) for m in member_ids]

        for name, kind in http_plan(args):
            server = FlashServer(args, env_redis if kind == "redis" else env_db, logdir, name.replace("#", "-"))
            server.start()
            await server.wait_ready()
            title = f"bench flash sale {run_tag} {name}"
            if args.sale_setup == "admin":
                admin = AdminApi(server.port)
                await admin.login(admin_password)
                if product_id is None:
                    product_id = await admin.product(args.price)
                sale_id = await admin.sale(product_id, title, args.price, args.stock)
            else:
                if product_id is None:
                    product_id = await sql_product(stats_conn, args.price)
                sale_id = await sql_sale(stats_conn, product_id, title, args.price, args.stock)
            sale_ids.append(sale_id)
            if kind == "redis":
                stock = await redis_client.get(f"mallpoints:fs:{{{sale_id}}}:stock")
                log(f"sale {sale_id} created ({args.sale_setup}); Redis gate "
                    + (f"loaded, stock {stock.decode()}" if stock is not None else "not loaded yet (loads on first request)"))
            else:
                log(f"sale {sale_id} created ({args.sale_setup})")
            probe = CpuProbe(dbname, server.proc.pid if server.proc else None, stats_conn)
            if warm_sale_id is None:  # sold out from the start: the warm-up's redeems never buy
                warm_sale_id = await sql_sale(stats_conn, product_id, f"bench warm-up {run_tag} (sold out)", args.price,
                                              0, 1)
            contest = await run_http_phase(args, name, kind, server, sale_id, warm_sale_id, member_ids, tokens, run_tag,
                                           probe, redis_client if kind == "redis" else None)
            contest.log_counts = server.log_counts(contest.log_offset)
            tail = server.log_tail(12) if contest.log_counts else ""
            server.stop()
            server = None
            await asyncio.sleep(0.5)  # the server's backends have exited and published their statistics
            stats1 = await db_counters(probe)
            contest.pg_stats = {k: v - contest.stats0.get(k, 0) for k, v in stats1.items()}
            await verify_http(stats_conn, contest, args, member_ids, bought, sale_ids,
                              redis_client if kind == "redis" else None)
            contests[name] = contest
            print_contest(contest, args)
            if tail:
                print("  server log (last lines):\n    " + tail.replace("\n", "\n    "))

        if "raw" in args.phase_list:
            if product_id is None:
                product_id = await sql_product(stats_conn, args.price)
            raw = await run_raw(args, dsn, product_id, CpuProbe(dbname, None, stats_conn))
            print_raw(raw, args)

        summary = print_summary(contests, raw, args)
        if args.json is not None:
            args.json.write_text(json.dumps({
                "phases": summary, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "cpus": os.cpu_count(),
            }, indent=2, ensure_ascii=False))
            print(f"\nfigures written to {args.json}")
    finally:
        if server is not None:
            server.stop()
        if stats_conn is not None:
            try:
                await stats_conn.close(timeout=5)
            except Exception as exc:  # noqa: BLE001
                log(f"closing the statistics connection: {exc!r}")
        if db_created:
            try:
                await asyncio.wait_for(admin_execute(admin_dsn, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'), 60)
                log(f"dropped database {dbname}")
            except Exception as exc:  # noqa: BLE001
                log(f"could not drop {dbname}: {exc!r}")
        if redis_client is not None:
            try:
                await redis_client.flushdb()
                await redis_client.aclose()
            except Exception as exc:  # noqa: BLE001
                log(f"could not flush {args.redis_url}: {exc!r}")
    return 0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    loop_factory = None
    if not args.no_uvloop:
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:
            pass
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            code = runner.run(amain(args))
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
