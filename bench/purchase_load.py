"""Load benchmark: purchaseRecord and purchaseRecordBatch over HTTP against PostgreSQL, measured in the
same run as the raw-SQL rate of the same ledger transaction through asyncpg, and the ratios of the two.

    python -m bench.purchase_load [--duration 15] [--clients 64] [--raw-clients 32] [--batch-size 100]
                                  [--workers 2] [--database-url postgres://postgres@127.0.0.1:5432/mallpoints_bench]

What it does (see bench/README.md):
  1. creates a fresh database (its name must start with `mallpoints_bench`), applies the committed
     migrations, loads the demo tiers/merchants/POS key (seeds.loader.load_demo(with_history=False))
     and bulk-inserts --members members with their points accounts;
  2. starts `uvicorn api.app:create_app --factory --workers W` on 127.0.0.1 and waits for /healthz;
  3. phase "single": --clients keep-alive connections send signed purchaseRecord mutations;
  4. phase "batch":  the same with purchaseRecordBatch of --batch-size receipts per call;
  5. stops the server, then phase "raw": --raw-clients asyncpg connections run the earn (idempotency
     row, purchase, entry, lot, balance update) as ONE statement (data-modifying CTEs, one round trip,
     one durable transaction), and phase "raw-steps": the same statements one by one in a transaction;
  5b. phase "single-rules" (earning, issue 3): after the single phase, 19 more active PURCHASE rules are
     installed (20 with the default rule; several match every receipt: category multipliers, member
     day, a campaign window, a BEST_OF group, tier and birthday rules) and the single phase runs again;
     the summary prints both rates and single-rules ÷ single (target ≥ 0.8); the rules are paused again
     before a later single or batch phase (their targets are with the default rule);
  6. prints a summary with the ratios single/raw and batch/raw against the targets;
  7. checks the ledger (balance = Σ entries = Σ lots, no negative balance, rows = successes);
  8. always stops the server and drops the database.

Each phase runs --warmup seconds unmeasured, then --duration seconds measured: a call counts when it
completes inside the measured window (steady state). CPU seconds of the load generator, the server
processes and PostgreSQL are read from /proc over the same window and shown per unit of work.
A benchmark is a figure, not a test: the exit status is 0 unless the run itself broke.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_SECRET_KEY = "mallpoints-bench-secret-key-fixed-value-0001"  # server and bench must agree
DEMO_KEY_ID = "demo-pos"
DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/mallpoints_bench"
DB_PREFIX = "mallpoints_bench"
MERCHANT_CODES = ("M001", "M002", "M003")  # the demo key's merchants (seeds/demo.json)
SCOPE = f"integration:{DEMO_KEY_ID}"  # api.services.purchases.scope_of
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET_SINGLE, GOAL_SINGLE, TARGET_BATCH = 0.35, 0.5, 0.7  # issue 14
ALL_PHASES = ("single", "single-rules", "batch", "raw", "raw-steps")
TARGET_RULES = 0.8  # issue 3: with 20 active rules, at least 80% of the single-rule throughput

PURCHASE_QUERY = (
    "mutation($input: PurchaseRecordInput!) { purchaseRecord(input: $input) {"
    " purchase { id receiptNo } pointsEarned pointsBalance userErrors { field message code } } }"
)
BATCH_QUERY = (
    "mutation($input: PurchaseRecordBatchInput!) { purchaseRecordBatch(input: $input) {"
    " results { purchase { id receiptNo } pointsEarned pointsBalance userErrors { field message code } }"
    " userErrors { field message code } } }"
)


# --- small helpers ---------------------------------------------------------------------------

def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def asyncpg_dsn(url: str) -> str:
    """asyncpg wants postgres:// or postgresql:// and no Tortoise pool options."""
    parts = urlsplit(url)
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql", "asyncpg") else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, "", ""))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


# --- CPU accounting from /proc -----------------------------------------------------------------

def _stat(pid: int) -> tuple[int, float, float] | None:
    """(parent pid, CPU seconds, of which in the kernel) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("latin-1")
    except OSError:
        return None
    rest = raw[raw.rfind(")") + 2:].split()
    return int(rest[1]), (int(rest[11]) + int(rest[12])) / CLK_TCK, int(rest[12]) / CLK_TCK


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        st = _stat(pid)
        if st is not None:
            children.setdefault(st[0], []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


_PG_AUX = ("checkpointer", "background", "walwriter", "autovacuum", "logical", "archiver", "stats", "startup",
           "wal", "postmaster")


def postgres_processes(dbname: str) -> dict[str, dict[int, float]]:
    """CPU seconds of the local PostgreSQL processes: backends of the bench database ('ours'), the
    server's own background processes ('aux') and backends of other databases ('other': noise from
    whoever else shares the machine)."""
    out: dict[str, dict[int, float]] = {"ours": {}, "aux": {}, "other": {}}
    for pid in _all_pids():
        try:
            with open(f"/proc/{pid}/comm", "rb") as f:
                if f.read().strip() != b"postgres":
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("latin-1").strip()
        except OSError:
            continue
        st = _stat(pid)
        if st is None:
            continue
        if not cmd.startswith("postgres:"):
            out["aux"][pid] = st[1]  # the postmaster
            continue
        words = re.sub(r"^postgres:\s+(\S+/\S+:\s+)?", "", cmd).split()
        if not words or words[0] in _PG_AUX:
            out["aux"][pid] = st[1]
        elif len(words) > 1 and words[1] == dbname:
            out["ours"][pid] = st[1]
        else:
            out["other"][pid] = st[1]
    return out


def machine_cpu() -> tuple[float, float]:
    """(busy, idle incl. iowait) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    busy = sum(values[:8]) - idle  # user nice system idle iowait irq softirq steal (guest is in user)
    return busy / CLK_TCK, idle / CLK_TCK


@dataclass
class CpuSnapshot:
    wall: float
    client: float
    server: dict[int, float]
    pg: dict[str, dict[int, float]]
    machine: tuple[float, float] = (0.0, 0.0)
    server_sys: float = 0.0
    client_sys: float = 0.0


PG_STATS_SQL = """
SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_returned + tup_fetched AS tup_read,
       pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS wal_bytes,
       (SELECT COALESCE(sum(blks_hit + blks_read), 0)::bigint FROM pg_stat_slru WHERE name = 'Subtrans')
         AS subtrans_pages
FROM pg_stat_database WHERE datname = current_database()
"""


