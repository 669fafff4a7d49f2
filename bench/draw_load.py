"""Lucky-draw load test: N members each play one wheel K times, all members at the same moment, over
HTTP, with the Redis prize gate and on the database alone, measured in one run.

    python -m bench.draw_load [--members 2000] [--plays 3] [--cost 10] [--workers 2] [--phases redis,db,raw]
                              [--database-url postgres://postgres@127.0.0.1:5432/mallpoints_bench_draw]
                              [--redis-url redis://127.0.0.1:6379/11]

What one run does (see bench/README.md; the harness is bench/contest.py, shared with bench/flash_sale.py):
  1. creates a fresh database (its name must start with `mallpoints_bench`), applies the migrations,
     loads the demo seeds and bulk-inserts --members members with their points accounts, then gives
     every member --points points (default: exactly --cost x --plays per HTTP phase);
  2. phase "redis": flushes the bench's Redis database (db 11 by default, nothing else), starts
     `uvicorn api.app:create_app --factory --workers W` with MALLPOINTS_REDIS_URL, signs in as the
     operator `admin` and creates through the admin GraphQL a COUPON product (once), a warm-up wheel
     whose only prize has no stock (once: its plays are refused OUT_OF_STOCK without a transaction)
     and the phase's wheel (`drawGameCreate`, on now, --cost points a play, no free plays, no limits):
       top prize   POINTS 888  weight   100  stock 1
       50 points   POINTS  50  weight 1,000  stock 50
       coupon      COUPON      weight 1,000  stock 100
       thanks      NOTHING     weight 5,000  unlimited
     (the prize gates load from the database on the first reservation, as they do in production);
     opens one keep-alive connection per member, primes each with a GET, warms both workers up (a
     read-only query, then plays on the warm-up wheel), waits 11 s (--pause: PostgreSQL's statistics
     catch up), then fires everything at once: every connection sends its member's K `luckyDrawPlay`
     one after another (the next as soon as the previous one is answered: a member taps again when the
     wheel stops; N plays are in flight at any moment), each with its own idempotency key;
  3. phase "db": the same with a new wheel and the server restarted without MALLPOINTS_REDIS_URL;
  4. after every phase: the figures (plays/s, latency, outcomes, prizes granted, redraws, CPU of the
     load generator, the server and PostgreSQL and what other processes took, pg_stat and Redis
     counters) and checks straight from PostgreSQL, printed as PASS/FAIL lines: N x K plays, all
     answered OK and recorded as seen; every prize's stock >= 0 and stock_total - stock = the plays
     that won it; the top prize granted at most once; every member's points exact; every grant has
     its entry or its order and voucher; the ledger invariant; with Redis, the gates agree with the
     database; then a summary with both phases side by side and the ratio plays/s Redis ÷ database;
  4b. phase "raw" (the yardstick): the server stopped, a new wheel written with SQL, and the same crowd
     played by asyncpg directly over a pool of --raw-pool connections, one raw play transaction per play
     (claim the key, lock the account, and in one statement: charge, take the prize's unit, grant, record
     the play, store the result); the same checks; the summary prints plays/s ÷ raw plays/s per phase;
  5. always stops the server, drops the database and flushes the bench's Redis database.

The figures are for reading, not for passing: failed checks are listed loudly at the end of the
summary, and the run still exits 0 (only a broken run exits otherwise).
"""
from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import contest as harness
from bench.purchase_load import CpuProbe, log, pct

DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/mallpoints_bench_draw"
ALL_PHASES = ("redis", "db", "raw")
PLAY_QUERY = ("mutation($i: LuckyDrawPlayInput!) { luckyDrawPlay(input: $i) { play { id prize { id name kind }"
              " pointsGranted costPoints } pointsBalance userErrors { code } } }")
GAME_SELECTION = "game { id prizes { id name stockLeft } }"
STAT_TABLES = ("draw_prize", "draw_play", "draw_game", "idempotency_record", "points_account", "points_entry",
               "mall_order", "voucher")

# Columns the raw phase writes with SQL (checked against the schema before anything is written).
SQL_WRITES = {
    **harness.POINTS_WRITES,
    "draw_game": {"id", "name", "kind", "cost_points", "free_plays", "starts_at", "ends_at", "status", "created_at",
                  "updated_at"},
    "draw_prize": {"id", "game_id", "name", "kind", "points", "product_id", "weight", "stock", "stock_total",
                   "position", "active", "created_at"},
    "draw_play": {"id", "game_id", "member_id", "prize_id", "free", "cost_points", "candidates", "roll", "redraws",
                  "spend_entry_id", "grant_entry_id", "order_id", "idempotency_key", "played_at"},
    "points_lot_move": {"id", "entry_id", "lot_id", "delta"},
    "idempotency_record": {"id", "scope", "key", "request_hash", "result", "created_at"},
    "mall_order": {"id", "order_no", "member_id", "product_id", "channel", "status", "quantity", "points", "cash_fen",
                   "idempotency_key", "created_at", "paid_at"},
    "voucher": {"id", "code", "order_id", "member_id", "product_id", "kind", "status", "valid_from", "valid_until",
                "created_at"},
    "product": {"id", "kind", "name", "image_urls", "validity_days", "points_price", "cash_price_fen", "stock",
                "status", "created_at", "updated_at"},
}


