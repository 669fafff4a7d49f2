"""The harness of the "everybody at once" load tests (bench/flash_sale.py, bench/draw_load.py): N
members with points, the server started with and without Redis, N keep-alive connections opened,
primed and warmed, every request fired at once, and the figures and checks that both print.

One run of such a bench (`run_bench`):
  1. creates a fresh database (its name must start with `mallpoints_bench`), applies the migrations,
     loads the demo seeds and bulk-inserts --members members with their points accounts
     (bench/purchase_load.py's set-up), then gives every member --points points (an ADJUST entry,
     its EARN lot expiring in a year, the cached balance: balance = Σ entries = Σ lots);
  2. per HTTP contest of the plan (`http_plan`): starts uvicorn with or without
     MALLPOINTS_REDIS_URL (`ContestServer`), lets the bench set its contest up and run it
     (`measure`: connections opened and primed, warm-up, a pause for PostgreSQL's statistics, every
     request at once, CPU, pg_stat and Redis INFO counters around it), stops the server, reads the
     counters and lets the bench check and print the phase;
  3. always stops the server, drops the database and flushes the bench's Redis database.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
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

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"  # db 11 is the contest benches'; 12-15 belong to others
RESERVED_REDIS_DBS = range(12, 16)
ADMIN_USERNAME = "admin"  # seeds/demo.json
WARM_QUERY = "{ viewer { member { pointsBalance } } }"
# PostgreSQL 15 publishes a backend's statistics at most once a second; a backend that goes idle
# within a second of its last flush publishes only after 10 s (PGSTAT_IDLE_INTERVAL), or when it exits.
# So: the contest starts more than 10 s after the warm-up, and the counters are read after the
# server (hence its backends) stopped.
STATS_IDLE_INTERVAL = 10.0
TABLE_STATS_SQL = """
SELECT relname, seq_scan + COALESCE(idx_scan, 0) AS scans, n_tup_ins AS ins, n_tup_upd AS upd
FROM pg_stat_user_tables WHERE relname = ANY($1::text[])
"""
# Columns the benches write with raw SQL (give_points); a NOT NULL column without a default that is
# missing here means the schema moved on (checked before writing; Tortoise emits no database defaults).
POINTS_WRITES = {
    "points_entry": {"id", "account_id", "kind", "points", "balance_after", "reason", "source_type", "occurred_at"},
    "points_lot": {"id", "account_id", "kind", "points", "remaining", "earned_at"},
    "points_account": {"id", "member_id", "balance", "updated_at"},
}

Check = tuple[str, bool, str]  # (label, passed, detail when it failed)


# --- small helpers ---------------------------------------------------------------------------------

def global_id(type_name: str, pk: int) -> str:
    from api.schema.ids import to_global_id

    return to_global_id(type_name, pk)


def pk_of(gid: str, type_name: str) -> int:
    from api.schema.ids import from_global_id

    parsed = from_global_id(gid, type_name)
    if parsed is None:
        raise RuntimeError(f"not a {type_name} id: {gid}")
    return parsed[1]


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


def median(values: list[float]) -> float:
    values = sorted(v for v in values if not math.isnan(v))
    if not values:
        return float("nan")
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


REQUIRED_COLUMNS_SQL = """
SELECT table_name || '.' || column_name FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = ANY($1::text[]) AND is_nullable = 'NO'
  AND column_default IS NULL
