"""Insight benchmark (issue 13, "Scale and speed"): a big mall generated set-based on PostgreSQL, then in one run
the KPIs of a month and of a year through GraphQL against the same aggregates in raw SQL over the base
tables, the rollup's first (backfill) and nightly run times, RFM/lifecycle recomputation in members per second
against one raw set-based UPDATE of the same values, and a segment-like count. See bench/README.md.

    python -m bench.insight                # 1M members, 20M points entries over two years, 3M purchases
    python -m bench.insight --scale 0.1    # a tenth of each
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import date, timedelta

ADMIN_DSN = "postgres://postgres@127.0.0.1:5432/postgres"


def log(message: str) -> None:
    print(message, flush=True)


async def admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(ADMIN_DSN, timeout=10)
    try:
        await conn.execute(sql, timeout=120)
    finally:
        await conn.close()


# Generation, all set-based (generate_series). Members join uniformly over the two years; a member's
# purchases and points entries fall between joining and now; who buys is skewed (random()^2) so that
# there are frequent and rare buyers. balance_after of the generated entries is not maintained (no KPI
# reads it); balances are set to the sum of the entries at the end.
GEN_MERCHANTS = """
INSERT INTO merchant (code, name, category, floor, created_at)
SELECT 'B' || lpad(i::text, 4, '0'), 'Bench merchant ' || i, (ARRAY['餐饮', '服饰', '娱乐', '超市', '美妆'])[1 + i % 5],
       'F' || (1 + i % 6), now() - interval '3 years' FROM generate_series(1, $1) i
"""
GEN_MEMBERS = """
INSERT INTO member (phone, tier_id, growth_value, tier_period_start, created_at, updated_at)
SELECT '+86150' || lpad(i::text, 8, '0'), (SELECT min(id) FROM tier), 0, t, t, t
  FROM (SELECT i, $2::timestamptz + (i::float8 / $1) * ($3::timestamptz - $2::timestamptz) AS t
          FROM generate_series(1, $1) i) g
"""
GEN_ACCOUNTS = "INSERT INTO points_account (member_id, balance, updated_at) SELECT id, 0, now() FROM member"
# Member ids are contiguous from $4; a member's join time is a function of its id (as generated above).
GEN_PURCHASES = """
INSERT INTO purchase (merchant_id, member_id, receipt_no, amount_fen, refunded_fen, points_earned, points_reversed,
                      points_forgiven, growth_earned, growth_reversed, occurred_at, recorded_at)
SELECT mer, mem, 'BR' || i, amt, 0, amt / 100, 0, 0, amt / 100, 0, at, at
  FROM (SELECT i, $5 + floor(random() * $6)::int AS mer, m AS mem,
               (ARRAY[2800, 3600, 8800, 15800, 29900, 59900, 128000])[1 + floor(random() * 7)::int] AS amt,
               j + random() * ($3::timestamptz - j) AS at
          FROM (SELECT i, m, $2::timestamptz + ((m - $4 + 1)::float8 / $7) * ($3::timestamptz - $2::timestamptz) AS j
                  FROM (SELECT i, $4 + floor(power(random(), 2) * $7)::bigint AS m
                          FROM generate_series(1, $1) i) r) s) p
"""
# One EARN per purchase, at the purchase's time.
GEN_EARNS = """
INSERT INTO points_entry (account_id, kind, points, balance_after, reason, source_type, source_ref, occurred_at)
SELECT a.id, 'EARN', greatest(p.points_earned, 1), 0, 'bench purchase', 'purchase', p.id::text, p.occurred_at
  FROM purchase p JOIN points_account a ON a.member_id = p.member_id
