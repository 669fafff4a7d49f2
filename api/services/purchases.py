"""Earning at the till (purchaseRecord, purchaseRecordBatch), refunds, and paying with points."""
from __future__ import annotations

import asyncio
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from api.config import settings
from api.db import Tx, is_deadlock, retry_on_deadlock, transaction
from api.services import clock, earning, idempotency, ledger, merchants, signing, tiers
from api.services.errors import DomainError, ErrorCode
from api.services.integrations import IntegrationIdentity, require_merchant

MAX_BATCH = 100
RECEIPT_MAX_AGE = timedelta(days=30)
CLOCK_SKEW = timedelta(minutes=5)
MAX_PAY_POINTS = 10_000_000


def yuan(fen: int) -> str:
    return f"¥{fen // 100}.{fen % 100:02d}"


def scope_of(identity: IntegrationIdentity) -> str:
    return f"integration:{identity.key_id}"


@dataclass(frozen=True)
class PurchaseInput:
    member_code: str
    merchant_code: str
    receipt_no: str
    amount_fen: int
    occurred_at: datetime
    idempotency_key: str


@dataclass(frozen=True)
class PurchaseResult:
    purchase_id: int
    receipt_no: str
    amount_fen: int
    points_earned: int
    points_balance: int


def _check_receipt_no(receipt_no: str) -> str:
    receipt_no = (receipt_no or "").strip()
    if not 1 <= len(receipt_no) <= 64:
        raise DomainError(ErrorCode.INVALID_INPUT, "receiptNo must be 1 to 64 characters", ["receiptNo"])
    return receipt_no


def _check_amount(amount_fen: int, field: str) -> None:
    ceiling = settings().max_receipt_fen
    if amount_fen <= 0:
        raise DomainError(ErrorCode.INVALID_INPUT, f"{field} must be positive (in fen)", [field])
    if amount_fen > ceiling:
        raise DomainError(ErrorCode.INVALID_INPUT, f"{field} is above the ceiling of {ceiling} fen", [field])


@dataclass(frozen=True)
class _Checked:
    """A purchase whose input passed every check that needs no transaction."""

    scope: str
    key: str
    digest: str
    member_id: int
    merchant: merchants.MerchantInfo
    receipt_no: str
    amount_fen: int
    occurred_at: datetime
    plan: earning.PurchasePlan | None = None  # every tier's outcome; None: evaluate under the lock


async def _check_purchase(identity: IntegrationIdentity, data: PurchaseInput, now: datetime) -> _Checked:
    key = idempotency.check_key(data.idempotency_key, ["idempotencyKey"])
    receipt_no = _check_receipt_no(data.receipt_no)
    _check_amount(data.amount_fen, "amountFen")
    occurred_at = clock.to_utc(data.occurred_at)
    if occurred_at > now + CLOCK_SKEW:
        raise DomainError(ErrorCode.INVALID_INPUT, "occurredAt is in the future", ["occurredAt"])
    if occurred_at < now - RECEIPT_MAX_AGE:
        raise DomainError(ErrorCode.INVALID_INPUT, "occurredAt is more than 30 days ago", ["occurredAt"])
    merchant = await merchants.active_by_code(data.merchant_code, ["merchantCode"])
    require_merchant(identity, merchant.id, ["merchantCode"])
    # An offline till uploads later: the code must have been valid when the purchase happened.
    member_id = signing.read_member_code(data.member_code, as_of=occurred_at)
    digest = idempotency.request_hash("purchaseRecord", {
        "memberCode": data.member_code, "merchantCode": data.merchant_code, "receiptNo": receipt_no,
        "amountFen": data.amount_fen, "occurredAt": occurred_at.isoformat(),
    })
    plan = await earning.purchase_plan(member_id, merchant.code, merchant.category, data.amount_fen, occurred_at)
    return _Checked(scope_of(identity), key, digest, member_id, merchant, receipt_no, data.amount_fen, occurred_at,
                    plan)


# Invites qualified by the receipts of the running group (their rewards are booked after commit).
_qualified: ContextVar[list[int] | None] = ContextVar("qualified_invites", default=None)


