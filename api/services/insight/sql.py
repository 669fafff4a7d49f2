"""The insight domain's raw SQL: set-based aggregates over the ledger and the domain tables, the rollup's
upsert, the member bitmaps' algebra (PostgreSQL) and the chunked RFM recomputation. Everything else (the
rollup's state row, reading a member's scores and stage history) goes through `api/models/insight.py`.

Statements use PostgreSQL's `$1, $2…` placeholders; `api.db.Tx` turns them into `?1, ?2…` on SQLite. Times
are bound as UTC datetimes; a span is [$1, $2).
"""
from __future__ import annotations

# Why SQL: one statement computes every additive KPI of a span [$1, $2) from the base tables (ten
# aggregates over indexed time ranges in one round trip; the ORM would need ten queries and cannot say
# the UNION of purchasers and earners/spenders). The same statement fills the rollup and answers live days,
# so the rollup can never mean something else than the live figures.
_PARKING_OFFSET = ("coalesce(tier_discount_fen, 0) + coalesce(purchase_discount_fen, 0)"
                   " + coalesce(coupon_discount_fen, 0) + coalesce(points_discount_fen, 0)")
SPAN_COUNTS = f"""
SELECT mb.members_new, p.purchases, p.member_sales_fen, p.buyers, rb.repeat_buyers, act.members_active,
       e.points_issued, e.points_redeemed, e.points_expired, e.points_net,
       c.check_ins, t.task_completions, o.redemptions, o.flash_sale_orders, d.draw_plays,
       pk.parking_offsets, pk.parking_offset_fen
FROM (SELECT count(*) AS members_new FROM member WHERE created_at >= $1 AND created_at < $2) mb,
     (SELECT count(*) AS purchases, CAST(coalesce(sum(amount_fen), 0) AS BIGINT) AS member_sales_fen,
             count(DISTINCT member_id) AS buyers
        FROM purchase WHERE occurred_at >= $1 AND occurred_at < $2) p,
     (SELECT count(*) AS repeat_buyers FROM (SELECT member_id FROM purchase WHERE occurred_at >= $1
        AND occurred_at < $2 GROUP BY member_id HAVING count(*) >= 2) r) rb,
     (SELECT count(*) AS members_active FROM (
         SELECT member_id FROM purchase WHERE occurred_at >= $1 AND occurred_at < $2
         UNION SELECT a.member_id FROM points_entry pe JOIN points_account a ON a.id = pe.account_id
          WHERE pe.kind IN ('EARN', 'SPEND') AND pe.occurred_at >= $1 AND pe.occurred_at < $2) u) act,
     (SELECT CAST(coalesce(sum(CASE WHEN kind = 'EARN' THEN points ELSE 0 END), 0) AS BIGINT) AS points_issued,
             CAST(coalesce(-sum(CASE WHEN kind = 'SPEND' THEN points ELSE 0 END), 0) AS BIGINT) AS points_redeemed,
             CAST(coalesce(-sum(CASE WHEN kind = 'EXPIRE' THEN points ELSE 0 END), 0) AS BIGINT) AS points_expired,
             CAST(coalesce(sum(points), 0) AS BIGINT) AS points_net
        FROM points_entry WHERE occurred_at >= $1 AND occurred_at < $2) e,
     (SELECT count(*) AS check_ins FROM member_behaviour WHERE kind = 'CHECK_IN' AND occurred_at >= $1
        AND occurred_at < $2) c,
     (SELECT count(*) AS task_completions FROM task_claim WHERE claimed_at >= $1 AND claimed_at < $2) t,
     (SELECT count(*) AS redemptions, coalesce(sum(CASE WHEN channel = 'FLASH_SALE' THEN 1 ELSE 0 END), 0)
             AS flash_sale_orders FROM mall_order WHERE paid_at >= $1 AND paid_at < $2
             AND channel NOT IN ('DRAW', 'CAMPAIGN')) o,
     (SELECT count(*) AS draw_plays FROM draw_play WHERE played_at >= $1 AND played_at < $2) d,
     (SELECT count(*) AS parking_offsets, CAST(coalesce(sum({_PARKING_OFFSET}), 0) AS BIGINT) AS parking_offset_fen
        FROM parking_session WHERE exited_at >= $1 AND exited_at < $2 AND status = 'CLOSED'
        AND member_id IS NOT NULL AND {_PARKING_OFFSET} > 0) pk
"""