@dataclass(frozen=True)
class PrizeSpec:
    name: str
    kind: str
    weight: int
    points: int | None
    stock: int | None


# The wheel of every phase: a top prize of one unit, two small stocks that run out within the contest
# (so the draw's redraws and the conditional stock update are exercised) and an unlimited "thanks".
PRIZES = (
    PrizeSpec("top prize: 888 points", "POINTS", 100, 888, 1),
    PrizeSpec("50 points", "POINTS", 1000, 50, 50),
    PrizeSpec("coupon", "COUPON", 1000, None, 100),
    PrizeSpec("thanks for playing", "NOTHING", 5000, None, None),
)


@dataclass(frozen=True)
class Play:
    """One play as the member saw it."""
    id: int
    prize_id: int
    kind: str
    points_granted: int
    cost: int
    balance: int | None


# --- set-up: the operator's wheel -----------------------------------------------------------------------

async def create_wheel(admin: harness.AdminApi, name: str, cost: int,
                       prizes: list[dict[str, Any]]) -> tuple[int, list[int]]:
    """drawGameCreate as an operator: a WHEEL on now for two hours; (game pk, prize pks in input order)."""
    now = datetime.now(UTC)
    payload = await admin.mutate("drawGameCreate", "DrawGameCreateInput", GAME_SELECTION, {
        "name": name, "kind": "WHEEL", "costPoints": cost, "dailyLimit": None, "totalLimit": None,
        "startsAt": (now - timedelta(seconds=5)).isoformat(), "endsAt": (now + timedelta(hours=2)).isoformat(),
        "prizes": prizes})
    game = payload["game"]
    by_name = {p["name"]: harness.pk_of(p["id"], "DrawPrize") for p in game["prizes"]}
    return harness.pk_of(game["id"], "DrawGame"), [by_name[p["name"]] for p in prizes]


def prize_input(spec: PrizeSpec, position: int, coupon_id: int) -> dict[str, Any]:
    return {"name": spec.name, "kind": spec.kind, "weight": spec.weight, "points": spec.points,
            "productId": harness.global_id("Product", coupon_id) if spec.kind == "COUPON" else None, "stock": spec.stock,
            "position": position}


# --- the HTTP contest ---------------------------------------------------------------------------------

@dataclass
class DrawContest(harness.Contest):
    game_id: int = 0
    plays_each: int = 0
    plays: dict[int, list[Play]] = field(default_factory=dict)  # member -> the OK plays, in order
    prize_rows: list[dict[str, Any]] = field(default_factory=list)  # per prize: name, kind, granted, stock, ...
    redraws: dict[str, int] = field(default_factory=dict)
    gate: str = ""


def classify(status: int, raw: bytes) -> tuple[str, Play | None, str | None]:
    outcome, payload, top = harness.payload_of(status, raw, "luckyDrawPlay")
    if payload is None:
        return outcome, None, top
    play = payload.get("play")
    if not play:
        return "NO_PLAY", None, None
    prize = play["prize"]
    return "OK", Play(harness.pk_of(play["id"], "DrawPlay"), harness.pk_of(prize["id"], "DrawPrize"), prize["kind"],
                      int(play["pointsGranted"]), int(play["costPoints"]), payload.get("pointsBalance")), None


async def run_http_phase(bench: harness.Bench, server: harness.ContestServer, name: str, kind: str, game_id: int,
                         warm_game_id: int, probe: CpuProbe) -> DrawContest:
    args, member_ids, tokens, run_tag = bench.args, bench.member_ids, bench.tokens, bench.run_tag
    contest = DrawContest(name, kind, len(member_ids), game_id=game_id, plays_each=args.plays)
    warm_gid = harness.global_id("DrawGame", warm_game_id)
    warm = harness.WarmUp(
        args.warm_connections, args.warm_rounds, args.warm_mutations,
        lambda k, r: harness.request_bytes(server.port, tokens[k], PLAY_QUERY, {"i": {
            "gameId": warm_gid, "idempotencyKey": f"warm-{run_tag}-{name}-{r}-{member_ids[k]}"}}),
        lambda status, raw: "play " + classify(status, raw)[0])
    gid = harness.global_id("DrawGame", game_id)
    requests = [[harness.request_bytes(server.port, tokens[k], PLAY_QUERY,
                                       {"i": {"gameId": gid, "idempotencyKey": f"draw-{run_tag}-{name}-{m}-{j}"}})
                 for j in range(args.plays)]
                for k, m in enumerate(member_ids)]
    shots = await harness.measure(
        args, contest, server, tokens, warm, requests, classify, probe, bench.redis_client if kind == "redis" else None,
        STAT_TABLES, f"{len(member_ids)} members x {args.plays} luckyDrawPlay on game {game_id}, all members at once,"
                     " each member's plays one after another")
    for s in sorted(shots, key=lambda s: (s.k, s.j)):
        if s.outcome == "OK":
            contest.plays.setdefault(member_ids[s.k], []).append(s.result)
    return contest


