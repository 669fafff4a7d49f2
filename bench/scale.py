"""bench/scale: the growth curve (issue 15 item 4).

For each size (members) a PostgreSQL database `mallpoints_bench_scale_<size>` is made, migrated, seeded
with the demo tiers and merchants, and filled by set-based SQL (generate_series) with a proportionate
mall: per member one points account, 4 earned lots (one spent in part), 5 ledger entries (4 EARN, 1
SPEND) and 1 lot move; 2% of the members have a lot due for expiry, 0.5% a tier period that has ended.
Then, in this process, through the services the server runs:

- earn:   `purchases.record_purchase` (the till's earn, group commit included), --clients concurrent
          callers on random members for --seconds; earns per second;
- page:   `ledger.entries_page(member, 20)` of 300 random members; median and p95 ms;
- expiry: `ledger.expire_due(now)`: seconds, due lots per second;
- tiers:  `tiers.evaluate_periods(now)`: seconds, members per second;
- rollup: the insight rollup's nightly run (`insight.rollup.run` the next morning, right after the earn
          phase: the day of its receipts) and, set-based, the heaviest day there is (the day every generated
          member earned a lot);
- sizes:  database and ledger tables' bytes, bytes per member.

Then it prints, per figure, how it grows from size to size (flat, linear or worse, from the exponent
log(b/a) / log(n_b/n_a)) and where the first wall on this machine's memory is (the size at which the
database no longer fits in RAM, from the measured bytes per member). The databases are dropped at the
end unless --keep.

    python -m bench.scale --sizes 100000,1000000
"""
from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import statistics
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg

ADMIN_DSN = "postgres://postgres@127.0.0.1:5432/postgres"
DUE_SHARE = 0.02  # members with a lot due for expiry at the run
TIER_DUE_SHARE = 0.005  # members whose tier period ended

# Why SQL: tens of millions of rows are made in a few set-based statements (the ORM would take hours).
# Ids are computed from the member number, so entries, lots and moves refer to each other without joins.
GENERATE = [
    """INSERT INTO member (id, phone, tier_id, growth_value, tier_period_start, created_at, updated_at)
       SELECT g, '+86139' || lpad(g::text, 8, '0'), (SELECT id FROM tier ORDER BY growth_threshold LIMIT 1),
              (g % 5000), CASE WHEN g % 200 = 0 THEN now() - interval '13 months'
                               ELSE now() - ((g % 300) || ' days')::interval END,
              now() - interval '1 year', now()
       FROM generate_series($1::bigint, $2::bigint) g""",
    """INSERT INTO points_account (id, member_id, balance, updated_at)
       SELECT g, g, 350, now() FROM generate_series($1::bigint, $2::bigint) g""",
    # entries 5g-4 .. 5g: four EARN of 100 and one SPEND of 50 (drawn from the first lot)
    """INSERT INTO points_entry (id, account_id, kind, points, balance_after, reason, source_type, source_ref,
                                 occurred_at, expires_at)
       SELECT 5 * g - 5 + k, g, CASE WHEN k = 5 THEN 'SPEND' ELSE 'EARN' END,
              CASE WHEN k = 5 THEN -50 ELSE 100 END, CASE WHEN k = 5 THEN 350 ELSE 100 * k END,
              'scale', CASE WHEN k = 5 THEN 'till_payment' ELSE 'purchase' END, NULL,
              now() - ((400 - k * 60) || ' days')::interval,
              CASE WHEN k = 5 THEN NULL ELSE now() - ((400 - k * 60) || ' days')::interval + interval '12 months'
                   - CASE WHEN k = 1 AND g % 50 = 0 THEN interval '60 days' ELSE interval '0' END END
       FROM generate_series($1::bigint, $2::bigint) g, generate_series(1, 5) k""",
    """INSERT INTO points_lot (id, account_id, kind, entry_id, points, remaining, earned_at, expires_at)
       SELECT 4 * g - 4 + k, g, 'EARN', 5 * g - 5 + k, 100, CASE WHEN k = 1 THEN 50 ELSE 100 END,
              e.occurred_at, e.expires_at
       FROM generate_series($1::bigint, $2::bigint) g, generate_series(1, 4) k
       JOIN LATERAL (SELECT occurred_at, expires_at FROM points_entry WHERE id = 5 * g - 5 + k) e ON TRUE""",
    """INSERT INTO points_lot_move (id, entry_id, lot_id, delta)
       SELECT g, 5 * g, 4 * g - 3, -50 FROM generate_series($1::bigint, $2::bigint) g""",
]
CHUNK = 250_000  # members per generation statement (bounded memory and WAL per statement)
RESEQUENCE = [
    "SELECT setval(pg_get_serial_sequence('member', 'id'), (SELECT max(id) FROM member))",
    "SELECT setval(pg_get_serial_sequence('points_account', 'id'), (SELECT max(id) FROM points_account))",
    "SELECT setval(pg_get_serial_sequence('points_entry', 'id'), (SELECT max(id) FROM points_entry))",
    "SELECT setval(pg_get_serial_sequence('points_lot', 'id'), (SELECT max(id) FROM points_lot))",
    "SELECT setval(pg_get_serial_sequence('points_lot_move', 'id'), (SELECT max(id) FROM points_lot_move))",
]


