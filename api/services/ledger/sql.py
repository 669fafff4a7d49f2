"""The ledger's raw SQL: what the ORM cannot say as well or as fast. Each statement says why it is SQL.

Placeholders are PostgreSQL's `$1, $2…` (`api.db.Tx` turns them into SQLite's `?1, ?2…`).
"""
from __future__ import annotations

from typing import Any

# Locks the member's row and account row in one statement (FOR UPDATE OF two joined tables, added by
# api.locks.statement).
LOCK_ACCOUNT = (
    "SELECT a.id, a.balance, m.tier_id, m.growth_value FROM points_account a JOIN member m ON m.id = a.member_id"
    " WHERE a.member_id = $1"
)

# Points of the account `a` held at $2 (a hold past its expiry no longer holds anything): a correlated
# aggregate, reused inside the statements below.
HELD = (
    "SELECT COALESCE(SUM(h.points), 0) FROM points_hold h WHERE h.account_id = a.id AND h.status = 'HELD'"
    " AND h.expires_at > $2"
)

# Due and held points of account $1 at $2: two aggregates in one round trip, read after the lock.
DUE_AND_HELD = (
    "SELECT (SELECT COALESCE(SUM(l.remaining), 0) FROM points_lot l WHERE l.account_id = $1 AND l.kind = 'EARN'"
    f" AND l.remaining > 0 AND l.expires_at <= $2) AS due, ({HELD.replace('a.id', '$1')}) AS held"
)

# An entry and the cached balance. On PostgreSQL with the balance update as a data-modifying CTE (one
# round trip), and with the entry's EARN lot too when it has one; Tortoise has no multi-table writes.
INSERT_ENTRY = (
    "INSERT INTO points_entry (account_id, kind, points, balance_after, reason, source_type, source_ref,"
    " operator_id, reverses_id, occurred_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    " RETURNING id"
)
SET_BALANCE_PG = "UPDATE points_account SET balance = $4, updated_at = $12 WHERE id = $1"
ENTRY_AND_BALANCE_PG = f"WITH account AS ({SET_BALANCE_PG}) {INSERT_ENTRY}"
ENTRY_BALANCE_AND_LOT_PG = (
    f"WITH account AS ({SET_BALANCE_PG}), entry AS ({INSERT_ENTRY}), lot AS ("
    "INSERT INTO points_lot (account_id, kind, entry_id, points, remaining, earned_at, expires_at)"
    " SELECT $1, 'EARN', entry.id, $3, $13, $10, $11 FROM entry RETURNING id)"
    " SELECT entry.id AS entry_id, lot.id AS lot_id FROM entry, lot"
)


def apply_moves(moves: list[tuple[int, int]]) -> str:
    """Adds each (lot id, delta) to its lot in one statement (a CASE over many rows: set-based)."""
    case = " ".join(f"WHEN {int(lot_id)} THEN {int(delta)}" for lot_id, delta in moves)
    ids = ", ".join(str(int(lot_id)) for lot_id, _ in moves)
    return f"UPDATE points_lot SET remaining = remaining + CASE id {case} END WHERE id IN ({ids})"


def record_moves(entry_id: int, moves: list[tuple[int, int]]) -> str:
    """Records the moves of one entry in one multi-row insert (bulk_create would be one per row on SQLite)."""
    values = ", ".join(f"({int(entry_id)}, {int(lot_id)}, {int(delta)})" for lot_id, delta in moves)
    return f"INSERT INTO points_lot_move (entry_id, lot_id, delta) VALUES {values}"


def sql_ids(ids: tuple[int, ...] | list[int]) -> str:
    """A SQL list of integer ids (never empty: -1 matches nothing)."""
    return ", ".join(str(int(i)) for i in ids) or "-1"


def allocate(prefer_entry_ids: tuple[int, ...]) -> str:
    """Lot allocation: the account's lots that cover $2 points, the preferred entries' lots first, then
    earliest expiry, as a running sum (a window function stops at the last lot needed)."""
    return (
        "SELECT id, remaining FROM (SELECT id, remaining, SUM(remaining) OVER ("
        f"  ORDER BY CASE WHEN entry_id IN ({sql_ids(prefer_entry_ids)}) THEN 0 ELSE 1 END, expires_at NULLS LAST, id"
        "  ROWS UNBOUNDED PRECEDING) AS running"
        " FROM points_lot WHERE account_id = $1 AND kind = 'EARN' AND remaining > 0) t"
        " WHERE running - remaining < $2 ORDER BY running"
    )