async def _book(tx: Tx, item: _Checked, now: datetime) -> PurchaseResult:
    """Claims the key and earns. A DomainError leaves nothing but the claim written (the caller's
    transaction rolls it back, or a group releases it), so no savepoint is needed. An invite that
    this purchase qualifies (the invitee's first purchase) is noted in `_qualified`."""
    qualified = _qualified.get()
    if qualified is None:
        qualified = []
        _qualified.set(qualified)
    record_id = None
    if tx.postgres and item.plan is not None:
        record_id, result = await _earn_in_one_statement(tx, item, now, qualified)
        if result is not None:
            return result
    if record_id is None:  # SQLite, or a key used before
        record_id, stored = await idempotency.claim(tx, item.scope, item.key, item.digest, ["idempotencyKey"])
        if stored is not None:
            return PurchaseResult(**stored)
    result = await _earn(tx, item.member_id, item.merchant, item.receipt_no, item.amount_fen, item.occurred_at, now,
                         qualified)
    await idempotency.remember(tx, record_id, asdict(result))  # (over)writes the claim's result
    return result


# The common earn on PostgreSQL in one round trip: the same writes as the general path
# (idempotency.claim, ledger.lock_account, the purchase, ledger.credit with its breakdown,
# tiers.add_growth, the invite it qualifies, idempotency.remember), as data-modifying CTEs. The rules
# were evaluated in Python for every tier (earning.purchase_plan); the statement picks the outcome of
# the tier it finds under the lock. It claims the key and writes nothing else when the key was used
# before, when the account has points due for expiry or a claw-back debt, or when the member's tier
# was not planned: the general path handles those. Parameters:
#  $1 member  $2 merchant  $3 receipt  $4 amount  $5 tier ids  $6 points per tier  $7 occurred  $8 now
#  $9 expires  $10 reason  $11 scope  $12 key  $13 input hash  $14 growth per tier  $15 breakdown per tier
_EARN_SQL = """
WITH locked AS (
  -- No other table is joined here: a row re-read after waiting for the lock must not be filtered
  -- out by a join against the statement's older snapshot (a concurrent upgrade changes tier_id).
  SELECT a.id, a.balance, m.growth_value, m.tier_id,
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
  FROM acct, calc, claim WHERE acct.due = 0 AND acct.balance >= 0
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
SELECT (SELECT id FROM claim) AS claim_id, locked.due, locked.balance, locked.held, p.id AS purchase_id, p.points_earned,
  (SELECT COUNT(*) FROM calc) AS planned, (SELECT id FROM inv) AS invite_id
FROM (SELECT 1) one LEFT JOIN locked ON TRUE LEFT JOIN p ON TRUE
"""


async def _earn_in_one_statement(
    tx: Tx, item: _Checked, now: datetime, qualified: list[int],
) -> tuple[int | None, PurchaseResult | None]:
    """Returns (claimed record id, result); the result is None when the general path must go on."""
    plan = item.plan
    assert plan is not None
    reason = f"{item.merchant.name} 消费 {yuan(item.amount_fen)}"
    row = await tx.fetchrow(
        _EARN_SQL, item.member_id, item.merchant.id, item.receipt_no, item.amount_fen, plan.tier_ids, plan.points,
        item.occurred_at, now, ledger.expiry_for(item.occurred_at), reason, item.scope, item.key, item.digest,
        plan.growth, plan.breakdowns,
    )
    if row["claim_id"] is None:
        return None, None  # the key was used before: the general path returns or refuses the first result
    if row["balance"] is None:
        raise DomainError(ErrorCode.NOT_FOUND, "unknown member code", ["memberCode"])
    if row["due"] or row["balance"] < 0 or not row["planned"]:
        return row["claim_id"], None  # the general path expires what is due or pays the debt off first
    if row["purchase_id"] is None:
        raise DomainError(ErrorCode.DUPLICATE_RECEIPT, "this receipt has been recorded already", ["receiptNo"])
    if row["invite_id"] is not None:
        qualified.append(int(row["invite_id"]))
    points = int(row["points_earned"])
    result = PurchaseResult(row["purchase_id"], item.receipt_no, item.amount_fen, points,
                            int(row["balance"]) + points - int(row["held"]))
    return row["claim_id"], result