@dataclass
class Figures:
    size: int
    build_seconds: float = 0.0
    earn_per_second: float = 0.0
    page_median_ms: float = 0.0
    page_p95_ms: float = 0.0
    expiry_seconds: float = 0.0
    expiry_lots: int = 0
    tier_seconds: float = 0.0
    tier_members: int = 0
    rollup_seconds: float = 0.0
    heavy_day_seconds: float = 0.0
    heavy_day_entries: int = 0
    db_bytes: int = 0
    receipts: int = 0
    receipt_bytes: float = 0.0
    tables: dict[str, int] = field(default_factory=dict)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


async def connect(dsn: str) -> asyncpg.Connection:
    """A connection, waiting while a shared PostgreSQL is at max_connections."""
    for attempt in range(60):
        try:
            return await asyncpg.connect(dsn)
        except asyncpg.TooManyConnectionsError:
            log(f"  PostgreSQL has too many clients; waiting ({attempt + 1})")
            await asyncio.sleep(5)
    raise RuntimeError("PostgreSQL stayed at max_connections")


async def admin(sql: str) -> None:
    conn = await connect(ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def build(size: int, dsn: str, name: str) -> float:
    from api import db
    from api.config import Settings, set_settings
    from seeds.loader import load_demo

    await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin(f'CREATE DATABASE "{name}"')
    cfg = Settings(database_url=dsn, secret_key="bench-scale-secret-key-0123456789abcdef", scheduler_enabled=False)
    set_settings(cfg)
    for attempt in range(60):  # a shared PostgreSQL may be at max_connections for a while
        try:
            await db.migrate_db(cfg)
            await db.close_db()
            await db.init_db(cfg)
            await db.fetch("SELECT 1")
            break
        except asyncpg.TooManyConnectionsError:
            await db.close_db()
            log(f"  PostgreSQL has too many clients; retrying ({attempt + 1})")
            await asyncio.sleep(5)
    await load_demo(with_history=False)
    started = time.monotonic()
    conn = await connect(dsn.split("?")[0].replace("postgres://", "postgresql://", 1))
    try:
        # The demo seed made a few members of its own: the generated ones start after them.
        offset = int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM member")) + 1000
        for lo in range(offset, offset + size, CHUNK):
            hi = min(lo + CHUNK - 1, offset + size - 1)
            async with conn.transaction():
                for statement in GENERATE:
                    await conn.execute(statement, lo, hi)
            log(f"  {hi - offset + 1:,} of {size:,} members")
        for statement in RESEQUENCE:
            await conn.execute(statement)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return time.monotonic() - started


async def measure(fig: Figures, clients: int, seconds: float) -> None:
    from api import db
    from api.services import clock, ledger, merchants, purchases, signing, tiers

    ids = [int(r["id"]) for r in await db.fetch("SELECT id FROM member ORDER BY random() LIMIT 5000")]
    merchant = await merchants.active_by_code("M001", [])
    identity = purchases.IntegrationIdentity("bench", "bench", frozenset({merchant.id}))

    # earn
    size_before = int(await db.fetchval("SELECT pg_database_size(current_database())"))
    stop = time.monotonic() + seconds
    done = 0

    async def caller() -> None:
        nonlocal done
        while time.monotonic() < stop:
            member = random.choice(ids)
            data = purchases.PurchaseInput(signing.issue_member_code(member, 120)[0], "M001", uuid.uuid4().hex[:20],
                                           random.randint(1000, 50000), clock.now(), uuid.uuid4().hex)
            await purchases.record_purchase(identity, data)
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(clients)))
    fig.earn_per_second = done / (time.monotonic() - started)
    await db.fetch("CHECKPOINT")  # the new rows' pages reach the table files before they are measured
    fig.receipts = done
    fig.receipt_bytes = (int(await db.fetchval("SELECT pg_database_size(current_database())")) - size_before) / max(done, 1)

    # insight rollup, the nightly run: it rolls today (the earn phase's receipts), measured before the expiry
    # run and the tier evaluation write their entries into the same day
    from api.services.insight import rollup

    t = time.monotonic()
    nightly = await rollup.run(clock.now() + timedelta(days=1), max_days=1)
    fig.rollup_seconds = time.monotonic() - t
    assert nightly.days_rolled == 1, nightly

    # a member's ledger page
    times = []
    for member in random.sample(ids, 300):
        t = time.perf_counter()
        await ledger.entries_page(member, 20, None)
        times.append((time.perf_counter() - t) * 1000)
    fig.page_median_ms = statistics.median(times)
    fig.page_p95_ms = sorted(times)[int(len(times) * 0.95)]

    # expiry run
    t = time.monotonic()
    result = await ledger.expire_due(clock.now())
    fig.expiry_seconds, fig.expiry_lots = time.monotonic() - t, result.lots_expired

    # tier evaluation
    t = time.monotonic()
    evaluated = await tiers.evaluate_periods(clock.now() + timedelta(seconds=1))
    fig.tier_seconds, fig.tier_members = time.monotonic() - t, evaluated.members_evaluated

    # insight rollup: the heaviest day (the nightly run was measured after the earn phase)
    heavy = clock.business_day(clock.now() - timedelta(days=340))  # every member's first lot (k = 1)
    start, end = clock.day_bounds(heavy)
    fig.heavy_day_entries = int(await db.fetchval(
        "SELECT count(*) FROM points_entry WHERE occurred_at >= $1 AND occurred_at < $2", start, end))
    t = time.monotonic()
    async with db.transaction() as tx:
        await rollup.roll_day(tx, heavy)
    fig.heavy_day_seconds = time.monotonic() - t

    fig.db_bytes = int(await db.fetchval("SELECT pg_database_size(current_database())"))
    for table in ("member", "points_account", "points_entry", "points_lot", "points_lot_move", "purchase"):
        rows = await db.fetch(f"SELECT pg_total_relation_size('{table}') AS b")
        fig.tables[table] = int(rows[0]["b"])