# --- the raw play transaction (the yardstick) -----------------------------------------------------------
# What a play must do at the least, sent by asyncpg with no server in between: one durable transaction
# that claims the idempotency key, locks the member's account, and in one statement of data-modifying
# CTEs charges the cost (SPEND entry, the lots it takes earliest expiry first, their moves, the
# balance), takes the prize's unit with the conditional update, grants the prize (POINTS: an EARN entry
# and its lot; COUPON: a DRAW order and its voucher), records the play and stores the key's result.

RAW_CLAIM = ("INSERT INTO idempotency_record (scope, key, request_hash, created_at) VALUES ($1, $2, $3, $4)"
             " ON CONFLICT (scope, key) DO NOTHING RETURNING id")
RAW_LOCK = ("SELECT a.id, a.balance FROM points_account a JOIN member m ON m.id = a.member_id WHERE a.member_id = $1"
            " FOR UPDATE OF a, m")


def raw_write(kind: str, limited: bool) -> str:
    """$1 account, $2 member, $3 now, $4 cost, $5 balance after the charge, $6 the charge's reason, $7 source
    ref, $8 game, $9 prize, $10 candidates, $11 roll, $12 redraws, $13 key, $14 idempotency record; POINTS:
    $15 points, $16 reason, $17 expiry; COUPON: $15 order number, $16 voucher code, $17 product, $18 valid
    until."""
    entries = "($1, 'SPEND', -$4::bigint, $5::bigint, $6, 'draw', $7, $3, NULL)"
    final = "$5::bigint"
    grant = "NULL::bigint"
    order = "NULL::bigint"
    extra = ""
    if kind == "POINTS":
        entries += ", ($1, 'EARN', $15::bigint, $5::bigint + $15::bigint, $16, 'draw', $7, $3, $17::timestamptz)"
        final = "$5::bigint + $15::bigint"
        grant = "(SELECT id FROM e WHERE kind = 'EARN')"
        extra = (", lot AS (INSERT INTO points_lot (account_id, kind, entry_id, points, remaining, earned_at,"
                 " expires_at) SELECT $1, 'EARN', id, $15::bigint, $15::bigint, $3, $17::timestamptz FROM e"
                 " WHERE kind = 'EARN')")
    elif kind == "COUPON":
        order = "(SELECT id FROM o)"
        extra = (", o AS (INSERT INTO mall_order (order_no, member_id, product_id, channel, status, quantity, points,"
                 " cash_fen, idempotency_key, created_at, paid_at) VALUES ($15, $2, $17, 'DRAW', 'PAID', 1, 0, 0, $13,"
                 " $3, $3) RETURNING id), v AS (INSERT INTO voucher (code, order_id, member_id, product_id, kind,"
                 " status, valid_from, valid_until, created_at) SELECT $16, o.id, $2, $17, 'COUPON', 'ISSUED', $3,"
                 " $18::timestamptz, $3 FROM o)")
    unit = (", unit AS (UPDATE draw_prize SET stock = stock - 1 WHERE id = $9 AND stock >= 1 RETURNING id)"
            if limited else "")
    return (
        "WITH take AS (SELECT id, LEAST(remaining, $4::bigint - (running - remaining)) AS delta FROM (SELECT id,"
        " remaining, SUM(remaining) OVER (ORDER BY expires_at NULLS LAST, id ROWS UNBOUNDED PRECEDING) AS running"
        " FROM points_lot WHERE account_id = $1 AND kind = 'EARN' AND remaining > 0) t WHERE running - remaining"
        " < $4::bigint), lots AS (UPDATE points_lot l SET remaining = l.remaining - take.delta FROM take"
        " WHERE l.id = take.id), e AS (INSERT INTO points_entry (account_id, kind, points, balance_after, reason,"
        f" source_type, source_ref, occurred_at, expires_at) VALUES {entries} RETURNING id, kind),"
        f" bal AS (UPDATE points_account SET balance = {final}, updated_at = $3 WHERE id = $1),"
        " mv AS (INSERT INTO points_lot_move (entry_id, lot_id, delta) SELECT e.id, take.id, -take.delta FROM e, take"
        f" WHERE e.kind = 'SPEND'){extra}{unit}, play AS (INSERT INTO draw_play (game_id, member_id, prize_id, free,"
        " cost_points, candidates, roll, redraws, spend_entry_id, grant_entry_id, order_id, idempotency_key,"
        f" played_at) VALUES ($8, $2, $9, FALSE, $4, $10, $11, $12, (SELECT id FROM e WHERE kind = 'SPEND'), {grant},"
        f" {order}, $13, $3) RETURNING id), res AS (UPDATE idempotency_record SET result = '{{\"play_id\":' ||"
        " (SELECT id FROM play) || '}' WHERE id = $14) SELECT (SELECT id FROM play) AS play_id,"
        f" {'(SELECT count(*) FROM unit)' if limited else '1'} AS took, (SELECT COALESCE(SUM(delta), 0) FROM take)"
        " AS spent")


