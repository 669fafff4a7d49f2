"""Entries, lots and lot moves: credit, debit and giving a spend back."""
from __future__ import annotations

from datetime import datetime

from api.db import Tx
from api.models import PointsAccount, PointsLot, PointsLotMove
from api.services import clock
from api.services.ledger import sql
from api.services.ledger.accounts import KINDS, Entry, LockedAccount, expiry_for


async def insert_entry(
    tx: Tx, acct: LockedAccount, kind: str, points: int, reason: str, source_type: str,
    source_ref: str | None, occurred_at: datetime, expires_at: datetime | None = None,
    operator_id: int | None = None, reverses_id: int | None = None, lot_remaining: int | None = None,
) -> tuple[Entry, int | None]:
    """Appends an entry and sets the cached balance; with `lot_remaining` also creates the entry's
    EARN lot (points = the entry's points). Returns the entry and the lot's id.
    On PostgreSQL this is one round trip (data-modifying CTEs); on SQLite, two or three statements."""
    assert kind in KINDS and points != 0
    balance_after = acct.balance + points
    now = clock.now()
    args = (acct.id, kind, points, balance_after, reason, source_type, source_ref, operator_id, reverses_id,
            occurred_at, expires_at, now, lot_remaining)
    lot_id = None
    if tx.postgres and lot_remaining is None:
        entry_id = await tx.fetchval(sql.ENTRY_AND_BALANCE_PG, *args[:12])
    elif tx.postgres:
        row = await tx.fetchrow(sql.ENTRY_BALANCE_AND_LOT_PG, *args)
        assert row is not None  # the entry and its lot were inserted
        entry_id, lot_id = row["entry_id"], row["lot_id"]
    else:
        entry_id = await tx.fetchval(sql.INSERT_ENTRY, *args[:11])
        await PointsAccount.filter(id=acct.id).update(balance=balance_after, updated_at=now)
        if lot_remaining is not None:
            lot = await PointsLot.create(account_id=acct.id, kind="EARN", entry_id=entry_id, points=points,
                                         remaining=lot_remaining, earned_at=occurred_at, expires_at=expires_at)
            lot_id = lot.id
    acct.balance = balance_after
    return Entry(entry_id, acct.id, kind, points, balance_after, reason, occurred_at, expires_at), lot_id


async def insert_moves(tx: Tx, entry_id: int, moves: list[tuple[int, int]]) -> None:
    """Applies (lot id, delta) pairs to the lots and records them."""
    if moves:
        await tx.execute(sql.apply_moves(moves))
        await tx.execute(sql.record_moves(entry_id, moves))


async def debt_lot(account_id: int) -> int | None:
    lot = await PointsLot.filter(account_id=account_id, kind="DEBT").only("id").first()
    return lot.id if lot is not None else None


async def credit(
    tx: Tx, acct: LockedAccount, *, points: int, kind: str, reason: str, source_type: str,
    source_ref: str | None, occurred_at: datetime, operator_id: int | None = None,
) -> Entry:
    """Adds points as a new lot that expires under the policy. An outstanding claw-back debt is
    paid off first, so only what is left over becomes spendable."""
    assert points > 0
    expires_at = expiry_for(occurred_at)
    payoff = min(points, -acct.balance) if acct.balance < 0 else 0
    entry, lot_id = await insert_entry(
        tx, acct, kind, points, reason, source_type, source_ref, occurred_at, expires_at, operator_id,
        lot_remaining=points - payoff,
    )
    if payoff:
        debt_id = await debt_lot(acct.id)
        assert debt_id is not None, "negative balance without a debt lot"
        # The new lot's own move is recorded without touching its row again (it was inserted net).
        await PointsLotMove.create(entry_id=entry.id, lot_id=lot_id, delta=-payoff)
        await insert_moves(tx, entry.id, [(debt_id, payoff)])
    return entry


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
    moves: list[tuple[int, int]] = []
    left = points
    for row in await tx.fetch(sql.allocate(prefer_entry_ids), acct.id, points):
        take = min(left, row["remaining"])
        moves.append((row["id"], -take))
        left -= take
    if left and not allow_debt:
        raise AssertionError(f"debit of {points} on account {acct.id} exceeds its lots")
    entry, _ = await insert_entry(
        tx, acct, kind, -points, reason, source_type, source_ref, occurred_at,
        operator_id=operator_id, reverses_id=reverses_id,
    )
    if left:
        debt_id = await debt_lot(acct.id)
        if debt_id is None:
            debt = await PointsLot.create(account_id=acct.id, kind="DEBT", entry_id=entry.id, points=0, remaining=0,
                                          earned_at=occurred_at)
            debt_id = debt.id
        moves.append((debt_id, -left))
    await insert_moves(tx, entry.id, moves)
    return entry


async def give_back(
    tx: Tx, acct: LockedAccount, spend_entry_id: int, *, reason: str, source_type: str, source_ref: str,
    occurred_at: datetime, operator_id: int | None = None,
) -> Entry:
    """Returns what a SPEND entry took, to the very lots it took from (an ADJUST entry: points given
    back keep their original expiry). An outstanding claw-back debt is paid off first, as with credit;
    what the spend itself ran into debt for, and is no longer owed, comes back as a new lot."""
    rows = await tx.fetch(sql.TAKEN_BY_ENTRY, spend_entry_id)
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
        debt_id = await debt_lot(acct.id)
        assert debt_id is not None, "negative balance without a debt lot"
        moves.append((debt_id, paid))
    entry, _ = await insert_entry(tx, acct, "ADJUST", points, reason, source_type, source_ref, occurred_at,
                                  operator_id=operator_id, reverses_id=spend_entry_id)
    if fresh:
        await PointsLot.create(account_id=acct.id, kind="EARN", entry_id=entry.id, points=fresh, remaining=fresh,
                               earned_at=occurred_at, expires_at=expiry_for(occurred_at))
    await insert_moves(tx, entry.id, moves)
    return entry