"""
# The other entries: check-in earns, spends, expiries and adjustments, by the same skewed members.
GEN_OTHER = """
INSERT INTO points_entry (account_id, kind, points, balance_after, reason, source_type, source_ref, occurred_at)
SELECT acc, kind, CASE kind WHEN 'EARN' THEN 5 + (i % 20) WHEN 'SPEND' THEN -(20 + (i % 100))
                            WHEN 'EXPIRE' THEN -(5 + (i % 40)) ELSE 100 END,
       0, 'bench', CASE kind WHEN 'EXPIRE' THEN 'expiry_run' WHEN 'ADJUST' THEN 'operator' ELSE 'rule' END, NULL, at
  FROM (SELECT i, m - $4 + $6 AS acc, j + random() * ($3::timestamptz - j) AS at,
               CASE WHEN x < 0.58 THEN 'EARN' WHEN x < 0.88 THEN 'SPEND' WHEN x < 0.98 THEN 'EXPIRE' ELSE 'ADJUST' END AS kind
          FROM (SELECT i, m, random() AS x, $2::timestamptz + ((m - $4 + 1)::float8 / $5) * ($3::timestamptz - $2::timestamptz) AS j
                  FROM (SELECT i, $4 + floor(power(random(), 2) * $5)::bigint AS m FROM generate_series(1, $1) i) r) s) e
"""
SET_BALANCES = """
UPDATE points_account a SET balance = s.total FROM (SELECT account_id, sum(points) AS total FROM points_entry
 GROUP BY account_id) s WHERE s.account_id = a.id
"""

# The raw equivalents over the base tables: the range's aggregates, the totals at its end, and the daily
# series (what the GraphQL query returns), without the rollup.
RAW_DAILY = """
SELECT d, sum(p) AS purchases, sum(s) AS sales, sum(iss) AS issued, sum(red) AS redeemed, sum(exp) AS expired,
       sum(net) AS net
  FROM (SELECT (occurred_at AT TIME ZONE 'Asia/Shanghai')::date AS d, count(*) AS p, sum(amount_fen) AS s,
               0 AS iss, 0 AS red, 0 AS exp, 0 AS net FROM purchase WHERE occurred_at >= $1 AND occurred_at < $2 GROUP BY 1
        UNION ALL
        SELECT (occurred_at AT TIME ZONE 'Asia/Shanghai')::date, 0, 0, sum(CASE WHEN kind = 'EARN' THEN points ELSE 0 END),
               -sum(CASE WHEN kind = 'SPEND' THEN points ELSE 0 END), -sum(CASE WHEN kind = 'EXPIRE' THEN points ELSE 0 END),
               sum(points) FROM points_entry WHERE occurred_at >= $1 AND occurred_at < $2 GROUP BY 1) x GROUP BY d
"""
RAW_DAILY_DISTINCT = """
SELECT d, count(DISTINCT member_id) AS active FROM (
  SELECT (occurred_at AT TIME ZONE 'Asia/Shanghai')::date AS d, member_id FROM purchase WHERE occurred_at >= $1 AND occurred_at < $2
  UNION ALL SELECT (pe.occurred_at AT TIME ZONE 'Asia/Shanghai')::date, a.member_id FROM points_entry pe
   JOIN points_account a ON a.id = pe.account_id WHERE pe.kind IN ('EARN', 'SPEND') AND pe.occurred_at >= $1 AND pe.occurred_at < $2) u
 GROUP BY d
"""

# RFM/lifecycle as one raw set-based UPDATE of the same values over every member (ntile quintiles in the
# statement itself): the reference rate for the chunked recomputation.
RAW_RFM = """
WITH g AS (SELECT member_id, max(occurred_at) AS last_ever,
                  sum(CASE WHEN occurred_at >= $2 THEN 1 ELSE 0 END) AS fq,
                  sum(CASE WHEN occurred_at >= $2 THEN amount_fen ELSE 0 END) AS mon,
                  max(CASE WHEN occurred_at >= $2 THEN occurred_at END) AS last_window,
                  sum(CASE WHEN occurred_at >= $3 THEN 1 ELSE 0 END) AS recent,
                  sum(CASE WHEN occurred_at >= $4 AND occurred_at < $3 THEN 1 ELSE 0 END) AS prior
             FROM purchase GROUP BY member_id),
     q AS (SELECT member_id, ntile(5) OVER (ORDER BY fq) AS f, ntile(5) OVER (ORDER BY mon) AS m,
                  ntile(5) OVER (ORDER BY last_window) AS r FROM g WHERE fq > 0),
     v AS (SELECT m.id, CAST(floor(extract(epoch FROM ($1::timestamptz - coalesce(g.last_ever, m.created_at))) / 86400) AS INTEGER) AS rd,
                  coalesce(g.fq, 0) AS fq, coalesce(g.mon, 0) AS mon, coalesce(q.r, 0) AS r, coalesce(q.f, 0) AS f,
                  coalesce(q.m, 0) AS mm,
                  CASE WHEN m.created_at >= $5 THEN 'NEW' WHEN coalesce(g.last_ever, m.created_at) < $6 THEN 'LOST'
                       WHEN coalesce(g.last_ever, m.created_at) < $7 THEN 'DECLINING'
                       WHEN coalesce(g.recent, 0) > coalesce(g.prior, 0) THEN 'GROWING' ELSE 'STABLE' END AS stage
             FROM member m LEFT JOIN g ON g.member_id = m.id LEFT JOIN q ON q.member_id = m.id)