async def sql_wheel(conn, name: str, cost: int, coupon_id: int) -> tuple[int, list[int]]:
    """The phases' wheel written with SQL (the server is stopped): (game pk, prize pks in PRIZES order)."""
    now = datetime.now(UTC)
    game_id = await conn.fetchval(
        "INSERT INTO draw_game (name, kind, cost_points, free_plays, starts_at, ends_at, status, created_at,"
        " updated_at) VALUES ($1, 'WHEEL', $2, '{}', $3, $4, 'ACTIVE', $5, $5) RETURNING id",
        name, cost, now - timedelta(seconds=5), now + timedelta(hours=2), now)
    ids = []
    for position, spec in enumerate(PRIZES):
        ids.append(await conn.fetchval(
            "INSERT INTO draw_prize (game_id, name, kind, points, product_id, weight, stock, stock_total, position,"
            " active, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, TRUE, $9) RETURNING id",
            game_id, spec.name, spec.kind, spec.points, coupon_id if spec.kind == "COUPON" else None, spec.weight,
            spec.stock, position, now))
    return game_id, ids


async def sql_coupon(conn) -> int:
    now = datetime.now(UTC)
    return await conn.fetchval(
        "INSERT INTO product (kind, name, description, image_urls, validity_days, points_price, cash_price_fen, stock,"
        " status, created_at, updated_at) VALUES ('COUPON', 'bench: lucky-draw coupon (raw)', NULL, '[]', 30, 100, 0,"
        " 0, 'ACTIVE', $1, $1) RETURNING id", now)


class _Gone(Exception):
    """The conditional update found the drawn prize out of stock: roll back, draw again without it."""


async def run_raw(bench: harness.Bench, coupon_id: int | None) -> DrawContest:
    """N members x K plays, all members at once, each member's plays one after another, as raw play
    transactions over an asyncpg pool of --raw-pool connections (the server's two pools' size)."""
    import asyncpg

    args, member_ids, conn0 = bench.args, bench.member_ids, bench.stats_conn
    coupon_id = coupon_id if coupon_id is not None else await sql_coupon(conn0)
    game_id, prize_ids = await sql_wheel(conn0, f"bench raw wheel {bench.run_tag}", args.cost, coupon_id)
    log(f"game {game_id} created (SQL): prizes {prize_ids}")
    c = DrawContest("raw", "raw", len(member_ids), game_id=game_id, plays_each=args.plays)
    specs = dict(zip(prize_ids, PRIZES, strict=True))
    left: dict[int, int | None] = {pid: spec.stock for pid, spec in specs.items()}
    statements = {(kind, limited): raw_write(kind, limited) for kind in ("POINTS", "COUPON", "NOTHING")
                  for limited in (False, True)}
    pool = await asyncpg.create_pool(bench.dsn, min_size=args.raw_pool, max_size=args.raw_pool)
    results: list[list[Play]] = [[] for _ in member_ids]
    latencies: list[float] = []
    dones: list[float] = []
    go = asyncio.Event()

    async def one_play(conn, m: int, key: str) -> Play:
        gone: set[int] = set()
        for redraws in range(len(specs) + 1):
            candidates = [(pid, specs[pid].weight) for pid in prize_ids
                          if pid not in gone and (left[pid] is None or left[pid] > 0)]
            roll = secrets.randbelow(sum(w for _, w in candidates))
            pick, rest = candidates[0][0], roll
            for pid, w in candidates:
                if rest < w:
                    pick = pid
                    break
                rest -= w
            spec, now = specs[pick], datetime.now(UTC)
            extra: list[Any] = []
            if spec.kind == "POINTS":
                extra = [spec.points, f"幸运抽奖中奖 {spec.name}", now + timedelta(days=365)]
            elif spec.kind == "COUPON":
                extra = [f"MPRAW{secrets.randbelow(10**20):020d}", f"RAW{secrets.token_hex(8)}", coupon_id,
                         now + timedelta(days=30)]
            try:
                async with conn.transaction():
                    record = await conn.fetchval(RAW_CLAIM, f"member:{m}", key, "raw", now)
                    acct = await conn.fetchrow(RAW_LOCK, m)
                    row = await conn.fetchrow(
                        statements[(spec.kind, spec.stock is not None)], acct["id"], m, now, args.cost,
                        acct["balance"] - args.cost, "幸运抽奖 raw", f"draw:{game_id}:{m}:{key}"[:64], game_id, pick,
                        f"{[[i, w] for i, w in candidates]}", roll, redraws, key, record, *extra)
                    if int(row["spent"]) != args.cost:
                        raise RuntimeError(f"member {m}: the lots did not cover {args.cost}")
                    if not row["took"]:
                        raise _Gone()
            except _Gone:
                gone.add(pick)
                left[pick] = 0
                continue
            if left[pick] is not None:
                left[pick] = max(0, left[pick] - 1)
            return Play(int(row["play_id"]), pick, spec.kind, int(spec.points or 0) if spec.kind == "POINTS" else 0,
                        args.cost, acct["balance"] - args.cost + (int(spec.points or 0) if spec.kind == "POINTS" else 0))
        raise RuntimeError("every prize gone")

    async def member(k: int) -> None:
        await go.wait()
        m = member_ids[k]
        for j in range(args.plays):
            t = time.perf_counter()
            try:
                async with pool.acquire() as conn:
                    results[k].append(await one_play(conn, m, f"raw-{bench.run_tag}-{m}-{j}"))
                c.outcomes["OK"] += 1
            except Exception as exc:  # noqa: BLE001
                c.outcomes[f"EXCEPTION:{exc.__class__.__name__}"] += 1
                c.exceptions[f"{exc.__class__.__name__}: {str(exc)[:120]}"] += 1
            done = time.perf_counter()
            latencies.append(done - t)
            dones.append(done)

    try:
        async with pool.acquire() as conn:  # warm: the statements planned once per pooled connection
            await conn.fetchval("SELECT 1")
        probe = CpuProbe(bench.dbname, None, conn0)
        await probe.analyze()
        c.stats0 = await harness.db_counters(probe, STAT_TABLES)
        tasks = [asyncio.create_task(member(k)) for k in range(len(member_ids))]
        await asyncio.sleep(0.2)
        log(f"phase raw: {len(member_ids)} members x {args.plays} raw play transactions over an asyncpg pool of"
            f" {args.raw_pool} on game {game_id}")
        snap0 = probe.snapshot()
        t0 = time.perf_counter()
        go.set()
        await asyncio.gather(*tasks)
        snap1 = probe.snapshot()
        c.cpu = CpuProbe.diff(snap0, snap1)
        c.wall = max(dones) - t0
        c.latencies = sorted(latencies)
        stats1 = await harness.db_counters(probe, STAT_TABLES)
        c.pg_stats = {k: v - c.stats0.get(k, 0) for k, v in stats1.items()}
    finally:
        await pool.close()
    for k, m in enumerate(member_ids):
        if results[k]:
            c.plays[m] = results[k]
    return c