async def record_purchase(identity: IntegrationIdentity, data: PurchaseInput) -> PurchaseResult:
    now = clock.now()
    item = await _check_purchase(identity, data, now)
    return await _group_commit.submit(item, now)


async def _book_together(items: list[tuple[_Checked, datetime]]) -> list[PurchaseResult | DomainError]:
    """Books several receipts in one transaction, each on its own: its own key, its own result. A
    receipt that fails writes nothing but its key claim, which is released at once. Receipts go in
    member order, so that concurrent groups take account locks in the same order; a deadlock
    victim (another writer's order) runs again."""
    order = sorted(range(len(items)), key=lambda i: items[i][0].member_id)
    for attempt in range(3):
        outcome: list[PurchaseResult | DomainError] = [None] * len(items)  # type: ignore[list-item]
        qualified: list[int] = []
        _qualified.set(qualified)
        try:
            async with transaction() as tx:
                for i in order:
                    item, now = items[i]
                    try:
                        outcome[i] = await _book(tx, item, now)
                    except DomainError as err:
                        outcome[i] = err
                        await idempotency.release(tx, item.scope, item.key, item.digest)
            if qualified:  # after commit: rewards on other accounts are a move of their own
                from api.services import invites

                await invites.reward_qualified(qualified)
            return outcome
        except Exception as exc:
            if attempt == 2 or not is_deadlock(exc):
                raise
    raise AssertionError("unreachable")


class _GroupCommit:
    """Group commit for single receipts. A call goes into a transaction at once when fewer than
    IN_FLIGHT of them are running; calls that arrive meanwhile wait and go together into the next
    one (up to MAX_BATCH). No latency is added when idle; under load, many earns share one commit.
    Each call still gets its own result or its own userError; if a group fails for any other
    reason, its receipts are booked again one by one so that one cannot spoil the others."""

    IN_FLIGHT = 3

    def __init__(self) -> None:
        self.queue: list[tuple[_Checked, datetime, asyncio.Future]] = []
        self.running = 0
        self.tasks: set[asyncio.Task] = set()

    async def submit(self, item: _Checked, now: datetime) -> PurchaseResult:
        future = asyncio.get_running_loop().create_future()
        self.queue.append((item, now, future))
        if self.running < self.IN_FLIGHT:
            self.running += 1
            task = asyncio.create_task(self._drain())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self.queue:
                group, self.queue = self.queue[:MAX_BATCH], self.queue[MAX_BATCH:]
                try:
                    outcomes: list = await _book_together([(item, now) for item, now, _ in group])
                except Exception:  # not a business error: isolate the receipt that caused it
                    outcomes = []
                    for item, now, _ in group:
                        try:
                            outcomes.append((await _book_together([(item, now)]))[0])
                        except Exception as exc:  # noqa: BLE001 - handed to that caller
                            outcomes.append(exc)
                for (_, _, future), outcome in zip(group, outcomes, strict=True):
                    if future.done():  # the caller went away; its receipt is booked all the same
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self.running -= 1


_group_commit = _GroupCommit()


