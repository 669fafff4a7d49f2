"""Flash-sale load test: N members press "buy" on one sale of S units at the same moment, over HTTP,
with the Redis gate and on the database alone, measured in one run beside the raw rate of the
conditional stock update through asyncpg.

    python -m bench.flash_sale [--members 2000] [--stock 100] [--workers 2] [--phases redis,db,raw,steady]
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
  4b. phase "steady" (needs "redis"): sold-out answers under a steady load (wrk, 64 connections) from one
     mallpoints process and from the bare floor (bench/floor.py: the same JSON parse, bearer-token HMAC
     and one Redis EVAL of the gate script) in the same run (bench/steady.py);
  5. after every phase: checks straight from PostgreSQL (orders = S, stock = 0, at most one order per
     member, every member's points exact, the ledger invariant, no negative balance, ...) and prints
     PASS/FAIL lines; then a summary with the ratio of sold-out answer rates, Redis / database alone,
     against the 3x target, and of the steady phase, mallpoints ÷ the bare floor, against the 0.6 target;
  6. always stops the server, drops the database and flushes the bench's Redis database.

A benchmark is a figure, not a test: a failed check is printed loudly in the summary, and the exit
status is 0 unless the run itself broke.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.contest import (
    POINTS_WRITES,
    AdminApi,
    Bench,
    Contest,
    ContestServer,
    WarmUp,
    add_common_args,
    check_common_args,
    contest_figures,
    gate_key,
    global_id,
    ledger_checks,
    main_with,
    measure,
    median,
    ms,
    new_parser,
    payload_of,
    pk_of,
    print_checks,
    print_contest_notes,
    print_cpu,
    print_head,
    print_redis_stats,
    print_verdict,
    redis_db_pairs,
    run_bench,
    summary_label,
)
from bench.contest import (
    ratios as per_pair,
)
from bench.purchase_load import CpuProbe, log, pct
from bench.steady import (
    TARGET_FLOOR_RATIO,
    SteadyPhase,
    add_args,
    knows_trusted_documents,
    print_steady,
    redeem_body,
    run_steady,
    steady_figures,
)

DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/mallpoints_bench_flash"
TARGET_SOLD_OUT_RATIO = 3.0  # sold-out answers with Redis >= 3x the rate of the database-only path
ALL_PHASES = ("redis", "db", "raw", "steady")

# The request: clients/member/FlashSaleRedeem.graphql as the mini-program sends it (bench/steady.py's
# redeem_body), by its hash when the server knows trusted documents, else its text.
RAW_UPDATE = "UPDATE flash_sale SET stock = stock - 1 WHERE id = $1 AND stock >= 1"

# Columns the bench writes with raw SQL; a NOT NULL column without a default that is missing here
# means the schema moved on (checked before writing; Tortoise emits no database defaults).
SQL_WRITES = {
    **POINTS_WRITES,
    "flash_sale": {"id", "product_id", "title", "points_price", "stock", "stock_total", "per_member_limit",
                   "starts_at", "ends_at", "status", "created_at", "updated_at"},
    "product": {"id", "kind", "name", "image_urls", "validity_days", "points_price", "cash_price_fen", "stock",
                "status", "created_at", "updated_at"},
}




# --- set-up: product and sales -----------------------------------------------------------------------

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



async def admin_sale(admin: AdminApi, product_id: int, title: str, price: int, stock: int) -> int:
    now = datetime.now(UTC)
    payload = await admin.mutate(
        "flashSaleCreate", "FlashSaleCreateInput", "flashSale { id }",
        {"productId": global_id("Product", product_id), "title": title, "pointsPrice": price, "stock": stock,
         "perMemberLimit": 1, "startsAt": (now - timedelta(seconds=5)).isoformat(),
         "endsAt": (now + timedelta(hours=2)).isoformat()})
    return pk_of(payload["flashSale"]["id"], "FlashSale")


# --- the HTTP contest ---------------------------------------------------------------------------------

@dataclass
class FlashContest(Contest):
    sale_id: int = 0
    sold_out_latencies: list[float] = field(default_factory=list)
    ok_latencies: list[float] = field(default_factory=list)
    sold_out_wall: float = 0.0  # first send to the last sold-out answer
    sold_out_after: float | None = None  # first send to the S-th success seen
    buyers: dict[int, tuple[int | None, int | None]] = field(default_factory=dict)  # member -> (order, balance)
    gate: str = ""

    @property
    def sold_out(self) -> int:
        return self.outcomes.get("OUT_OF_STOCK", 0)

    @property
    def sold_out_rate(self) -> float:
        return self.sold_out / self.sold_out_wall if self.sold_out_wall else 0.0


STAT_TABLES = ("flash_sale", "idempotency_record", "mall_order", "product", "points_account")


def classify(status: int, raw: bytes) -> tuple[str, tuple[int | None, int | None], str | None]:
    """(outcome, (order pk, points balance), top-level error text) of one answer."""
    outcome, payload, top = payload_of(status, raw, "flashSaleRedeem")
    if payload is None:
        return outcome, (None, None), top
    order = payload.get("order")
    if not order:
        return "NO_ORDER", (None, None), None
    return "OK", (pk_of(order["id"], "MallOrder"), payload.get("pointsBalance")), None


def redeem_request(port: int, token: str, variables: dict[str, Any], by_hash: bool) -> bytes:
    body = redeem_body(variables, by_hash)
    head = (f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def run_http_phase(bench: Bench, server: ContestServer, name: str, kind: str, sale_id: int, warm_sale_id: int,
                         probe: CpuProbe) -> FlashContest:
    args, member_ids, tokens, run_tag = bench.args, bench.member_ids, bench.tokens, bench.run_tag
    contest = FlashContest(name, kind, len(member_ids), sale_id=sale_id)
    tag = f"{run_tag}-{name}"
    warm_gid = global_id("FlashSale", warm_sale_id)
    by_hash = await knows_trusted_documents(server.port, tokens[0], {"input": {
        "flashSaleId": warm_gid, "idempotencyKey": f"probe-{tag}"}})
    log(f"phase {name}: flashSaleRedeem sent as " + ("the trusted document's hash" if by_hash else "its full text"))
    warm = WarmUp(args.warm_connections, args.warm_rounds, args.warm_mutations,
                  lambda k, r: redeem_request(server.port, tokens[k], {"input": {
                      "flashSaleId": warm_gid, "idempotencyKey": f"warm-{tag}-{r}-{member_ids[k]}"}}, by_hash),
                  lambda status, raw: "redeem " + (classify(status, raw)[0] if status == 200 else f"HTTP_{status}"))
    gid = global_id("FlashSale", sale_id)
    requests = [[redeem_request(server.port, tokens[k], {"input": {
                    "flashSaleId": gid, "idempotencyKey": f"fs-{run_tag}-{name}-{m}"}}, by_hash)]
                for k, m in enumerate(member_ids)]
    shots = await measure(args, contest, server, tokens, warm, requests, classify, probe,
                          bench.redis_client if kind == "redis" else None, STAT_TABLES,
                          f"{len(requests)} flashSaleRedeem at once on sale {sale_id} ({args.stock} units)")
    t0 = min(s.send for s in shots)
    ok_times = []
    for s in shots:
        latency = s.done - s.send
        if s.outcome == "OUT_OF_STOCK":
            contest.sold_out_latencies.append(latency)
            contest.sold_out_wall = max(contest.sold_out_wall, s.done - t0)
        elif s.outcome == "OK":
            contest.ok_latencies.append(latency)
            ok_times.append(s.done - t0)
            contest.buyers[member_ids[s.k]] = s.result
    ok_times.sort()
    if len(ok_times) >= args.stock:
        contest.sold_out_after = ok_times[args.stock - 1]
    contest.sold_out_latencies.sort()
    contest.ok_latencies.sort()
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

async def verify_http(conn, contest: FlashContest, args, member_ids: list[int], bought: Counter, sale_ids: list[int],
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
    checks.extend(await ledger_checks(conn, member_ids))
    linked = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE e.id IS NULL OR e.points <> -o.points OR e.kind <> 'SPEND') AS bad_entry,"
        " count(*) FILTER (WHERE (SELECT count(*) FROM voucher v WHERE v.order_id = o.id) <> o.quantity) AS bad_vouchers"
        " FROM mall_order o LEFT JOIN points_entry e ON e.id = o.spend_entry_id WHERE o.flash_sale_id = $1",
        contest.sale_id)
    checks.append(("every order has its SPEND entry (-price) and its voucher",
                   linked["bad_entry"] == 0 and linked["bad_vouchers"] == 0,
                   f"{linked['bad_entry']} without the entry, {linked['bad_vouchers']} without the voucher"))
    if redis_client is not None:
        tag = await gate_key(conn, f"mallpoints:{{fs:{contest.sale_id}}}")
        stock, buyers = await redis_client.get(f"{tag}:stock"), await redis_client.hlen(f"{tag}:buyers")
        contest.gate = f"gate after the contest: stock {stock.decode() if stock else None}, {buyers} buyers"
        checks.append(("the Redis gate agrees: stock 0, S buyers", stock is not None and int(stock) == 0 and buyers == S,
                       contest.gate))


# --- reporting ----------------------------------------------------------------------------------------------

def print_contest(c: FlashContest, args) -> None:
    so, okl = c.sold_out_latencies, c.ok_latencies
    print_head(c, f"{c.members} members at once on {args.stock} units"
                  f" ({'Redis gate in front' if c.kind == 'redis' else 'database alone'}), sale {c.sale_id}", "request")
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
    print_redis_stats(c.redis_stats)
    print_contest_notes(c, c.gate)


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


def print_summary(contests: dict[str, FlashContest], raw: RawPhase | None, args,
                  steady: SteadyPhase | None = None) -> dict[str, Any]:
    print()
    print(f"summary (one run; {args.members} members, {args.stock} units, {args.workers} workers; ratios are what"
          " count on a shared machine)")
    print(f"  {'phase':<30} {'wall s':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
          f" {'sold-out/s':>10} {'s-o p50':>8} {'sold out at':>11} {'gate→db':>7}  checks")
    out: dict[str, Any] = {"phases": {}}
    for name, c in contests.items():
        good = c.passed
        label = summary_label(name, c.kind, "HTTP, Redis gate")
        so_at = f"{ms(c.sold_out_after)} ms" if c.sold_out_after is not None else "-"
        print(f"  {label:<30} {c.wall:>7.3f} {c.rps:>8,.0f} {ms(pct(c.latencies, .5)):>8} {ms(pct(c.latencies, .95)):>8}"
              f" {ms(pct(c.latencies, .99)):>8} {c.sold_out_rate:>10,.0f} {ms(pct(c.sold_out_latencies, .5)):>8}"
              f" {so_at:>11} {c.fallbacks if c.kind == 'redis' else '-':>7}  {'PASS' if good else 'FAIL'}")
        out["phases"][name] = {
            **contest_figures(c), "sold_out": c.sold_out,
            "sold_out_wall_s": round(c.sold_out_wall, 4), "sold_out_per_s": round(c.sold_out_rate, 1),
            "sold_out_p50_ms": round(pct(c.sold_out_latencies, .5) * 1000, 2),
            "sold_out_after_ms": None if c.sold_out_after is None else round(c.sold_out_after * 1000, 2)}
    if raw is not None:
        good = all(g for _, g, _ in raw.checks)
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
    pairs = redis_db_pairs(contests)
    if pairs:
        ratios = per_pair(pairs, lambda c: c.sold_out_rate)
        rps_ratios = per_pair(pairs, lambda c: c.rps)
        lat_ratios = per_pair(pairs, lambda c: pct(c.sold_out_latencies, .5), invert=True)
        ratio, rps_ratio, lat_ratio = median(ratios), median(rps_ratios), median(lat_ratios)
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
    raw_failed = [f"raw: {label} ({detail})" for label, g, detail in raw.checks if not g] if raw is not None else []
    if steady is not None:
        out["steady"] = steady_figures(steady)
        raw_failed += [f"steady: {label} ({detail})" for label, g, detail in steady.checks if not g]
        if steady.ratio is not None and steady.server is not None and steady.floor is not None:
            verdict = "met" if steady.ratio >= TARGET_FLOOR_RATIO else "NOT met"
            print(f"  steady sold-out answers/s, mallpoints ÷ bare floor: {steady.server.rps:,.0f} ÷"
                  f" {steady.floor.rps:,.0f} = {steady.ratio:.2f}   (target ≥ {TARGET_FLOOR_RATIO}: {verdict};"
                  f" {steady.mode})")
    out["all_checks_pass"] = print_verdict(contests, "requests", "no oversell, no double order, points exact",
                                           raw_failed)
    return out


# --- main ---------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = new_parser("flash_sale", __doc__, ALL_PHASES, "members, one request each per phase (2000)")
    p.add_argument("--stock", type=int, default=100, help="units per sale (100)")
    p.add_argument("--price", type=int, default=100, help="points per unit (100)")
    p.add_argument("--raw-pool", type=int, default=20, help="asyncpg connections of the raw phase (20)")
    p.add_argument("--sale-setup", choices=("admin", "sql"), default="admin",
                   help="create product and sales through the admin GraphQL as an operator does (default; with"
                        " Redis the gate is loaded at creation) or by SQL (the gate then loads on the first request)")
    add_args(p)
    add_common_args(p, DEFAULT_DB_URL, "flashSaleRedeem on a sold-out warm-up sale")
    args = p.parse_args(argv)
    check_common_args(p, args, ALL_PHASES)
    if "steady" in args.phase_list and "redis" not in args.phase_list:
        p.error("the steady phase needs the redis phase (its Redis database is flushed at the end)")
    if not 1 <= args.stock < args.members:
        p.error("--stock must be at least 1 and below --members (the sale must sell out)")
    contests = args.rounds * len([x for x in args.phase_list if x in ("redis", "db")])
    if args.points is None:
        args.points = max(1000, args.price * contests)
    if args.points < args.price * contests:
        p.error(f"--points must cover one unit in each HTTP contest (at least {contests} x --price)")
    return args


async def amain(args) -> int:
    product_id: int | None = None
    warm_sale_id: int | None = None
    sale_ids: list[int] = []
    bought: Counter = Counter()

    async def phase(bench: Bench, server: ContestServer, name: str, kind: str) -> FlashContest:
        nonlocal product_id, warm_sale_id
        conn = bench.stats_conn
        title = f"bench flash sale {bench.run_tag} {name}"
        if args.sale_setup == "admin":
            admin = AdminApi(server.port)
            await admin.login(bench.admin_password)
            if product_id is None:
                product_id = await admin.product(args.price, "bench: flash-sale coupon")
            sale_id = await admin_sale(admin, product_id, title, args.price, args.stock)
        else:
            if product_id is None:
                product_id = await sql_product(conn, args.price)
            sale_id = await sql_sale(conn, product_id, title, args.price, args.stock)
        sale_ids.append(sale_id)
        if kind == "redis":
            stock = await bench.redis_client.get(await gate_key(conn, f"mallpoints:{{fs:{sale_id}}}:stock"))
            log(f"sale {sale_id} created ({args.sale_setup}); Redis gate "
                + (f"loaded, stock {stock.decode()}" if stock is not None else "not loaded yet (loads on first request)"))
        else:
            log(f"sale {sale_id} created ({args.sale_setup})")
        probe = CpuProbe(bench.dbname, server.proc.pid if server.proc else None, conn)
        if warm_sale_id is None:  # sold out from the start: the warm-up's redeems never buy
            warm_sale_id = await sql_sale(conn, product_id, f"bench warm-up {bench.run_tag} (sold out)", args.price, 0, 1)
        return await run_http_phase(bench, server, name, kind, sale_id, warm_sale_id, probe)

    async def after(bench: Bench, contest: FlashContest) -> None:
        await verify_http(bench.stats_conn, contest, args, bench.member_ids, bought, sale_ids,
                          bench.redis_client if contest.kind == "redis" else None)
        print_contest(contest, args)

    async def rest(bench: Bench, contests: dict[str, FlashContest]) -> dict[str, Any]:
        nonlocal product_id
        raw = None
        if "raw" in args.phase_list:
            if product_id is None:
                product_id = await sql_product(bench.stats_conn, args.price)
            raw = await run_raw(args, bench.dsn, product_id, CpuProbe(bench.dbname, None, bench.stats_conn))
            print_raw(raw, args)
        steady = None
        if "steady" in args.phase_list:
            if product_id is None:
                product_id = await sql_product(bench.stats_conn, args.price)
            sale_id = await sql_sale(bench.stats_conn, product_id, f"bench steady {bench.run_tag} (sold out)",
                                     args.price, 0, 1)
            env = {**os.environ, "MALLPOINTS_REDIS_URL": args.redis_url}
            steady = await run_steady(bench, args, sale_id, env)
            print_steady(steady)
        return print_summary(contests, raw, args, steady)

    headline = (f"mallpoints flash-sale load test: phases {','.join(args.phase_list)}; {args.members} members at once on"
                f" {args.stock} units at {args.price} points")
    return await run_bench(args, headline, "mallpoints-flash-", "bench: flash-sale float", SQL_WRITES,
                           "bench/flash_sale.py", STAT_TABLES, phase, after, rest)


def main(argv: list[str] | None = None) -> None:
    main_with(parse_args, amain, argv)


if __name__ == "__main__":
    main()