class CpuProbe:
    def __init__(self, dbname: str, server_pid: int | None, stats_conn: Any = None) -> None:
        self.dbname = dbname
        self.server_pid = server_pid
        self.stats_conn = stats_conn  # an asyncpg connection to the bench database, for pg_stat_database

    async def analyze(self) -> None:
        """Refreshes the planner's statistics after the warm-up. The bench starts from empty tables;
        plans cached by the server's connections while they were tiny (sequential scans, and the
        foreign-key checks' plans) would otherwise stay until autovacuum's next ANALYZE (a minute
        or more): a fresh-install artefact, not the steady state of a mall's database."""
        if self.stats_conn is not None:
            await self.stats_conn.execute("ANALYZE", timeout=60)

    async def db_stats(self) -> dict[str, int] | None:
        if self.stats_conn is None:
            return None
        try:
            row = await self.stats_conn.fetchrow(PG_STATS_SQL, timeout=5)
        except Exception:  # noqa: BLE001 - statistics are a nicety
            return None
        return dict(row) if row is not None else None

    def snapshot(self) -> CpuSnapshot:
        server: dict[int, float] = {}
        server_sys = 0.0
        if self.server_pid is not None:
            for pid in descendants(self.server_pid):
                st = _stat(pid)
                if st is not None:
                    server[pid] = st[1]
                    server_sys += st[2]
        own = os.times()
        return CpuSnapshot(time.perf_counter(), time.process_time(), server, postgres_processes(self.dbname),
                           machine_cpu(), server_sys, own.system)

    @staticmethod
    def diff(a: CpuSnapshot, b: CpuSnapshot) -> dict[str, Any]:
        def delta(before: dict[int, float], after: dict[int, float]) -> dict[int, float]:
            return {pid: t - before.get(pid, 0.0) for pid, t in after.items()}

        server = delta(a.server, b.server)
        pg = sum(delta(a.pg["ours"], b.pg["ours"]).values()) + sum(delta(a.pg["aux"], b.pg["aux"]).values())
        pg_other = sum(delta(a.pg["other"], b.pg["other"]).values())
        machine_busy = b.machine[0] - a.machine[0]
        return {
            "machine_busy": machine_busy,
            "machine_idle": b.machine[1] - a.machine[1],
            "others": max(0.0, machine_busy - (b.client - a.client) - sum(server.values()) - pg - pg_other),
            "wall": b.wall - a.wall,
            "client": b.client - a.client,
            "server": sum(server.values()),
            "server_kernel": b.server_sys - a.server_sys,
            "client_kernel": b.client_sys - a.client_sys,
            "server_by_pid": {pid: round(t, 2) for pid, t in sorted(server.items()) if t > 0.05},
            "pg": pg,
            "pg_other_dbs": pg_other,
        }


# --- a lean HTTP/1.1 keep-alive client ------------------------------------------------------------

