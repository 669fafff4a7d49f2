"""The purchases domain's raw SQL: what the ORM cannot say as well or as fast. Each statement says why it is SQL.

Placeholders are PostgreSQL's `$1, $2…` (`api.db.Tx` turns them into SQLite's `?1, ?2…`).
"""
from __future__ import annotations

# Why SQL: the hot path's whole earn in one round trip. The same writes as the general path
# (idempotency.claim, ledger.lock_account, the purchase, ledger.credit with its breakdown, tiers.add_growth,
# the invite it qualifies, idempotency.remember), as data-modifying CTEs. The rules
# were evaluated in Python for every tier (earning.purchase_plan); the statement picks the outcome of
# the tier it finds under the lock. It claims the key and writes nothing else when the key was used
# before, when the account has points due for expiry or a claw-back debt, when the member's tier
# was not planned, or when it waited for the account's lock behind a move that changed it (see
# `stale`): the general path handles those. Parameters:
#  $1 member  $2 merchant  $3 receipt  $4 amount  $5 tier ids  $6 points per tier  $7 occurred  $8 now
#  $9 expires  $10 reason  $11 scope  $12 key  $13 input hash  $14 growth per tier  $15 breakdown per tier
EARN = """
WITH locked AS (
  -- No other table is joined here: a row re-read after waiting for the lock must not be filtered
  -- out by a join against the statement's older snapshot (a concurrent upgrade changes tier_id).
  -- Due and held points below are read with the statement's snapshot, taken before any lock wait.
  -- A move that changes them under the account lock also writes the account row (ledger.hold,
  -- ledger.release, every entry), so a row version newer than the snapshot's (stale) means the
  -- statement waited for such a move: it then writes nothing but the claim, and the general path
  -- reads them afresh under the lock it now holds.
  SELECT a.id, a.balance, m.growth_value, m.tier_id,
    a.xmin::text <> (SELECT x.xmin::text FROM points_account x WHERE x.id = a.id) AS stale,
    (SELECT COALESCE(SUM(l.remaining), 0) FROM points_lot l
     WHERE l.account_id = a.id AND l.kind = 'EARN' AND l.remaining > 0 AND l.expires_at <= $8) AS due,
    -- Held points (checkouts, parking) for the balance shown, which is the spendable one.
    (SELECT COALESCE(SUM(h.points), 0) FROM points_hold h
     WHERE h.account_id = a.id AND h.status = 'HELD' AND h.expires_at > $8) AS held
  FROM points_account a JOIN member m ON m.id = a.member_id
  WHERE a.member_id = $1 FOR UPDATE OF a, m
), acct AS (
  SELECT locked.*, t.growth_threshold FROM locked JOIN tier t ON t.id = locked.tier_id
), calc AS (
  SELECT nextval(pg_get_serial_sequence('purchase', 'id')) AS purchase_id, v.points, v.growth, v.bd
  FROM acct JOIN unnest($5::int[], $6::bigint[], $14::bigint[], $15::text[]) AS v(tier_id, points, growth, bd)
    ON v.tier_id = acct.tier_id
), claim AS (
  -- The key and its result in one insert (a CTE cannot update a row that a sibling CTE inserted).
  INSERT INTO idempotency_record (scope, key, request_hash, created_at, result)
  SELECT $11, $12, $13, $8, json_build_object('purchase_id', calc.purchase_id, 'receipt_no', $3::text,
    'amount_fen', $4::bigint, 'points_earned', calc.points, 'points_balance', acct.balance + calc.points - acct.held)::text
  FROM (SELECT 1) one LEFT JOIN calc ON TRUE LEFT JOIN acct ON TRUE
  ON CONFLICT (scope, key) DO NOTHING RETURNING id
), p AS (
  INSERT INTO purchase (id, merchant_id, member_id, receipt_no, amount_fen, refunded_fen, points_earned,
    points_reversed, points_forgiven, growth_earned, growth_reversed, occurred_at, recorded_at)
  SELECT calc.purchase_id, $2, $1, $3, $4, 0, calc.points, 0, 0, calc.growth, 0, $7, $8
  FROM acct, calc, claim WHERE acct.due = 0 AND acct.balance >= 0 AND NOT acct.stale
  ON CONFLICT (merchant_id, receipt_no) DO NOTHING
  RETURNING id, points_earned, growth_earned
), e AS (
  INSERT INTO points_entry (account_id, kind, points, balance_after, reason, source_type, source_ref, occurred_at,
    expires_at)
  SELECT acct.id, 'EARN', p.points_earned, acct.balance + p.points_earned, $10, 'purchase', p.id::text, $7, $9
  FROM acct, p WHERE p.points_earned > 0
  RETURNING id, account_id, points
), lot AS (
  INSERT INTO points_lot (account_id, kind, entry_id, points, remaining, earned_at, expires_at)
  SELECT e.account_id, 'EARN', e.id, e.points, e.points, $7, $9 FROM e
), why AS (
  INSERT INTO earn_breakdown (entry_id, breakdown) SELECT e.id, calc.bd FROM e, calc
), bal AS (
  -- Key equality and scalar subqueries (no joins) keep every write on its primary key, whatever plan.
  UPDATE points_account SET balance = balance + (SELECT points FROM e), updated_at = $8
  WHERE id = (SELECT account_id FROM e)
), up AS (
  SELECT t.id, t.growth_threshold FROM tier t, acct, p
  WHERE t.growth_threshold <= acct.growth_value + p.growth_earned AND t.growth_threshold > acct.growth_threshold
  ORDER BY t.growth_threshold DESC LIMIT 1
), mem AS (
  UPDATE member SET growth_value = growth_value + (SELECT growth_earned FROM p),
    tier_id = COALESCE((SELECT id FROM up), tier_id), updated_at = $8
  WHERE id = $1 AND (SELECT growth_earned FROM p) > 0
), growth AS (
  INSERT INTO growth_entry (member_id, delta, growth_after, reason, source_type, source_ref, occurred_at)
  SELECT $1, p.growth_earned, acct.growth_value + p.growth_earned, $10, 'purchase', p.id::text, $7
  FROM acct, p WHERE p.growth_earned > 0
), change AS (
  INSERT INTO tier_change (member_id, from_tier_id, to_tier_id, direction, growth_value, reason, occurred_at)
  SELECT $1, acct.tier_id, up.id, 'UPGRADE', acct.growth_value + p.growth_earned,
    'growth value reached ' || up.growth_threshold, $7
  FROM acct, up, p
), inv AS (
  -- The invitee's first purchase qualifies their invite; the rewards are booked after commit.
  UPDATE member_invite SET purchase_id = (SELECT id FROM p), qualified_at = $8
  WHERE member_id = $1 AND inviter_id IS NOT NULL AND purchase_id IS NULL AND EXISTS (SELECT 1 FROM p)
  RETURNING id
)
SELECT (SELECT id FROM claim) AS claim_id, locked.due, locked.balance, locked.held, locked.stale,
  p.id AS purchase_id, p.points_earned,
  (SELECT COUNT(*) FROM calc) AS planned, (SELECT id FROM inv) AS invite_id, (SELECT id FROM up) AS upgraded_tier_id
FROM (SELECT 1) one LEFT JOIN locked ON TRUE LEFT JOIN p ON TRUE
"""