"""


async def check_columns(conn, writes: dict[str, set[str]], bench: str) -> None:
    """Every NOT NULL column without a default of the tables the bench writes with raw SQL is one it sets."""
    written = {f"{table}.{column}" for table, columns in writes.items() for column in columns}
    required = {r[0] for r in await conn.fetch(REQUIRED_COLUMNS_SQL, list(writes))}
    if required - written:
        raise RuntimeError(f"the raw SQL of {bench} does not set these required columns: "
                           + ", ".join(sorted(required - written)) + " (the schema changed; update the bench's INSERTs)")


async def give_points(conn, points: int, reason: str) -> int:
    """Every account (all fresh, balance 0, no entries) gets `points` the way an operator's ADJUST
    credit does: an entry, its EARN lot (expiring in a year) and the cached balance."""
    async with conn.transaction():
        n = await conn.fetchval(
            """
            WITH ent AS (
              INSERT INTO points_entry (account_id, kind, points, balance_after, reason, source_type, source_ref,
                                        occurred_at, expires_at)
              SELECT id, 'ADJUST', $1, $1, $2, 'bench', NULL, now(), now() + interval '1 year'
              FROM points_account RETURNING id, account_id
            ), lot AS (
              INSERT INTO points_lot (account_id, kind, entry_id, points, remaining, earned_at, expires_at)
              SELECT account_id, 'EARN', id, $1, $1, now(), now() + interval '1 year' FROM ent RETURNING 1
            ), acct AS (  -- (a data-modifying CTE runs whether or not it is referenced)
              UPDATE points_account SET balance = $1, updated_at = now()
            )
            SELECT count(*) FROM lot
            """,
            points, reason,
        )
    await conn.execute("ANALYZE")
    return int(n)


async def gate_key(conn, logical: str) -> str:
    """The Redis key of a gate's logical key `mallpoints:<rest>` as the server names it: with this database's
    installation id (api/services/installation.py; the server made it before the gate was loaded)."""
    installation = await conn.fetchval("SELECT key FROM installation WHERE id = 1")
    return f"mallpoints:{installation}:{logical.removeprefix('mallpoints:')}"


async def ledger_checks(conn, member_ids: list[int]) -> list[Check]:
    """balance = Σ entries = Σ lots remaining, and no negative balance, for the members' accounts."""
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
    return [("ledger: balance = Σ entries = Σ lots remaining, every account",
             ledger["ne_entries"] == 0 and ledger["ne_lots"] == 0,
             f"{ledger['ne_entries']} differ from entries, {ledger['ne_lots']} from lots"),
            ("no negative balance", ledger["negative"] == 0, f"{ledger['negative']} negative")]


# --- the operators' endpoint --------------------------------------------------------------------------

class AdminApi:
    """The operators' endpoint, for setting a contest up the way an operator does."""

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

    async def mutate(self, field_name: str, input_type: str, selection: str, variables: dict[str, Any]) -> dict[str, Any]:
        """`field_name(input: $i) { selection userErrors { code message } }`; the payload, or an error
        when the operator was refused."""
        data = await self.call(f"mutation($i: {input_type}!) {{ {field_name}(input: $i) {{ {selection}"
                               " userErrors { code message } } }", {"i": variables})
        payload = data[field_name]
        if payload.get("userErrors"):
            raise RuntimeError(f"{field_name} failed: {payload['userErrors']}")
        return payload

    async def login(self, password: str) -> None:
        payload = await self.mutate("operatorLogin", "OperatorLoginInput", "token",
                                    {"username": ADMIN_USERNAME, "password": password})
        if not payload.get("token"):
            raise RuntimeError("operatorLogin gave no token")
        self.token = payload["token"]

    async def product(self, price: int, name: str) -> int:
        payload = await self.mutate("productCreate", "ProductCreateInput", "product { id }",
                                    {"kind": "COUPON", "name": name, "pointsPrice": price, "stock": 0})
        return pk_of(payload["product"]["id"], "Product")


# --- the server ---------------------------------------------------------------------------------------

class ContestServer(Server):
    """purchase_load's Server with a listen backlog and a keep-alive timeout that suit N connections
    opened before the contest (uvicorn's defaults: backlog 2048, idle keep-alive 5 s)."""

    def __init__(self, args, env: dict[str, str], logdir: Path, label: str) -> None:
        super().__init__(args, env, logdir)
        self.backlog = args.backlog
        self.log_path = logdir / f"uvicorn-{label}.log"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "uvicorn", self.app, "--factory", "--host", "127.0.0.1",
               "--port", str(self.port), "--workers", str(self.workers), "--loop", "uvloop", "--http", "httptools", "--backlog", str(self.backlog),
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