# --- verification -----------------------------------------------------------------------------------------

async def verify(conn, c: DrawContest, args, member_ids: list[int], spent: Counter, granted: Counter,
                 redis_client: Any) -> None:
    """Straight from PostgreSQL, after the contest. `spent` and `granted` (member -> points over the
    bench's plays so far, as the members saw them) are updated with this phase's plays."""
    N, K, P = len(member_ids), c.plays_each, args.points
    checks: list[harness.Check] = c.checks
    seen = {p.id: (m, p.prize_id) for m, plays in c.plays.items() for p in plays}
    for m, plays in c.plays.items():
        for p in plays:
            spent[m] += p.cost
            granted[m] += p.points_granted

    others = {k: v for k, v in c.outcomes.items() if k != "OK"}
    checks.append((f"answers: {N * K:,} plays ({N} members x {K}), all OK", c.count("OK") == N * K and not others,
                   f"{dict(c.outcomes)}"))
    db_plays = {r["id"]: (r["member_id"], r["prize_id"]) for r in await conn.fetch(
        "SELECT id, member_id, prize_id FROM draw_play WHERE game_id = $1", c.game_id)}
    checks.append((("plays = successes: the game's draw_play rows are exactly the plays the members saw"
                   " (play, member, prize)"), db_plays == seen,
                   (f"{len(db_plays)} in the database, {len(seen)} seen,"
                   f" {len(set(db_plays.items()) ^ set(seen.items()))} differ")))

    rows = await conn.fetch(
        "SELECT p.id, p.name, p.kind, p.points, p.stock, p.stock_total, p.weight,"
        " (SELECT count(*) FROM draw_play d WHERE d.prize_id = p.id) AS won"
        " FROM draw_prize p WHERE p.game_id = $1 ORDER BY p.position, p.id", c.game_id)
    seen_by_prize = Counter(prize for _, prize in seen.values())
    c.prize_rows = [{"id": r["id"], "name": r["name"], "kind": r["kind"], "weight": r["weight"],
                     "stock_total": r["stock_total"], "stock": r["stock"], "won": int(r["won"]),
                     "seen": seen_by_prize.get(r["id"], 0)} for r in rows]
    limited = [r for r in c.prize_rows if r["stock_total"] is not None]
    negative = [r for r in limited if r["stock"] < 0]
    checks.append(("every prize's stock ≥ 0", not negative,
                   ", ".join(f"{r['name']}: {r['stock']}" for r in negative)))
    off = [r for r in limited if r["stock_total"] - r["stock"] != r["won"]]
    checks.append(("every prize: stock_total - stock = plays that won it", not off,
                   ", ".join(f"{r['name']}: {r['stock_total']} - {r['stock']} vs {r['won']} plays" for r in off)))
    top = c.prize_rows[0]
    checks.append((f"the top prize ({top['name']}, stock {top['stock_total']}) granted at most once",
                   top["won"] <= 1 and top["seen"] <= 1, f"won {top['won']} times ({top['seen']} seen)"))

    red = await conn.fetchrow(
        "SELECT COALESCE(sum(redraws), 0) AS total, count(*) FILTER (WHERE redraws > 0) AS plays,"
        " COALESCE(max(redraws), 0) AS max FROM draw_play WHERE game_id = $1", c.game_id)
    c.redraws = {k: int(v) for k, v in red.items()}

    # Every grant as the prize says: POINTS an EARN entry of the prize's points, COUPON a DRAW order
    # with one voucher, NOTHING neither; every paid play its SPEND entry of -cost.
    bad = await conn.fetchrow(
        """
        SELECT count(*) FILTER (WHERE p.kind = 'POINTS' AND (g.id IS NULL OR g.points <> p.points OR g.kind <> 'EARN'))
                 AS bad_points,
               count(*) FILTER (WHERE p.kind = 'COUPON' AND (o.id IS NULL OR o.channel <> 'DRAW' OR o.status <> 'PAID'
                 OR (SELECT count(*) FROM voucher v WHERE v.order_id = o.id) <> 1)) AS bad_coupons,
               count(*) FILTER (WHERE p.kind = 'NOTHING' AND (d.grant_entry_id IS NOT NULL OR d.order_id IS NOT NULL))
                 AS bad_nothing,
               count(*) FILTER (WHERE d.cost_points > 0 AND (s.id IS NULL OR s.points <> -d.cost_points
                 OR s.kind <> 'SPEND') OR d.cost_points <> $2) AS bad_spend
        FROM draw_play d JOIN draw_prize p ON p.id = d.prize_id
        LEFT JOIN points_entry g ON g.id = d.grant_entry_id LEFT JOIN points_entry s ON s.id = d.spend_entry_id
        LEFT JOIN mall_order o ON o.id = d.order_id WHERE d.game_id = $1
        """, c.game_id, args.cost)
    checks.append(((f"every play charged {args.cost} points (its SPEND entry) and granted its prize (POINTS: the EARN"
                   " entry; COUPON: a DRAW order and its voucher; NOTHING: nothing)"), not any(bad.values()),
                   f"{dict(bad)}"))

    balances = {r["member_id"]: r["balance"] for r in await conn.fetch(
        "SELECT member_id, balance FROM points_account WHERE member_id = ANY($1::bigint[])", member_ids)}
    wrong = [m for m in member_ids if balances.get(m) != P - spent[m] + granted[m]]
    checks.append((f"every member's points exact ({P} given - cost x plays + points granted, as the members saw them)",
                   not wrong, f"{len(wrong)} differ, e.g. member {wrong[:1]}: "
                   + (f"{balances.get(wrong[0])} vs {P - spent[wrong[0]] + granted[wrong[0]]}" if wrong else "")))
    told = [m for m, plays in c.plays.items() if plays[-1].balance != balances.get(m)]
    checks.append(("every member was told their balance (pointsBalance of their last play = the account)", not told,
                   f"{len(told)} differ"))
    db_side = await conn.fetchval(
        "SELECT count(*) FROM points_account a WHERE a.member_id = ANY($1::bigint[]) AND a.balance <> $2"
        " - COALESCE((SELECT sum(d.cost_points) FROM draw_play d WHERE d.member_id = a.member_id), 0)"
        " + COALESCE((SELECT sum(e.points) FROM draw_play d JOIN points_entry e ON e.id = d.grant_entry_id"
        " WHERE d.member_id = a.member_id), 0)", member_ids, P)
    checks.append(("every member's balance = points given - Σ costs of their plays + Σ points granted (database)",
                   db_side == 0, f"{db_side} differ"))
    checks.extend(await harness.ledger_checks(conn, member_ids))

    if redis_client is not None:
        parts, off = [], []
        for r in limited:
            value = await redis_client.get(await harness.gate_key(conn, f"mallpoints:{{draw:{c.game_id}}}:prize:{r['id']}"))
            gate = None if value is None else int(value)
            parts.append(f"{r['name']} {'not loaded' if gate is None else gate} (database {r['stock']})")
            if gate is not None and gate != r["stock"]:
                off.append(r["name"])
        c.gate = "prize gates after the contest: " + "; ".join(parts)
        loaded = any("not loaded" not in p for p in parts)
        checks.append(("the Redis prize gates agree with the database (every loaded counter = the prize's stock)",
                       not off and loaded, c.gate if off else "no gate was loaded"))