def growth(a: float, b: float, na: int, nb: int) -> str:
    if a <= 0 or b <= 0:
        return "n/a"
    exponent = math.log(b / a) / math.log(nb / na)
    word = "flat" if exponent < 0.25 else "sub-linear" if exponent < 0.8 else "linear" if exponent < 1.25 else "worse than linear"
    return f"{b / a:5.2f}x ({word}, exponent {exponent:.2f})"


def report(figs: list[Figures], memory_bytes: int) -> None:
    print("\n== bench/scale: one run, PostgreSQL on this machine ==")
    head = f"{'members':>11} {'build s':>8} {'earn/s':>8} {'page ms p50/p95':>16} {'expiry s (lots)':>18} " \
           f"{'tiers s (members)':>18} {'db MiB':>8} {'B/member':>9}"
    print(head)
    for f in figs:
        print(f"{f.size:>11,} {f.build_seconds:>8.1f} {f.earn_per_second:>8.0f} "
              f"{f.page_median_ms:>7.2f}/{f.page_p95_ms:<8.2f} {f.expiry_seconds:>8.2f} ({f.expiry_lots:>7,}) "
              f"{f.tier_seconds:>8.2f} ({f.tier_members:>7,}) {f.db_bytes / 2**20:>8.0f} {f.db_bytes / f.size:>9.0f}")
    for f in figs:
        print(f"  {f.size:,}: {f.receipts:,} receipts earned, about {f.receipt_bytes:,.0f} bytes of database each")
        print(f"  {f.size:,}: per-unit expiry {f.expiry_lots / max(f.expiry_seconds, 1e-9):,.0f} lots/s, "
              f"tiers {f.tier_members / max(f.tier_seconds, 1e-9):,.0f} members/s; rollup nightly "
              f"{f.rollup_seconds:.2f} s, heaviest day {f.heavy_day_seconds:.2f} s ({f.heavy_day_entries:,} entries); "
              "tables MiB "
              + ", ".join(f"{t} {b / 2**20:.0f}" for t, b in f.tables.items()))
    for a, b in zip(figs, figs[1:], strict=False):
        print(f"\ngrowth {a.size:,} -> {b.size:,} members ({b.size / a.size:.0f}x):")
        print(f"  earn rate        {growth(a.earn_per_second, b.earn_per_second, a.size, b.size)}  (flat is right)")
        print(f"  ledger page p50  {growth(a.page_median_ms, b.page_median_ms, a.size, b.size)}  (flat is right)")
        print(f"  expiry run       {growth(a.expiry_seconds, b.expiry_seconds, a.size, b.size)}  "
              f"(due lots grow {b.expiry_lots / max(a.expiry_lots, 1):.0f}x: linear is right)")
        print(f"  tier evaluation  {growth(a.tier_seconds, b.tier_seconds, a.size, b.size)}  "
              f"(due members grow {b.tier_members / max(a.tier_members, 1):.0f}x: linear is right)")
        print(f"  rollup, nightly  {growth(a.rollup_seconds, b.rollup_seconds, a.size, b.size)}  (flat is right)")
        print(f"  rollup, heaviest {growth(a.heavy_day_seconds, b.heavy_day_seconds, a.size, b.size)}  "
              f"(its entries grow {b.heavy_day_entries / max(a.heavy_day_entries, 1):.0f}x: linear is right)")
        print(f"  database size    {growth(a.db_bytes, b.db_bytes, a.size, b.size)}")
    last = figs[-1]
    per_member = last.db_bytes / last.size
    wall = memory_bytes / per_member
    print(f"\nfirst wall: the whole database stops fitting in this machine's {memory_bytes / 2**30:.0f} GiB at about "
          f"{wall / 1e6:.1f} million members ({per_member:.0f} bytes per member with this history); past it, "
          "ledger pages and earns read cold pages from disk while the working set (accounts, recent lots) still fits.")


