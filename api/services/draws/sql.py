"""The statements of the draws that stay SQL, each with the reason it is not written with the ORM.
Placeholders are PostgreSQL's `$1…` (api.db turns them into SQLite's `?1…`)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from api.services.ledger import sql as ledger_sql

# A member's plays of a game: in all, today, and free today, read under the account lock on every
# play. The ORM can say it (Count with _filter) but builds it for ~0.9 ms of CPU each time.
PLAY_COUNTS = (
    "SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN played_at >= $3 THEN 1 ELSE 0 END), 0) AS today,"
    " COALESCE(SUM(CASE WHEN played_at >= $3 AND free THEN 1 ELSE 0 END), 0) AS free_today"
    " FROM draw_play WHERE game_id = $1 AND member_id = $2"
)

# A play's terms as they are now, with the drawn prize still switched on: read on every play inside
# its transaction. As an ORM query (select_related) the query builder cost about 1 ms of CPU per
# play, 60% more than the whole play took before; the window is compared in SQL so no time is parsed.
PLAY_TERMS = (
    "SELECT g.name, g.cost_points, g.free_plays, g.daily_limit, g.total_limit,"
    " (g.status = 'ACTIVE' AND g.starts_at <= $3 AND g.ends_at > $3 AND p.active) AS open"
    " FROM draw_game g JOIN draw_prize p ON p.game_id = g.id WHERE g.id = $1 AND p.id = $2"
)

# The units left of a game's prizes, read before every draw when there is no Redis gate
# (api.services.draws.play coalesces concurrent reads): the ORM's query builder took about half a
# millisecond of CPU per play for it (the benchmarked path).
STOCK_LEFT = "SELECT id, stock FROM draw_prize WHERE game_id = $1"

# A prize's units left and the plays that won it (member, idempotency key: as many as units handed out),
# as of one moment: the prize's Redis counter is reloaded from them (api.services.draws.gate). Read one
# after the other, a play committing in between would be counted twice or not at all. No time window:
# plays are timed by the app's clock and passes by Redis's, and a window on one misses passes of the other.
PRIZE_SNAPSHOT = (
    "SELECT p.game_id, p.stock, pl.member_id, pl.idempotency_key FROM draw_prize p"
    " LEFT JOIN draw_play pl ON pl.prize_id = p.id WHERE p.id = $1"
)

# A game's figures for operators: counts, a distinct count and sums over its plays joined with the
# points they granted (a report: conditional and distinct aggregates over a join).
GAME_TOTALS = (
    "SELECT COUNT(*) AS plays, COUNT(DISTINCT member_id) AS players,"
    " COALESCE(SUM(CASE WHEN free THEN 1 ELSE 0 END), 0) AS free_plays,"
    " COALESCE(SUM(cost_points), 0) AS consumed, COALESCE(SUM(e.points), 0) AS granted"
    " FROM draw_play d LEFT JOIN points_entry e ON e.id = d.grant_entry_id WHERE d.game_id = $1"
)

# --- a play's hot path (the benchmarked path, bench/draw_load) -------------------------------------
# Each Tortoise call here cost 0.1–0.25 ms of CPU and each statement a round trip; a play made about 15.
# A play now reads once after the account lock (PLAY_READ, both databases) and, on PostgreSQL, writes
# once (`play_writes`); the general path (ledger.debit/credit and the models) stays for SQLite and for
# the rare cases the statement does not cover. tests/test_draw_paths.py compares the rows of both.

# Everything a play checks under the account lock, in one round trip: the points due and held (read
# after the lock, not in a subquery of the locking statement: that would see the snapshot from before
# the lock wait), the terms now, the drawn prize as stored, and the member's plays of the game.
# $1 account, $2 as of, $3 game, $4 prize, $5 member, $6 start of today.
PLAY_READ = (
    "SELECT (SELECT COALESCE(SUM(l.remaining), 0) FROM points_lot l WHERE l.account_id = $1 AND l.kind = 'EARN'"
    " AND l.remaining > 0 AND l.expires_at <= $2) AS due,"
    " (SELECT COALESCE(SUM(h.points), 0) FROM points_hold h WHERE h.account_id = $1 AND h.status = 'HELD'"
    " AND h.expires_at > $2) AS held,"
    " g.name AS game_name, g.cost_points, g.free_plays, g.daily_limit, g.total_limit,"
    " (g.status = 'ACTIVE' AND g.starts_at <= $2 AND g.ends_at > $2 AND p.active) AS open,"
    " p.name, p.kind, p.points, p.product_id, p.weight, p.stock, p.stock_total, p.position, p.active,"
    " c.total, c.today, c.free_today"
    " FROM draw_game g JOIN draw_prize p ON p.game_id = g.id CROSS JOIN (SELECT COUNT(*) AS total,"
    " COALESCE(SUM(CASE WHEN d.played_at >= $6 THEN 1 ELSE 0 END), 0) AS today,"
    " COALESCE(SUM(CASE WHEN d.played_at >= $6 AND d.free THEN 1 ELSE 0 END), 0) AS free_today"
    " FROM draw_play d WHERE d.game_id = $3 AND d.member_id = $5) c WHERE g.id = $3 AND p.id = $4"
)

_ENTRY_COLUMNS = ("INSERT INTO points_entry (account_id, kind, points, balance_after, reason, source_type, source_ref,"
                  " occurred_at, expires_at) VALUES ")


@dataclass(frozen=True)
class PlayWrite:
    """What `play_writes` books; `spend` and `grant` are the SPEND and EARN entries' points and reasons
    (None: no entry), `expires_at` the EARN lot's expiry."""
    account_id: int
    member_id: int
    balance: int  # before the play
    told: int  # the points balance the member is told (spendable after the play)
    occurred_at: datetime
    source_ref: str
    record_id: int
    game_id: int
    prize_id: int
    free: bool
    cost: int
    candidates: str
    roll: int
    redraws: int
    order_id: int | None
    key: str
    limited: bool
    spend: tuple[int, str] | None = None
    grant: tuple[int, str, datetime] | None = None