# --- counters -------------------------------------------------------------------------------------

async def db_counters(probe: CpuProbe, tables: tuple[str, ...]) -> dict[str, int]:
    """pg_stat_database (commits, rollbacks, rows) and per-table scans/inserts/updates of the bench
    database. Counts include rolled-back work (an insert that was rolled back still counts)."""
    out: dict[str, int] = {}
    if probe.stats_conn is not None:
        await probe.stats_conn.execute("SELECT pg_stat_force_next_flush()")  # this connection's own reads
    base = await probe.db_stats()
    if base:
        out.update(base)
    if probe.stats_conn is not None:
        for r in await probe.stats_conn.fetch(TABLE_STATS_SQL, list(tables)):
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


# --- the HTTP contest ---------------------------------------------------------------------------------

@dataclass
class Contest:
    """What every contest records; a bench's own contest adds its figures."""
    name: str  # "redis", "db"; with --rounds: "redis#2", ...
    kind: str  # "redis" or "db"
    members: int = 0
    workers_conns: dict[int, int] = field(default_factory=dict)
    outcomes: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # all answers, sorted
    wall: float = 0.0  # first send to last answer
    send_spread: float = 0.0  # first send to last send
    exceptions: Counter = field(default_factory=Counter)
    top_errors: Counter = field(default_factory=Counter)
    cpu: dict[str, Any] = field(default_factory=dict)
    pg_stats: dict[str, int] = field(default_factory=dict)
    redis_stats: dict[str, int] = field(default_factory=dict)
    stats0: dict[str, int] = field(default_factory=dict)
    profiles: list[Path] = field(default_factory=list)
    log_offset: int = 0
    log_counts: Counter = field(default_factory=Counter)
    checks: list[Check] = field(default_factory=list)

    @property
    def fallbacks(self) -> int:
        return self.log_counts.get("Redis unavailable", 0)

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.requests / self.wall if self.wall else 0.0

    @property
    def passed(self) -> bool:
        return all(g for _, g, _ in self.checks)

    def count(self, outcome: str) -> int:
        return self.outcomes.get(outcome, 0)

    def rate(self, outcome: str) -> float:
        """Answers of this outcome per second of the whole contest."""
        return self.count(outcome) / self.wall if self.wall else 0.0


def payload_of(status: int, raw: bytes, field_name: str) -> tuple[str, dict[str, Any] | None, str | None]:
    """(outcome, payload, top-level error text) of one answer of the mutation `field_name`: outcome
    "OK" with its payload, the userErrors' codes, ERROR:<code>, HTTP_<status> or NULL_PAYLOAD."""
    if status != 200:
        return f"HTTP_{status}", None, None
    doc = json.loads(raw)
    if doc.get("errors"):
        e = doc["errors"][0]
        code = (e.get("extensions") or {}).get("code") or "GRAPHQL_ERROR"
        return f"ERROR:{code}", None, f"{code}: {str(e.get('message'))[:100]}"
    payload = (doc.get("data") or {}).get(field_name)
    if payload is None:
        return "NULL_PAYLOAD", None, None
    codes = [e.get("code") or "?" for e in payload.get("userErrors") or []]
    if codes:
        return "+".join(codes), None, None
    return "OK", payload, None


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


@dataclass
class WarmUp:
    """The unmeasured warm-up: `rounds` of a read-only query (grows each worker's database pool to its
    maximum), then `mutation_rounds` of the contest's mutation on something that cannot succeed (its
    document is parsed and cached, the refusal path runs, and with Redis the server's connection pool
    grows as it would have on a server that answered a contest before). `mutation(k, round)` is the
    request of connection k; `label(status, raw)` names its answer."""
    spread: int
    rounds: int
    mutation_rounds: int
    mutation: Callable[[int, int], bytes]
    label: Callable[[int, bytes], str]