class HttpConnection(asyncio.Protocol):
    """One connection, one request in flight; bodies by Content-Length or chunked."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a TCP connection's transport is a Transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            try:
                parsed = self._parse()
            except Exception as exc:  # noqa: BLE001 - a broken response fails this call only
                waiter.set_exception(exc)
                return
            if parsed is not None:
                waiter.set_result(parsed)

    def connection_lost(self, exc) -> None:
        self.lost = exc or ConnectionResetError("server closed the connection")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(self.lost)

    def _parse(self) -> tuple[int, bytes] | None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, chunked = None, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        start = end + 4
        if length is not None:
            if len(buf) < start + length:
                return None
            body = bytes(buf[start:start + length])
            del buf[:start + length]
            return status, body
        if not chunked:
            raise ConnectionError("response without Content-Length or chunked encoding")
        pos, parts = start, []
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
            if size == 0:
                if len(buf) < eol + 4:
                    return None
                del buf[:eol + 4]
                return status, b"".join(parts)
            if len(buf) < eol + 2 + size + 2:
                return None
            parts.append(bytes(buf[eol + 2:eol + 2 + size]))
            pos = eol + 2 + size + 2

    async def request(self, data: bytes) -> tuple[int, bytes]:
        if self.lost is not None:
            raise self.lost
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(data)
        try:
            return await self.waiter
        finally:
            self.waiter = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(port: int) -> HttpConnection:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(HttpConnection, "127.0.0.1", port)
    return proto


async def http_get(port: int, path: str, timeout: float = 3.0) -> tuple[int, bytes]:
    conn = await asyncio.wait_for(connect(port), timeout)
    try:
        req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        return await asyncio.wait_for(conn.request(req), timeout)
    finally:
        conn.close()


class Signer:
    """Builds a signed POST /graphql exactly as the contract says (api/services/integrations.py)."""

    def __init__(self, port: int, key_id: str, secret: str) -> None:
        self.host = f"127.0.0.1:{port}"
        self.key_id = key_id
        self.secret = secret.encode()
        self.nonces = itertools.count(1)
        self.run = os.urandom(6).hex()

    def request(self, body: bytes) -> bytes:
        ts = str(int(time.time()))
        nonce = f"{self.run}-{next(self.nonces)}"
        sig = hmac.new(self.secret, ts.encode() + b"\n" + nonce.encode() + b"\n" + body, hashlib.sha256).hexdigest()
        head = (
            f"POST /graphql HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nX-Mallpoints-Key: {self.key_id}\r\nX-Mallpoints-Timestamp: {ts}\r\n"
            f"X-Mallpoints-Nonce: {nonce}\r\nX-Mallpoints-Signature: {sig}\r\n\r\n"
        )
        return head.encode() + body


# --- the workload ----------------------------------------------------------------------------------

class Receipts:
    """Unique receipts and idempotency keys for random members; member codes cached and refreshed
    well before their 2-minute expiry (generated with the server's secret key)."""

    def __init__(self, member_ids: list[int], run_tag: str, seed: int) -> None:
        from api.services import signing

        self._issue = signing.issue_member_code
        self.member_ids = member_ids
        self.codes: dict[int, tuple[str, int]] = {}
        self.rng = random.Random(seed)
        self.run_tag = run_tag
        self.seq = itertools.count(1)

    def code(self, member_id: int) -> str:
        cached = self.codes.get(member_id)
        if cached is None or cached[1] - time.time() < 60:
            cached = self._issue(member_id, 120)
            self.codes[member_id] = cached
        return cached[0]

    def prefix(self, phase: str) -> str:
        return f"{phase}-{self.run_tag}-"

    def amount(self) -> int:
        return self.rng.randint(500, 60_000)  # ¥5 to ¥600

    def http_input(self, prefix: str, occurred_at: str) -> dict[str, Any]:
        n = next(self.seq)
        member_id = self.rng.choice(self.member_ids)
        ident = f"{prefix}{n}"
        return {
            "memberCode": self.code(member_id), "merchantCode": self.rng.choice(MERCHANT_CODES),
            "receiptNo": ident, "amountFen": self.amount(), "occurredAt": occurred_at, "idempotencyKey": ident,
        }


def _top_level(errors: list[dict[str, Any]]) -> list[str]:
    """Top-level GraphQL errors as 'CODE: message' (messages are fixed texts, so they group)."""
    return [f"{(e.get('extensions') or {}).get('code') or 'GRAPHQL_ERROR'}: {str(e.get('message'))[:80]}"
            for e in errors]


def _errors_of(payload: dict[str, Any] | None) -> list[str]:
    if payload is None:
        return ["NULL_PAYLOAD"]
    return [e.get("code") or "?" for e in payload.get("userErrors") or []]


def http_single_call(conn_box: list[HttpConnection], port: int, signer: Signer, receipts: Receipts,
                     tag: str = "S"):
    prefix = receipts.prefix(tag)

    async def call() -> tuple[int, list[str]]:
        occurred_at = datetime.now(UTC).isoformat()
        body = json.dumps({"query": PURCHASE_QUERY, "variables": {"input": receipts.http_input(prefix, occurred_at)}},
                          separators=(",", ":")).encode()
        status, raw = await _send(conn_box, port, signer.request(body))
        if status != 200:
            return 0, [f"HTTP_{status}"]
        doc = json.loads(raw)
        if doc.get("errors"):
            return 0, _top_level(doc["errors"])
        errors = _errors_of((doc.get("data") or {}).get("purchaseRecord"))
        return (0, errors) if errors else (1, [])

    return call


def http_batch_call(conn_box: list[HttpConnection], port: int, signer: Signer, receipts: Receipts, size: int):
    prefix = receipts.prefix("B")

    async def call() -> tuple[int, list[str]]:
        occurred_at = datetime.now(UTC).isoformat()
        items = [receipts.http_input(prefix, occurred_at) for _ in range(size)]
        body = json.dumps({"query": BATCH_QUERY, "variables": {"input": {"purchases": items}}},
                          separators=(",", ":")).encode()
        status, raw = await _send(conn_box, port, signer.request(body))
        if status != 200:
            return 0, [f"HTTP_{status}"] * size
        doc = json.loads(raw)
        if doc.get("errors"):
            return 0, (_top_level(doc["errors"]) * size)[:size]
        payload = (doc.get("data") or {}).get("purchaseRecordBatch")
        top = _errors_of(payload)
        if top:
            return 0, (top * size)[:size]
        ok, errors = 0, []
        results = payload.get("results") or []
        for result in results:
            codes = _errors_of(result)
            if codes:
                errors.extend(codes)
            else:
                ok += 1
        if len(results) != size:
            errors.extend(["MISSING_RESULT"] * (size - len(results)))
        return ok, errors

    return call


async def _send(conn_box: list[HttpConnection], port: int, data: bytes) -> tuple[int, bytes]:
    conn = conn_box[0]
    if conn.lost is not None:  # reconnect after the server closed the connection
        conn = conn_box[0] = await connect(port)
    return await conn.request(data)


# --- the raw ledger transaction ---------------------------------------------------------------------

RAW_ONE_STATEMENT = """
WITH acct AS (
  UPDATE points_account SET balance = balance + $8, updated_at = now()
  WHERE member_id = $5 RETURNING id, balance
), pur AS (
  INSERT INTO purchase (merchant_id, member_id, receipt_no, amount_fen, refunded_fen, points_earned,
                        points_reversed, points_forgiven, growth_earned, growth_reversed, occurred_at, recorded_at)
  VALUES ($4, $5, $6, $7, 0, $8, 0, 0, $9, 0, $10, now()) RETURNING id
), ent AS (
  INSERT INTO points_entry (account_id, kind, points, balance_after, reason, source_type, source_ref,
                            occurred_at, expires_at)
  SELECT acct.id, 'EARN', $8, acct.balance, $12, 'purchase', pur.id::text, $10, $11 FROM acct, pur
  RETURNING id, account_id
), lot AS (
  INSERT INTO points_lot (account_id, kind, entry_id, points, remaining, earned_at, expires_at)
  SELECT ent.account_id, 'EARN', ent.id, $8, $8, $10, $11 FROM ent RETURNING id
), idem AS (
  INSERT INTO idempotency_record (scope, key, request_hash, result, created_at)
  SELECT $1, $2, $3, json_build_object('purchase_id', pur.id, 'receipt_no', $6, 'amount_fen', $7,
         'points_earned', $8, 'points_balance', acct.balance)::text, now()
  FROM pur, acct RETURNING id
)
SELECT pur.id AS purchase_id, acct.balance FROM pur, acct, idem, lot
"""

RAW_STEPS = (
    ("INSERT INTO idempotency_record (scope, key, request_hash, created_at) VALUES ($1, $2, $3, now())"
     " ON CONFLICT (scope, key) DO NOTHING RETURNING id"),
    ("INSERT INTO purchase (merchant_id, member_id, receipt_no, amount_fen, refunded_fen, points_earned,"
     " points_reversed, points_forgiven, growth_earned, growth_reversed, occurred_at, recorded_at)"
     " VALUES ($1, $2, $3, $4, 0, $5, 0, 0, $6, 0, $7, now())"
     " ON CONFLICT (merchant_id, receipt_no) DO NOTHING RETURNING id"),
    "UPDATE points_account SET balance = balance + $1, updated_at = now() WHERE member_id = $2 RETURNING id, balance",
    ("INSERT INTO points_entry (account_id, kind, points, balance_after, reason, source_type, source_ref,"
     " occurred_at, expires_at) VALUES ($1, 'EARN', $2, $3, $4, 'purchase', $5, $6, $7) RETURNING id"),
    ("INSERT INTO points_lot (account_id, kind, entry_id, points, remaining, earned_at, expires_at)"
     " VALUES ($1, 'EARN', $2, $3, $3, $4, $5)"),
    "UPDATE idempotency_record SET result = $1 WHERE id = $2",
)


# The columns the raw statements write; a NOT NULL column without a default that is not listed here
# means the schema moved on and the raw SQL must follow (checked before the raw phases run).
RAW_WRITES = {
    "purchase": {"id", "merchant_id", "member_id", "receipt_no", "amount_fen", "refunded_fen", "points_earned",
                 "points_reversed", "points_forgiven", "growth_earned", "growth_reversed", "occurred_at",
                 "recorded_at"},
    "points_entry": {"id", "account_id", "kind", "points", "balance_after", "reason", "source_type", "occurred_at"},
    "points_lot": {"id", "account_id", "kind", "points", "remaining", "earned_at"},
    "idempotency_record": {"id", "scope", "key", "request_hash", "created_at"},
    "points_account": {"id", "member_id", "balance", "updated_at"},
}


async def check_raw_schema(conn) -> None:
    rows = await conn.fetch(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = ANY($1::text[]) AND is_nullable = 'NO' AND column_default IS NULL",
        list(RAW_WRITES),
    )
    missing = sorted(f"{r['table_name']}.{r['column_name']}" for r in rows
                     if r["column_name"] not in RAW_WRITES[r["table_name"]])
    if missing:
        raise RuntimeError("the raw SQL of bench/purchase_load.py does not set these required columns: "
                           + ", ".join(missing) + " (the schema changed; update RAW_ONE_STATEMENT and RAW_STEPS)")


class RawEarns:
    def __init__(self, member_ids: list[int], merchants: list[tuple[int, str]], run_tag: str, seed: int) -> None:
        self.member_ids = member_ids
        self.merchants = merchants
        self.rng = random.Random(seed)
        self.run_tag = run_tag
        self.seq = itertools.count(1)

    def args(self, phase: str) -> tuple:
        n = next(self.seq)
        ident = f"{phase}-{self.run_tag}-{n}"
        merchant_id, merchant_name = self.rng.choice(self.merchants)
        amount = self.rng.randint(500, 60_000)
        points = growth = amount // 100
        occurred = datetime.now(UTC)
        reason = f"{merchant_name} 消费 ¥{amount // 100}.{amount % 100:02d}"
        digest = hashlib.sha256(ident.encode()).hexdigest()
        return (SCOPE, ident, digest, merchant_id, self.rng.choice(self.member_ids), ident, amount, points, growth,
                occurred, occurred + timedelta(days=365), reason)


def raw_one_call(conn, earns: RawEarns):
    async def call() -> tuple[int, list[str]]:
        row = await conn.fetchrow(RAW_ONE_STATEMENT, *earns.args("RC"))
        return (1, []) if row is not None else (0, ["NO_ROW"])

    return call


def raw_steps_call(conn, earns: RawEarns):
    s_idem, s_purchase, s_account, s_entry, s_lot, s_result = RAW_STEPS

    async def call() -> tuple[int, list[str]]:
        (scope, key, digest, merchant_id, member_id, receipt, amount, points, growth, occurred, expires,
         reason) = earns.args("RS")
        async with conn.transaction():
            idem_id = await conn.fetchval(s_idem, scope, key, digest)
            purchase_id = await conn.fetchval(s_purchase, merchant_id, member_id, receipt, amount, points, growth,
                                              occurred)
            acct = await conn.fetchrow(s_account, points, member_id)
            entry_id = await conn.fetchval(s_entry, acct["id"], points, acct["balance"], reason, str(purchase_id),
                                           occurred, expires)
            await conn.execute(s_lot, acct["id"], entry_id, points, occurred, expires)
            await conn.execute(s_result, json.dumps({"purchase_id": purchase_id, "receipt_no": receipt,
                                                     "amount_fen": amount, "points_earned": points,
                                                     "points_balance": acct["balance"]}), idem_id)
        return 1, []

    return call


# --- running a phase ----------------------------------------------------------------------------------

@dataclass
class Phase:
    name: str
    unit: str  # what a success counts: "mutations", "receipts", "earns"
    clients: int
    per_call: int = 1
    calls: int = 0  # completed inside the measured window
    ok: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    total_ok: int = 0  # all calls incl. warm-up and drain: what the database must hold
    total_failed: int = 0
    error_codes: Counter = field(default_factory=Counter)
    exceptions: Counter = field(default_factory=Counter)
    cpu: dict[str, Any] = field(default_factory=dict)
    window: float = 0.0
    profile: list[Path] = field(default_factory=list)
    wall_window: tuple[Any, Any] = (None, None)
    committed_in_window: int | None = None  # rows the database recorded inside the window
    rate_from_db: bool = False  # batch calls are long: count receipts where the database recorded them
    pg_stats: dict[str, int] = field(default_factory=dict)  # pg_stat_database deltas over the window

    @property
    def rate(self) -> float:
        if self.rate_from_db and self.committed_in_window is not None:
            return self.committed_in_window / self.window if self.window else 0.0
        return self.ok / self.window if self.window else 0.0

    @property
    def call_rate(self) -> float:
        return self.calls / self.window if self.window else 0.0


async def run_phase(
    phase: Phase, calls: list[Callable[[], Awaitable[tuple[int, list[str]]]]], warmup: float, duration: float,
    probe: CpuProbe, *, on_window_start: Callable[[], Any] | None = None, drain_timeout: float = 300.0,
) -> Phase:
    start = time.perf_counter()
    w0, w1 = start + warmup, start + warmup + duration
    snapshots: list[CpuSnapshot] = []
    stats: list[dict[str, int] | None] = []

    async def client(call) -> None:
        while True:
            t0 = time.perf_counter()
            if t0 >= w1:
                return
            try:
                ok, errors = await call()
            except Exception as exc:  # noqa: BLE001 - counted and shown; the run goes on
                phase.exceptions[f"{exc.__class__.__name__}: {str(exc)[:120]}"] += 1
                ok, errors = 0, [f"EXCEPTION:{exc.__class__.__name__}"] * phase.per_call
                await asyncio.sleep(0.05)
            t1 = time.perf_counter()
            phase.total_ok += ok
            phase.total_failed += len(errors)
            if errors:
                phase.error_codes.update(errors)
            if w0 <= t1 < w1:
                phase.calls += 1
                phase.ok += ok
                phase.failed += len(errors)
            if t1 >= w0 and t0 < w1:  # calls that overlap the window (long batch calls end after it)
                phase.latencies.append(t1 - t0)

    async def sampler() -> None:
        await asyncio.sleep(max(0.0, w0 - 1.0 - time.perf_counter()))
        await probe.analyze()
        await asyncio.sleep(max(0.0, w0 - time.perf_counter()))
        snapshots.append(probe.snapshot())
        phase.wall_window = (datetime.now(UTC), phase.wall_window[1])
        if on_window_start is not None:
            on_window_start()
        stats.append(await probe.db_stats())
        await asyncio.sleep(max(0.0, w1 - time.perf_counter()))
        snapshots.append(probe.snapshot())
        phase.wall_window = (phase.wall_window[0], datetime.now(UTC))
        stats.append(await probe.db_stats())

    tasks = [asyncio.ensure_future(client(c)) for c in calls]
    await sampler()
    _, pending = await asyncio.wait(tasks, timeout=drain_timeout)
    for task in pending:
        task.cancel()
    if pending:
        phase.exceptions[f"{len(pending)} calls still running {drain_timeout:.0f}s after the window: cancelled"] += 1
        await asyncio.gather(*pending, return_exceptions=True)
    phase.window = duration
    phase.cpu = CpuProbe.diff(snapshots[0], snapshots[1])
    if len(stats) == 2 and stats[0] is not None and stats[1] is not None:
        phase.pg_stats = {k: stats[1][k] - stats[0][k] for k in stats[0]}
    phase.latencies.sort()
    return phase


# --- set-up: database, seeds, members ---------------------------------------------------------------

async def admin_execute(admin_dsn: str, sql: str, timeout: float = 30.0) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await conn.execute(sql, timeout=timeout)
    finally:
        await conn.close(timeout=5)


async def prepare_database(args, db_url: str) -> None:
    from api import db
    from api.config import Settings, set_settings

    cfg = Settings.from_env()
    set_settings(cfg)
    t0 = time.perf_counter()
    await db.migrate_db(cfg)
    await db.close_db()
    await db.init_db(cfg)
    try:
        from seeds.loader import load_demo

        seeded = await load_demo(with_history=False)
    finally:
        await db.close_db()
    log(f"migrated and seeded {seeded} in {time.perf_counter() - t0:.1f}s")

    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        t0 = time.perf_counter()
        async with conn.transaction():
            # The same rows as api.services.members._find_or_register, set-based.
            await conn.execute(
                """
                WITH base AS (SELECT id FROM tier ORDER BY growth_threshold LIMIT 1),
                new AS (
                  INSERT INTO member (phone, tier_id, growth_value, tier_period_start, created_at, updated_at)
                  SELECT '+86139' || lpad(g::text, 8, '0'), base.id, 0, now(), now(), now()
                  FROM generate_series(1, $1) g, base RETURNING id, tier_id
                ), acct AS (
                  INSERT INTO points_account (member_id, balance, updated_at) SELECT id, 0, now() FROM new
                )
                INSERT INTO tier_change (member_id, from_tier_id, to_tier_id, direction, growth_value, reason,
                                         occurred_at)
                SELECT id, NULL, tier_id, 'JOIN', 0, 'registered', now() FROM new
                """,
                args.members,
            )
        await conn.execute("ANALYZE")
        log(f"inserted {args.members} members with accounts in {time.perf_counter() - t0:.1f}s")
    finally:
        await conn.close()


RULES_SETTLE_SECONDS = 6.0  # > api.services.earning.RULES_CACHE_SECONDS


async def set_bench_rules(db_url: str, what: str) -> None:
    """Installs the bench's rules, or sets them (all but the default rule) ACTIVE or PAUSED."""
    if what == "install":
        await install_rules(db_url)
        return
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        await conn.execute("UPDATE earn_rule SET status = $1 WHERE code <> 'DEFAULT_PURCHASE'", what)
    finally:
        await conn.close()
    log(f"bench rules {what}")


async def install_rules(db_url: str) -> None:
    """19 more active PURCHASE rules (20 with the default one), as an operator would configure them:
    several match every receipt. None has caps, a first-purchase condition or a return window (those
    take the general path, evaluated under the account lock; not measured here)."""
    import asyncpg

    from api.services.clock import SHANGHAI

    today = datetime.now(UTC).astimezone(SHANGHAI).date()  # the member day below is today
    sh_day = today.day
    now = datetime.now(UTC)
    rules = [
        ("CAT_FOOD_X150", "PURCHASE", "ADD", None, {"merchantCategories": ["餐饮"]}, "MULTIPLIER_PERCENT", 150),
        ("CAT_FASHION_5", "PURCHASE", "ADD", None, {"merchantCategories": ["服饰"]}, "FIXED_POINTS", 5),
        ("M001_BONUS", "PURCHASE", "ADD", None, {"merchantCodes": ["M001"]}, "FIXED_POINTS", 2),
        ("PROMO_FIXED", "PURCHASE", "BEST_OF", "promo", {"minAmountFen": 5000}, "FIXED_POINTS", 10),
        ("PROMO_X120", "PURCHASE", "BEST_OF", "promo", {}, "MULTIPLIER_PERCENT", 120),
        ("EVERY_DAY", "PURCHASE", "ADD", None, {"weekdays": [1, 2, 3, 4, 5, 6, 7]}, "FIXED_POINTS", 1),
        ("MEMBER_DAY_TODAY", "PURCHASE", "ADD", None, {"memberDay": sh_day}, "FIXED_POINTS", 3),
        ("MEMBER_DAY_OTHER", "PURCHASE", "ADD", None, {"memberDay": sh_day % 28 + 1}, "FIXED_POINTS", 3),
        ("GOLD_UP_X110", "PURCHASE", "ADD", None, {"tierCodes": ["GOLD", "DIAMOND"]}, "MULTIPLIER_PERCENT", 110),
        ("BIRTHDAY_X200", "PURCHASE", "ADD", None, {"birthday": "MONTH"}, "MULTIPLIER_PERCENT", 200),
        ("BIG_SPENDER", "PURCHASE", "ADD", None, {"minAmountFen": 100_000}, "FIXED_POINTS", 50),
        ("M003_WEEKDAYS", "PURCHASE", "ADD", None, {"merchantCodes": ["M003"], "weekdays": [1, 2, 3, 4, 5]},
         "FIXED_POINTS", 4),
        ("FASHION_BEST_A", "PURCHASE", "BEST_OF", "fashion", {"merchantCategories": ["服饰"]}, "FIXED_POINTS", 8),
        ("FASHION_BEST_B", "PURCHASE", "BEST_OF", "fashion", {"merchantCategories": ["服饰"]}, "MULTIPLIER_PERCENT",
         130),
        ("OTHER_MERCHANT", "PURCHASE", "ADD", None, {"merchantCodes": ["M999"]}, "FIXED_POINTS", 9),
        ("SILVER_ONLY", "PURCHASE", "ADD", None, {"tierCodes": ["SILVER"]}, "FIXED_POINTS", 6),
        ("BIRTHDAY_DAY", "PURCHASE", "ADD", None, {"birthday": "DAY"}, "FIXED_POINTS", 20),
        ("MIN_100_YUAN", "PURCHASE", "ADD", None, {"minAmountFen": 10_000}, "FIXED_POINTS", 2),
    ]
    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        insert = (
            "INSERT INTO earn_rule (code, name, trigger, status, priority, stacking, stack_group, conditions, action,"
            " action_value, apply_tier_multiplier, growth_action, growth_value, return_days, starts_at, ends_at,"
            " created_at, updated_at) VALUES ($1, $1, $2, 'ACTIVE', 0, $3, $4, $5, $6, $7, FALSE, 'NONE', 0, 0,"
            " $8, $9, $10, $10)"
        )
        for code, trigger, stacking, group, conditions, action, value in rules:
            await conn.execute(insert, code, trigger, stacking, group, json.dumps(conditions), action, value, None,
                               None, now)
        # A campaign running now (double points this week) and one that ended.
        await conn.execute(insert, "CAMPAIGN_NOW", "PURCHASE", "ADD", None, "{}", "MULTIPLIER_PERCENT", 200,
                           now - timedelta(days=1), now + timedelta(days=6), now)
        await conn.execute(insert, "CAMPAIGN_ENDED", "PURCHASE", "ADD", None, "{}", "FIXED_POINTS", 100,
                           now - timedelta(days=30), now - timedelta(days=20), now)
        # Some members have a birthday this month (the birthday rules need a lookup, cached per member).
        await conn.execute("UPDATE member SET birthday = make_date(1990, $1, 1) WHERE id % 7 = 0", today.month)
        active = await conn.fetchval("SELECT count(*) FROM earn_rule WHERE status = 'ACTIVE' AND trigger = 'PURCHASE'")
    finally:
        await conn.close()
    log(f"installed rules: {active} active PURCHASE rules")


async def load_ids(db_url: str) -> tuple[list[int], list[tuple[int, str]]]:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        members = [r["member_id"] for r in await conn.fetch("SELECT member_id FROM points_account ORDER BY member_id")]
        merchants = [(r["id"], r["name"]) for r in await conn.fetch(
            "SELECT m.id, m.name FROM merchant m JOIN integration_key_merchant km ON km.merchant_id = m.id"
            " JOIN integration_key k ON k.id = km.key_id WHERE k.key_id = $1 ORDER BY m.code", DEMO_KEY_ID)]
    finally:
        await conn.close()
    return members, merchants


# --- the server ---------------------------------------------------------------------------------------

class Server:
    def __init__(self, args, env: dict[str, str], logdir: Path) -> None:
        self.port = args.port or free_port()
        self.workers = args.workers
        self.app = args.app
        self.env = env
        self.log_path = logdir / "uvicorn.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "uvicorn", self.app, "--factory", "--host", "127.0.0.1",
               "--port", str(self.port), "--workers", str(self.workers), "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
        log(f"starting server: {' '.join(cmd[1:])}")
        with open(self.log_path, "wb") as logf:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    async def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_tail()}")
            try:
                status, body = await http_get(self.port, "/healthz")
                # Every worker must be up: give the others a moment after the first answers.
                if status == 200 and len(self.worker_pids()) >= self.workers:
                    await asyncio.sleep(1.0)
                    log(f"server ready on 127.0.0.1:{self.port}: {body.decode()} workers {self.worker_pids()}")
                    return
            except (TimeoutError, OSError, ConnectionError):
                pass
            await asyncio.sleep(0.3)
        raise RuntimeError(f"server not healthy after {timeout:.0f}s:\n{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        if self.proc is None:
            return []
        if self.workers <= 1:
            return [self.proc.pid]
        pids = [p for p in descendants(self.proc.pid) if p != self.proc.pid]
        # uvicorn's workers are the children that import the app (multiprocessing spawn children);
        # skip helper processes such as multiprocessing's resource tracker.
        out = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"resource_tracker" in f.read():
                        continue
            except OSError:
                continue
            out.append(pid)
        return out

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 15.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        log(f"stopping server (pid {proc.pid})")
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log("server did not stop in time: SIGKILL to its process group")
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the group this bench created for it
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
        # Workers share the server's process group; none should outlive it.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def start_profilers(pids: list[int], outdir: Path, phase: str, duration: float, rate: int) -> list[tuple[subprocess.Popen, Path]]:
    """py-spy record (collapsed stacks) on each worker for the measured window."""
    out = []
    outdir.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).with_name("py-spy")
    exe_path = str(exe) if exe.exists() else "py-spy"
    for pid in pids:
        path = outdir / f"{phase}-worker{pid}.txt"
        cmd = [exe_path, "record", "--pid", str(pid), "--duration", str(int(duration)), "--rate", str(rate),
               "--format", "raw", "--nonblocking", "--output", str(path)]
        out.append((subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL), path))
    return out