def play_writes(w: PlayWrite) -> tuple[str, list[Any]]:
    """A play's writes on PostgreSQL as one statement of data-modifying CTEs (one round trip) and its
    arguments: the charge (a SPEND entry, the lots it takes, earliest expiry first as `ledger.debit`
    takes them, and their moves), the points granted (an EARN entry and its lot, as `ledger.credit`
    makes them when no debt is owed), the cached balance (one update to its final value: a statement
    writes a row once), the play, the prize's unit (the conditional update, last, Rank.PRIZE) and the
    idempotency key's result. Both entries go in one INSERT, so their ids keep the general path's order
    (the charge first). The statement returns play_id, took (the prize's units taken: 0 or 1), stock
    (left after the play) and spent (what the lots gave: the cost, unless they did not cover it)."""
    a = ledger_sql.Args()
    at = a(w.occurred_at)
    account, ref = (a(w.account_id), a(w.source_ref)) if w.spend or w.grant else ("", "")
    balance = w.balance
    parts: list[str] = []
    entries: list[str] = []
    if w.spend is not None:
        points = a(w.spend[0], "::bigint")
        balance -= w.spend[0]
        parts.append(ledger_sql.charge_ctes(account, points))
        entries.append(f"({account}, 'SPEND', -{points}, {a(balance)}, {a(w.spend[1])}, 'draw', {ref}, {at}, NULL)")
    if w.grant is not None:
        points = a(w.grant[0], "::bigint")
        balance += w.grant[0]
        expires = a(w.grant[2], "::timestamptz")
        entries.append(f"({account}, 'EARN', {points}, {a(balance)}, {a(w.grant[1])}, 'draw', {ref}, {at}, {expires})")
    if entries:
        parts.append(f"entries AS ({_ENTRY_COLUMNS}{', '.join(entries)} RETURNING id, kind)")
    if w.grant is not None:
        parts.append("lot AS (INSERT INTO points_lot (account_id, kind, entry_id, points, remaining, earned_at,"
                     f" expires_at) SELECT {account}, 'EARN', e.id, {points}, {points}, {at}, {expires}"
                     " FROM entries e WHERE e.kind = 'EARN')")
    if entries:
        parts.append(f"balance AS (UPDATE points_account SET balance = {a(balance)}, updated_at = {at}"
                     f" WHERE id = {account})")
    if w.spend is not None:
        parts.append(ledger_sql.charge_moves("(SELECT id FROM entries WHERE kind = 'SPEND')"))
    spend_id = "(SELECT id FROM entries WHERE kind = 'SPEND')" if w.spend is not None else "NULL::bigint"
    grant_id = "(SELECT id FROM entries WHERE kind = 'EARN')" if w.grant is not None else "NULL::bigint"
    prize = a(w.prize_id)
    parts.append(
        "play AS (INSERT INTO draw_play (game_id, member_id, prize_id, free, cost_points, candidates, roll, redraws,"
        f" spend_entry_id, grant_entry_id, order_id, idempotency_key, played_at) VALUES ({a(w.game_id)},"
        f" {a(w.member_id)}, {prize}, {a(w.free)}, {a(w.cost)}, {a(w.candidates)}, {a(w.roll)}, {a(w.redraws)},"
        f" {spend_id}, {grant_id}, {a(w.order_id, '::bigint')}, {a(w.key)}, {at}) RETURNING id)")
    if w.limited:
        parts.append(f"unit AS (UPDATE draw_prize SET stock = stock - 1 WHERE id = {prize} AND stock >= 1"
                     " RETURNING stock)")
    parts.append("result AS (UPDATE idempotency_record SET result = '{\"play_id\":' || (SELECT id FROM play)"
                 f" || ',\"points_balance\":' || {a(w.told, '::bigint')} || '}}' WHERE id = {a(w.record_id)})")
    took = "(SELECT COUNT(*) FROM unit)" if w.limited else "1"
    stock = "(SELECT stock FROM unit)" if w.limited else "NULL::integer"
    spent = "(SELECT COALESCE(SUM(delta), 0) FROM take)" if w.spend is not None else "0"
    return (f"WITH {', '.join(parts)} SELECT (SELECT id FROM play) AS play_id, {took} AS took, {stock} AS stock,"
            f" {spent} AS spent", a.values)