# A new purchase unless its receipt was booked already: ON CONFLICT DO NOTHING (an ORM create would
# raise on the unique index and abort the PostgreSQL transaction, which other receipts of a group share).
INSERT_PURCHASE = (
    "INSERT INTO purchase (merchant_id, member_id, receipt_no, amount_fen, refunded_fen, points_earned,"
    " points_reversed, points_forgiven, growth_earned, growth_reversed, occurred_at, recorded_at)"
    " VALUES ($1, $2, $3, $4, 0, 0, 0, 0, 0, 0, $5, $6)"
    " ON CONFLICT (merchant_id, receipt_no) DO NOTHING RETURNING id"
)

# The invite that the invitee's first purchase qualifies: a conditional update that returns the row it
# changed (the ORM's update gives only a count), in one round trip.
QUALIFY_INVITE = (
    "UPDATE member_invite SET purchase_id = $1, qualified_at = $2 WHERE member_id = $3 AND inviter_id IS NOT NULL"
    " AND purchase_id IS NULL RETURNING id"
)

# Points paid at a till, once per receipt: ON CONFLICT DO NOTHING, as for INSERT_PURCHASE.
INSERT_TILL_PAYMENT = (
    "INSERT INTO till_payment (merchant_id, member_id, receipt_no, points, cash_value_fen, recorded_at)"
    " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (merchant_id, receipt_no) DO NOTHING RETURNING id"
)