async def warm_up(conns: list[HttpConnection], port: int, tokens: list[str], warm: WarmUp) -> Counter:
    """Over `warm.spread` connections spread over the list (so over every worker), as many at once."""
    if warm.spread <= 0:
        return Counter()
    step = max(1, len(conns) // warm.spread)
    chosen = list(range(0, len(conns), step))[:warm.spread]
    seen: Counter = Counter()

    async def one(k: int, data: bytes) -> None:
        status, raw = await asyncio.wait_for(conns[k].request(data), 60)
        doc = json.loads(raw) if status == 200 else {}
        seen["ok" if status == 200 and not doc.get("errors") else f"HTTP_{status}/{str(doc.get('errors'))[:60]}"] += 1

    async def mutation(k: int, r: int) -> None:
        status, raw = await asyncio.wait_for(conns[k].request(warm.mutation(k, r)), 60)
        seen[warm.label(status, raw)] += 1

    for _ in range(warm.rounds):
        await asyncio.gather(*(one(k, request_bytes(port, tokens[k], WARM_QUERY, {})) for k in chosen))
    for r in range(warm.mutation_rounds):
        await asyncio.gather(*(mutation(k, r) for k in chosen))
    return seen


@dataclass
class Shot:
    """One request of the contest: connection k's j-th, its send and answer times and what `classify`
    made of the answer (None when it raised: the exception is counted in the contest)."""
    k: int
    j: int
    send: float
    done: float
    outcome: str
    result: Any


async def fire(contest: Contest, conns: list[HttpConnection], requests: list[list[bytes]], timeout: float,
               classify: Callable[[int, bytes], tuple[str, Any, str | None]]) -> list[Shot]:
    """Everything at once: one task per connection waits on one event, then sends its requests one
    after another (each as soon as the previous one is answered) and waits for their answers.
    `classify(status, raw)` -> (outcome, result, top-level error text). Fills the contest's outcomes,
    latencies (each request from its own send to its answer), wall and send spread."""
    go = asyncio.Event()
    parked = [0]
    shots: list[list[Shot]] = [[] for _ in conns]

    async def one(k: int) -> None:
        parked[0] += 1
        await go.wait()
        for j, data in enumerate(requests[k]):
            send = time.perf_counter()
            try:
                async with asyncio.timeout(timeout):
                    status, raw = await conns[k].request(data)
                outcome, result, top = classify(status, raw)
                if top:
                    contest.top_errors[top] += 1
            except Exception as exc:  # noqa: BLE001 - counted, the contest goes on
                contest.exceptions[f"{exc.__class__.__name__}: {str(exc)[:100]}"] += 1
                outcome, result = f"EXCEPTION:{exc.__class__.__name__}", None
            shots[k].append(Shot(k, j, send, time.perf_counter(), outcome, result))
            if outcome.startswith("EXCEPTION:"):
                break  # the connection is in an unknown state

    tasks = [asyncio.create_task(one(k)) for k in range(len(conns))]
    while parked[0] < len(tasks):  # every task is parked on the event
        await asyncio.sleep(0.01)
    go.set()
    await asyncio.gather(*tasks)

    flat = [s for per_conn in shots for s in per_conn]
    t0 = min(s.send for s in flat)
    contest.send_spread = max(per_conn[0].send for per_conn in shots if per_conn) - t0
    contest.wall = max(s.done for s in flat) - t0
    for s in flat:
        contest.outcomes[s.outcome] += 1
        contest.latencies.append(s.done - s.send)
    contest.latencies.sort()
    return flat


def finish_profilers(profilers: list[tuple[subprocess.Popen, Path]], grace: float = 60.0) -> list[Path]:
    """Waits for the py-spy recorders (together at most `grace` seconds; a late one is killed)."""
    deadline = time.monotonic() + grace
    for proc, _ in profilers:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        if proc.poll() is None:
            proc.kill()
    return [path for _, path in profilers]


async def measure(args, contest: Contest, server: ContestServer, tokens: list[str], warm: WarmUp,
                  requests: list[list[bytes]], classify: Callable[[int, bytes], tuple[str, Any, str | None]],
                  probe: CpuProbe, redis_client: Any, tables: tuple[str, ...], what: str) -> list[Shot]:
    """One connection per member, opened and primed; the warm-up; a pause (> 10 s: the warm-up's
    statistics are published before the contest's count); then `fire` with CPU, pg_stat and Redis
    counters around it (and py-spy on every worker with --profile-dir)."""
    workers = server.worker_pids()
    before = {pid: socket_count(pid) for pid in workers}
    t = time.perf_counter()
    conns = await open_connections(server.port, len(tokens))
    contest.workers_conns = {pid: socket_count(pid) - before[pid] for pid in workers}
    name = contest.name
    log(f"phase {name}: {len(conns)} connections open and primed in {time.perf_counter() - t:.1f}s;"
        f" per worker {contest.workers_conns}")
    try:
        t = time.perf_counter()
        warmed = await warm_up(conns, server.port, tokens, warm)
        if warmed:
            log(f"phase {name}: warm-up {dict(warmed)} in {time.perf_counter() - t:.1f}s")
        await asyncio.sleep(args.pause)
        profilers = []
        if args.profile_dir is not None:  # py-spy on every worker over the contest (it needs a moment to attach)
            profilers = start_profilers(server.worker_pids(), args.profile_dir, name.replace("#", "-"),
                                        args.profile_seconds, args.profile_rate)
            await asyncio.sleep(1.0)
        contest.stats0, redis0 = await db_counters(probe, tables), await redis_counters(redis_client)
        contest.log_offset = server.log_size()
        snap0 = probe.snapshot()
        log(f"phase {name}: {what}")
        shots = await fire(contest, conns, requests, args.timeout, classify)
        snap1 = probe.snapshot()
        redis1 = await redis_counters(redis_client)
        contest.cpu = CpuProbe.diff(snap0, snap1)
        contest.redis_stats = {k: redis1[k] - redis0.get(k, 0) for k in redis1}
        contest.profiles.extend(finish_profilers(profilers))
        if redis1:
            contest.redis_stats["connected_clients"] = redis1["connected_clients"]
    finally:
        for c in conns:
            c.close()
    return shots


# --- reporting ----------------------------------------------------------------------------------------------

def print_checks(checks: list[Check]) -> bool:
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


def latency_line(latencies: list[float], per: str) -> str:
    lat = latencies
    return (f"  latency per {per}: p50 {ms(pct(lat, .5))} ms, p95 {ms(pct(lat, .95))} ms, p99 {ms(pct(lat, .99))} ms,"
            f" max {ms(lat[-1]) if lat else '-'} ms")


def print_head(c: Contest, title: str, unit: str, sends: str = "sends", extra: str = "") -> None:
    """A contest's first lines: its title, the wall time with the rate, the latency percentiles."""
    print()
    print(f"phase {c.name}: {title}")
    print(f"  wall {c.wall:.3f}s (first send to last answer; the {sends} took {ms(c.send_spread)} ms),"
          f" {c.rps:,.0f} {unit}s/s{extra}")
    print(latency_line(c.latencies, unit))


def summary_label(name: str, kind: str, redis_label: str) -> str:
    """A contest's row in a summary: `redis_label` or "HTTP, database alone", and its round with --rounds."""
    return (redis_label if kind == "redis" else "HTTP, database alone") + (
        f", round {name.split('#')[1]}" if "#" in name else "")


def print_redis_stats(rs: dict[str, int]) -> None:
    if not rs:
        return
    top = sorted(((k[4:], v) for k, v in rs.items() if k.startswith("cmd:") and v > 0), key=lambda kv: -kv[1])
    print(f"  Redis over the contest (INFO, whole server): {rs['commands']:,} commands"
          f" ({', '.join(f'{k} {v:,}' for k, v in top[:6])}), {rs['connections_received']:,} new connections,"
          f" {rs['rejected']} rejected; {rs['connected_clients']} clients connected afterwards")


def print_contest_notes(c: Contest, gate: str = "") -> None:
    """Connections per worker, the gate's state, the server log's counts, errors, profiles, checks."""
    if c.workers_conns:
        print(f"  connections per worker: {c.workers_conns}")
    if gate:
        print(f"  {gate}")
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


def redis_db_pairs(contests: dict[str, Contest]) -> list[tuple[Any, Any]]:
    """(Redis contest, database contest) per round, in the order they ran."""
    return list(zip((c for c in contests.values() if c.kind == "redis"),
                    (c for c in contests.values() if c.kind == "db"), strict=False))


def ratios(pairs: list[tuple[Any, Any]], figure: Callable[[Any], float], invert: bool = False) -> list[float]:
    """figure(Redis) ÷ figure(database) per pair (the other way round with invert); NaN for a zero."""
    out = []
    for r, d in pairs:
        top, bottom = (figure(d), figure(r)) if invert else (figure(r), figure(d))
        out.append(top / bottom if bottom else float("nan"))
    return out


def print_verdict(contests: dict[str, Contest], what: str, passed: str, more_failed: list[str] | None = None) -> bool:
    """The summary's last lines: requests of the Redis phases that the gate could not serve, then
    either `passed` or every failed check, loudly. True when every check passed."""
    fallbacks = sum(c.fallbacks for c in contests.values() if c.kind == "redis")
    if fallbacks:
        print(f"  note: {fallbacks} {what} of the Redis phase(s) went to the database because the gate could not serve"
              " them (see gate→db and the server log)")
    failed = [f"{n}: {label} ({detail})" for n, c in contests.items() for label, g, detail in c.checks if not g]
    failed += more_failed or []
    if not failed:
        print(f"  correctness: every check PASSED in every phase ({passed})")
        return True
    print()
    print("  " + "!" * 100)
    print("  !!! CORRECTNESS CHECKS FAILED:")
    for line in failed:
        print(f"  !!!   {line}")
    print("  " + "!" * 100)
    return False


def contest_figures(c: Contest) -> dict[str, Any]:
    """The JSON figures every contest has."""
    return {"kind": c.kind, "wall_s": round(c.wall, 4), "rps": round(c.rps, 1),
            "p50_ms": round(pct(c.latencies, .5) * 1000, 2), "p95_ms": round(pct(c.latencies, .95) * 1000, 2),
            "p99_ms": round(pct(c.latencies, .99) * 1000, 2), "outcomes": dict(c.outcomes), "checks_pass": c.passed,
            "failed_checks": [label for label, g, _ in c.checks if not g],
            "cpu_s": {k: round(v, 3) for k, v in c.cpu.items() if isinstance(v, float)},
            "pg_stats": c.pg_stats, "redis_stats": c.redis_stats, "server_log": dict(c.log_counts)}


# --- options and the run ------------------------------------------------------------------------------------

def new_parser(module: str, doc: str, all_phases: tuple[str, ...], members_help: str) -> argparse.ArgumentParser:
    """`python -m bench.<module>`'s options: the first paragraph of its docstring as the description,
    the rest as the epilog; --members and --phases (add_common_args adds the rest)."""
    p = argparse.ArgumentParser(prog=f"python -m bench.{module}", description=doc.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", type=int, default=2000, help=members_help)
    p.add_argument("--phases", default=",".join(all_phases), help=f"comma-separated, in order: {','.join(all_phases)}")
    return p


def add_common_args(p: argparse.ArgumentParser, default_db_url: str, mutation: str) -> None:
    p.add_argument("--points", type=int, default=None, help="points every member starts with (default: enough for"
                                                            " every HTTP contest)")
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat the HTTP phases this many times, alternating their order; ratios are medians (1)")
    p.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (2)")
    p.add_argument("--pool-min", type=int, default=2, help="server pool minsize per worker (2)")
    p.add_argument("--pool-max", type=int, default=20, help="server pool maxsize per worker (20)")
    p.add_argument("--backlog", type=int, default=4096, help="uvicorn's listen backlog (4096)")
    p.add_argument("--warm-connections", type=int, default=200,
                   help="connections that send the unmeasured warm-up queries (200; 0: no warm-up)")
    p.add_argument("--warm-rounds", type=int, default=1, help="warm-up rounds of a read-only query (1)")
    p.add_argument("--warm-mutations", "--warm-redeems", dest="warm_mutations", type=int, default=2,
                   help=f"warm-up rounds of {mutation} that cannot succeed (2; 0: a cold Redis pool)")
    p.add_argument("--pause", type=float, default=STATS_IDLE_INTERVAL + 1,
                   help="seconds between the warm-up and the contest (11: more than PostgreSQL's 10 s, so that the"
                        " warm-up's statistics are published before the contest's are counted)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds one request may take (120)")
    p.add_argument("--app", default="api.app:create_app", help="the server's app factory (module:function)")
    p.add_argument("--database-url", default=default_db_url,
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


def check_common_args(p: argparse.ArgumentParser, args: argparse.Namespace, all_phases: tuple[str, ...]) -> None:
    args.phase_list = [x.strip() for x in args.phases.split(",") if x.strip()]
    unknown = set(args.phase_list) - set(all_phases)
    if unknown:
        p.error(f"unknown phases: {', '.join(sorted(unknown))}")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    if not database_name(args.database_url).startswith(DB_PREFIX):
        p.error(f"the bench database's name must start with {DB_PREFIX} (it is dropped at the end)")
    if urlsplit(args.database_url).hostname not in ("127.0.0.1", "localhost", "::1"):
        p.error("the bench only talks to a local PostgreSQL (127.0.0.1)")
    redis_db = urlsplit(args.redis_url).path.lstrip("/") or "0"
    if not redis_db.isdigit() or int(redis_db) in RESERVED_REDIS_DBS:
        p.error("--redis-url: Redis databases 12-15 belong to other users of this machine (the bench flushes its own)")


def http_plan(args) -> list[tuple[str, str]]:
    """(name, kind) of the HTTP contests in order: the phases as given, repeated --rounds times, every
    other round in the opposite order (so that a drift of the machine's load does not favour one)."""
    kinds = [p for p in args.phase_list if p in ("redis", "db")]
    plan = []
    for r in range(args.rounds):
        for kind in (kinds if r % 2 == 0 else kinds[::-1]):
            plan.append((kind if args.rounds == 1 else f"{kind}#{r + 1}", kind))
    return plan


@dataclass
class Bench:
    """What a bench's phases get: the members (ids and signed-in tokens), the statistics connection,
    the bench's Redis client (when a phase uses Redis), the operator's password and a tag unique to
    the run."""
    args: argparse.Namespace
    dbname: str
    dsn: str
    stats_conn: Any
    redis_client: Any
    member_ids: list[int]
    tokens: list[str]
    admin_password: str
    run_tag: str


PhaseFn = Callable[[Bench, ContestServer, str, str], Awaitable[Contest]]
AfterFn = Callable[[Bench, Contest], Awaitable[None]]


async def run_bench(args, headline: str, logdir_prefix: str, points_reason: str, writes: dict[str, set[str]],
                    bench_file: str, tables: tuple[str, ...], phase: PhaseFn, after: AfterFn,
                    rest: Callable[[Bench, dict[str, Contest]], Awaitable[dict[str, Any]]]) -> int:
    """The run: database, members and points; per HTTP contest of the plan, a server (with Redis or
    without), `phase(bench, server, name, kind)` (sets the contest up and runs `measure`), the server
    stopped, the counters read, `after(bench, contest)` (checks and prints); then `rest(bench,
    contests)` (further phases and the summary: the JSON figures); always the clean-up."""
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

    print(f"{headline}; {args.workers} workers (pool {args.pool_min}-{args.pool_max} each); {os.cpu_count()} CPUs;"
          f" load average {os.getloadavg()[0]:.2f}; open files limit {limit[0]}")
    print(f"app under test: {describe_app_source()}")
    logdir = Path(tempfile.mkdtemp(prefix=logdir_prefix))
    running: list[ContestServer] = []  # the server of the contest under way, for the clean-up
    import asyncpg

    async with contextlib.AsyncExitStack() as cleanup:  # undone in reverse order, whatever happens
        cleanup.callback(lambda: [s.stop() for s in running])
        redis_client = None
        if "redis" in args.phase_list:
            from redis.asyncio import from_url

            redis_client = from_url(args.redis_url, socket_connect_timeout=2, socket_timeout=10)
            cleanup.push_async_callback(_quietly, f"could not flush {args.redis_url}", _flush_and_close(redis_client))
            await redis_client.flushdb()
            log(f"flushed {args.redis_url}")
        log(f"creating database {dbname}")
        drop = f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'
        await admin_execute(admin_dsn, drop)
        await admin_execute(admin_dsn, f'CREATE DATABASE "{dbname}"')
        cleanup.push_async_callback(_quietly, f"could not drop {dbname}",
                                    asyncio.wait_for(admin_execute(admin_dsn, drop), 60), f"dropped database {dbname}")
        await prepare_database(args, args.database_url)
        stats_conn = await asyncpg.connect(dsn)
        cleanup.push_async_callback(_quietly, "closing the statistics connection", stats_conn.close(timeout=5))
        await check_columns(stats_conn, writes, bench_file)
        t = time.perf_counter()
        given = await give_points(stats_conn, args.points, points_reason)
        member_ids = [r["member_id"] for r in await stats_conn.fetch(
            "SELECT member_id FROM points_account ORDER BY member_id")]
        log(f"gave {given} members {args.points} points each in {time.perf_counter() - t:.1f}s")
        if len(member_ids) != args.members:
            raise RuntimeError(f"expected {args.members} members, found {len(member_ids)}")
        from api.services.signing import issue_token

        tokens = [issue_token("member", m, 3 * 3600) for m in member_ids]
        bench = Bench(args, dbname, dsn, stats_conn, redis_client, member_ids, tokens, admin_password,
                      os.urandom(3).hex())
        contests: dict[str, Contest] = {}
        for name, kind in http_plan(args):
            server = ContestServer(args, env_redis if kind == "redis" else env_db, logdir, name.replace("#", "-"))
            running.append(server)
            server.start()
            await server.wait_ready()
            contest = await phase(bench, server, name, kind)
            contest.log_counts = server.log_counts(contest.log_offset)
            tail = server.log_tail(12) if contest.log_counts else ""
            server.stop()
            running.remove(server)
            await asyncio.sleep(0.5)  # the server's backends have exited and published their statistics
            stats1 = await db_counters(CpuProbe(dbname, None, stats_conn), tables)
            contest.pg_stats = {k: v - contest.stats0.get(k, 0) for k, v in stats1.items()}
            await after(bench, contest)
            contests[name] = contest
            if tail:
                print("  server log (last lines):\n    " + tail.replace("\n", "\n    "))

        summary = await rest(bench, contests)
        if args.json is not None:
            figures = {"phases": summary, "cpus": os.cpu_count(),
                       "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
            args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False))
            print(f"\nfigures written to {args.json}")
    return 0


async def _flush_and_close(client: Any) -> None:
    await client.flushdb()
    await client.aclose()


async def _quietly(failure: str, step: Awaitable[Any], success: str = "") -> None:
    """A clean-up step that logs its failure instead of hiding the run's own error."""
    try:
        await step
    except Exception as exc:  # noqa: BLE001
        log(f"{failure}: {exc!r}")
    else:
        if success:
            log(success)


def main_with(parse: Callable[[list[str] | None], argparse.Namespace], amain: Callable[[Any], Awaitable[int]],
              argv: list[str] | None = None) -> None:
    """Parses the options and runs `amain` on uvloop where installed (unless --no-uvloop)."""
    args = parse(argv)
    factory = None
    try:
        if not args.no_uvloop:
            import uvloop

            factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    code = 130  # interrupted
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=factory) as runner:
        code = runner.run(amain(args))
    sys.exit(code)