# --- reporting ----------------------------------------------------------------------------------------------

def cpu_shares(cpu: dict[str, Any], plays: int) -> str:
    """Per play and as shares of the machine's core-seconds over the contest (2 cores x wall)."""
    if not cpu or not plays:
        return ""
    cores = max(1e-9, cpu["machine_busy"] + cpu["machine_idle"])

    def share(v: float) -> str:
        return f"{100 * v / cores:.0f}%"

    server, pg, client = (harness.ms(cpu[k] / plays) for k in ("server", "pg", "client"))
    return (f"  CPU per play: server {server} ms, PostgreSQL {pg} ms, load generator {client} ms; of the machine's"
            f" {cores:.2f} core-s: server {share(cpu['server'])}, PostgreSQL {share(cpu['pg'])}, load generator"
            f" {share(cpu['client'])}, other processes and databases {share(cpu['others'] + cpu['pg_other_dbs'])},"
            f" idle {share(cpu['machine_idle'])}")


def print_contest(c: DrawContest, args) -> None:
    n = c.requests
    where = {"redis": "Redis prize gate in front", "db": "database alone"}.get(
        c.kind, f"raw play transactions by asyncpg, pool of {args.raw_pool}, no server")
    harness.print_head(c, f"{c.members} members x {c.plays_each} plays on one wheel ({where}), game {c.game_id}",
                       "play", "first sends", f" ({c.count('OK'):,} answered OK: {c.rate('OK'):,.0f}/s)")
    print(f"  outcomes: {dict(c.outcomes.most_common())}")
    if c.prize_rows:
        print(f"  {'prize':<24} {'kind':<8} {'weight':>7} {'stock':>7} {'won':>6} {'left':>6}")
        for r in c.prize_rows:
            total = "∞" if r["stock_total"] is None else f"{r['stock_total']:,}"
            left = "∞" if r["stock"] is None else f"{r['stock']:,}"
            print(f"  {r['name']:<24} {r['kind']:<8} {r['weight']:>7,} {total:>7} {r['won']:>6,} {left:>6}")
    if c.redraws:
        print(f"  redraws (a drawn prize was gone at the reservation or the conditional update; draw_play.redraws):"
              f" {c.redraws['total']:,} in all, {c.redraws['plays']:,} plays redrew, at most {c.redraws['max']}"
              " in one play")
    harness.print_cpu(c.cpu)
    print(cpu_shares(c.cpu, n))
    if c.pg_stats and n:
        g = c.pg_stats.get
        print(f"  PostgreSQL work per play (pg_stat_*, from just before the contest to the server's exit; incl."
              f" rolled-back work): {g('xact_commit', 0) / n:.2f} commits, {g('xact_rollback', 0) / n:.3f} rollbacks;"
              f" draw_prize read {g('draw_prize.scans', 0) / n:.2f}x, updated {g('draw_prize.upd', 0) / n:.3f};"
              f" draw_play inserts {g('draw_play.ins', 0) / n:.2f}, idempotency_record inserts"
              f" {g('idempotency_record.ins', 0) / n:.2f}, points_entry inserts {g('points_entry.ins', 0) / n:.2f},"
              f" points_account read {g('points_account.scans', 0) / n:.2f}x, mall_order inserts"
              f" {g('mall_order.ins', 0) / n:.3f}")
    harness.print_redis_stats(c.redis_stats)
    harness.print_contest_notes(c, c.gate)