def expired_from(entry_ids: str) -> str:
    """What expiry took from the lots of these entries: an aggregate over moves joined to their lots and
    to the moves' entries (two joins and a filter on the joined kind)."""
    return (
        "SELECT COALESCE(-SUM(m.delta), 0) FROM points_lot_move m JOIN points_lot l ON l.id = m.lot_id"
        f" JOIN points_entry e ON e.id = m.entry_id WHERE l.entry_id IN ({entry_ids}) AND e.kind = 'EXPIRE'"
    )


# --- the set-based batch (api/services/purchases/batch.py) ---------------------------------------
# Why SQL, all of them: a batch of receipts booked with a few statements over arrays (unnest), one
# round trip each, instead of a statement per receipt; the ORM has no multi-row insert from arrays,
# no UPDATE … FROM, no row locks in a given order for many rows.

# The batch's keys with their results, claimed last (one insert, in key order); a key taken meanwhile
# inserts nothing (`batch.book` then books the group on the general path).
BATCH_CLAIM = (
    "INSERT INTO idempotency_record (scope, key, request_hash, created_at, result)"
    " SELECT v.scope, v.key, v.hash, v.created_at, v.result FROM unnest($1::text[], $2::text[], $3::text[],"
    " $4::timestamptz[], $5::text[]) AS v(scope, key, hash, created_at, result)"
    " ORDER BY v.scope, v.key ON CONFLICT (scope, key) DO NOTHING RETURNING id"
)

# Every member's row and points account, locked in member order (the sort sits under the lock, so
# rows are locked in that order): the MEMBER locks of `api.locks`, all taken at once. Nothing else is
# read here: due and held points are read by the next statement, after the lock (a subquery here
# would see the snapshot from before any lock wait).
BATCH_LOCK = (
    "SELECT a.id, a.member_id, a.balance, m.growth_value, m.tier_id FROM points_account a"
    " JOIN member m ON m.id = a.member_id WHERE a.member_id = ANY($1::bigint[]) ORDER BY a.member_id"
    " FOR UPDATE OF a, m"
)

# After the lock: each account's due and held points at $2, which receipts of the batch are booked
# already, ids for the purchases and entries the batch may write ($4 of each), and the keys ($6, $7)
# used before (scope, key, input hash, result), in one round trip.
BATCH_READ = """
SELECT
  ARRAY(SELECT (SELECT COALESCE(SUM(l.remaining), 0) FROM points_lot l WHERE l.account_id = a.id
     AND l.kind = 'EARN' AND l.remaining > 0 AND l.expires_at <= $2) FROM unnest($1::bigint[]) WITH ORDINALITY
     AS a(id, n) ORDER BY a.n) AS due,
  ARRAY(SELECT (SELECT COALESCE(SUM(h.points), 0) FROM points_hold h WHERE h.account_id = a.id
     AND h.status = 'HELD' AND h.expires_at > $2) FROM unnest($1::bigint[]) WITH ORDINALITY AS a(id, n)
     ORDER BY a.n) AS held,
  ARRAY(SELECT p.merchant_id::text || ' ' || p.receipt_no FROM purchase p
     JOIN unnest($3::bigint[], $5::text[]) AS r(merchant_id, receipt_no)
     ON p.merchant_id = r.merchant_id AND p.receipt_no = r.receipt_no) AS taken,
  ARRAY(SELECT nextval(pg_get_serial_sequence('purchase', 'id')) FROM generate_series(1, $4)) AS purchase_ids,
  ARRAY(SELECT nextval(pg_get_serial_sequence('points_entry', 'id')) FROM generate_series(1, $4)) AS entry_ids,
  ARRAY(SELECT ARRAY[r.scope, r.key, r.request_hash, COALESCE(r.result, '')] FROM idempotency_record r
     JOIN unnest($6::text[], $7::text[]) AS v(scope, key) ON r.scope = v.scope AND r.key = v.key) AS used
"""

