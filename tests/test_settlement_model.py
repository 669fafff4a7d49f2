"""A model-based test of settlement (issue 12): a Hypothesis state machine drives earns, points payments,
redemptions, write-offs, cash orders, refunds of receipts and of orders, the passing of time, and
statement generations, confirmations, approvals and payments across several merchants and periods, and
checks every statement against a model computed here, independently, from the terms and the events.

The model: each event books, at the clock's time, a posting with a count and an effect on its merchant's
net (> 0: the mall owes the merchant), computed from the terms with integer arithmetic as documented in
docs/settlement.md. A generation of a closed period takes every event of the merchant booked before the
period's end that no statement holds (after releasing the drafts it replaces); it is refused when the
period overlaps a statement past DRAFT or comes before one. The rules are synchronous and run the
services' coroutines on the session's loop (as tests/test_ledger_model.py does). Each example makes its
own merchants, so examples never see each other's statements.

`MALLPOINTS_SETTLEMENT_MODEL_EXAMPLES=200` searches deeper (the default keeps the suite quick).
"""
from __future__ import annotations

import asyncio
import calendar
import os
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

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
from api.services import clock
from api.services.errors import DomainError, ErrorCode
from api.services.settlement import periods, reads, statements, terms
from tests.conftest import make_merchant
from tests.mall_helpers import funded_member
from tests.settlement_helpers import (
    assert_journal_invariant,
    cash_sale,
    earn,
    identity_for,
    make_staff,
    merchant_id,
    merchant_product,
    pay,
    refund,
    refund_order,
    voucher_for,
    write_off,
)

EXAMPLES = int(os.environ.get("MALLPOINTS_SETTLEMENT_MODEL_EXAMPLES", "8"))  # per backend
RATE = 100  # points per yuan (the default MALLPOINTS_PAY_POINTS_PER_YUAN)
VOUCHER_POINTS, FIXED_PRICE, FIXED_POINTS = 300, 250, 500
GOODS_CASH, GOODS_POINTS = 2_000, 100
TERMS = st.tuples(st.sampled_from([0, 10, 35, 100]), st.sampled_from([0, 5, 12, 100]))
WHICH = st.integers(0, 50)  # an index, taken modulo the length of the list it picks from


def value(points: int) -> int:
    return points * 100 // RATE


@dataclass
class Posting:
    merchant: int  # index into the example's merchants
    kind: str
    effect: int
    booked_at: datetime
    statement: int | None = None  # the model statement holding it


@dataclass
class Receipt:
    merchant: int
    receipt_no: str
    amount: int
    value: int
    share: int
    refunded: int = 0


@dataclass
class Order:
    merchant: int
    order_id: int
    fee: int
    refunded: bool = False


@dataclass
class Statement:
    merchant: int
    pk: int
    start: date
    end: date
    status: str = "DRAFT"
    postings: list[int] = field(default_factory=list)


@dataclass
class Env:
    loop: asyncio.AbstractEventLoop
    operator_id: int


def period_around(day: date, kind: str) -> tuple[date, date]:
    if kind == "DAY":
        return day, day
    if kind == "WEEK":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=6)
    start = day.replace(day=1)
    return start, start.replace(day=calendar.monthrange(day.year, day.month)[1])