# --- verification ---------------------------------------------------------------------------------------

PHASE_PREFIX = {"single": "S", "single-rules": "SR", "batch": "B", "raw": "RC", "raw-steps": "RS"}


def prefix_of(name: str) -> str:
    """Receipt prefix of a phase; rounds of the rules comparison are named 'single/2', 'single-rules/2'."""
    base, _, round_no = name.partition("/")
    return PHASE_PREFIX[base] + round_no


async def count_in_window(db_url: str, phase: Phase, run_tag: str) -> None:
    """Purchases of this phase whose recorded_at (the server's clock at the start of the earn) falls in
    the measured window: the throughput as the database saw it, independent of how long calls are."""
    import asyncpg

    start, end = phase.wall_window
    if start is None or end is None:
        return
    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        phase.committed_in_window = await conn.fetchval(
            "SELECT count(*) FROM purchase WHERE receipt_no LIKE $1 AND recorded_at >= $2 AND recorded_at < $3",
            f"{prefix_of(phase.name)}-{run_tag}-%", start, end,
        )
    finally:
        await conn.close()

async def verify(db_url: str, phases: list[Phase], run_tag: str) -> bool:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    ok = True
    try:
        row = await conn.fetchrow(
            """
            SELECT count(*) AS accounts,
                   count(*) FILTER (WHERE a.balance <> COALESCE(e.s, 0)) AS balance_ne_entries,
                   count(*) FILTER (WHERE a.balance <> COALESCE(l.s, 0)) AS balance_ne_lots,
                   count(*) FILTER (WHERE a.balance < 0) AS negative,
                   COALESCE(sum(a.balance), 0) AS total_points
            FROM points_account a
            LEFT JOIN (SELECT account_id, sum(points) s FROM points_entry GROUP BY 1) e ON e.account_id = a.id
            LEFT JOIN (SELECT account_id, sum(remaining) s FROM points_lot GROUP BY 1) l ON l.account_id = a.id
            """
        )
        growth = await conn.fetchval(
            "SELECT count(*) FROM member m LEFT JOIN (SELECT member_id, sum(delta) s FROM growth_entry GROUP BY 1) g"
            " ON g.member_id = m.id WHERE m.growth_value <> COALESCE(g.s, 0)"
        )
        orphans = await conn.fetchval(
            "SELECT count(*) FROM purchase p WHERE p.points_earned > 0 AND NOT EXISTS (SELECT 1 FROM points_entry e"
            " WHERE e.source_type = 'purchase' AND e.source_ref = p.id::text)"
        )
        pending = await conn.fetchval("SELECT count(*) FROM idempotency_record WHERE result IS NULL")
        upgrades = await conn.fetchval("SELECT count(*) FROM tier_change WHERE direction = 'UPGRADE'")
        print()
        print("correctness after the run")
        print(f"  accounts {row['accounts']}, total balance {row['total_points']} points, tier upgrades {upgrades}")
        checks = [
            ("balance = Σ entries, every account", row["balance_ne_entries"] == 0, f"{row['balance_ne_entries']} differ"),
            ("balance = Σ lots remaining, every account", row["balance_ne_lots"] == 0, f"{row['balance_ne_lots']} differ"),
            ("no negative balance", row["negative"] == 0, f"{row['negative']} negative"),
            ("growth value = Σ growth entries, every member", growth == 0, f"{growth} differ"),
            ("every purchase has its EARN entry", orphans == 0, f"{orphans} without"),
            ("every idempotency record has its result", pending == 0, f"{pending} without"),
        ]
        for phase in phases:
            prefix = prefix_of(phase.name) + f"-{run_tag}-"
            purchases = await conn.fetchval("SELECT count(*) FROM purchase WHERE receipt_no LIKE $1", prefix + "%")
            keys = await conn.fetchval(
                "SELECT count(*) FROM idempotency_record WHERE scope = $1 AND key LIKE $2", SCOPE, prefix + "%")
            checks.append((
                f"{phase.name}: rows = successes seen by the clients ({phase.total_ok})",
                purchases == keys == phase.total_ok, f"{purchases} purchases, {keys} idempotency records",
            ))
        for label, good, detail in checks:
            ok &= good
            print(f"  [{'ok' if good else 'FAIL'}] {label}" + ("" if good else f": {detail}"))
    finally:
        await conn.close()
    return ok