def print_summary(contests: dict[str, DrawContest], args) -> dict[str, Any]:
    """Both phases side by side, the ratios Redis ÷ database, the verdict; returns the JSON figures."""
    out: dict[str, Any] = {"phases": {}}
    print()
    print(f"summary (one run; {args.members} members x {args.plays} plays, {args.cost} points a play, {args.workers}"
          " workers; ratios are what count on a shared machine)")
    print(f"  {'phase':<32} {'wall s':>7} {'plays/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'OK':>6}"
          f" {'redraws':>7} {'srv ms/play':>11} {'pg ms/play':>10} {'noise s':>7} {'gate→db':>7}  checks")
    for name, c in contests.items():
        label = (f"raw play transaction, pool {args.raw_pool}" if c.kind == "raw"
                 else harness.summary_label(name, c.kind, "HTTP, Redis prize gate"))
        n = max(1, c.requests)
        noise = c.cpu.get("others", 0.0) + c.cpu.get("pg_other_dbs", 0.0)
        p50, p95, p99 = (harness.ms(pct(c.latencies, q)) for q in (.5, .95, .99))
        srv, pg = (harness.ms(c.cpu.get(k, 0.0) / n) for k in ("server", "pg"))
        print(f"  {label:<32} {c.wall:>7.3f} {c.rps:>8,.0f} {p50:>8} {p95:>8} {p99:>8} {c.count('OK'):>6,}"
              f" {c.redraws.get('total', 0):>7,} {srv:>11} {pg:>10} {noise:>7.2f}"
              f" {c.fallbacks if c.kind == 'redis' else '-':>7}  {'PASS' if c.passed else 'FAIL'}")
        out["phases"][name] = {**harness.contest_figures(c), "plays": c.requests, "ok_per_s": round(c.rate("OK"), 1),
                               "redraws": c.redraws, "prizes": c.prize_rows}
    print("  plays/s: plays ÷ wall (first send to last answer). srv/pg ms/play: CPU of the server's workers and of"
          " PostgreSQL per play.\n  noise s: CPU other processes and databases took over the contest. gate→db: plays"
          " the Redis gate could not serve\n  (the server logged 'Redis unavailable'), which the database answered"
          " instead.")
    pairs = harness.redis_db_pairs(contests)
    if pairs:
        per_round = harness.ratios(pairs, lambda c: c.rps)
        ratio = harness.median(per_round)
        p50_ratio = harness.median(harness.ratios(pairs, lambda c: pct(c.latencies, .5), invert=True))
        cpu_ratio = harness.median(harness.ratios(
            pairs, lambda c: (c.cpu.get("server", 0.0) + c.cpu.get("pg", 0.0)) / max(1, c.requests), invert=True))
        if len(pairs) > 1:
            print("  per round, plays/s Redis ÷ database alone: " + ", ".join(f"{x:.2f}x" for x in per_round)
                  + " (below: medians)")
        print(f"  plays/s, Redis ÷ database alone: {ratio:.2f}x; median latency, database ÷ Redis: {p50_ratio:.2f}x;"
              f" server + PostgreSQL CPU per play, database ÷ Redis: {cpu_ratio:.2f}x")
        out["ratios"] = {"plays_per_s_redis_over_db": round(ratio, 3), "p50_db_over_redis": round(p50_ratio, 3),
                         "cpu_per_play_db_over_redis": round(cpu_ratio, 3), "per_round": per_round}
    raw = contests.get("raw")
    if raw is not None and raw.rps:
        http = {name: c for name, c in contests.items() if c.kind != "raw"}
        raw_cpu = (raw.cpu.get("server", 0.0) + raw.cpu.get("pg", 0.0) + raw.cpu.get("client", 0.0)) / max(1, raw.requests)
        parts, cpu_parts = [], []
        for name, c in http.items():
            parts.append(f"{name} {c.rps / raw.rps:.3f}")
            cpu = (c.cpu.get("server", 0.0) + c.cpu.get("pg", 0.0) + c.cpu.get("client", 0.0)) / max(1, c.requests)
            cpu_parts.append(f"{name} {raw_cpu / cpu:.3f}" if cpu else f"{name} -")
        if parts:
            print(f"  plays/s ÷ raw play transactions/s ({raw.rps:,.0f}/s), target ≥ 0.3: " + ", ".join(parts))
            print("  cpu ratio (raw's CPU per play ÷ the phase's, load generator + server + PostgreSQL): "
                  + ", ".join(cpu_parts))
        out["ratios"] = {**out.get("ratios", {}),
                         "plays_per_s_over_raw": {n: round(c.rps / raw.rps, 3) for n, c in http.items()}}
    out["all_checks_pass"] = harness.print_verdict(
        contests, "plays", "no prize below zero, top prize at most once, plays = successes, points exact")
    return out


