"""The set-based batch: a group of receipts booked with a few statements over arrays (PostgreSQL).

Three round trips for the whole group, whatever its size: lock every member's rows in member order
(one SELECT … FOR UPDATE), read due and held points, the receipts booked already, the keys used
before and new ids (one statement, after the lock), then write every purchase, entry, lot, breakdown,
balance, growth value, tier change, key claim with its result and qualified invite (one statement of
data-modifying CTEs over arrays). The keys are claimed last, with their results, and only for the
receipts booked: a key that another call claims between the read and the write (a concurrent repeat)
makes the claim insert nothing or wait for that call; a claim short of the count is `Declined`. In between, Python books the receipts one after another in member
order, exactly as the receipt-by-receipt path would: each receipt still has its own key and result,
a receipt booked twice in the batch is refused the second time, a key repeated with the same input
gets the first occurrence's answer, a member's later receipts see the balance, growth value and tier
its earlier ones left (a tier crossed inside the batch gives the next receipt the new tier's points).

What this path does not decide goes to the general path (receipt by receipt, in the same
transaction, after the set-based writes; `split` and `book` say which): a member with a receipt
whose rules need state (counters, caps, budgets, first purchase, a return window: no plan), points
due for expiry, a claw-back debt or a tier the plan does not cover. Batches where two members share
a receipt number or a key is reused with another input go to the general path whole (their answers
depend on booking order across both paths). A receipt number that a concurrent transaction books
between the read and the write aborts the statement: `Declined` too. Then the caller books the group
again on the general path.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from typing import Any

from api import locks
from api.db import _PLACEHOLDER, Tx, _shifted, sqlstate
from api.services import clock, ledger, settlement, tiers
from api.services.errors import DomainError, ErrorCode
from api.services.notifications import outbox
from api.services.purchases import sql
from api.services.purchases.checks import Checked, PurchaseResult, yuan

UNIQUE_VIOLATION = "23505"
SET_MIN = 5  # smaller groups take the one-statement path (one round trip each; measured: as cheap up to 4)
Outcome = PurchaseResult | DomainError


class Declined(Exception):
    """The set-based writes met a receipt that a concurrent transaction booked meanwhile; the group's
    transaction is rolled back and booked again on the general path."""


def split(items: list[tuple[Checked, datetime]], order: list[int]) -> tuple[list[int], list[int]]:
    """(receipts for the set-based path, receipts for the general path), each in booking order."""
    general = {items[i][0].member_id for i in order if items[i][0].plan is None}
    owner_of_receipt: dict[tuple[int, str], int] = {}
    digest_of_key: dict[tuple[str, str], str] = {}
    for i in order:
        item = items[i][0]
        if owner_of_receipt.setdefault((item.merchant.id, item.receipt_no), item.member_id) != item.member_id:
            return [], order  # two members, one receipt: who is refused depends on order across paths
        if digest_of_key.setdefault((item.scope, item.key), item.digest) != item.digest:
            return [], order  # a key reused with another input inside the batch
    fast = [i for i in order if items[i][0].member_id not in general]
    if len(fast) < SET_MIN:
        return [], order
    return fast, [i for i in order if items[i][0].member_id in general]


@dataclass
class _Writes:
    """The batch's rows, column by column (the arrays the write statement unnests)."""

    purchases: list[list[Any]] = field(default_factory=lambda: [[] for _ in range(9)])
    entries: list[list[Any]] = field(default_factory=lambda: [[] for _ in range(8)])
    lots: list[list[Any]] = field(default_factory=lambda: [[] for _ in range(5)])
    breakdowns: list[list[Any]] = field(default_factory=lambda: [[] for _ in range(2)])
    balances: list[list[Any]] = field(default_factory=lambda: [[] for _ in range(2)])
    growth: list[list[Any]] = field(default_factory=lambda: [[] for _ in range(3)])
    growth_entries: list[list[Any]] = field(default_factory=lambda: [[] for _ in range(6)])
    tier_changes: list[list[Any]] = field(default_factory=lambda: [[] for _ in range(6)])
    claims: list[list[Any]] = field(default_factory=lambda: [[] for _ in range(5)])
    invites: list[list[Any]] = field(default_factory=lambda: [[], []])