# --- reporting ------------------------------------------------------------------------------------------

def print_phase(phase: Phase) -> None:
    lat = phase.latencies
    cpu = phase.cpu
    units = max(round(phase.rate * phase.window), 1)
    print()
    print(f"phase {phase.name}: {phase.clients} clients, {phase.window:.0f}s measured")
    per_call = f" ({phase.call_rate:,.2f} calls/s of {phase.per_call})" if phase.per_call > 1 else ""
    how = "recorded by the database in the window" if phase.rate_from_db else "completed in the window"
    print(f"  {phase.rate:,.0f} {phase.unit}/s{per_call} ({how});"
          f" calls completed in the window: {phase.calls:,} with {phase.ok:,} ok and {phase.failed:,} failed {phase.unit}")
    if phase.committed_in_window is not None and not phase.rate_from_db:
        print(f"  cross-check: the database recorded {phase.committed_in_window / phase.window:,.0f} {phase.unit}/s"
              f" in the window")
    if lat:
        print(f"  latency per call ({len(lat):,} calls overlapping the window): p50 {pct(lat, 0.5) * 1000:.1f} ms,"
              f" p99 {pct(lat, 0.99) * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms")
    wall = cpu.get("wall") or phase.window
    print(f"  CPU over the window ({wall:.1f}s wall, 2 cores = {2 * wall:.0f} core-s):"
          f" load generator {cpu['client']:.1f}s, server {cpu['server']:.1f}s, PostgreSQL {cpu['pg']:.1f}s"
          f"; machine busy {cpu['machine_busy']:.1f}s, idle {cpu['machine_idle']:.1f}s;"
          f" noise: other databases' backends {cpu['pg_other_dbs']:.1f}s, other processes {cpu['others']:.1f}s")
    if cpu["server"] > 0:
        print(f"  kernel share (system time, mostly loopback TCP): server {100 * cpu['server_kernel'] / cpu['server']:.0f}%,"
              f" load generator {100 * cpu['client_kernel'] / max(cpu['client'], 1e-9):.0f}%")
    print(f"  CPU per {phase.unit[:-1]}: load generator {cpu['client'] / units * 1000:.3f} ms,"
          f" server {cpu['server'] / units * 1000:.3f} ms, PostgreSQL {cpu['pg'] / units * 1000:.3f} ms")
    if phase.pg_stats:
        st = phase.pg_stats
        print(f"  PostgreSQL per {phase.unit[:-1]} (pg_stat_database, ≈: flushed about once a second):"
              f" {st['xact_commit'] / units:.2f} commits, {st['xact_rollback'] / units:.2f} rollbacks,"
              f" {st['tup_inserted'] / units:.1f} rows inserted, {st['tup_updated'] / units:.1f} updated,"
              f" {st['tup_read'] / units:.1f} read; WAL {st['wal_bytes'] / units:,.0f} bytes,"
              f" pg_subtrans page accesses {st['subtrans_pages'] / units:,.1f} (whole server; high when"
              f" a transaction has more than 64 subtransactions)")
    if len(cpu.get("server_by_pid", {})) > 1:
        print(f"  server CPU by process: {cpu['server_by_pid']}")
    if phase.error_codes:
        print(f"  errors by code (whole phase): {dict(phase.error_codes.most_common())}")
    for text, count in phase.exceptions.most_common(5):
        print(f"  exception x{count}: {text}")