# --- main ---------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = harness.new_parser("draw_load", __doc__, ALL_PHASES, "members, one connection each, all at once (2000)")
    p.add_argument("--plays", type=int, default=3, help="plays per member per phase, one after another (3)")
    p.add_argument("--cost", type=int, default=10, help="points a play costs (10)")
    p.add_argument("--raw-pool", type=int, default=40,
                   help="asyncpg connections of the raw phase (40: the server's two workers' pools)")
    harness.add_common_args(p, DEFAULT_DB_URL, "luckyDrawPlay on a warm-up wheel whose only prize has no stock")
    args = p.parse_args(argv)
    harness.check_common_args(p, args, ALL_PHASES)
    if args.members < 1 or args.plays < 1 or args.cost < 1:
        p.error("--members, --plays and --cost must be at least 1")
    contests = args.rounds * len(args.phase_list)
    if args.points is None:
        args.points = args.cost * args.plays * contests
    if args.points < args.cost * args.plays * contests:
        p.error(f"--points must pay for every play of every HTTP contest (at least {contests} x --plays x --cost)")
    return args


async def amain(args) -> int:
    coupon_id: int | None = None
    warm_game_id: int | None = None
    spent: Counter = Counter()
    granted: Counter = Counter()

    async def phase(bench: harness.Bench, server: harness.ContestServer, name: str, kind: str) -> DrawContest:
        nonlocal coupon_id, warm_game_id
        admin = harness.AdminApi(server.port)
        await admin.login(bench.admin_password)
        if coupon_id is None:
            coupon_id = await admin.product(100, "bench: lucky-draw coupon")
        if warm_game_id is None:  # its only prize has no stock: its plays are refused before any transaction
            warm_game_id, _ = await create_wheel(admin, f"bench warm-up wheel {bench.run_tag}", args.cost, [
                prize_input(PrizeSpec("nothing left", "NOTHING", 1, None, 0), 0, coupon_id)])
        specs = [prize_input(spec, i, coupon_id) for i, spec in enumerate(PRIZES)]
        game_id, prize_ids = await create_wheel(admin, f"bench wheel {bench.run_tag} {name}", args.cost, specs)
        log(f"game {game_id} created (admin GraphQL): prizes {prize_ids}")
        probe = CpuProbe(bench.dbname, server.proc.pid if server.proc else None, bench.stats_conn)
        return await run_http_phase(bench, server, name, kind, game_id, warm_game_id, probe)

    async def after(bench: harness.Bench, contest: DrawContest) -> None:
        await verify(bench.stats_conn, contest, args, bench.member_ids, spent, granted,
                     bench.redis_client if contest.kind == "redis" else None)
        print_contest(contest, args)

    async def rest(bench: harness.Bench, contests: dict[str, DrawContest]) -> dict[str, Any]:
        if "raw" in args.phase_list:
            raw = await run_raw(bench, coupon_id)
            await verify(bench.stats_conn, raw, args, bench.member_ids, spent, granted, None)
            print_contest(raw, args)
            contests["raw"] = raw
        return print_summary(contests, args)

    headline = (f"mallpoints lucky-draw load test: phases {','.join(args.phase_list)}; {args.members} members x"
                f" {args.plays} plays at {args.cost} points, all members at once, {args.points} points each")
    return await harness.run_bench(args, headline, "mallpoints-draw-", "bench: lucky-draw float", SQL_WRITES,
                           "bench/contest.py", STAT_TABLES, phase, after, rest)


if __name__ == "__main__":
    harness.main_with(parse_args, amain)
