"""A model-based test of the points ledger: a Hypothesis state machine drives earns, spends,
refunds, operator adjustments, expiry runs and the passing of time at random, and after every
step compares the database with a small Python model of each member's lots, debt, growth value and
tier, and of each purchase's refund state (plus the ledger invariant over the whole database).

The rules are synchronous (as Hypothesis wants); each one runs the services' coroutines to
completion on the session's event loop, the one Tortoise's connections belong to. The clock starts
at a random date in the early 2000s and never passes CLOCK_CAP, and every example expires what is
left of its own lots when it ends, so that expiry runs here and in other tests do not see each
other's points. Each example makes members of its own.

`MALLPOINTS_LEDGER_MODEL_EXAMPLES=500` searches deeper (the default keeps the suite quick).
"""
from __future__ import annotations

import asyncio
import itertools
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from api import db
from api.services import clock, ledger, operators, purchases, signing, tiers
from api.services.errors import DomainError, ErrorCode
from api.services.integrations import IntegrationIdentity
from tests.conftest import assert_ledger_invariant, code_for, make_member, snapshot, unique

MERCHANT_CODES = ("M001", "M002", "M003")
CLOCK_START_MIN = datetime(2000, 1, 1)
CLOCK_START_MAX = datetime(2004, 12, 31, 23, 59, 59)
CLOCK_CAP = datetime(2018, 12, 31, tzinfo=timezone.utc)  # lots earned here all expire long before today
ADJUST_REASON = "模型测试"
EXAMPLES = int(os.environ.get("MALLPOINTS_LEDGER_MODEL_EXAMPLES", "30"))  # per backend


# Earnings: small receipts (some below one yuan: no points) and large ones that move members up tiers.
AMOUNTS = st.one_of(st.integers(1, 20_000), st.integers(20_001, 600_000))
BACKDATE = st.timedeltas(timedelta(seconds=1), timedelta(days=29, hours=23))
STEPS = st.one_of(
    st.timedeltas(timedelta(hours=1), timedelta(days=3)),
    st.timedeltas(timedelta(days=1), timedelta(days=200)),
)
WHO = st.integers(0, 1)  # index into the example's members (taken modulo their number)


def plus_months(value: datetime, months: int) -> datetime:
    """The model's own rolling expiry: same day `months` later, clamped to the end of a short month."""
    year, month = divmod(value.month - 1 + months, 12)
    day = value.day
    while True:
        try:
            return value.replace(year=value.year + year, month=month + 1, day=day)
        except ValueError:
            day -= 1


# --- the model -------------------------------------------------------------------------------

@dataclass(eq=False)
class Lot:
    points: int
    remaining: int
    expires_at: datetime
    seq: int  # creation order: the tie-break after the expiry
    expired: int = 0  # points of it that expiry took (a refund forgives those)


@dataclass
class Member:
    id: int
    tier: tiers.TierInfo
    growth: int = 0
    debt: int = 0  # the claw-back a refund could not cover (never positive)
    lots: list[Lot] = field(default_factory=list)

    @property
    def balance(self) -> int:
        return sum(lot.remaining for lot in self.lots) + self.debt

    def due(self, as_of: datetime) -> list[Lot]:
        return [lot for lot in self.lots if lot.remaining > 0 and lot.expires_at <= as_of]

    def spendable(self, as_of: datetime) -> int:
        return self.balance - sum(lot.remaining for lot in self.due(as_of))

    def expire(self, as_of: datetime) -> int:
        total = 0
        for lot in self.due(as_of):
            total += lot.remaining
            lot.expired += lot.remaining
            lot.remaining = 0
        return total

    def credit(self, points: int, expires_at: datetime, seq: int) -> Lot:
        payoff = min(points, -self.debt)  # a debt is paid off first
        self.debt += payoff
        lot = Lot(points, points - payoff, expires_at, seq)
        self.lots.append(lot)
        return lot

    def debit(self, points: int, *, first: Lot | None = None, allow_debt: bool = False) -> None:
        """Earliest expiry first (`first` before all); a shortfall becomes debt where allowed."""
        order = sorted(
            (lot for lot in self.lots if lot.remaining > 0),
            key=lambda lot: (lot is not first, lot.expires_at, lot.seq),
        )
        left = points
        for lot in order:
            take = min(left, lot.remaining)
            lot.remaining -= take
            left -= take
        assert allow_debt or left == 0, "the model debited more than the lots hold"
        self.debt -= left