UPDATE member_insight mi SET recency_days = v.rd, frequency = v.fq, monetary_fen = v.mon, r = v.r, f = v.f, m = v.mm,
       lifecycle = v.stage, computed_at = $1 FROM v WHERE v.id = mi.member_id
"""
SEGMENT = """
SELECT count(*) FROM member_insight mi WHERE mi.lifecycle IN ('DECLINING', 'LOST') AND mi.m >= 4
   AND EXISTS (SELECT 1 FROM purchase p JOIN merchant me ON me.id = p.merchant_id
                WHERE p.member_id = mi.member_id AND me.category = '餐饮')
"""

KPI_QUERY = """query($from: Date!, $to: Date!) { kpis(from: $from, to: $to) {
  membersTotal membersNew membersActive purchases memberSalesYuan averageTicket { amountFen } repurchaseRatePermille
  pointsIssued pointsRedeemed pointsExpired pointsOutstanding breakageRatePermille
  daily { day membersActive purchases memberSalesYuan pointsIssued pointsRedeemed pointsExpired pointsOutstanding } } }"""


async def timed(fn, repeat: int = 1) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = await fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


async def generate(conn, scale: float, start, end) -> dict[str, int]:
    members = max(1000, int(1_000_000 * scale))
    purchases = max(3000, int(3_000_000 * scale))
    entries = max(20_000, int(20_000_000 * scale))
    merchants = 200
    await conn.execute("SET synchronous_commit = off")
    t0 = time.perf_counter()
    await conn.execute(GEN_MERCHANTS, merchants)
    await conn.execute(GEN_MEMBERS, members, start, end)
    await conn.execute(GEN_ACCOUNTS)
    first_member = await conn.fetchval("SELECT min(id) FROM member WHERE phone LIKE '+86150%'")
    first_account = await conn.fetchval("SELECT min(id) FROM points_account WHERE member_id = $1", first_member)
    first_merchant = await conn.fetchval("SELECT min(id) FROM merchant WHERE code LIKE 'B%'")
    log(f"  members and accounts: {members:,} in {time.perf_counter() - t0:.0f}s")
    t0 = time.perf_counter()
    await conn.execute(GEN_PURCHASES, purchases, start, end, first_member, first_merchant, merchants, members)
    log(f"  purchases: {purchases:,} in {time.perf_counter() - t0:.0f}s")
    t0 = time.perf_counter()
    await conn.execute(GEN_EARNS)
    others = max(0, entries - purchases)
    step = 2_000_000
    for done in range(0, others, step):
        await conn.execute(GEN_OTHER, min(step, others - done), start, end, first_member, members, first_account)
    await conn.execute(SET_BALANCES)
    log(f"  points entries: {purchases + others:,} in {time.perf_counter() - t0:.0f}s")
    t0 = time.perf_counter()
    await conn.execute("VACUUM ANALYZE")
    log(f"  vacuum analyze in {time.perf_counter() - t0:.0f}s")
    return {"members": members, "purchases": purchases, "entries": purchases + others}


async def run(args) -> None:
    import asyncpg

    dbname = "mallpoints_bench_insight"
    url = f"postgres://postgres@127.0.0.1:5432/{dbname}"
    os.environ["MALLPOINTS_DATABASE_URL"] = url + "?minsize=1&maxsize=4"
    os.environ.setdefault("MALLPOINTS_SECRET_KEY", "bench-insight-secret-key-0123456789abcdef")
    if not args.reuse:
        await admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        await admin(f'CREATE DATABASE "{dbname}"')
    try:
        await _measure(args, url, asyncpg)
    finally:
        from api import db

        await db.close_db()
        if args.keep:
            log(f"kept {dbname} (--keep): drop it with DROP DATABASE \"{dbname}\"")
        else:
            await admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            log(f"dropped {dbname}")


async def _measure(args, url: str, asyncpg) -> None:
    import httpx

    from api import db
    from api.app import create_app
    from api.config import Settings, set_settings
    from api.services import clock, insight, operators, signing
    from api.services.insight import sql as isql
    from api.services.insight.settings import insight_settings
    from seeds.loader import load_demo

    cfg = Settings.from_env()
    set_settings(cfg)
    if not args.reuse:
        await db.migrate_db(cfg)
    await db.close_db()
    await db.init_db(cfg)
    if not args.reuse:
        await load_demo(with_history=False)
    now = clock.now()
    today = clock.business_day(now)
    start = clock.day_bounds(today - timedelta(days=730))[0]
    end = clock.day_bounds(today - timedelta(days=1))[1] - timedelta(minutes=1)  # the data ends yesterday
    conn = await asyncpg.connect(url)
    if args.reuse:  # the mall and its rollup from an earlier --keep run
        row = await conn.fetchrow("SELECT (SELECT count(*) FROM member) AS members, (SELECT count(*) FROM purchase)"
                                  " AS purchases, (SELECT count(*) FROM points_entry) AS entries")
        sizes = {k: int(v) for k, v in dict(row).items()}
        backfill = insight.RollupResult(0, 0.0)
        log(f"reusing {sizes}")
    else:
        log(f"generating a mall at scale {args.scale} (two years up to yesterday) …")
        t0 = time.perf_counter()
        sizes = await generate(conn, args.scale, start, end)
        log(f"generated {sizes} in {time.perf_counter() - t0:.0f}s")
        backfill = await insight.rollup_run(now, max_days=1000)
        log(f"rollup, first run (backfill of {backfill.days_rolled} days): {backfill.seconds:.1f}s")
    nightly = await insight.rollup_run(clock.now(), max_days=1000)
    log(f"rollup, nightly run ({nightly.days_rolled} day(s) rolled): {nightly.seconds:.2f}s")

    op = await operators.create_operator(f"bench-{int(time.time())}", "Bench", "bench-insight-password", ["AUDITOR"])
    token = signing.issue_token("operator", op.id, 3600)
    app = create_app(manage_db=False)
    month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    month_end = today.replace(day=1) - timedelta(days=1)
    ranges = {"month": (month, month_end), "year": (today - timedelta(days=364), today)}
    rows = []
    if args.skip_kpis:
        ranges = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        for name, (lo, hi) in ranges.items():
            async def via_graphql(lo: date = lo, hi: date = hi) -> dict:
                r = await client.post("/admin/graphql", json={"query": KPI_QUERY, "variables": {
                    "from": lo.isoformat(), "to": hi.isoformat()}}, headers={"authorization": f"Bearer {token}"})
                body = r.json()
                assert "errors" not in body, body
                return body["data"]["kpis"]

            async def via_raw(lo: date = lo, hi: date = hi) -> dict:
                a, b = clock.day_bounds(lo)[0], clock.day_bounds(hi)[1]
                span = await conn.fetchrow(isql.SPAN_COUNTS, a, b)
                totals = await conn.fetchrow(isql.TOTALS_BEFORE, b)
                daily = await conn.fetch(RAW_DAILY, a, b)
                active = await conn.fetch(RAW_DAILY_DISTINCT, a, b)
                return {"purchases": span["purchases"], "membersActive": span["members_active"],
                        "pointsOutstanding": totals["points"], "days": len(daily), "active_days": len(active)}

            await via_graphql()  # warm the caches of both paths once
            g_time, g = await timed(via_graphql, args.repeat)
            r_time, r = await timed(via_raw, args.repeat)
            assert (g["purchases"], g["membersActive"], g["pointsOutstanding"]) == (
                r["purchases"], r["membersActive"], int(r["pointsOutstanding"])), (g, r)
            rows.append((name, lo, hi, g_time, r_time, g))
            log(f"KPIs {name} {lo}..{hi}: GraphQL {g_time * 1000:.0f} ms, raw SQL over base tables"
                f" {r_time * 1000:.0f} ms, ratio {r_time / g_time:.1f}x (purchases {g['purchases']:,}, active"
                f" {g['membersActive']:,}, repurchase {g['repurchaseRatePermille']}‰, outstanding {g['pointsOutstanding']:,})")

    first = await insight.recompute(clock.now())
    log(f"RFM/lifecycle first computation: {first.members:,} members in {first.seconds:.1f}s"
        f" ({first.members / first.seconds:,.0f} members/s, {first.stage_changes:,} history rows)")
    cfgi = insight_settings()
    # The recomputation and the raw UPDATE alternate (ours, raw, ours, raw …) so that both see the same
    # machine (it is shared); each rate is the median of its runs.
    ours_rates, raw_rates, updated = [], [], 0
    for _ in range(args.rfm_rounds):
        steady = await insight.recompute(clock.now())
        ours_rates.append(steady.members / steady.seconds)
        log(f"RFM/lifecycle recompute (chunks of {cfgi.chunk_members} members, one transaction each):"
            f" {steady.members:,} members in {steady.seconds:.1f}s ({ours_rates[-1]:,.0f} members/s)")
        at = clock.now()
        args_raw = (at, at - timedelta(days=cfgi.rfm_window_days), at - timedelta(days=cfgi.trend_days),
                    at - timedelta(days=2 * cfgi.trend_days), at - timedelta(days=cfgi.new_days),
                    at - timedelta(days=cfgi.lost_days), at - timedelta(days=cfgi.declining_days))
        t0 = time.perf_counter()
        status = await conn.execute(RAW_RFM, *args_raw)
        raw_seconds = time.perf_counter() - t0
        updated = int(status.split()[-1])
        raw_rates.append(updated / raw_seconds)
        log(f"raw set-based UPDATE (one statement, {updated:,} row locks held at once): {updated:,} members in"
            f" {raw_seconds:.1f}s ({raw_rates[-1]:,.0f} members/s)")
    ours, raw_rate = statistics.median(ours_rates), statistics.median(raw_rates)
    seg_time, seg = await timed(lambda: conn.fetchval(SEGMENT), args.repeat)
    stages = await insight.stage_counts()
    log(f"segment-like count (DECLINING or LOST, m >= 4, bought at 餐饮): {seg:,} in {seg_time * 1000:.0f} ms;"
        f" stages {stages}")
    await conn.close()

    log("\nsummary (one run; scale %s: %s)" % (args.scale, ", ".join(f"{k} {v:,}" for k, v in sizes.items())))
    for name, lo, hi, g_time, r_time, _ in rows:
        target = "  target >= 10x" if name == "year" else ""
        log(f"  KPIs {name:5} {lo}..{hi} GraphQL {g_time * 1000:7.0f} ms  raw {r_time * 1000:7.0f} ms"
            f"  ratio {r_time / g_time:5.1f}x{target}")
    log(f"  rollup backfill {backfill.seconds:.1f}s ({backfill.days_rolled} days), nightly run {nightly.seconds:.2f}s")
    log(f"  RFM recompute {ours:,.0f} members/s vs raw UPDATE {raw_rate:,.0f} members/s: ratio {ours / raw_rate:.2f}"
        "  target >= 0.5")
    log(f"  row locks at once: recompute <= {cfgi.chunk_members:,} (chunk), rollup 1 row per transaction; raw UPDATE {updated:,}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.insight", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=1.0, help="fraction of 1M members / 20M entries / 3M purchases")
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions of each query (median)")
    p.add_argument("--keep", action="store_true", help="keep the generated database (for profiling)")
    p.add_argument("--reuse", action="store_true", help="measure the database an earlier --keep run left")
    p.add_argument("--skip-kpis", action="store_true", help="only the rollup's nightly run, RFM and the segment")
    p.add_argument("--rfm-rounds", type=int, default=2, help="alternations of the recompute and the raw UPDATE")
    args = p.parse_args(argv)
    if not 0 < args.scale <= 1:
        sys.exit("--scale must be in (0, 1]")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