# Points of account $1 in lots that will have expired by $2 (a hold may not count on them): an aggregate
# on every checkout's hot path.
EXPIRING_BY = (
    "SELECT COALESCE(SUM(remaining), 0) FROM points_lot WHERE account_id = $1 AND kind = 'EARN'"
    " AND remaining > 0 AND expires_at <= $2"
)

# A new hold, writing the account row too (a new row version, see `holds.hold`): one round trip on
# PostgreSQL as a data-modifying CTE.
INSERT_HOLD = (
    "INSERT INTO points_hold (account_id, points, status, source_type, source_ref, expires_at, created_at)"
    " VALUES ($1, $2, 'HELD', $3, $4, $5, $6) RETURNING id"
)
TOUCH_ACCOUNT = "UPDATE points_account SET updated_at = $6 WHERE id = $1"
HOLD_AND_TOUCH_PG = f"WITH touch AS ({TOUCH_ACCOUNT}) {INSERT_HOLD}"

# Conditional updates that must say what they changed (a hold is also ended by order lapses that do
# not lock the account): the row count alone is not enough, RETURNING gives the row.
CAPTURE_HOLD = (
    "UPDATE points_hold SET status = 'CAPTURED', settled_at = $2 WHERE id = $1 AND account_id = $3"
    " AND status = 'HELD' RETURNING points, expires_at"
)
RELEASE_HOLD = (
    "UPDATE points_hold SET status = 'RELEASED', settled_at = $2 WHERE id = $1 AND status = 'HELD'"
    " RETURNING account_id, (SELECT a.member_id FROM points_account a WHERE a.id = account_id) AS member_id"
)

# The captured hold's spend: raw for the same reason as the capture (every paid checkout's hot path).
LINK_HOLD = "UPDATE points_hold SET entry_id = $1 WHERE id = $2"

# What a SPEND entry took from each lot: an aggregate over the moves joined to their lots.
TAKEN_BY_ENTRY = (
    "SELECT l.id, l.kind, -SUM(m.delta) AS taken FROM points_lot_move m JOIN points_lot l ON l.id = m.lot_id"
    " WHERE m.entry_id = $1 GROUP BY l.id, l.kind, l.expires_at ORDER BY l.expires_at, l.id"
)

# --- the expiry run: set-based statements over a chunk of accounts --------------------------------

# The accounts with lots due at $1, in account order: one scan of the partial index of lots with points
# left, by expiry (points_lot_due, migration 0002), whatever the size of the ledger's history.
EXPIRY_CANDIDATES = (
    "SELECT DISTINCT account_id FROM points_lot WHERE kind = 'EARN' AND remaining > 0 AND expires_at <= $1"
    " ORDER BY account_id"
)


def expiry_accounts(candidate_ids: list[int]) -> str:
    """The candidates that still have lots due at $1, in member order (locked by api.locks.statement). The
    subquery sees the snapshot from before the lock wait: an account whose lot came due meanwhile is left
    to the next run (or to its own next move)."""
    return (
        "SELECT id, member_id FROM points_account WHERE id IN (SELECT account_id FROM points_lot WHERE kind = 'EARN'"
        f" AND remaining > 0 AND expires_at <= $1 AND account_id IN ({sql_ids(candidate_ids)})) ORDER BY member_id"
    )