class SettlementMachine(RuleBasedStateMachine):
    def __init__(self, env: Env) -> None:
        super().__init__()
        self.env = env
        self.codes: list[str] = []
        self.terms: list[tuple[int, int]] = []
        self.managers: list[int] = []
        self.products: list[tuple[int, int, int]] = []  # (by points, fixed price, goods) per merchant
        self.postings: list[Posting] = []
        self.receipts: list[Receipt] = []
        self.orders: list[Order] = []
        self.vouchers: list[tuple[int, str, int]] = []  # (merchant, code, amount owed on write-off)
        self.statements: list[Statement] = []

    def run(self, coro):
        return self.env.loop.run_until_complete(coro)

    def book(self, merchant: int, kind: str, effect: int) -> None:
        self.postings.append(Posting(merchant, kind, effect, clock.now()))

    @initialize(start=st.datetimes(datetime(2024, 1, 1), datetime(2025, 12, 31), timezones=st.just(timezone.utc)),
                merchant_terms=st.lists(TERMS, min_size=2, max_size=3))
    def start(self, start: datetime, merchant_terms: list[tuple[int, int]]) -> None:
        clock.freeze(start)
        member_id, _ = self.run(funded_member(5_000_000))
        self.member_id = member_id
        for share, commission in merchant_terms:
            code = self.run(make_merchant())
            self.run(terms.update(("cli", None), code, share, commission))
            self.codes.append(code)
            self.terms.append((share, commission))
            self.managers.append(self.run(make_staff(code))[0])
            fixed = self.run(merchant_product(code, points_price=FIXED_POINTS))
            self.run(terms.set_product_price(("cli", None), fixed, FIXED_PRICE))
            self.products.append((self.run(merchant_product(code, points_price=VOUCHER_POINTS)), fixed,
                                  self.run(merchant_product(code, kind="GOODS", points_price=GOODS_POINTS,
                                                            cash_price_fen=GOODS_CASH, face_value_fen=None))))
        self.identity = self.run(identity_for(*self.codes))

    # time

    @rule(hours=st.one_of(st.integers(1, 30), st.integers(24, 24 * 20)))
    def advance_clock(self, hours: int) -> None:
        clock.freeze(clock.now() + timedelta(hours=hours))

    # events

    @rule(m=WHICH, amount=st.integers(1, 300_000))
    def earn(self, m: int, amount: int) -> None:
        m %= len(self.codes)
        receipt_no, points = self.run(earn(self.identity, self.member_id, self.codes[m], amount))
        share = value(points) * self.terms[m][0] // 100
        if value(points) > 0:
            self.book(m, "POINTS_ISSUED", -share)
        self.receipts.append(Receipt(m, receipt_no, amount, value(points), share))

    @precondition(lambda self: any(r.refunded < r.amount for r in self.receipts))
    @rule(which=WHICH, part=st.integers(1, 100))
    def refund_receipt(self, which: int, part: int) -> None:
        open_ = [r for r in self.receipts if r.refunded < r.amount]
        r = open_[which % len(open_)]
        amount = max(1, (r.amount - r.refunded) * part // 100)
        self.run(refund(self.identity, self.codes[r.merchant], r.receipt_no, amount))
        before, after = r.refunded, r.refunded + amount
        back = r.share * after // r.amount - r.share * before // r.amount
        mall = r.value - r.share
        if back > 0 or mall * after // r.amount - mall * before // r.amount > 0:
            self.book(r.merchant, "REFUND", back)
        r.refunded = after

    @rule(m=WHICH, points=st.integers(1, 2_000))
    def pay(self, m: int, points: int) -> None:
        m %= len(self.codes)
        self.run(pay(self.identity, self.member_id, self.codes[m], points))
        self.book(m, "POINTS_PAID", value(points))

    @rule(m=WHICH, fixed=st.booleans())
    def redeem(self, m: int, fixed: bool) -> None:
        m %= len(self.codes)
        product = self.products[m][1 if fixed else 0]
        points = FIXED_POINTS if fixed else VOUCHER_POINTS
        code = self.run(voucher_for(self.member_id, self.codes[m], product, points))
        self.vouchers.append((m, code, FIXED_PRICE if fixed else value(VOUCHER_POINTS)))

    @precondition(lambda self: self.vouchers)
    @rule(which=WHICH)
    def write_off(self, which: int) -> None:
        m, code, owed = self.vouchers.pop(which % len(self.vouchers))
        self.run(write_off(self.managers[m], self.codes[m], code))
        self.book(m, "VOUCHER_WRITTEN_OFF", owed)

    @rule(m=WHICH)
    def cash_order(self, m: int) -> None:
        m %= len(self.codes)
        order_id = self.run(cash_sale(self.member_id, self.products[m][2]))
        fee = GOODS_CASH * self.terms[m][1] // 100
        self.book(m, "CASH_SALE", GOODS_CASH - fee)
        self.orders.append(Order(m, order_id, fee))

    @precondition(lambda self: any(not o.refunded for o in self.orders))
    @rule(which=WHICH)
    def refund_order(self, which: int) -> None:
        open_ = [o for o in self.orders if not o.refunded]
        o = open_[which % len(open_)]
        self.run(refund_order(self.env.operator_id, o.order_id))
        self.book(o.merchant, "REFUND", -(GOODS_CASH - o.fee))
        o.refunded = True

    # statements

    @rule(m=WHICH, days_back=st.one_of(st.integers(1, 3), st.integers(1, 40)), kind=st.sampled_from(["DAY", "WEEK", "MONTH"]))
    def generate(self, m: int, days_back: int, kind: str) -> None:
        m %= len(self.codes)
        start, end = period_around(periods.today() - timedelta(days=days_back), kind)
        if end >= periods.today():
            return
        mine = [s for s in self.statements if s.merchant == m and s.end >= start]
        if any(s.start > end or s.status != "DRAFT" for s in mine):
            with pytest.raises(DomainError) as refused:
                self.run(statements.generate(("cli", None), None, self.codes[m], start, end))
            assert refused.value.code is ErrorCode.STATEMENT_PERIOD_CLOSED
            return
        made = self.run(statements.generate(("cli", None), None, self.codes[m], start, end))
        for s in mine:  # the drafts it replaced: their postings are free again
            for i in s.postings:
                self.postings[i].statement = None
            self.statements.remove(s)
        statement = Statement(m, made.id, start, end)
        cut = periods.end_instant(end)
        for i, p in enumerate(self.postings):
            if p.merchant == m and p.statement is None and p.booked_at < cut:
                p.statement = made.id
                statement.postings.append(i)
        self.statements.append(statement)

    @precondition(lambda self: self.statements)
    @rule(which=WHICH, step=st.sampled_from(["confirm", "approve", "pay"]))
    def move(self, which: int, step: str) -> None:
        s = self.statements[which % len(self.statements)]
        needs, becomes = {"confirm": ("DRAFT", "CONFIRMED"), "approve": ("CONFIRMED", "APPROVED"),
                          "pay": ("APPROVED", "PAID")}[step]
        call = {"confirm": lambda: statements.confirm(self.managers[s.merchant],
                                                      self.run(merchant_id(self.codes[s.merchant])), s.pk),
                "approve": lambda: statements.approve(("cli", None), self.env.operator_id, s.pk),
                "pay": lambda: statements.mark_paid(("cli", None), self.env.operator_id, s.pk, f"REF-{s.pk}")}[step]
        if s.status != needs:
            with pytest.raises(DomainError) as refused:
                self.run(call())
            assert refused.value.code is ErrorCode.STATEMENT_STATE_INVALID
            return
        assert self.run(call()).status == becomes
        s.status = becomes

    # checks

    @invariant()
    def statements_match_the_model(self) -> None:
        for s in self.statements:
            stored = self.run(reads.get(s.pk))
            assert stored is not None and stored.status == s.status
            expected: dict[str, tuple[int, int]] = {}
            for i in s.postings:
                count, amount = expected.get(self.postings[i].kind, (0, 0))
                expected[self.postings[i].kind] = (count + 1, amount + self.postings[i].effect)
            assert {t.kind: (t.count, t.amount_fen) for t in stored.totals if t.count} == expected, s
            assert stored.net_fen == sum(p[1] for p in expected.values())

    def teardown(self) -> None:
        if self.codes:
            self.run(assert_journal_invariant())


@pytest_asyncio.fixture(loop_scope="session")
async def settlement_env(backend) -> Env:
    operator_id = await db.fetchval("SELECT id FROM operator WHERE username = 'admin'")
    return Env(asyncio.get_running_loop(), int(operator_id))


def test_statements_follow_the_model(settlement_env: Env) -> None:
    run_state_machine_as_test(
        lambda: SettlementMachine(settlement_env),
        settings=settings(max_examples=EXAMPLES, stateful_step_count=40, deadline=None, report_multiple_bugs=False,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]),
    )