@dataclass
class Purchase:
    id: int
    member: Member
    merchant: str
    receipt_no: str
    amount: int
    points: int
    growth: int
    lot: Lot | None
    refunded: int = 0
    settled: int = 0  # purchase.points_reversed: taken back or forgiven
    forgiven: int = 0
    growth_reversed: int = 0

    @property
    def refundable(self) -> int:
        return self.amount - self.refunded


@dataclass
class Env:
    """What all examples of one backend share."""
    loop: asyncio.AbstractEventLoop
    identity: IntegrationIdentity
    operator_id: int
    tiers: list[tiers.TierInfo]


def qualifying(levels: list[tiers.TierInfo], growth: int) -> tiers.TierInfo:
    return max((t for t in levels if t.growth_threshold <= growth), key=lambda t: t.growth_threshold)


# --- the machine -----------------------------------------------------------------------------

class LedgerMachine(RuleBasedStateMachine):
    def __init__(self, env: Env) -> None:
        super().__init__()
        self.env = env
        self.members: list[Member] = []
        self.purchases: list[Purchase] = []
        self.seq = itertools.count()
        self.replayable = None  # (coroutine factory, first result) of the last call, until the clock moves

    # helpers

    def run(self, coro):
        return self.env.loop.run_until_complete(coro)

    def member(self, who: int) -> Member:
        return self.members[who % len(self.members)]

    def add_growth(self, m: Member, delta: int) -> None:
        new = max(0, m.growth + delta)
        if new > m.growth:
            target = qualifying(self.env.tiers, new)
            if target.growth_threshold > m.tier.growth_threshold:
                m.tier = target  # upgrades are immediate; downgrades wait for the period's end
        m.growth = new

    def expect_refusal(self, code: ErrorCode, coro_factory) -> None:
        """The call fails with `code` and leaves every member (and the model) as it was."""
        before = [self.run(snapshot(m.id)) for m in self.members]
        with pytest.raises(DomainError) as refused:
            self.run(coro_factory())
        assert refused.value.code is code, f"expected {code.value}, got {refused.value!r}"
        assert [self.run(snapshot(m.id)) for m in self.members] == before

    def clock_moved(self) -> None:
        self.replayable = None  # a member code would have expired

    # set-up

    @initialize(
        start=st.datetimes(CLOCK_START_MIN, CLOCK_START_MAX, timezones=st.just(timezone.utc)),
        count=st.integers(1, 2),
    )
    def start(self, start: datetime, count: int) -> None:
        clock.freeze(start)
        for _ in range(count):
            member_id, _ = self.run(make_member(at=start))
            self.members.append(Member(member_id, self.env.tiers[0]))

    # time

    @rule(step=STEPS)
    def advance_clock(self, step: timedelta) -> None:
        clock.freeze(min(clock.now() + step, CLOCK_CAP))
        self.clock_moved()

    def _next_expiry(self) -> datetime | None:
        now = clock.now()
        pending = [lot.expires_at for m in self.members for lot in m.lots if lot.remaining > 0 and lot.expires_at > now]
        return min(pending) if pending else None

    @precondition(lambda self: self._next_expiry() is not None)
    @rule(offset=st.sampled_from([timedelta(0), timedelta(microseconds=-1), timedelta(microseconds=1),
                                  timedelta(seconds=-1), timedelta(seconds=1), timedelta(hours=8)]))
    def advance_to_an_expiry(self, offset: timedelta) -> None:
        """Lands on (or right next to) the moment a lot expires: a lot is due at its expires_at."""
        target = self._next_expiry() + offset
        if clock.now() < target <= CLOCK_CAP:
            clock.freeze(target)
            self.clock_moved()

    # earning

    @rule(who=WHO, amount=AMOUNTS, merchant=st.sampled_from(MERCHANT_CODES))
    def earn(self, who: int, amount: int, merchant: str) -> None:
        self._earn(self.member(who), amount, merchant, timedelta(0))

    @rule(who=WHO, amount=AMOUNTS, merchant=st.sampled_from(MERCHANT_CODES), backdate=BACKDATE)
    def earn_uploaded_later(self, who: int, amount: int, merchant: str, backdate: timedelta) -> None:
        """An offline till uploads a purchase of up to 30 days ago: its points expire 12 months
        after the purchase, not after the upload."""
        self._earn(self.member(who), amount, merchant, backdate)

    def _earn(self, m: Member, amount: int, merchant: str, backdate: timedelta) -> None:
        now = clock.now()
        occurred_at = now - backdate
        clock.freeze(occurred_at)  # the code was valid when the purchase happened
        code = code_for(m.id)
        clock.freeze(now)
        data = purchases.PurchaseInput(code, merchant, unique("R"), amount, occurred_at, unique("K"))
        result = self.run(purchases.record_purchase(self.env.identity, data))

        points = amount * m.tier.earn_multiplier_percent // 10_000  # floor(yuan × 1 point × multiplier)
        growth = amount // 100
        assert result.points_earned == points, (result, m.tier)
        m.expire(now)
        lot = m.credit(points, plus_months(occurred_at, 12), next(self.seq)) if points else None
        if growth:
            self.add_growth(m, growth)
        assert result.points_balance == m.balance
        self.purchases.append(Purchase(result.purchase_id, m, merchant, data.receipt_no, amount, points, growth, lot))
        self.replayable = (lambda: purchases.record_purchase(self.env.identity, data), result)

    @precondition(lambda self: self.purchases)
    @rule(data=st.data(), who=WHO)
    def earn_on_a_booked_receipt_is_refused(self, data, who: int) -> None:
        p = self.purchases[data.draw(st.integers(0, len(self.purchases) - 1), label="purchase #")]
        dup = purchases.PurchaseInput(code_for(self.member(who).id), p.merchant, p.receipt_no, 500, clock.now(),
                                      unique("K"))
        self.expect_refusal(ErrorCode.DUPLICATE_RECEIPT, lambda: purchases.record_purchase(self.env.identity, dup))

    # refunds

    @precondition(lambda self: self.purchases)
    @rule(data=st.data())
    def refund(self, data) -> None:
        """Settles floor(earned × refunded so far / amount): after what is due has expired (as a run
        would have), the purchase's own lot gives back first, what of it had expired is forgiven, the
        rest comes from other lots by earliest expiry, and what cannot be covered becomes a debt."""
        p = self.purchases[data.draw(st.integers(0, len(self.purchases) - 1), label="purchase #")]
        if not p.refundable or data.draw(st.sampled_from(["part or all", "part or all", "too much"])) == "too much":
            extra = data.draw(st.integers(1, 100_000), label="fen beyond what is left")
            self.expect_refusal(ErrorCode.INVALID_INPUT, lambda: purchases.refund_purchase(
                self.env.identity, p.merchant, p.receipt_no, p.refundable + extra, unique("K")))
            return
        amount = data.draw(st.one_of(st.just(p.refundable), st.integers(1, p.refundable)), label="refund fen")
        key = unique("K")

        def call():
            return purchases.refund_purchase(self.env.identity, p.merchant, p.receipt_no, amount, key)

        result = self.run(call())
        m, now = p.member, clock.now()
        p.refunded += amount
        settle = p.points * p.refunded // p.amount - p.settled
        growth_back = p.growth * p.refunded // p.amount - p.growth_reversed
        m.expire(now)  # a refund first expires what is due, as an expiry run would have
        forgive = 0
        if settle:
            shortfall = settle - min(settle, p.lot.remaining)
            forgive = min(shortfall, max(0, p.lot.expired - p.forgiven))
        take = settle - forgive
        if take:
            m.debit(take, first=p.lot, allow_debt=True)
        if growth_back:
            self.add_growth(m, -growth_back)
        p.settled += settle
        p.forgiven += forgive
        p.growth_reversed += growth_back
        assert (result.points_reversed, result.points_balance) == (take, m.balance), (settle, forgive)
        self.replayable = (call, result)

    # spending

    def _can_pay_or_owes(self) -> bool:
        now = clock.now()
        return any(m.spendable(now) > 0 or m.debt for m in self.members)

    @precondition(_can_pay_or_owes)
    @rule(data=st.data(), merchant=st.sampled_from(MERCHANT_CODES))
    def pay_with_points(self, data, merchant: str) -> None:
        """Spends earliest-expiring points first; more than the balance, or anything while a
        claw-back debt is outstanding, is refused."""
        now = clock.now()
        who = data.draw(st.sampled_from([i for i, m in enumerate(self.members) if m.spendable(now) > 0 or m.debt]),
                        label="member")
        m = self.members[who]
        available = m.spendable(now)
        if available > 0 and data.draw(st.sampled_from(["within", "within", "within", "beyond"]),
                                       label="balance") == "within":
            points = data.draw(st.one_of(st.just(available), st.integers(1, available)), label="points")
        else:
            points = data.draw(st.integers(max(available, 0) + 1, max(available, 0) + 2_000), label="points")
        code, receipt, key = code_for(m.id), unique("P"), unique("K")

        def call():
            return purchases.pay_with_points(self.env.identity, code, merchant, receipt, points, key)

        if points > available:  # includes any balance held back by a claw-back debt
            self.expect_refusal(ErrorCode.INSUFFICIENT_POINTS, call)
            return
        result = self.run(call())
        m.expire(now)
        m.debit(points)
        assert (result.points_spent, result.cash_value_fen, result.points_balance) == (points, points, m.balance)
        self.replayable = (call, result)

    # operators

    @rule(who=WHO, change=st.sampled_from(["add", "take", "take", "take too much"]), data=st.data())
    def adjust(self, who: int, change: str, data) -> None:
        """An operator's correction: adding makes a lot (paying any debt first); taking spends
        earliest-expiring points and may not exceed the balance."""
        m = self.member(who)
        now = clock.now()
        available = m.spendable(now)
        if change == "add":
            points = data.draw(st.integers(1, 3_000), label="points")
        elif change == "take" and available > 0:
            points = -data.draw(st.one_of(st.just(available), st.integers(1, available)), label="points taken")
        else:
            points = -data.draw(st.integers(max(available, 0) + 1, max(available, 0) + 3_000), label="points taken")
        key = unique("K")

        def call():
            return operators.adjust_points(self.env.operator_id, m.id, points, ADJUST_REASON, key)

        if points < 0 and available < -points:
            self.expect_refusal(ErrorCode.INSUFFICIENT_POINTS, call)
            return
        result = self.run(call())
        m.expire(now)
        if points > 0:
            m.credit(points, plus_months(now, 12), next(self.seq))
        else:
            m.debit(-points)
        assert (result.member_id, result.points, result.balance_after) == (m.id, points, m.balance)
        self.replayable = (call, result)

    @rule(when=st.sampled_from(["now", "now", "earlier", "later"]), data=st.data())
    def expiry_run(self, when: str, data) -> None:
        actor = ("operator", str(self.env.operator_id))
        if when == "later":  # points expire on time, not before
            ahead = data.draw(st.timedeltas(timedelta(minutes=2), timedelta(days=400)), label="ahead")
            self.expect_refusal(ErrorCode.INVALID_INPUT, lambda: operators.run_expiry(actor, clock.now() + ahead))
            return
        back = data.draw(st.timedeltas(timedelta(0), timedelta(days=400)), label="back") if when == "earlier" else None
        as_of = clock.now() - (back or timedelta(0))
        ours = ", ".join(str(m.id) for m in self.members)
        others = self.run(db.fetch(
            "SELECT COUNT(*) AS lots, COALESCE(SUM(l.remaining), 0) AS points FROM points_lot l"
            " JOIN points_account a ON a.id = l.account_id WHERE l.kind = 'EARN' AND l.remaining > 0"
            f" AND l.expires_at <= $1 AND a.member_id NOT IN ({ours})", as_of,
        ))[0]
        result = self.run(operators.run_expiry(actor, as_of if back is not None else None))
        lots = sum(len(m.due(as_of)) for m in self.members)
        points = sum(m.expire(as_of) for m in self.members)
        assert (result.lots_expired, result.points_expired) == (lots + others["lots"], points + others["points"])

    # idempotency

    @precondition(lambda self: self.replayable is not None)
    @rule()
    def replay_last_call(self) -> None:
        """The same idempotency key and input answers the first result again and books nothing."""
        call, first = self.replayable
        before = [self.run(snapshot(m.id)) for m in self.members]
        assert self.run(call()) == first
        assert [self.run(snapshot(m.id)) for m in self.members] == before

    # the checks after every step

    @invariant()
    def database_matches_model(self) -> None:
        self.run(self._check())

    async def _check(self) -> None:
        await assert_ledger_invariant()
        now = clock.now()
        spendable = await ledger.balances([m.id for m in self.members])
        assert spendable == {m.id: m.spendable(now) for m in self.members}
        for m in self.members:
            state = await snapshot(m.id)
            assert (state["balance"], state["growth_value"], state["tier_id"]) == (m.balance, m.growth, m.tier.id), m
            rows = await db.fetch(
                "SELECT l.kind, l.points, l.remaining, l.expires_at FROM points_lot l JOIN points_account a"
                " ON a.id = l.account_id WHERE a.member_id = $1 ORDER BY l.id", m.id,
            )
            earned = [(r["points"], r["remaining"], clock.parse_db_time(r["expires_at"]))
                      for r in rows if r["kind"] == "EARN"]
            assert earned == [(lot.points, lot.remaining, lot.expires_at) for lot in m.lots], m
            assert sum(r["remaining"] for r in rows if r["kind"] == "DEBT") == m.debt, m
        if self.purchases:
            rows = await db.fetch(
                "SELECT id, refunded_fen, points_earned, points_reversed, points_forgiven FROM purchase WHERE id IN ("
                + ", ".join(str(p.id) for p in self.purchases) + ") ORDER BY id"
            )
            assert [tuple(int(v) for v in dict(r).values()) for r in rows] == [
                (p.id, p.refunded, p.points, p.settled, p.forgiven) for p in sorted(self.purchases, key=lambda p: p.id)
            ]

    def teardown(self) -> None:
        """Expire what is left of this example's lots (per account, after the last expiry), so that
        no later expiry run, here or in another test, counts them."""
        pending = [lot.expires_at for m in self.members for lot in m.lots if lot.remaining > 0]
        if pending:
            at = max(max(pending), clock.now())
            clock.freeze(at)

            async def expire_all():
                for m in self.members:
                    async with db.transaction() as tx:
                        acct = await ledger.lock_account(tx, m.id, at)
                        await ledger.expire_account(tx, acct, at)

            self.run(expire_all())
        clock.freeze(None)