def memory_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--keep", action="store_true", help="keep the generated databases")
    args = parser.parse_args()
    from api import db

    figs = []
    for size in [int(s) for s in args.sizes.split(",")]:
        name = f"mallpoints_bench_scale_{size}"
        dsn = f"postgres://postgres@127.0.0.1:5432/{name}?minsize=8&maxsize=8"
        log(f"building {size:,} members in {name}")
        fig = Figures(size)
        try:
            fig.build_seconds = await build(size, dsn, name)
            log(f"built in {fig.build_seconds:.0f} s; measuring")
            await measure(fig, args.clients, args.seconds)
            figs.append(fig)
            log(f"{size:,}: earn {fig.earn_per_second:.0f}/s, page {fig.page_median_ms:.2f} ms, expiry "
                f"{fig.expiry_seconds:.1f} s ({fig.expiry_lots} lots), tiers {fig.tier_seconds:.1f} s "
                f"({fig.tier_members} members), rollup {fig.rollup_seconds:.2f} s nightly, "
                f"{fig.heavy_day_seconds:.1f} s heaviest day, db {fig.db_bytes / 2**20:.0f} MiB")
        finally:
            await db.close_db()
            if not args.keep:
                await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    report(figs, memory_bytes())


if __name__ == "__main__":
    os.environ.setdefault("MALLPOINTS_ENV", "development")
    asyncio.run(main())
