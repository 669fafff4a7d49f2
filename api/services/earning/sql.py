"""The earning domain's raw SQL: only what the ORM cannot say as well or as fast. Everything else
(rules, tasks, events, behaviours, invites, pending points, breakdowns) is read and written through
the models in `api/models/earning.py`.

Statements use PostgreSQL's `$1, $2…` placeholders; `api.db.Tx` turns them into `?1, ?2…` on SQLite.
"""
from __future__ import annotations

from datetime import datetime

# Why SQL: an upsert that adds to a counter in one statement (no read-modify-write, no unique error
# that would abort a PostgreSQL transaction). A member's day and month counters of one rule.
COUNTER_ADD = (
    "INSERT INTO earn_counter (rule_id, member_id, period, points, times) VALUES ($1, $2, $3, $4, 1)"
    " ON CONFLICT (rule_id, member_id, period) DO UPDATE SET points = earn_counter.points + $4,"
    " times = earn_counter.times + 1"
)

# Why SQL: the same counter upsert, against the rule's total budget (member 0, period TOTAL).
BUDGET_ADD = (
    "INSERT INTO earn_counter (rule_id, member_id, period, points, times) VALUES ($1, 0, 'TOTAL', $2, 1)"
    " ON CONFLICT (rule_id, member_id, period) DO UPDATE SET points = earn_counter.points + $2,"
    " times = earn_counter.times + 1"
)

# Why SQL: an insert-if-absent of a rule's budget row; a plain insert's unique error would abort the
# operator's transaction.
BUDGET_ROW_ENSURE = (
    "INSERT INTO earn_counter (rule_id, member_id, period, points, times) VALUES ($1, 0, 'TOTAL', 0, 0)"
    " ON CONFLICT (rule_id, member_id, period) DO NOTHING"
)

# Why SQL: read on every earn under a capped or budgeted rule; the ORM's filter with Q costs about
# eight times this statement's CPU (measured ~300 µs against ~40 µs on SQLite). Ids are integers.
def counters_of(rule_ids: list[int]) -> str:
    ids = ", ".join(str(int(i)) for i in rule_ids)
    return ("SELECT rule_id, member_id, period, points, times FROM earn_counter WHERE rule_id IN (" + ids + ")"
            " AND ((member_id = $1 AND period IN ($2, $3)) OR (member_id = 0 AND period = 'TOTAL'))")


# Why SQL: a decrement clamped at zero over three counter rows in one statement (the ORM has no
# GREATEST/CASE update that reads the same on both databases).
COUNTER_GIVE_BACK = (
    "UPDATE earn_counter SET points = CASE WHEN points > $2 THEN points - $2 ELSE 0 END WHERE rule_id = $1"
    " AND ((member_id = $3 AND period IN ($4, $5)) OR (member_id = 0 AND period = 'TOTAL'))"
)

# Why SQL: the unique (member, kind, ref) row decides once-only behaviours; ON CONFLICT DO NOTHING
# answers "already" with no row instead of a unique error that would abort the transaction.
BEHAVIOUR_RECORD = (
    "INSERT INTO member_behaviour (member_id, kind, ref, day, streak, points, occurred_at)"
    " VALUES ($1, $2, $3, $4, $5, 0, $6) ON CONFLICT (member_id, kind, ref) DO NOTHING RETURNING id"
)

# Why SQL: insert-if-absent of an invite row (member or code already taken: no row, try again),
# without a unique error that would abort the caller's transaction.
INVITE_INSERT = (
    "INSERT INTO member_invite (member_id, code, inviter_id, created_at) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT DO NOTHING RETURNING id"
)


# Why SQL: member ids by birth month over the whole member table, one set read per month per
# process; SQLite has no EXTRACT, which is what the ORM's `__month` filter emits.
def born_in_month(postgres: bool) -> str:
    if postgres:
        return ("SELECT id, EXTRACT(DAY FROM birthday) AS day FROM member"
                " WHERE birthday IS NOT NULL AND EXTRACT(MONTH FROM birthday) = $1")
    return ("SELECT id, CAST(strftime('%d', birthday) AS INTEGER) AS day FROM member"
            " WHERE birthday IS NOT NULL AND CAST(strftime('%m', birthday) AS INTEGER) = $1")


# Why SQL: each task's progress in its own window as one conditional aggregate column, so one pass
# over the member's rows serves any number of tasks (the ORM would need a query per task).
def task_progress(table: str, member_id: int, columns: list[tuple[str, str, datetime, datetime, str | None]],
                  ) -> tuple[str, list]:
    """`columns`: (alias, measure, start, end, kind) with measure COUNT, PURCHASE_COUNT or
    PURCHASE_AMOUNT and `kind` the behaviour kind to count (COUNT only). Returns (sql, args)."""
    assert table in ("member_behaviour", "purchase")
    net = "amount_fen - refunded_fen"
    args: list = [member_id]
    parts = []
    for alias, measure, start, end, kind in columns:
        args += [start, end]
        inside = f"occurred_at >= ${len(args) - 1} AND occurred_at < ${len(args)}"
        if measure == "COUNT":
            args.append(kind)
            parts.append(f"COALESCE(SUM(CASE WHEN {inside} AND kind = ${len(args)} THEN 1 ELSE 0 END), 0) AS {alias}")
        elif measure == "PURCHASE_COUNT":
            parts.append(f"COALESCE(SUM(CASE WHEN {inside} AND {net} > 0 THEN 1 ELSE 0 END), 0) AS {alias}")
        else:
            parts.append(f"COALESCE(SUM(CASE WHEN {inside} AND {net} > 0 THEN {net} ELSE 0 END), 0) AS {alias}")
    args.append(min(c[2] for c in columns))
    return f"SELECT {', '.join(parts)} FROM {table} WHERE member_id = $1 AND occurred_at >= ${len(args)}", args