# --- the tests -------------------------------------------------------------------------------

@pytest_asyncio.fixture(loop_scope="session")
async def ledger_env(backend) -> Env:
    rows = await db.fetch(
        "SELECT id FROM merchant WHERE code IN (" + ", ".join(f"'{c}'" for c in MERCHANT_CODES) + ")"
    )
    operator_id = await db.fetchval("SELECT id FROM operator WHERE username = 'admin'")
    identity = IntegrationIdentity("model-test", "ledger model test", frozenset(r["id"] for r in rows))
    return Env(asyncio.get_running_loop(), identity, operator_id, await tiers.all_tiers(refresh=True))


def test_ledger_follows_the_model(ledger_env: Env) -> None:
    run_state_machine_as_test(
        lambda: LedgerMachine(ledger_env),
        settings=settings(
            max_examples=EXAMPLES, stateful_step_count=30, deadline=None, report_multiple_bugs=False,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


async def test_clawback_is_not_paid_with_expired_points(ledger_env: Env) -> None:
    """Whether or not an expiry run has zeroed the expired lots yet, a refund of points that were
    spent claws them back from valid points or as a debt, never from points that have expired."""
    outcomes = []
    for run_expiry_first in (False, True):
        t0 = datetime(2003, 3, 1, tzinfo=timezone.utc)
        clock.freeze(t0)
        member_id, _ = await make_member(at=t0)
        first, second = unique("R"), unique("R")

        async def earn(receipt: str, amount: int, occurred_at: datetime, member_id=member_id, t0=t0) -> None:
            clock.freeze(occurred_at)
            code = signing.issue_member_code(member_id, 120)[0]
            clock.freeze(t0)
            await purchases.record_purchase(ledger_env.identity, purchases.PurchaseInput(
                code, "M001", receipt, amount, occurred_at, unique("K")))

        await earn(first, 50_000, t0)  # 500 points, expiring at t0 + 12 months
        await earn(second, 40_000, t0 - timedelta(days=20))  # 400 points uploaded late: they expire 20 days earlier
        await purchases.pay_with_points(ledger_env.identity, code_for(member_id), "M001", unique("P"), 400,
                                        unique("K"))  # spends the second purchase's points
        clock.freeze(t0 + timedelta(days=366))  # now every lot has expired
        if run_expiry_first:
            await operators.run_expiry(("operator", str(ledger_env.operator_id)), None)
        refund = await purchases.refund_purchase(ledger_env.identity, "M001", second, 40_000, unique("K"))
        outcomes.append((refund.points_reversed, refund.points_balance))
    clock.freeze(None)
    assert outcomes == [(400, -400), (400, -400)]  # the 400 spent points are owed either way