# The batch's writes, each over arrays; `batch.write` joins them into one statement of data-modifying
# CTEs (independent writes: each names its rows by id, no two touch the same row). A receipt site's
# further write (journal lines, notifications) is one more entry of the writes.
BATCH_PURCHASES = (
    "INSERT INTO purchase (id, merchant_id, member_id, receipt_no, amount_fen, refunded_fen, points_earned,"
    " points_reversed, points_forgiven, growth_earned, growth_reversed, occurred_at, recorded_at)"
    " SELECT v.id, v.merchant_id, v.member_id, v.receipt_no, v.amount_fen, 0, v.points, 0, 0, v.growth, 0,"
    " v.occurred_at, v.recorded_at FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[],"
    " $6::bigint[], $7::bigint[], $8::timestamptz[], $9::timestamptz[])"
    " AS v(id, merchant_id, member_id, receipt_no, amount_fen, points, growth, occurred_at, recorded_at)"
)
BATCH_ENTRIES = (
    "INSERT INTO points_entry (id, account_id, kind, points, balance_after, reason, source_type, source_ref,"
    " occurred_at, expires_at) SELECT v.id, v.account_id, 'EARN', v.points, v.balance_after, v.reason, 'purchase',"
    " v.ref, v.occurred_at, v.expires_at FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[],"
    " $5::text[], $6::text[], $7::timestamptz[], $8::timestamptz[])"
    " AS v(id, account_id, points, balance_after, reason, ref, occurred_at, expires_at)"
)
BATCH_LOTS = (
    "INSERT INTO points_lot (account_id, kind, entry_id, points, remaining, earned_at, expires_at)"
    " SELECT v.account_id, 'EARN', v.entry_id, v.points, v.points, v.earned_at, v.expires_at"
    " FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::timestamptz[], $5::timestamptz[])"
    " AS v(account_id, entry_id, points, earned_at, expires_at)"
)
BATCH_BREAKDOWNS = (
    "INSERT INTO earn_breakdown (entry_id, breakdown) SELECT v.entry_id, v.breakdown"
    " FROM unnest($1::bigint[], $2::text[]) AS v(entry_id, breakdown)"
)
BATCH_BALANCES = (
    "UPDATE points_account a SET balance = v.balance, updated_at = $3"
    " FROM unnest($1::bigint[], $2::bigint[]) AS v(id, balance) WHERE a.id = v.id"
)
BATCH_GROWTH = (
    "UPDATE member m SET growth_value = v.growth_value, tier_id = v.tier_id, updated_at = $4"
    " FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS v(id, growth_value, tier_id) WHERE m.id = v.id"
)
BATCH_GROWTH_ENTRIES = (
    "INSERT INTO growth_entry (member_id, delta, growth_after, reason, source_type, source_ref, occurred_at)"
    " SELECT v.member_id, v.delta, v.growth_after, v.reason, 'purchase', v.ref, v.occurred_at"
    " FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::timestamptz[])"
    " AS v(member_id, delta, growth_after, reason, ref, occurred_at)"
)
BATCH_TIER_CHANGES = (
    "INSERT INTO tier_change (member_id, from_tier_id, to_tier_id, direction, growth_value, reason, occurred_at)"
    " SELECT v.member_id, v.from_id, v.to_id, 'UPGRADE', v.growth_value, v.reason, v.occurred_at"
    " FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::timestamptz[])"
    " AS v(member_id, from_id, to_id, growth_value, reason, occurred_at)"
)
# The invites that the members' first purchases qualify (the rewards are booked after commit): the last
# part of the write statement, whose rows it returns.
BATCH_QUALIFY_INVITES = (
    "UPDATE member_invite i SET purchase_id = v.purchase_id, qualified_at = $3"
    " FROM unnest($1::bigint[], $2::bigint[]) AS v(member_id, purchase_id)"
    " WHERE i.member_id = v.member_id AND i.inviter_id IS NOT NULL AND i.purchase_id IS NULL RETURNING i.id"
)


def batch_write(ctes: list[str]) -> str:
    """Why SQL: a batch's independent writes, key claims and invite qualification as the data-modifying
    CTEs of one statement (one round trip); `ctes` are "name AS (statement)" with the claims named
    `claimed` and the invites `invited` (api/services/purchases/batch.py `write`)."""
    return ("WITH " + ", ".join(ctes) + " SELECT (SELECT count(*) FROM claimed) AS claimed,"
            " ARRAY(SELECT id FROM invited) AS invited")