def _add(columns: list[list[Any]], *values: Any) -> None:
    for column, value in zip(columns, values, strict=True):
        column.append(value)


def _result_text(r: PurchaseResult) -> str:
    """`json.dumps(asdict(r))` as `idempotency.remember` writes it, without asdict's deep copy."""
    return (f'{{"purchase_id":{r.purchase_id},"receipt_no":{json.dumps(r.receipt_no)},"amount_fen":{r.amount_fen},'
            f'"points_earned":{r.points_earned},"points_balance":{r.points_balance}}}')


class _Booking:
    """One set-based booking: the state read under the locks, and what each receipt did to it."""

    def __init__(self, items: list[tuple[Checked, datetime]], fast: list[int]) -> None:
        self.items = items
        self.fast = fast
        self.outcome: dict[int, Outcome] = {}
        self.general: list[int] = []
        self.first_of: dict[tuple[str, str], int] = {}
        self.repeat_of: dict[int, int] = {}
        for i in fast:
            item = items[i][0]
            first = self.first_of.setdefault((item.scope, item.key), i)
            if first != i:
                self.repeat_of[i] = first
        self.as_of = max(items[i][1] for i in fast)
        self.w = _Writes()
        self.upgraded: dict[int, tuple[int, str]] = {}  # receipt -> (id, name) of the tier it upgraded the member to
        self.booked: set[int] = set()  # receipts booked here (not answered from a key used before)

    def answer_repeats(self, used: list[list[str]]) -> None:
        """Keys of earlier calls (scope, key, input hash, result as read under the locks): their first
        result, or IDEMPOTENCY_KEY_REUSED."""
        stored = {(scope, key): (digest, result) for scope, key, digest, result in used}
        for key, i in self.first_of.items():
            if key not in stored:
                continue
            digest, result = stored[key]
            if digest != self.items[i][0].digest:
                self.outcome[i] = DomainError(ErrorCode.IDEMPOTENCY_KEY_REUSED,
                                              "this idempotencyKey was used before with a different input",
                                              ["idempotencyKey"])
            else:
                assert result, "a committed claim always has its result"
                self.outcome[i] = PurchaseResult(**json.loads(result))

    async def book(self, tx: Tx, accounts: dict[int, Any]) -> None:
        """Reads what the receipts need under the locks, then books them member by member."""
        todo = [i for i in self.fast if i not in self.repeat_of]
        account_ids = sorted({int(accounts[m]["id"]) for m in {self.items[i][0].member_id for i in todo}
                              if m in accounts})
        keys = list(self.first_of)
        read = await tx.fetchrow(
            sql.BATCH_READ, account_ids, self.as_of, [self.items[i][0].merchant.id for i in todo], len(todo),
            [self.items[i][0].receipt_no for i in todo], [k[0] for k in keys], [k[1] for k in keys])
        assert read is not None  # one row of arrays
        self.answer_repeats(read["used"])
        due = dict(zip(account_ids, read["due"], strict=True))
        held = dict(zip(account_ids, read["held"], strict=True))
        taken = set(read["taken"])
        ids = (iter(read["purchase_ids"]), iter(read["entry_ids"]))
        all_tiers = {t.id: t for t in await tiers.all_tiers()}
        for member_id, group in groupby(self.fast, key=lambda i: self.items[i][0].member_id):
            mine = list(group)
            acct = accounts.get(member_id)
            # (An account missing from the read has nothing left to book: its receipts were all answered.)
            state = None if acct is None else (int(due.get(acct["id"], 0)), int(held.get(acct["id"], 0)))
            if acct is not None and state is not None and (state[0] > 0 or int(acct["balance"]) < 0):
                self._to_general(mine)  # expiry first, or the debt paid off first
            elif not self._member(mine, acct, state, taken, ids, all_tiers):
                self._to_general(mine)  # a tier the plan does not cover
        for i, first in self.repeat_of.items():
            if first in self.outcome and i not in self.general:
                self.outcome[i] = self.outcome[first]

    def _to_general(self, mine: list[int]) -> None:
        self.general.extend(i for i in mine if i not in self.outcome)

    def _refuse(self, i: int, err: DomainError) -> None:
        self.outcome[i] = err  # no claim: a refused receipt's key stays free, as on the general path

    def _member(self, mine: list[int], acct: Any, state: tuple[int, int] | None, taken: set[str],
                ids: tuple[Any, Any], all_tiers: dict[int, tiers.TierInfo]) -> bool:
        """Books one member's receipts in order; False (nothing booked) when a tier is not planned."""
        todo = [i for i in mine if i not in self.outcome and i not in self.repeat_of]
        if acct is None or state is None:
            for i in todo:
                self._refuse(i, DomainError(ErrorCode.NOT_FOUND, "unknown member code", ["memberCode"]))
            return True
        balance, growth_value, tier_id = int(acct["balance"]), int(acct["growth_value"]), int(acct["tier_id"])
        w = _Writes()
        booked: list[tuple[int, PurchaseResult | None]] = []  # None: the receipt was booked before
        for i in todo:
            item, now = self.items[i]
            receipt = f"{item.merchant.id} {item.receipt_no}"
            if receipt in taken:
                booked.append((i, None))  # refused below, once the member's receipts are all planned
                continue
            plan = item.plan
            assert plan is not None
            if tier_id not in all_tiers or tier_id not in plan.tier_ids:
                return False  # a tier created since the plan (or the tier cache) was made
            n = plan.tier_ids.index(tier_id)
            taken.add(receipt)
            points, growth, purchase_id = plan.points[n], plan.growth[n], int(next(ids[0]))
            reason = f"{item.merchant.name} 消费 {yuan(item.amount_fen)}"
            _add(w.purchases, purchase_id, item.merchant.id, item.member_id, item.receipt_no, item.amount_fen, points,
                 growth, item.occurred_at, now)
            if points > 0:
                entry_id, expires = int(next(ids[1])), ledger.expiry_for(item.occurred_at)
                balance += points
                _add(w.entries, entry_id, acct["id"], points, balance, reason, str(purchase_id), item.occurred_at,
                     expires)
                _add(w.lots, acct["id"], entry_id, points, item.occurred_at, expires)
                _add(w.breakdowns, entry_id, plan.breakdowns[n])
            if growth > 0:
                current = all_tiers[tier_id]
                growth_value += growth
                up = max((t for t in all_tiers.values() if current.growth_threshold < t.growth_threshold <= growth_value),
                         key=lambda t: t.growth_threshold, default=None)
                _add(w.growth_entries, item.member_id, growth, growth_value, reason, str(purchase_id), item.occurred_at)
                if up is not None:
                    _add(w.tier_changes, item.member_id, tier_id, up.id, growth_value,
                         f"growth value reached {up.growth_threshold}", item.occurred_at)
                    tier_id = up.id
                    self.upgraded[i] = (up.id, up.name)
            booked.append((i, PurchaseResult(purchase_id, item.receipt_no, item.amount_fen, points,
                                             balance - state[1])))
        first_purchase = None
        for i, result in booked:
            if result is None:
                self._refuse(i, DomainError(ErrorCode.DUPLICATE_RECEIPT, "this receipt has been recorded already",
                                            ["receiptNo"]))
                continue
            self.outcome[i] = result
            self.booked.add(i)
            item = self.items[i][0]
            _add(self.w.claims, item.scope, item.key, item.digest, self.items[i][1], _result_text(result))
            first_purchase = first_purchase or result.purchase_id
        if first_purchase is None:
            return True
        for name in ("purchases", "entries", "lots", "breakdowns", "growth_entries", "tier_changes"):
            for mine_col, all_col in zip(getattr(w, name), getattr(self.w, name), strict=True):
                all_col.extend(mine_col)
        if balance != int(acct["balance"]):
            _add(self.w.balances, acct["id"], balance)
        if growth_value != int(acct["growth_value"]):
            _add(self.w.growth, acct["member_id"], growth_value, tier_id)
        _add(self.w.invites, acct["member_id"], first_purchase)
        return True

    def writes(self) -> list[tuple[str, tuple]]:
        """The independent writes, each (statement over arrays, its arguments). Empty tables write nothing."""
        w, now = self.w, self.as_of
        out: list[tuple[str, tuple]] = []
        for statement, columns, extra in (
            (sql.BATCH_PURCHASES, w.purchases, ()), (sql.BATCH_ENTRIES, w.entries, ()), (sql.BATCH_LOTS, w.lots, ()),
            (sql.BATCH_BREAKDOWNS, w.breakdowns, ()), (sql.BATCH_BALANCES, w.balances, (now,)),
            (sql.BATCH_GROWTH, w.growth, (now,)), (sql.BATCH_GROWTH_ENTRIES, w.growth_entries, ()),
            (sql.BATCH_TIER_CHANGES, w.tier_changes, ()),
        ):
            if columns[0]:
                out.append((statement, (*columns, *extra)))
        return out