def print_summary(phases: dict[str, Phase]) -> dict[str, Any]:
    raw = phases.get("raw")
    raw_cost = cpu_cost(raw) if raw else None
    print()
    print("summary (one run; ratios are what count on a shared machine)")
    print(f"  {'what':<44} {'rate':>12}  {'p50 ms':>8} {'p99 ms':>8}  {'ratio':>6}  {'CPU ms':>7} {'cpu ratio':>9}"
          "  target (on ratio)")
    out: dict[str, Any] = {}
    rows = [
        ("single", "purchaseRecord mutations/s", f"≥{TARGET_SINGLE} (goal {GOAL_SINGLE})", TARGET_SINGLE),
        ("single-rules", "purchaseRecord, 20 active rules", "", None),
        ("batch", "purchaseRecordBatch receipts/s", f"≥{TARGET_BATCH}", TARGET_BATCH),
        ("raw", "raw earns/s, one statement", "", None),
        ("raw-steps", "raw earns/s, statements one by one", "", None),
    ]
    for key, label, target_text, target in rows:
        phase = phases.get(key)
        if phase is None:
            continue
        ratio = phase.rate / raw.rate if raw and raw.rate else None
        ratio_text = f"{ratio:.3f}" if ratio is not None and key != "raw" else ("1" if key == "raw" else "-")
        verdict = ""
        if target is not None and ratio is not None:
            verdict = f"{target_text}: {'met' if ratio >= target else 'NOT met'}"
        lat = phase.latencies
        clients = f"{phase.clients} clients"
        cost = cpu_cost(phase)
        cpu_ratio = raw_cost / cost if raw_cost and cost else None
        cpu_ratio_text = "-" if cpu_ratio is None else ("1" if key == "raw" else f"{cpu_ratio:.3f}")
        cost_text = "-" if cost is None else f"{cost * 1000:.3f}"
        print(f"  {label + ' (' + clients + ')':<44} {phase.rate:>12,.0f}  {pct(lat, 0.5) * 1000:>8.1f}"
              f" {pct(lat, 0.99) * 1000:>8.1f}  {ratio_text:>6}  {cost_text:>7} {cpu_ratio_text:>9}  {verdict}")
        out[key] = {
            "rate": round(phase.rate, 1), "unit": phase.unit, "calls_per_s": round(phase.call_rate, 2),
            "clients": phase.clients, "p50_ms": round(pct(lat, 0.5) * 1000, 2),
            "p99_ms": round(pct(lat, 0.99) * 1000, 2), "ok": phase.ok, "failed": phase.failed,
            "ratio_to_raw": None if ratio is None else round(ratio, 4),
            "cpu_ms_per_unit": None if cost is None else round(cost * 1000, 4),
            "cpu_ratio_to_raw": None if cpu_ratio is None else round(cpu_ratio, 4),
            "cpu_s": {k: round(v, 2) for k, v in phase.cpu.items() if isinstance(v, float)},
            "errors": dict(phase.error_codes),
        }
    singles = [p for n, p in phases.items() if n.partition("/")[0] == "single"]
    ruleds = [p for n, p in phases.items() if n.partition("/")[0] == "single-rules"]
    if singles and ruleds:
        for s_phase, r_phase in zip(singles, ruleds, strict=False):
            cs, cr = cpu_cost(s_phase), cpu_cost(r_phase)
            print(f"  rules round {s_phase.name} / {r_phase.name}: {s_phase.rate:,.0f}/s vs {r_phase.rate:,.0f}/s,"
                  f" ratio {r_phase.rate / max(s_phase.rate, 1e-9):.3f},"
                  f" cpu ratio {'-' if not cs or not cr else f'{cs / cr:.3f}'}")
        single_rate = sum(p.rate for p in singles) / len(singles)
        ruled_rate = sum(p.rate for p in ruleds) / len(ruleds)
        ratio = ruled_rate / single_rate if single_rate else 0.0
        costs_s = [c for c in (cpu_cost(p) for p in singles) if c]
        costs_r = [c for c in (cpu_cost(p) for p in ruleds) if c]
        cpu_ratio = (sum(costs_s) / len(costs_s)) / (sum(costs_r) / len(costs_r)) if costs_s and costs_r else None
        print(f"  earning rules (issue 3): 1 default rule {single_rate:,.0f}/s, 20 active rules {ruled_rate:,.0f}/s"
              f" (mean of {len(singles)} round(s)): ratio {ratio:.3f}"
              f" (cpu ratio {'-' if cpu_ratio is None else f'{cpu_ratio:.3f}'});"
              f" target ≥{TARGET_RULES}: {'met' if ratio >= TARGET_RULES else 'NOT met'}")
        out["rules_ratio"] = {"single": round(single_rate, 1), "single_rules": round(ruled_rate, 1),
                              "ratio": round(ratio, 4), "cpu_ratio": None if cpu_ratio is None else round(cpu_ratio, 4),
                              "rounds": len(singles), "target": TARGET_RULES}
    print("  ratio: rate ÷ raw rate, as measured. CPU ms: load generator + server + PostgreSQL CPU per unit;"
          " cpu ratio: raw's CPU ms ÷ this one's,\n  the ratio the rates would have if every phase had the"
          " whole machine (the phases are CPU-bound): steadier than 'ratio' when other\n  processes take"
          " a different share of the cores in different phases (see each phase's 'noise').")
    return out


