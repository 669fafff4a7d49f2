"""The points ledger: the code that writes points_entry, points_lot, points_lot_move and the cached
balance (the one exception is the common purchase earn on PostgreSQL, `purchases._EARN_SQL`, which
makes the same writes as `credit` in one statement and is checked against it by the same tests on
SQLite and PostgreSQL). Every function here runs inside a transaction opened by the caller through
`api.db.transaction()`, on an account it locked with `lock_account`.

Invariants (checked by tests after every move, see docs/ledger.md):
  account.balance = Σ entry.points = Σ lot.remaining
  lot.remaining   = lot.points + Σ move.delta (over the lot's moves)
  entry.points    = Σ lot.points created by the entry + Σ move.delta (over the entry's moves)
  a DEBT lot is non-zero only while the balance is negative, and then equals it.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from api import locks
from api.config import settings
from api.db import Tx, fetch, transaction
from api.services import clock

KINDS = ("EARN", "SPEND", "EXPIRE", "REVERSE", "ADJUST")
EXPIRE_REASON = "积分过期"


@dataclass
class LockedAccount:
    id: int
    member_id: int
    balance: int
    tier_id: int
    growth_value: int
    due: int = 0  # points in lots already past their expiry (expired by expire_account)
    held: int = 0  # points set aside by live holds (not spendable)

    @property
    def spendable(self) -> int:
        """Points a new spend or hold may take (after expire_account has run)."""
        return self.balance - self.due - self.held


@dataclass(frozen=True)
class Entry:
    id: int
    account_id: int
    kind: str
    points: int
    balance_after: int
    reason: str
    occurred_at: datetime
    expires_at: datetime | None


def expiry_for(earned_at: datetime) -> datetime:
    """Expiry of points earned at `earned_at` under the configured policy."""
    cfg = settings()
    if cfg.expiry_policy == "year_end":
        local = earned_at.astimezone(clock.SHANGHAI)
        end = datetime(local.year + 2, 1, 1, tzinfo=clock.SHANGHAI)  # end of the year after the earn
        return clock.to_utc(end)
    return clock.add_months(earned_at, cfg.expiry_months)


# Points of the account `a` held at $2 (a hold past its expiry no longer holds anything).
HELD_SQL = (
    "SELECT COALESCE(SUM(h.points), 0) FROM points_hold h WHERE h.account_id = a.id AND h.status = 'HELD'"
    " AND h.expires_at > $2"
)


async def lock_account(tx: Tx, member_id: int, as_of: datetime | None = None) -> LockedAccount | None:
    """Locks the member's row and account row (PostgreSQL) and reads what a points move needs,
    including how many points are due for expiry at `as_of` (default now) and how many are held.
    Due and held points are read by a statement of their own, after the lock: a subquery of the
    locking statement sees the snapshot from before the lock wait (PostgreSQL re-reads only the
    locked rows), so a move committed meanwhile (a refund giving points back to an expired lot, a
    new hold) would be missed."""
    as_of = as_of or clock.now()
    locks.enter(locks.Rank.MEMBER, (member_id,))
    row = await tx.fetchrow(
        "SELECT a.id, a.balance, m.tier_id, m.growth_value FROM points_account a JOIN member m ON m.id = a.member_id"
        " WHERE a.member_id = $1" + (" FOR UPDATE OF a, m" if tx.postgres else ""),
        member_id,
    )
    if row is None:
        return None
    amounts = await tx.fetchrow(
        "SELECT (SELECT COALESCE(SUM(l.remaining), 0) FROM points_lot l WHERE l.account_id = $1 AND l.kind = 'EARN'"
        f" AND l.remaining > 0 AND l.expires_at <= $2) AS due, ({HELD_SQL.replace('a.id', '$1')}) AS held",
        row["id"], as_of,
    )
    return LockedAccount(row["id"], member_id, row["balance"], row["tier_id"], row["growth_value"],
                         int(amounts["due"]), int(amounts["held"]))


def shortfall(acct: LockedAccount) -> str:
    """Why a spend was refused, for the member."""
    if acct.balance < 0:
        return "a refund claw-back is outstanding"
    held = f" ({acct.held} more are held for unpaid orders)" if acct.held else ""
    return f"{acct.spendable} points are spendable{held}"


async def _insert_entry(
    tx: Tx, acct: LockedAccount, kind: str, points: int, reason: str, source_type: str,
    source_ref: str | None, occurred_at: datetime, expires_at: datetime | None = None,
    operator_id: int | None = None, reverses_id: int | None = None, lot_remaining: int | None = None,
) -> tuple[Entry, int | None]:
    """Appends an entry and sets the cached balance; with `lot_remaining` also creates the entry's
    EARN lot (points = the entry's points). Returns the entry and the lot's id.
    On PostgreSQL this is one round trip (data-modifying CTEs); on SQLite, two or three statements."""
    assert kind in KINDS and points != 0
    balance_after = acct.balance + points
    args = (acct.id, kind, points, balance_after, reason, source_type, source_ref, operator_id, reverses_id,
            occurred_at, expires_at, clock.now(), lot_remaining)
    insert = (
        "INSERT INTO points_entry (account_id, kind, points, balance_after, reason, source_type, source_ref,"
        " operator_id, reverses_id, occurred_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        " RETURNING id"
    )
    lot_id = None
    if tx.postgres:
        update = "UPDATE points_account SET balance = $4, updated_at = $12 WHERE id = $1"
        if lot_remaining is None:
            entry_id = await tx.fetchval(f"WITH account AS ({update}) {insert}", *args[:12])
        else:
            row = await tx.fetchrow(
                f"WITH account AS ({update}), entry AS ({insert}), lot AS ("
                "INSERT INTO points_lot (account_id, kind, entry_id, points, remaining, earned_at, expires_at)"
                " SELECT $1, 'EARN', entry.id, $3, $13, $10, $11 FROM entry RETURNING id)"
                " SELECT entry.id AS entry_id, lot.id AS lot_id FROM entry, lot", *args,
            )
            entry_id, lot_id = row["entry_id"], row["lot_id"]
    else:
        entry_id = await tx.fetchval(insert, *args[:11])
        await tx.execute("UPDATE points_account SET balance = $1, updated_at = $2 WHERE id = $3",
                         balance_after, args[11], acct.id)
        if lot_remaining is not None:
            lot_id = await tx.fetchval(
                "INSERT INTO points_lot (account_id, kind, entry_id, points, remaining, earned_at, expires_at)"
                " VALUES ($1, 'EARN', $2, $3, $4, $5, $6) RETURNING id",
                acct.id, entry_id, points, lot_remaining, occurred_at, expires_at,
            )
    acct.balance = balance_after
    return Entry(entry_id, acct.id, kind, points, balance_after, reason, occurred_at, expires_at), lot_id


async def _insert_moves(tx: Tx, entry_id: int, moves: list[tuple[int, int]]) -> None:
    """Applies (lot id, delta) pairs to the lots and records them."""
    if not moves:
        return
    case = " ".join(f"WHEN {int(lot_id)} THEN {int(delta)}" for lot_id, delta in moves)
    ids = ", ".join(str(int(lot_id)) for lot_id, _ in moves)
    await tx.execute(f"UPDATE points_lot SET remaining = remaining + CASE id {case} END WHERE id IN ({ids})")
    values = ", ".join(f"({int(entry_id)}, {int(lot_id)}, {int(delta)})" for lot_id, delta in moves)
    await tx.execute(f"INSERT INTO points_lot_move (entry_id, lot_id, delta) VALUES {values}")


async def _debt_lot(tx: Tx, account_id: int) -> int | None:
    return await tx.fetchval("SELECT id FROM points_lot WHERE account_id = $1 AND kind = 'DEBT'", account_id)


async def credit(
    tx: Tx, acct: LockedAccount, *, points: int, kind: str, reason: str, source_type: str,
    source_ref: str | None, occurred_at: datetime, operator_id: int | None = None,
) -> Entry:
    """Adds points as a new lot that expires under the policy. An outstanding claw-back debt is
    paid off first, so only what is left over becomes spendable."""
    assert points > 0
    expires_at = expiry_for(occurred_at)
    payoff = min(points, -acct.balance) if acct.balance < 0 else 0
    entry, lot_id = await _insert_entry(
        tx, acct, kind, points, reason, source_type, source_ref, occurred_at, expires_at, operator_id,
        lot_remaining=points - payoff,
    )
    if payoff:
        debt_id = await _debt_lot(tx, acct.id)
        assert debt_id is not None, "negative balance without a debt lot"
        # The new lot's own move is recorded without touching its row again (it was inserted net).
        await tx.execute(
            "INSERT INTO points_lot_move (entry_id, lot_id, delta) VALUES ($1, $2, $3)", entry.id, lot_id, -payoff
        )
        await _insert_moves(tx, entry.id, [(debt_id, payoff)])
    return entry


def sql_ids(ids: tuple[int, ...] | list[int]) -> str:
    """A SQL list of integer ids (never empty: -1 matches nothing)."""
    return ", ".join(str(int(i)) for i in ids) or "-1"


async def debit(
    tx: Tx, acct: LockedAccount, *, points: int, kind: str, reason: str, source_type: str,
    source_ref: str | None, occurred_at: datetime, operator_id: int | None = None,
    prefer_entry_ids: tuple[int, ...] = (), allow_debt: bool = False, reverses_id: int | None = None,
) -> Entry:
    """Takes points from lots, earliest expiry first (the lots of the `prefer_entry_ids` entries before
    all: a refund takes back the purchase's own points first).
    Without `allow_debt` the caller must have checked the balance; with it (refund claw-back) any
    shortfall goes to the account's DEBT lot and the balance turns negative."""
    assert points > 0
    rows = await tx.fetch(
        "SELECT id, remaining FROM (SELECT id, remaining, SUM(remaining) OVER ("
        f"  ORDER BY CASE WHEN entry_id IN ({sql_ids(prefer_entry_ids)}) THEN 0 ELSE 1 END, expires_at NULLS LAST, id"
        "  ROWS UNBOUNDED PRECEDING) AS running"
        " FROM points_lot WHERE account_id = $1 AND kind = 'EARN' AND remaining > 0) t"
        " WHERE running - remaining < $2 ORDER BY running",
        acct.id, points,
    )
    moves: list[tuple[int, int]] = []
    left = points
    for row in rows:
        take = min(left, row["remaining"])
        moves.append((row["id"], -take))
        left -= take
    if left and not allow_debt:
        raise AssertionError(f"debit of {points} on account {acct.id} exceeds its lots")
    entry, _ = await _insert_entry(
        tx, acct, kind, -points, reason, source_type, source_ref, occurred_at,
        operator_id=operator_id, reverses_id=reverses_id,
    )
    if left:
        debt_id = await _debt_lot(tx, acct.id)
        if debt_id is None:
            debt_id = await tx.fetchval(
                "INSERT INTO points_lot (account_id, kind, entry_id, points, remaining, earned_at)"
                " VALUES ($1, 'DEBT', $2, 0, 0, $3) RETURNING id",
                acct.id, entry.id, occurred_at,
            )
        moves.append((debt_id, -left))
    await _insert_moves(tx, entry.id, moves)
    return entry


async def expire_account(tx: Tx, acct: LockedAccount, as_of: datetime) -> Entry | None:
    """Expires this account's lots due at `as_of` (called before spending, so that only points
    valid now are spent). Free when the lock saw nothing due."""
    if not acct.due:
        return None
    acct.due = 0  # (spendable is unchanged: balance falls by what was due)
    rows = await tx.fetch(
        "SELECT id, remaining FROM points_lot WHERE account_id = $1 AND kind = 'EARN' AND remaining > 0"
        " AND expires_at <= $2",
        acct.id, as_of,
    )
    total = sum(r["remaining"] for r in rows)
    if not total:
        return None
    entry, _ = await _insert_entry(tx, acct, "EXPIRE", -total, EXPIRE_REASON, "expiry", None, as_of)
    await _insert_moves(tx, entry.id, [(r["id"], -r["remaining"]) for r in rows])
    return entry


# --- holds: points set aside for an order that waits (payment, a parking exit) ---------------


async def hold(
    tx: Tx, acct: LockedAccount, *, points: int, source_type: str, source_ref: str, expires_at: datetime,
) -> int | None:
    """Sets `points` aside until `expires_at`, or returns None when they are not spendable for that
    long: points that will have expired by then cannot be held (so a hold can always be captured
    before it lapses). Call after expire_account. Returns the hold's id."""
    assert points > 0
    expiring = await tx.fetchval(
        "SELECT COALESCE(SUM(remaining), 0) FROM points_lot WHERE account_id = $1 AND kind = 'EARN'"
        " AND remaining > 0 AND expires_at <= $2",
        acct.id, expires_at,
    )
    if acct.spendable - int(expiring) < points:
        return None
    insert = ("INSERT INTO points_hold (account_id, points, status, source_type, source_ref, expires_at, created_at)"
              " VALUES ($1, $2, 'HELD', $3, $4, $5, $6) RETURNING id")
    # The account row is written too (a new row version): a statement that waited for this account's
    # lock and read held points with its older snapshot (the one-statement earn) sees that it is stale.
    touch = "UPDATE points_account SET updated_at = $6 WHERE id = $1"
    args = (acct.id, points, source_type, source_ref, expires_at, clock.now())
    if tx.postgres:
        hold_id = await tx.fetchval(f"WITH touch AS ({touch}) {insert}", *args)
    else:
        hold_id = await tx.fetchval(insert, *args)
        await tx.execute(touch.replace("$6", "$2"), acct.id, args[5])
    acct.held += points
    return hold_id


async def capture(tx: Tx, acct: LockedAccount, hold_id: int, *, reason: str, source_type: str, source_ref: str,
                  occurred_at: datetime) -> Entry:
    """Spends a live hold: one SPEND entry, lots earliest expiry first. Should a refund claw-back have
    taken the held points meanwhile, the shortfall becomes debt like any claw-back (docs/ledger.md)."""
    row = await tx.fetchrow(
        "UPDATE points_hold SET status = 'CAPTURED', settled_at = $2 WHERE id = $1 AND account_id = $3"
        " AND status = 'HELD' RETURNING points, expires_at",
        hold_id, occurred_at, acct.id,
    )
    assert row is not None, f"hold {hold_id} is not live"
    points = int(row["points"])
    if clock.parse_db_time(row["expires_at"]) > occurred_at:
        acct.held -= points
    entry = await debit(tx, acct, points=points, kind="SPEND", reason=reason, source_type=source_type,
                        source_ref=source_ref, occurred_at=occurred_at, allow_debt=True)
    await tx.execute("UPDATE points_hold SET entry_id = $1 WHERE id = $2", entry.id, hold_id)
    return entry


async def release(tx: Tx, hold_id: int) -> bool:
    """Ends a hold without spending; False when it was no longer live. When the caller holds the
    account's lock, the account row is written too (see `hold`); a caller without it (an order that
    lapses) must not take it here, below the locks it holds."""
    now = clock.now()
    row = await tx.fetchrow(
        "UPDATE points_hold SET status = 'RELEASED', settled_at = $2 WHERE id = $1 AND status = 'HELD'"
        " RETURNING account_id, (SELECT a.member_id FROM points_account a WHERE a.id = account_id) AS member_id",
        hold_id, now,
    )
    if row is None:
        return False
    if (int(locks.Rank.MEMBER), int(row["member_id"])) in locks.held():
        await tx.execute("UPDATE points_account SET updated_at = $2 WHERE id = $1", row["account_id"], now)
    return True


async def give_back(
    tx: Tx, acct: LockedAccount, spend_entry_id: int, *, reason: str, source_type: str, source_ref: str,
    occurred_at: datetime, operator_id: int | None = None,
) -> Entry:
    """Returns what a SPEND entry took, to the very lots it took from (an ADJUST entry: points given
    back keep their original expiry). An outstanding claw-back debt is paid off first, as with credit;
    what the spend itself ran into debt for, and is no longer owed, comes back as a new lot."""
    rows = await tx.fetch(
        "SELECT l.id, l.kind, -SUM(m.delta) AS taken FROM points_lot_move m JOIN points_lot l ON l.id = m.lot_id"
        " WHERE m.entry_id = $1 GROUP BY l.id, l.kind, l.expires_at ORDER BY l.expires_at, l.id",
        spend_entry_id,
    )
    from_debt = sum(int(r["taken"]) for r in rows if r["kind"] == "DEBT")
    from_lots = [(r["id"], int(r["taken"])) for r in rows if r["kind"] == "EARN" and int(r["taken"]) > 0]
    points = from_debt + sum(taken for _, taken in from_lots)
    assert points > 0, f"entry {spend_entry_id} took nothing"
    owed = max(0, -acct.balance)
    paid = min(owed, from_debt)
    fresh = from_debt - paid
    moves: list[tuple[int, int]] = []
    for lot_id, taken in from_lots:  # earliest expiry first: those pay what is still owed
        use = min(owed - paid, taken)
        paid += use
        if taken - use:
            moves.append((lot_id, taken - use))
    if paid:
        moves.append((await _debt_lot(tx, acct.id), paid))
    entry, _ = await _insert_entry(tx, acct, "ADJUST", points, reason, source_type, source_ref, occurred_at,
                                   operator_id=operator_id, reverses_id=spend_entry_id)
    if fresh:
        await tx.execute(
            "INSERT INTO points_lot (account_id, kind, entry_id, points, remaining, earned_at, expires_at)"
            " VALUES ($1, 'EARN', $2, $3, $3, $4, $5)",
            acct.id, entry.id, fresh, occurred_at, expiry_for(occurred_at),
        )
    await _insert_moves(tx, entry.id, moves)
    return entry


@dataclass(frozen=True)
class ExpiryResult:
    lots_expired: int
    points_expired: int
    accounts: int


EXPIRY_CHUNK = 2000  # accounts per transaction


async def expire_due(as_of: datetime) -> ExpiryResult:
    """Expires every lot due at `as_of`, in set-based statements, one account-id chunk per
    transaction. Safe to repeat and to run twice at once: each chunk locks its accounts first and
    then only finds lots that still have points left."""
    bounds = await fetch(
        "SELECT MIN(account_id) AS lo, MAX(account_id) AS hi FROM points_lot"
        " WHERE kind = 'EARN' AND remaining > 0 AND expires_at <= $1",
        as_of,
    )
    lo, hi = (bounds[0]["lo"], bounds[0]["hi"]) if bounds else (None, None)
    lots = points = accounts = 0
    if lo is None:
        return ExpiryResult(0, 0, 0)
    run = f"{as_of.isoformat()}#{uuid.uuid4().hex[:12]}"
    start = lo
    while start <= hi:
        end = start + EXPIRY_CHUNK - 1
        chunk = await _expire_chunk(as_of, run, start, end)
        lots, points, accounts = lots + chunk[0], points + chunk[1], accounts + chunk[2]
        start = end + 1
    return ExpiryResult(lots, points, accounts)


async def _expire_chunk(as_of: datetime, run: str, lo: int, hi: int) -> tuple[int, int, int]:
    async with transaction() as tx:
        # The accounts are picked by a subquery that sees the snapshot from before the lock wait: an
        # account whose lot came due meanwhile is not locked. Every later statement is limited to the
        # accounts actually locked (in member order, as every points move takes them).
        locks.enter(locks.Rank.MEMBER)
        locked = await tx.fetch(
            "SELECT id, member_id FROM points_account WHERE id IN (SELECT account_id FROM points_lot WHERE kind = 'EARN'"
            " AND remaining > 0 AND expires_at <= $1 AND account_id BETWEEN $2 AND $3) ORDER BY member_id"
            + (" FOR UPDATE" if tx.postgres else ""), as_of, lo, hi,
        )
        if not locked:
            return 0, 0, 0
        locks.enter(locks.Rank.MEMBER, [int(r["member_id"]) for r in locked])
        mine = f"account_id IN ({sql_ids([int(r['id']) for r in locked])})"
        due = f"kind = 'EARN' AND remaining > 0 AND expires_at <= $1 AND {mine}"
        stats = await tx.fetchrow(
            "SELECT COUNT(*) AS lots, COALESCE(SUM(remaining), 0) AS points,"
            " COUNT(DISTINCT account_id) AS accounts FROM points_lot WHERE " + due, as_of,
        )
        if not stats["lots"]:
            return 0, 0, 0
        now = clock.now()
        await tx.execute(
            "INSERT INTO points_entry (account_id, kind, points, balance_after, reason, source_type, source_ref,"
            " occurred_at) SELECT a.id, 'EXPIRE', -d.total, a.balance - d.total, $2, 'expiry_run', $3, $1"
            " FROM points_account a JOIN (SELECT account_id, SUM(remaining) AS total FROM points_lot WHERE "
            + due + " GROUP BY account_id) d ON d.account_id = a.id",
            as_of, EXPIRE_REASON, run,
        )
        await tx.execute(
            "INSERT INTO points_lot_move (entry_id, lot_id, delta) SELECT e.id, l.id, -l.remaining"
            " FROM points_lot l JOIN points_entry e ON e.account_id = l.account_id"
            " AND e.source_type = 'expiry_run' AND e.source_ref = $2"
            f" WHERE l.kind = 'EARN' AND l.remaining > 0 AND l.expires_at <= $1 AND l.{mine}",
            as_of, run,
        )
        await tx.execute(
            "UPDATE points_account SET updated_at = $2, balance = balance - (SELECT SUM(remaining) FROM points_lot l"
            " WHERE l.account_id = points_account.id AND l.kind = 'EARN' AND l.remaining > 0 AND l.expires_at <= $1)"
            " WHERE id IN (SELECT account_id FROM points_lot WHERE " + due + ")",
            as_of, now,
        )
        await tx.execute("UPDATE points_lot SET remaining = 0 WHERE " + due, as_of)
        return int(stats["lots"]), int(stats["points"]), int(stats["accounts"])


# --- reads -----------------------------------------------------------------------------------

async def balances(member_ids: list[int], as_of: datetime | None = None) -> dict[int, int]:
    """Points spendable now: the cached balance less lots already due but not yet expired by a run."""
    if not member_ids:
        return {}
    as_of = as_of or clock.now()
    ids = ", ".join(str(int(i)) for i in member_ids)
    rows = await fetch(
        "SELECT a.member_id, a.balance - COALESCE((SELECT SUM(l.remaining) FROM points_lot l WHERE"
        " l.account_id = a.id AND l.kind = 'EARN' AND l.remaining > 0 AND l.expires_at <= $1), 0)"
        f" - ({HELD_SQL.replace('$2', '$1')}) AS spendable"
        f" FROM points_account a WHERE a.member_id IN ({ids})",
        as_of,
    )
    return {r["member_id"]: int(r["spendable"]) for r in rows}


async def held_points(member_ids: list[int], as_of: datetime | None = None) -> dict[int, int]:
    """Points set aside by live holds (checkouts waiting for payment, parking stays)."""
    if not member_ids:
        return {}
    ids = ", ".join(str(int(i)) for i in member_ids)
    rows = await fetch(
        f"SELECT a.member_id, ({HELD_SQL.replace('$2', '$1')}) AS held FROM points_account a"
        f" WHERE a.member_id IN ({ids})",
        as_of or clock.now(),
    )
    return {r["member_id"]: int(r["held"]) for r in rows}


async def expiring_soon(member_id: int, days: int) -> tuple[int, datetime | None]:
    now = clock.now()
    rows = await fetch(
        "SELECT COALESCE(SUM(l.remaining), 0) AS points, MIN(l.expires_at) AS earliest FROM points_lot l"
        " JOIN points_account a ON a.id = l.account_id WHERE a.member_id = $1 AND l.kind = 'EARN'"
        " AND l.remaining > 0 AND l.expires_at > $2 AND l.expires_at <= $3",
        member_id, now, now + timedelta(days=days),
    )
    row = rows[0]
    return int(row["points"]), clock.parse_db_time(row["earliest"])


ENTRY_COLUMNS = "e.id, e.account_id, e.kind, e.points, e.balance_after, e.reason, e.occurred_at, e.expires_at"


def _entry(row) -> Entry:
    return Entry(
        row["id"], row["account_id"], row["kind"], int(row["points"]), int(row["balance_after"]), row["reason"],
        clock.parse_db_time(row["occurred_at"]), clock.parse_db_time(row["expires_at"]),
    )


async def entries_page(member_id: int, limit: int, before_id: int | None) -> list[Entry]:
    """A member's entries, newest first, `limit` of them after the cursor."""
    rows = await fetch(
        f"SELECT {ENTRY_COLUMNS} FROM points_entry e JOIN points_account a ON a.id = e.account_id"
        " WHERE a.member_id = $1 AND e.id < $2 ORDER BY e.id DESC LIMIT $3",
        member_id, before_id if before_id is not None else 2**62, limit,
    )
    return [_entry(r) for r in rows]


async def entry_with_owner(entry_id: int) -> tuple[Entry, int] | None:
    rows = await fetch(
        f"SELECT {ENTRY_COLUMNS}, a.member_id FROM points_entry e JOIN points_account a ON a.id = e.account_id"
        " WHERE e.id = $1",
        entry_id,
    )
    return (_entry(rows[0]), rows[0]["member_id"]) if rows else None