async def _earn(
    tx: Tx, member_id: int, merchant: merchants.MerchantInfo, receipt_no: str, amount_fen: int,
    occurred_at: datetime, now: datetime, qualified: list[int] | None = None,
) -> PurchaseResult:
    """The general earn (SQLite, and PostgreSQL when a rule needs state): lock, evaluate the rules
    with the member's counters, book the spendable part now and the rest as pending points."""
    acct = await ledger.lock_account(tx, member_id)
    if acct is None:
        raise DomainError(ErrorCode.NOT_FOUND, "unknown member code", ["memberCode"])
    rules = await earning.active_rules("PURCHASE")
    first = (any(r.conditions.first_purchase for r in rules)
             and await tx.fetchval("SELECT id FROM purchase WHERE member_id = $1 LIMIT 1", member_id) is None)
    purchase_id = await tx.fetchval(
        "INSERT INTO purchase (merchant_id, member_id, receipt_no, amount_fen, refunded_fen, points_earned,"
        " points_reversed, points_forgiven, growth_earned, growth_reversed, occurred_at, recorded_at)"
        " VALUES ($1, $2, $3, $4, 0, 0, 0, 0, 0, 0, $5, $6)"
        " ON CONFLICT (merchant_id, receipt_no) DO NOTHING RETURNING id",
        merchant.id, member_id, receipt_no, amount_fen, occurred_at, now,
    )
    if purchase_id is None:
        raise DomainError(ErrorCode.DUPLICATE_RECEIPT, "this receipt has been recorded already", ["receiptNo"])
    await ledger.expire_account(tx, acct, now)
    facts = await earning.facts_for(acct, "PURCHASE", occurred_at, amount_fen=amount_fen, merchant_code=merchant.code,
                                    merchant_category=merchant.category, first_purchase=first)
    applied = await earning.apply(
        tx, acct, facts, reason=f"{merchant.name} 消费 {yuan(amount_fen)}", source_type="purchase",
        source_ref=str(purchase_id), occurred_at=occurred_at, now=now, purchase_id=purchase_id,
    )
    await tx.execute("UPDATE purchase SET points_earned = $1, growth_earned = $2 WHERE id = $3",
                     applied.points, applied.growth, purchase_id)
    invite_id = await tx.fetchval(
        "UPDATE member_invite SET purchase_id = $1, qualified_at = $2 WHERE member_id = $3 AND inviter_id IS NOT NULL"
        " AND purchase_id IS NULL RETURNING id", purchase_id, now, member_id)
    if invite_id is not None and qualified is not None:
        qualified.append(int(invite_id))
    return PurchaseResult(purchase_id, receipt_no, amount_fen, applied.points, acct.spendable)


async def import_purchase(
    member_id: int, merchant_code: str, receipt_no: str, amount_fen: int, occurred_at: datetime,
) -> PurchaseResult | None:
    """Books a historic purchase (seeds, data migration from another system): the same earn as a
    till's, without a member code. Returns None when the receipt was booked already."""
    merchant = await merchants.by_code(merchant_code, ["merchantCode"])
    _check_amount(amount_fen, "amountFen")
    try:
        async with transaction() as tx:
            return await _earn(tx, member_id, merchant, _check_receipt_no(receipt_no), amount_fen,
                               clock.to_utc(occurred_at), clock.now())
    except DomainError as err:
        if err.code is ErrorCode.DUPLICATE_RECEIPT:
            return None
        raise


@dataclass(frozen=True)
class BatchItem:
    result: PurchaseResult | None
    error: DomainError | None


async def record_batch(identity: IntegrationIdentity, items: list[PurchaseInput]) -> list[BatchItem]:
    """Each receipt on its own (its own idempotency key, its own result), all in one transaction: one
    commit for the batch instead of one per receipt."""
    if len(items) > MAX_BATCH:
        raise DomainError(ErrorCode.INVALID_INPUT, f"at most {MAX_BATCH} purchases per batch", ["purchases"])
    now = clock.now()
    checked: list[_Checked | DomainError] = []
    for item in items:
        try:
            checked.append(await _check_purchase(identity, item, now))
        except DomainError as err:
            checked.append(err)
    valid = [i for i, c in enumerate(checked) if isinstance(c, _Checked)]
    booked = await _book_together([(checked[i], now) for i in valid])
    outcome = dict(zip(valid, booked, strict=True))
    results = []
    for i, c in enumerate(checked):
        value = outcome.get(i, c)
        if isinstance(value, DomainError):
            results.append(BatchItem(None, DomainError(value.code, value.message, ["purchases", str(i), *(value.field or [])])))
        else:
            results.append(BatchItem(value, None))
    return results


# --- refunds ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class RefundResult:
    points_reversed: int
    points_balance: int