def cpu_cost(phase: Phase) -> float | None:
    """CPU seconds (load generator + server + PostgreSQL) per unit of work over the window."""
    units = phase.rate * phase.window
    if not units or not phase.cpu:
        return None
    return (phase.cpu["client"] + phase.cpu["server"] + phase.cpu["pg"]) / units


# --- main -------------------------------------------------------------------------------------------------

def describe_app_source() -> str:
    """Where the code under test comes from, and whether api/ or seeds/ differ from the commit."""
    import api

    where = str(Path(api.__file__).resolve().parent.parent)
    try:
        head = subprocess.run(["git", "-C", where, "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True,
                              timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", where, "status", "--porcelain", "--", "api", "seeds"],
                               check=False, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return where
    if not head:
        return f"{where} (not a git checkout)"
    changed = len(dirty.splitlines())
    return f"{where} at {head}" + (f" with {changed} uncommitted file(s) in api/ or seeds/" if changed else "")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.purchase_load", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=15.0, help="measured seconds per phase (default 15)")
    p.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each phase's window")
    p.add_argument("--clients", type=int, default=64, help="concurrent HTTP clients for purchaseRecord (64)")
    p.add_argument("--batch-clients", type=int, default=None, help="concurrent HTTP clients for the batch phase"
                   " (default: --clients)")
    p.add_argument("--raw-clients", type=int, default=32, help="asyncpg connections for the raw phases (32)")
    p.add_argument("--batch-size", type=int, default=100, help="receipts per purchaseRecordBatch call (100)")
    p.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (2)")
    p.add_argument("--app", default="api.app:create_app",
                   help="the server's app factory (module:function), e.g. to measure an experimental variant")
    p.add_argument("--pool-min", type=int, default=2, help="server pool minsize per worker (2)")
    p.add_argument("--pool-max", type=int, default=20, help="server pool maxsize per worker (20)")
    p.add_argument("--members", type=int, default=2000, help="members to create (2000)")
    p.add_argument("--database-url", default=DEFAULT_DB_URL,
                   help=f"bench database, created and dropped; its name must start with {DB_PREFIX}")
    p.add_argument("--admin-database", default="postgres", help="database to connect to for CREATE/DROP DATABASE")
    p.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    p.add_argument("--phases", default=",".join(ALL_PHASES), help=f"comma-separated subset of {','.join(ALL_PHASES)}")
    p.add_argument("--seed", type=int, default=20261123, help="random seed of the workload")
    p.add_argument("--rule-rounds", type=int, default=1,
                   help="run single and single-rules alternately this many times each (other load on a shared"
                        " machine then hits both alike); the summary adds the rates up")
    p.add_argument("--profile-dir", type=Path, default=None,
                   help="record the server workers with py-spy (collapsed stacks) during each HTTP phase's window;"
                        " perturbs the figures, see bench/profile_summary.py")
    p.add_argument("--profile-rate", type=int, default=200, help="py-spy samples per second (200)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON to this file")
    p.add_argument("--no-uvloop", action="store_true", help="run the load generator on asyncio's own loop")
    p.add_argument("--redis", default="", help="MALLPOINTS_REDIS_URL for the server (default: none), e.g."
                   " redis://127.0.0.1:6379/14")
    args = p.parse_args(argv)
    args.phase_list = [x.strip() for x in args.phases.split(",") if x.strip()]
    unknown = set(args.phase_list) - set(ALL_PHASES)
    if unknown:
        p.error(f"unknown phases: {', '.join(sorted(unknown))}")
    if args.batch_clients is None:
        args.batch_clients = args.clients
    if not 1 <= args.batch_size <= 100:
        p.error("--batch-size must be 1 to 100 (the API's limit)")
    if not database_name(args.database_url).startswith(DB_PREFIX):
        p.error(f"the bench database's name must start with {DB_PREFIX} (it is dropped at the end)")
    if urlsplit(args.database_url).hostname not in ("127.0.0.1", "localhost", "::1"):
        p.error("the bench only talks to a local PostgreSQL (127.0.0.1)")
    return args


async def amain(args) -> int:
    dbname = database_name(args.database_url)
    admin_dsn = asyncpg_dsn(with_database(args.database_url, args.admin_database))
    parts = urlsplit(args.database_url)
    server_db_url = urlunsplit((parts.scheme, parts.netloc, parts.path,
                                f"minsize={args.pool_min}&maxsize={args.pool_max}", ""))
    env_updates = {
        "MALLPOINTS_ENV": "development",
        "MALLPOINTS_DATABASE_URL": server_db_url,
        "MALLPOINTS_SECRET_KEY": BENCH_SECRET_KEY,
    }
    os.environ.update(env_updates)
    os.environ.pop("MALLPOINTS_REDIS_URL", None)
    if args.redis:  # production's shape: PostgreSQL with Redis in front (here: signature nonces)
        os.environ["MALLPOINTS_REDIS_URL"] = args.redis
    from api.config import Settings

    demo_secret = Settings.from_env().demo_pos_secret or "demo-pos-secret"
    server_env = dict(os.environ)

    print(f"mallpoints purchase load benchmark: phases {','.join(args.phase_list)}; {args.duration:.0f}s measured"
          f" after {args.warmup:.0f}s warm-up; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
    print(f"app under test: {describe_app_source()}")
    logdir = Path(tempfile.mkdtemp(prefix="mallpoints-bench-"))
    run_tag = os.urandom(3).hex()
    phases: dict[str, Phase] = {}
    server: Server | None = None
    db_created = False
    verified = False
    stats_conn = None
    try:
        log(f"creating database {dbname}")
        await admin_execute(admin_dsn, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        await admin_execute(admin_dsn, f'CREATE DATABASE "{dbname}"')
        db_created = True
        await prepare_database(args, args.database_url)
        member_ids, merchants = await load_ids(args.database_url)
        import asyncpg

        stats_conn = await asyncpg.connect(asyncpg_dsn(args.database_url))
        if len(merchants) != len(MERCHANT_CODES):
            raise RuntimeError(f"the demo key should be bound to {MERCHANT_CODES}, found {merchants}")

        http_phases = [p for p in args.phase_list if p in ("single", "single-rules", "batch")]
        if http_phases:
            server = Server(args, server_env, logdir)
            server.start()
            await server.wait_ready()
            probe = CpuProbe(dbname, server.proc.pid if server.proc else None, stats_conn)
            receipts = Receipts(member_ids, run_tag, args.seed)
            signer = Signer(server.port, DEMO_KEY_ID, demo_secret)
            if "single" in http_phases and "single-rules" in http_phases and args.rule_rounds > 1:
                # Alternate the two configurations, so that other load on the machine hits both alike.
                at = http_phases.index("single-rules")
                extra = [f"{n}/{r}" for r in range(2, args.rule_rounds + 1) for n in ("single", "single-rules")]
                http_phases = http_phases[:at + 1] + extra + http_phases[at + 1:]
            rules_installed = False
            for name in http_phases:
                base = name.partition("/")[0]
                n_clients = args.batch_clients if name == "batch" else args.clients
                conns = [[await connect(server.port)] for _ in range(n_clients)]
                if base == "single-rules":
                    await set_bench_rules(args.database_url, "install" if not rules_installed else "ACTIVE")
                    rules_installed = True
                    await asyncio.sleep(RULES_SETTLE_SECONDS)  # the servers' rule caches reload
                elif base in ("single", "batch") and rules_installed:  # the targets are with the default rule
                    await set_bench_rules(args.database_url, "PAUSED")
                    await asyncio.sleep(RULES_SETTLE_SECONDS)
                if base in ("single", "single-rules"):
                    phase = Phase(name, "mutations", n_clients)
                    calls = [http_single_call(box, server.port, signer, receipts, prefix_of(name)) for box in conns]
                else:
                    phase = Phase("batch", "receipts", n_clients, per_call=args.batch_size, rate_from_db=True)
                    calls = [http_batch_call(box, server.port, signer, receipts, args.batch_size) for box in conns]
                profilers: list[tuple[subprocess.Popen, Path]] = []

                def on_window_start(name=name, profilers=profilers) -> None:
                    if args.profile_dir is not None:
                        profilers.extend(start_profilers(server.worker_pids(), args.profile_dir,
                                                         name.replace("/", "_"),
                                                         args.duration, args.profile_rate))

                log(f"phase {name}: {n_clients} clients" + (f" x {args.batch_size} receipts" if name == "batch" else ""))
                await run_phase(phase, calls, args.warmup, args.duration, probe, on_window_start=on_window_start)
                for box in conns:
                    box[0].close()
                for proc, path in profilers:
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                    phase.profile.append(path)
                phases[name] = phase
                await count_in_window(args.database_url, phase, run_tag)
                print_phase(phase)
                if any(not code.startswith(("INVALID", "DUPLICATE", "MEMBER_CODE")) for code in phase.error_codes):
                    print("  server log (last lines):\n    " + server.log_tail(15).replace("\n", "\n    "))
                for path in phase.profile:
                    print(f"  profile: {path}")
            server.stop()
            server = None

        raw_phases = [p for p in args.phase_list if p in ("raw", "raw-steps")]
        if raw_phases:
            import asyncpg

            probe = CpuProbe(dbname, None, stats_conn)
            earns = RawEarns(member_ids, merchants, run_tag, args.seed + 1)
            await check_raw_schema(stats_conn)
            conns = [await asyncpg.connect(asyncpg_dsn(args.database_url)) for _ in range(args.raw_clients)]
            try:
                for name in raw_phases:
                    phase = Phase(name, "earns", args.raw_clients)
                    make = raw_one_call if name == "raw" else raw_steps_call
                    log(f"phase {name}: {args.raw_clients} asyncpg connections")
                    await run_phase(phase, [make(c, earns) for c in conns], args.warmup, args.duration, probe)
                    phases[name] = phase
                    await count_in_window(args.database_url, phase, run_tag)
                    print_phase(phase)
            finally:
                await asyncio.gather(*(c.close(timeout=5) for c in conns), return_exceptions=True)

        await stats_conn.close()
        stats_conn = None
        summary = print_summary(phases)
        verified = await verify(args.database_url, list(phases.values()), run_tag)
        if args.json is not None:
            args.json.write_text(json.dumps({
                "phases": summary, "verified": verified, "args": {
                    k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
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
    return 0 if verified else 1


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