ROLLUP_COLUMNS = ("members_new", "purchases", "member_sales_fen", "buyers", "repeat_buyers", "members_active",
                  "points_issued", "points_redeemed", "points_expired", "points_net", "check_ins",
                  "task_completions", "redemptions", "flash_sale_orders", "draw_plays", "parking_offsets",
                  "parking_offset_fen")

# Why SQL: an upsert of one closed day from the same aggregate, in one statement (a day rolled again
# after late rows replaces its counts; no read-modify-write). `WHERE true` lets SQLite parse the upsert.
def roll_day(postgres: bool) -> str:
    day, at = ("$3::date", "$4::timestamptz") if postgres else ("$3", "$4")
    return (
        f"INSERT INTO insight_kpi_day (day, {', '.join(ROLLUP_COLUMNS)}, rolled_at)"
        f" SELECT {day}, s.*, {at} FROM ({SPAN_COUNTS}) s WHERE true ON CONFLICT (day) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in ROLLUP_COLUMNS) + ", rolled_at = excluded.rolled_at"
    )

# Why SQL: totals up to a moment (members and outstanding points) as two indexed aggregates.
TOTALS_BEFORE = (
    "SELECT (SELECT count(*) FROM member WHERE created_at < $1) AS members,"
    " (SELECT CAST(coalesce(sum(points), 0) AS BIGINT) FROM points_entry WHERE occurred_at < $1) AS points"
)

# Why SQL: the earliest moment any KPI source has a row (where the rollup starts); min() over indexes.
FIRST_MOMENT = (
    "SELECT (SELECT min(created_at) FROM member) AS m, (SELECT min(occurred_at) FROM points_entry) AS e,"
    " (SELECT min(occurred_at) FROM purchase) AS p"
)

# Why SQL: the rollup's id watermarks (rows above them may belong to days already rolled).
MARKS = (
    "SELECT (SELECT coalesce(max(id), 0) FROM points_entry) AS e, (SELECT coalesce(max(id), 0) FROM purchase) AS p,"
    " (SELECT coalesce(max(id), 0) FROM member) AS m"
)

# Why SQL: the Asia/Shanghai days of the rows written since a watermark (a late receipt, a backdated
# expiry run): DISTINCT over a time-zone expression, which the ORM cannot group by. Per dialect.
_LATE_DAYS = (
    "SELECT DISTINCT {day} AS day FROM points_entry WHERE id > $1"
    " UNION SELECT DISTINCT {day} FROM purchase WHERE id > $2"
    " UNION SELECT DISTINCT {created} FROM member WHERE id > $3"
)
LATE_DAYS_PG = _LATE_DAYS.format(day="(occurred_at AT TIME ZONE 'Asia/Shanghai')::date",
                                 created="(created_at AT TIME ZONE 'Asia/Shanghai')::date")
LATE_DAYS_SQLITE = _LATE_DAYS.format(day="date(occurred_at, '+8 hours')", created="date(created_at, '+8 hours')")