@retry_on_deadlock()
async def refund_purchase(
    identity: IntegrationIdentity, merchant_code: str, receipt_no: str, refund_amount_fen: int, idempotency_key: str,
) -> RefundResult:
    """Settles points in proportion to the refunded amount (cumulatively, so that refunding the
    whole amount in parts settles exactly what was earned). The purchase's own lot gives back first;
    what it no longer holds because it expired is forgiven (the member never used it); the rest is
    taken from other lots by earliest expiry, and what still cannot be covered becomes a negative
    balance (a claw-back debt) that blocks spending until later earnings pay it off."""
    key = idempotency.check_key(idempotency_key, ["idempotencyKey"])
    receipt_no = _check_receipt_no(receipt_no)
    _check_amount(refund_amount_fen, "refundAmountFen")
    merchant = await merchants.by_code(merchant_code, ["merchantCode"])
    require_merchant(identity, merchant.id, ["merchantCode"])
    digest = idempotency.request_hash("purchaseRefund", {
        "merchantCode": merchant_code, "receiptNo": receipt_no, "refundAmountFen": refund_amount_fen,
    })
    now = clock.now()
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, scope_of(identity), key, digest, ["idempotencyKey"])
        if stored is not None:
            return RefundResult(**stored)
        # The lock order of every points move: key, account, then the purchase (a pending-points release
        # locks the account before it updates the purchase).
        owner = await tx.fetchval("SELECT member_id FROM purchase WHERE merchant_id = $1 AND receipt_no = $2",
                                  merchant.id, receipt_no)
        if owner is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such receipt at this merchant", ["receiptNo"])
        acct = await ledger.lock_account(tx, owner)
        assert acct is not None
        purchase = await tx.fetchrow(
            "SELECT id, member_id, amount_fen, refunded_fen, points_earned, points_reversed, points_forgiven,"
            " growth_earned, growth_reversed, occurred_at FROM purchase WHERE merchant_id = $1 AND receipt_no = $2"
            + (" FOR UPDATE" if tx.postgres else ""),
            merchant.id, receipt_no,
        )
        refundable = purchase["amount_fen"] - purchase["refunded_fen"]
        if refund_amount_fen > refundable:
            raise DomainError(
                ErrorCode.INVALID_INPUT, f"refund exceeds what is left to refund ({refundable} fen)", ["refundAmountFen"]
            )
        refunded = purchase["refunded_fen"] + refund_amount_fen
        settle = purchase["points_earned"] * refunded // purchase["amount_fen"] - purchase["points_reversed"]
        growth_back = purchase["growth_earned"] * refunded // purchase["amount_fen"] - purchase["growth_reversed"]
        # Expire what is due first, as an expiry run would have: the result must not depend on
        # whether one ran (what the purchase's own lot lost to expiry is forgiven just below).
        await ledger.expire_account(tx, acct, now)
        reason = f"{merchant.name} 退款 {yuan(refund_amount_fen)}"
        take = forgive = 0
        earn_ids: tuple[int, ...] = ()
        if settle:
            # The purchase's own EARN entries: one, or two when part of its points was pending and released.
            earn_ids = tuple(r["id"] for r in await tx.fetch(
                "SELECT id FROM points_entry WHERE source_type = 'purchase' AND source_ref = $1 AND kind = 'EARN'"
                " ORDER BY id", str(purchase["id"])))
            forgive = await _forgivable(tx, earn_ids, settle, purchase["points_forgiven"])
            take = settle - forgive
        if take:
            await ledger.debit(
                tx, acct, points=take, kind="REVERSE", reason=reason, source_type="purchase_refund",
                source_ref=str(purchase["id"]), occurred_at=now, prefer_entry_ids=earn_ids, allow_debt=True,
                reverses_id=earn_ids[0] if earn_ids else None,
            )
        await tx.execute(
            "UPDATE purchase SET refunded_fen = $1, points_reversed = points_reversed + $2,"
            " points_forgiven = points_forgiven + $3, growth_reversed = growth_reversed + $4 WHERE id = $5",
            refunded, settle, forgive, growth_back, purchase["id"],
        )
        await tx.execute(
            "INSERT INTO purchase_refund (purchase_id, amount_fen, points_reversed, points_forgiven, recorded_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            purchase["id"], refund_amount_fen, take, forgive, now,
        )
        await earning.cancel_pending(tx, purchase["id"], refunded, purchase["amount_fen"], now)
        await earning.give_back_counters(tx, purchase["id"], acct.member_id, clock.parse_db_time(purchase["occurred_at"]),
                                         purchase["amount_fen"], purchase["refunded_fen"], refunded)
        if growth_back:
            await tiers.add_growth(
                tx, acct.member_id, acct.tier_id, acct.growth_value, -growth_back, reason, "purchase_refund",
                str(purchase["id"]), now,
            )
        result = RefundResult(take, acct.spendable)
        await idempotency.remember(tx, record_id, asdict(result))
    return result


