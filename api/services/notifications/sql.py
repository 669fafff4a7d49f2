"""The notifications domain's raw SQL. Each statement says why it is SQL.

Placeholders are PostgreSQL's `$1, $2…` (`api.db.Tx` turns them into SQLite's `?1, ?2…`).
"""
from __future__ import annotations

# Why SQL: the event's notification rides in the event's own transaction as one INSERT that may travel
# inside `Tx.execute_many` (one round trip with the event's other writes); ON CONFLICT DO NOTHING keeps
# a repeated source (topic, source_ref) from aborting the PostgreSQL transaction it shares.
INSERT_ONE = (
    "INSERT INTO notification (member_id, topic, channel, title, body, source_ref, campaign_id, status, attempts,"
    " next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $9)"
    " ON CONFLICT (topic, source_ref) DO NOTHING"
)

# Why SQL: the notifications of a group of receipts (group commit, batches) in one set-based INSERT.
INSERT_MANY_PG = (
    "INSERT INTO notification (member_id, topic, channel, title, body, source_ref, campaign_id, status, attempts,"
    " next_attempt_at, created_at)"
    " SELECT m, t, c, ti, b, s, ca, st, 0, $9, $9"
    " FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::text[])"
    " AS v(m, t, c, ti, b, s, ca, st)"
    " ON CONFLICT (topic, source_ref) DO NOTHING"
)

# Why SQL: expiry reminders are set-based (one statement per threshold over every lot due within the
# window), once per lot and threshold (the unique (topic, source_ref) makes a rerun write nothing).
# Parameters: $1 now  $2 window end  $3 days (text)  $4 channel  $5 status  $6 window start
REMIND_LOTS = """
INSERT INTO notification (member_id, topic, channel, title, body, source_ref, status, attempts, next_attempt_at,
  created_at)
SELECT a.member_id, 'POINTS_EXPIRING', $4, '积分即将过期',
  l.remaining || ' 积分将于 ' || {day} || ' 过期', 'lot:' || l.id || ':' || $3, $5, 0, $1, $1
FROM points_lot l JOIN points_account a ON a.id = l.account_id
WHERE l.kind = 'EARN' AND l.remaining > 0 AND l.expires_at > $6 AND l.expires_at <= $2
ON CONFLICT (topic, source_ref) DO NOTHING
"""

REMIND_VOUCHERS = """
INSERT INTO notification (member_id, topic, channel, title, body, source_ref, status, attempts, next_attempt_at,
  created_at)
SELECT v.member_id, 'VOUCHER_EXPIRING', $4, '券即将过期',
  '您的券 ' || p.name || ' 将于 ' || {day} || ' 过期', 'voucher:' || v.id || ':' || $3, $5, 0, $1, $1
FROM voucher v JOIN product p ON p.id = v.product_id
WHERE v.status = 'ISSUED' AND v.valid_until > $6 AND v.valid_until <= $2
ON CONFLICT (topic, source_ref) DO NOTHING
"""

# On PostgreSQL the set-based INSERTs are counted through a CTE (Tortoise reads an INSERT's row count
# from the wrong word of the command tag); SQLite's row count is right.
COUNTED_PG = "WITH ins AS ({insert} RETURNING 1) SELECT COUNT(*) AS n FROM ins"

# The day a lot or voucher expires, in Asia/Shanghai, as text in each dialect.
DAY_PG = "to_char(({col} AT TIME ZONE 'Asia/Shanghai'), 'YYYY-MM-DD')"
DAY_SQLITE = "date({col}, '+8 hours')"

# Why SQL: the dispatcher claims a batch of due pushes in one statement (a conditional UPDATE … RETURNING;
# on PostgreSQL with SKIP LOCKED, so two dispatchers never take the same row and never wait for each
# other). A claim moves next_attempt_at past the lease: a dispatcher that dies mid-send leaves the row to
# be tried again once the lease ends. $1 now  $2 lease end  $3 batch size
CLAIM_PG = """
UPDATE notification SET attempts = attempts + 1, next_attempt_at = $2
WHERE id IN (SELECT id FROM notification WHERE status = 'PENDING' AND next_attempt_at <= $1
             ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
RETURNING id, member_id, topic, channel, title, body, attempts
"""
CLAIM_SQLITE = """
UPDATE notification SET attempts = attempts + 1, next_attempt_at = $2
WHERE id IN (SELECT id FROM notification WHERE status = 'PENDING' AND next_attempt_at <= $1
             ORDER BY next_attempt_at, id LIMIT $3)
RETURNING id, member_id, topic, channel, title, body, attempts
"""