# Why SQL (PostgreSQL): the members of a span, for the day's bitmaps: a UNION of purchasers and
# earners/spenders, and each purchaser's number of purchases.
ACTIVE_IDS = (
    "SELECT member_id FROM purchase WHERE occurred_at >= $1 AND occurred_at < $2"
    " UNION SELECT a.member_id FROM points_entry pe JOIN points_account a ON a.id = pe.account_id"
    " WHERE pe.kind IN ('EARN', 'SPEND') AND pe.occurred_at >= $1 AND pe.occurred_at < $2"
)
BUYER_COUNTS = (
    "SELECT member_id, count(*) AS n FROM purchase WHERE occurred_at >= $1 AND occurred_at < $2 GROUP BY member_id"
)
# Why SQL (PostgreSQL): `bit varying` has no ORM field; the bitmaps arrive as hex text ('x…').
SET_BITS = (
    "UPDATE insight_kpi_day SET active_bits = $2::text::varbit, buyer_bits = $3::text::varbit,"
    " multi_bits = $4::text::varbit WHERE day = $1"
)
BITS_WIDTH = (
    "SELECT coalesce(max(greatest(length(active_bits), length(buyer_bits), length(multi_bits))), 0) AS w"
    " FROM insight_kpi_day WHERE day >= $1 AND day <= $2"
)


def distinct_over_range(width: int) -> str:
    """Why SQL (PostgreSQL): the distinct members of a range from the rolled days' bitmaps plus one live
    block ($3..$5, hex): active = OR of the active bitmaps; buyers = OR of the buyer bitmaps; repeat buyers
    = members with two purchases on one day (multi) or purchases on two days (a day's buyers AND the OR of
    the earlier days', a running window aggregate). `width` is an int, cast so every bitmap has one length."""
    w = int(width)
    return (
        f"WITH d AS (SELECT day, active_bits::bit({w}) AS a, buyer_bits::bit({w}) AS b, multi_bits::bit({w}) AS m"
        " FROM insight_kpi_day WHERE day >= $1 AND day <= $2 AND active_bits IS NOT NULL"
        f" UNION ALL SELECT $2 + 1, $3::text::varbit::bit({w}), $4::text::varbit::bit({w}), $5::text::varbit::bit({w})),"
        " w AS (SELECT a, b, m, bit_or(b) OVER (ORDER BY day ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS p"
        " FROM d)"
        f" SELECT bit_count(bit_or(a)) AS active, bit_count(bit_or(b)) AS buyers,"
        f" bit_count(bit_or(m | (b & coalesce(p, B'0'::bit({w}))))) AS repeat FROM w"
    )


# Why SQL: the rolled days before a range (from the first day with data): how many, and the sums of new
# members and of points, in one aggregate (not hundreds of rows through the ORM).
ROLLED_BEFORE = (
    "SELECT count(*) AS days, CAST(coalesce(sum(members_new), 0) AS BIGINT) AS members,"
    " CAST(coalesce(sum(points_net), 0) AS BIGINT) AS points FROM insight_kpi_day WHERE day >= $1 AND day < $2"
)

# ---- RFM and lifecycle -------------------------------------------------------------------------------

# Why SQL: quintile cut values of frequency, monetary value and last purchase over the window's buyers:
# ntile(5) window functions (PostgreSQL and SQLite ≥ 3.25 alike) grouped per tile; read-only, no locks.
RFM_CUTS = """
WITH b AS (SELECT member_id, count(*) AS fq, sum(amount_fen) AS mon, max(occurred_at) AS last
             FROM purchase WHERE occurred_at >= $1 GROUP BY member_id),
     w AS (SELECT fq, mon, last, ntile(5) OVER (ORDER BY fq) AS tf, ntile(5) OVER (ORDER BY mon) AS tm,
                  ntile(5) OVER (ORDER BY last) AS tr FROM b)
SELECT 'r' AS k, tr AS t, CAST(NULL AS BIGINT) AS v, max(last) AS at FROM w GROUP BY tr
UNION ALL SELECT 'f', tf, CAST(max(fq) AS BIGINT), NULL FROM w GROUP BY tf
UNION ALL SELECT 'm', tm, CAST(max(mon) AS BIGINT), NULL FROM w GROUP BY tm
"""