def expiry_chunk(account_ids: list[int]) -> dict[str, str]:
    """The statements of one chunk, limited to `account_ids` (the accounts it locked). $1 is as_of."""
    mine = f"account_id IN ({sql_ids(account_ids)})"
    due = f"kind = 'EARN' AND remaining > 0 AND expires_at <= $1 AND {mine}"
    return {
        # Counts for the run's result: one aggregate.
        "stats": "SELECT COUNT(*) AS lots, COALESCE(SUM(remaining), 0) AS points,"
                 " COUNT(DISTINCT account_id) AS accounts FROM points_lot WHERE " + due,
        # One EXPIRE entry per account ($2 reason, $3 run): INSERT … SELECT over the due lots.
        "entries": "INSERT INTO points_entry (account_id, kind, points, balance_after, reason, source_type,"
                   " source_ref, occurred_at) SELECT a.id, 'EXPIRE', -d.total, a.balance - d.total, $2,"
                   " 'expiry_run', $3, $1 FROM points_account a JOIN (SELECT account_id, SUM(remaining) AS total"
                   " FROM points_lot WHERE " + due + " GROUP BY account_id) d ON d.account_id = a.id",
        # The moves of those entries ($2 run): INSERT … SELECT joining lots to their run's entry.
        "moves": "INSERT INTO points_lot_move (entry_id, lot_id, delta) SELECT e.id, l.id, -l.remaining"
                 " FROM points_lot l JOIN points_entry e ON e.account_id = l.account_id"
                 " AND e.source_type = 'expiry_run' AND e.source_ref = $2"
                 f" WHERE l.kind = 'EARN' AND l.remaining > 0 AND l.expires_at <= $1 AND l.{mine}",
        # The balances ($2 now): a correlated sum per account.
        "balances": "UPDATE points_account SET updated_at = $2, balance = balance - (SELECT SUM(remaining)"
                    " FROM points_lot l WHERE l.account_id = points_account.id AND l.kind = 'EARN'"
                    " AND l.remaining > 0 AND l.expires_at <= $1) WHERE id IN (SELECT account_id FROM points_lot"
                    " WHERE " + due + ")",
        # The lots, emptied: one set-based update.
        "lots": "UPDATE points_lot SET remaining = 0 WHERE " + due,
    }


# --- reads ------------------------------------------------------------------------------------

# Spendable points of many members at $1: the balance less due lots and live holds, per account (a
# report-style aggregate per row).
SPENDABLE = (
    "SELECT a.member_id, a.balance - COALESCE((SELECT SUM(l.remaining) FROM points_lot l WHERE"
    " l.account_id = a.id AND l.kind = 'EARN' AND l.remaining > 0 AND l.expires_at <= $1), 0)"
    f" - ({HELD.replace('$2', '$1')}) AS spendable FROM points_account a WHERE a.member_id IN "
)
# Held points of many members at $1, likewise.
HELD_BY_MEMBER = f"SELECT a.member_id, ({HELD.replace('$2', '$1')}) AS held FROM points_account a WHERE a.member_id IN "


def charge_ctes(account: str, points: str) -> str:
    """A spend's lots as data-modifying CTEs, for a move written as one statement (a lucky-draw play, a
    mall order on PostgreSQL): `take` (lot id, delta) are the account's EARN lots that cover `points`,
    earliest expiry first, exactly as `allocate` and `debit` take them, and `lots` takes them. The caller
    inserts the moves (`charge_moves`) once its SPEND entry exists, and checks that SUM(take.delta) is
    the whole amount (the lots covered it). `account` and `points` are placeholders ("$1", "$4::bigint")."""
    return (
        f"take AS (SELECT id, LEAST(remaining, {points} - (running - remaining)) AS delta FROM (SELECT id, remaining,"
        " SUM(remaining) OVER (ORDER BY expires_at NULLS LAST, id ROWS UNBOUNDED PRECEDING) AS running"
        f" FROM points_lot WHERE account_id = {account} AND kind = 'EARN' AND remaining > 0) t"
        f" WHERE running - remaining < {points}),"
        " lots AS (UPDATE points_lot l SET remaining = l.remaining - take.delta FROM take WHERE l.id = take.id)"
    )


def charge_moves(entry_id: str) -> str:
    """The moves of `charge_ctes`' lots, as a CTE `moves`; `entry_id` is a scalar subquery of the SPEND entry."""
    return f"moves AS (INSERT INTO points_lot_move (entry_id, lot_id, delta) SELECT {entry_id}, id, -delta FROM take)"


class Args:
    """Numbered placeholders for a statement assembled from parts: `args(value)` keeps the value and
    returns its `$n` (with an optional cast), so a part that is left out leaves no gap in the numbers."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any, cast: str = "") -> str:
        self.values.append(value)
        return f"${len(self.values)}{cast}"