async def _forgivable(tx: Tx, earn_ids: tuple[int, ...], settle: int, forgiven_before: int) -> int:
    """How much of `settle` needs no claw-back: when the purchase's own lots cannot cover it, the
    part of the shortfall that expired (never used by the member) is settled by that expiry."""
    ids = ledger.sql_ids(earn_ids)
    own = await tx.fetchval(
        f"SELECT COALESCE(SUM(remaining), 0) FROM points_lot WHERE entry_id IN ({ids}) AND kind = 'EARN'"
    )
    shortfall = settle - min(settle, int(own))
    if not shortfall:
        return 0
    expired = await tx.fetchval(
        "SELECT COALESCE(-SUM(m.delta), 0) FROM points_lot_move m JOIN points_lot l ON l.id = m.lot_id"
        f" JOIN points_entry e ON e.id = m.entry_id WHERE l.entry_id IN ({ids}) AND e.kind = 'EXPIRE'",
    )
    return min(shortfall, max(0, int(expired) - forgiven_before))


# --- paying with points at the till ---------------------------------------------------------

@dataclass(frozen=True)
class PayResult:
    points_spent: int
    cash_value_fen: int
    points_balance: int


@retry_on_deadlock()
async def pay_with_points(
    identity: IntegrationIdentity, member_code: str, merchant_code: str, receipt_no: str, points: int,
    idempotency_key: str,
) -> PayResult:
    cfg = settings()
    key = idempotency.check_key(idempotency_key, ["idempotencyKey"])
    receipt_no = _check_receipt_no(receipt_no)
    if points <= 0 or points > MAX_PAY_POINTS:
        raise DomainError(ErrorCode.INVALID_INPUT, f"points must be 1 to {MAX_PAY_POINTS}", ["points"])
    if (points * 100) % cfg.pay_points_per_yuan:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"points must be worth a whole number of fen ({cfg.pay_points_per_yuan} points = 1 yuan)", ["points"],
        )
    cash_value_fen = points * 100 // cfg.pay_points_per_yuan
    merchant = await merchants.active_by_code(merchant_code, ["merchantCode"])
    require_merchant(identity, merchant.id, ["merchantCode"])
    member_id = signing.read_member_code(member_code)  # spending: the code must be valid now
    digest = idempotency.request_hash("pointsPay", {
        "memberCode": member_code, "merchantCode": merchant_code, "receiptNo": receipt_no, "points": points,
    })
    now = clock.now()
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, scope_of(identity), key, digest, ["idempotencyKey"])
        if stored is not None:
            return PayResult(**stored)
        acct = await ledger.lock_account(tx, member_id)
        if acct is None:
            raise DomainError(ErrorCode.NOT_FOUND, "unknown member code", ["memberCode"])
        await ledger.expire_account(tx, acct, now)
        if acct.spendable < points:
            raise DomainError(ErrorCode.INSUFFICIENT_POINTS, f"not enough points: {ledger.shortfall(acct)}", ["points"])
        payment_id = await tx.fetchval(
            "INSERT INTO till_payment (merchant_id, member_id, receipt_no, points, cash_value_fen, recorded_at)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (merchant_id, receipt_no) DO NOTHING RETURNING id",
            merchant.id, member_id, receipt_no, points, cash_value_fen, now,
        )
        if payment_id is None:
            raise DomainError(ErrorCode.DUPLICATE_RECEIPT, "points were already used on this receipt", ["receiptNo"])
        await ledger.debit(
            tx, acct, points=points, kind="SPEND", reason=f"{merchant.name} 积分抵现 {yuan(cash_value_fen)}",
            source_type="till_payment", source_ref=str(payment_id), occurred_at=now,
        )
        result = PayResult(points, cash_value_fen, acct.spendable)
        await idempotency.remember(tx, record_id, asdict(result))
    return result