# The values of one chunk of members [$1, $2): $3 now, $4 window start, $5 trend start (recent), $6 the
# trend's earlier start, $7 joined-after for NEW, $8 last-sign-of-life before for LOST, $9 for DECLINING,
# $10..$13 frequency cuts, $14..$17 monetary cuts, $18..$21 last-purchase cuts.
_RFM_VALUES = """
vals AS (
  SELECT m.id AS member_id, m.created_at, g.last_ever,
         {recency} AS recency_days,
         coalesce(g.fq, 0) AS frequency, coalesce(g.mon, 0) AS monetary_fen,
         CASE WHEN coalesce(g.fq, 0) = 0 THEN 0 ELSE 1 {r_score} END AS r,
         CASE WHEN coalesce(g.fq, 0) = 0 THEN 0 ELSE 1 {f_score} END AS f,
         CASE WHEN coalesce(g.fq, 0) = 0 THEN 0 ELSE 1 {m_score} END AS m,
         CASE WHEN m.created_at >= $7 THEN 'NEW'
              WHEN coalesce(g.last_ever, m.created_at) < $8 THEN 'LOST'
              WHEN coalesce(g.last_ever, m.created_at) < $9 THEN 'DECLINING'
              WHEN coalesce(g.recent, 0) > coalesce(g.prior, 0) THEN 'GROWING'
              ELSE 'STABLE' END AS stage
    FROM member m LEFT JOIN (
      SELECT member_id, max(occurred_at) AS last_ever,
             sum(CASE WHEN occurred_at >= $4 THEN 1 ELSE 0 END) AS fq,
             sum(CASE WHEN occurred_at >= $4 THEN amount_fen ELSE 0 END) AS mon,
             max(CASE WHEN occurred_at >= $4 THEN occurred_at END) AS last_window,
             sum(CASE WHEN occurred_at >= $5 THEN 1 ELSE 0 END) AS recent,
             sum(CASE WHEN occurred_at >= $6 AND occurred_at < $5 THEN 1 ELSE 0 END) AS prior
        FROM purchase WHERE member_id >= $1 AND member_id < $2 GROUP BY member_id) g ON g.member_id = m.id
   WHERE m.id >= $1 AND m.id < $2)
"""
# SQLite: the upsert (its ON CONFLICT costs nothing like PostgreSQL's speculative insertion).
_UPSERT = """
INSERT INTO member_insight (member_id, recency_days, frequency, monetary_fen, r, f, m, lifecycle, stage_since,
                            computed_at)
SELECT member_id, recency_days, frequency, monetary_fen, r, f, m, stage, $3, $3 FROM vals WHERE true
ON CONFLICT (member_id) DO UPDATE SET recency_days = excluded.recency_days, frequency = excluded.frequency,
  monetary_fen = excluded.monetary_fen, r = excluded.r, f = excluded.f, m = excluded.m,
  stage_since = CASE WHEN member_insight.lifecycle = excluded.lifecycle THEN member_insight.stage_since
                     ELSE excluded.stage_since END,
  lifecycle = excluded.lifecycle, computed_at = excluded.computed_at
"""
# PostgreSQL: the rows that exist are updated in place (a plain UPDATE: ON CONFLICT's speculative insertion
# per row cost 3× on a recomputation, which updates nearly every row every day); members new to the table are
# inserted. Every read of member_insight names the chunk's id range, so the plan is an index range scan of
# the chunk even where the table's statistics are stale (right after a first computation filled it).
_UPDATE = """
UPDATE member_insight mi SET recency_days = v.recency_days, frequency = v.frequency, monetary_fen = v.monetary_fen,
  r = v.r, f = v.f, m = v.m, stage_since = CASE WHEN mi.lifecycle = v.stage THEN mi.stage_since ELSE $3 END,
  lifecycle = v.stage, computed_at = $3
  FROM vals v WHERE mi.member_id = v.member_id AND mi.member_id >= $1 AND mi.member_id < $2
"""
_INSERT_NEW = """
INSERT INTO member_insight (member_id, recency_days, frequency, monetary_fen, r, f, m, lifecycle, stage_since,
                            computed_at)
SELECT member_id, recency_days, frequency, monetary_fen, r, f, m, stage, $3, $3 FROM vals v
 WHERE NOT EXISTS (SELECT 1 FROM member_insight mi
                    WHERE mi.member_id = v.member_id AND mi.member_id >= $1 AND mi.member_id < $2)
ON CONFLICT (member_id) DO NOTHING
"""
_CHANGES = """
INSERT INTO member_lifecycle_change (member_id, from_stage, to_stage, changed_at)
SELECT v.member_id, mi.lifecycle, v.stage, $3 FROM vals v
  LEFT JOIN member_insight mi ON mi.member_id = v.member_id AND mi.member_id >= $1 AND mi.member_id < $2
 WHERE mi.lifecycle IS NULL OR mi.lifecycle <> v.stage
"""