async def write(tx: Tx, writes: list[tuple[str, tuple]], claims: tuple, invites: tuple) -> Any:
    """Runs the independent writes, the key claims and the invite qualification as one statement of
    data-modifying CTEs; returns (claims inserted, invites qualified)."""
    parts: list[str] = []
    values: list[Any] = []
    for name, (statement, args) in [*((f"w{n}", w) for n, w in enumerate(writes)),
                                    ("claimed", (sql.BATCH_CLAIM, claims)),
                                    ("invited", (sql.BATCH_QUALIFY_INVITES, invites))]:
        parts.append(f"{name} AS ({sql_shift(statement, len(values))})")
        values.extend(args)
    return await tx.fetchrow(sql.batch_write(parts), *values)


def sql_shift(statement: str, offset: int) -> str:
    """The statement with its placeholders $N renumbered $(N + offset)."""
    return _PLACEHOLDER.sub(_shifted(offset), statement)


async def book(tx: Tx, items: list[tuple[Checked, datetime]], fast: list[int], order: list[int],
               qualified: list[int]) -> tuple[dict[int, Outcome], list[int]]:
    """Books the `fast` receipts set-based and locks every member of the group (`order`) in member
    order. Returns (outcome by receipt, the receipts left to the general path, in booking order)."""
    booking = _Booking(items, fast)
    member_ids = locks.enter(locks.Rank.MEMBER, (items[i][0].member_id for i in order))
    accounts = {int(r["member_id"]): r for r in await tx.fetch(sql.BATCH_LOCK, member_ids)}
    await booking.book(tx, accounts)
    booked = [i for i in fast if i in booking.booked and i not in booking.repeat_of]
    writes = booking.writes()
    postings = settlement.points_issued_many([  # the receipts' journal lines, in the same statement
        (items[i][0].merchant.id, r.purchase_id, r.points_earned, items[i][1])
        for i in booked if isinstance(r := booking.outcome[i], PurchaseResult)])
    if postings is not None:
        writes.append(postings)
    with outbox.collect() as notes:  # the receipts' notifications, in the same statement too
        for i in booked:
            result = booking.outcome[i]
            if isinstance(result, PurchaseResult):
                await outbox.on_receipt(tx, items[i][0].member_id, result.purchase_id, result.points_earned,
                                        result.points_balance, booking.upgraded.get(i))
    if notes:
        writes.append(outbox.many(notes, clock.now()))
    try:
        done = await write(tx, writes, tuple(booking.w.claims), (*booking.w.invites, booking.as_of))
    except Exception as exc:
        if sqlstate(exc) == UNIQUE_VIOLATION:
            raise Declined from exc
        raise
    if done["claimed"] != len(booking.w.claims[0]):
        raise Declined  # a key another call took between the read and the write
    qualified.extend(int(i) for i in done["invited"])
    later = set(booking.general)
    rest = [i for i in order if i in later or i not in booking.outcome and i not in fast]
    return booking.outcome, rest