def _score(expr: str, first: int, cast: str) -> str:
    # 1 + the number of cut values (tiles 1..4) the member's value is above; a missing cut adds nothing.
    return "".join(f" + CASE WHEN $%d{cast} IS NOT NULL AND {expr} > $%d{cast} THEN 1 ELSE 0 END" % (n, n)
                   for n in range(first, first + 4))


def rfm_chunk(postgres: bool) -> list[str]:
    """Why SQL: a chunk of members recomputed set-based: their purchase aggregates (one grouped scan of
    the chunk's purchases on the (member_id, occurred_at) index), scores against the cut values, the stage,
    the history rows of changed stages, then the rows written. On PostgreSQL one statement (data-modifying
    CTEs see the rows as before the statement) answering the numbers of members written and of changes;
    on SQLite the history insert then the upsert (their row counts)."""
    if postgres:
        # never below 0: a receipt stamped a little after the run's "now" (a till's clock ahead) is today
        recency = ("GREATEST(0, CAST(floor(extract(epoch FROM ($3::timestamptz - coalesce(g.last_ever, m.created_at)))"
                   " / 86400) AS INTEGER))")
        b, t = "::bigint", "::timestamptz"
    else:
        recency = "max(0, CAST(julianday($3) - julianday(coalesce(g.last_ever, m.created_at)) AS INTEGER))"
        b, t = "", ""
    values = _RFM_VALUES.format(recency=recency, r_score=_score("g.last_window", 18, t),
                                f_score=_score("g.fq", 10, b), m_score=_score("g.mon", 14, b))
    if postgres:
        # (data-modifying CTEs all see the table as before the statement: the history compares with the
        # old stages, the insert skips exactly the rows the update writes)
        return [f"WITH {values}, changed AS ({_CHANGES} RETURNING 1), upd AS ({_UPDATE} RETURNING 1),"
                f" ins AS ({_INSERT_NEW} RETURNING 1)"
                " SELECT (SELECT count(*) FROM upd) + (SELECT count(*) FROM ins) AS n,"
                " (SELECT count(*) FROM changed) AS c"]
    return [f"WITH {values} {_CHANGES}", f"WITH {values} {_UPSERT}"]


# Why SQL: fresh statistics after a recomputation (PostgreSQL): a first computation fills the table long before
# autovacuum would look, and the segments' filters on stages and scores are planned from these statistics.
ANALYZE = "ANALYZE member_insight"

# Why SQL: the id span of members, for chunking.
MEMBER_SPAN = "SELECT coalesce(min(id), 0) AS lo, coalesce(max(id), 0) AS hi FROM member"

# Why SQL: members per lifecycle stage (a GROUP BY the dashboard draws).
STAGE_COUNTS = "SELECT lifecycle, count(*) AS n FROM member_insight GROUP BY lifecycle"

# Why SQL: the merchants with the most member sales in a span (a grouped, ranked aggregate).
TOP_MERCHANTS = (
    "SELECT m.code, m.name, count(*) AS purchases, CAST(sum(p.amount_fen) AS BIGINT) AS sales_fen"
    " FROM purchase p JOIN merchant m ON m.id = p.merchant_id WHERE p.occurred_at >= $1 AND p.occurred_at < $2"
    " GROUP BY m.code, m.name ORDER BY sales_fen DESC, m.code LIMIT $3"
)
