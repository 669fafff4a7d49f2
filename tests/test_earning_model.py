"""A model-based test of pending points: purchases with a return window, partial refunds before and
after the release, release runs at random times; after every step the member's balance and pending
points equal a small model's, and the ledger invariant (with its pending checks) holds."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

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
from api.services import clock, earning, purchases, signing
from tests.conftest import assert_ledger_invariant, make_member, snapshot, unique
from tests.test_ledger_model import Env, ledger_env  # noqa: F401 - the session's fixture

EXAMPLES = int(os.environ.get("MALLPOINTS_EARNING_MODEL_EXAMPLES", "15"))
PENDING_POINTS, RETURN_DAYS = 30, 7


@dataclass
class Bought:
    receipt: str
    amount: int
    at: datetime
    immediate: int
    refunded: int = 0
    earned: int = 0  # what the purchase owns for refunds (immediate, + the pending part once released)
    reversed: int = 0
    cancelled: int = 0
    released: bool = False


class PendingMachine(RuleBasedStateMachine):
    def __init__(self, env: Env) -> None:
        super().__init__()
        self.env = env
        self.bought: list[Bought] = []
        self.balance = 0

    def run(self, coro):
        return self.env.loop.run_until_complete(coro)

    @initialize(start=st.datetimes(datetime(2001, 1, 1), datetime(2004, 1, 1), timezones=st.just(timezone.utc)))
    def start(self, start: datetime) -> None:
        clock.freeze(start)
        self.member_id, _ = self.run(make_member(at=start))

    @precondition(lambda self: len(self.bought) < 8)
    @rule(amount=st.integers(100, 6_000))
    def buy(self, amount: int) -> None:
        receipt = unique("PM")
        code = signing.issue_member_code(self.member_id, 120)[0]
        result = self.run(purchases.record_purchase(self.env.identity, purchases.PurchaseInput(
            code, "M002", receipt, amount, clock.now(), unique("K"))))
        immediate = amount // 100
        assert result.points_earned == immediate
        self.bought.append(Bought(receipt, amount, clock.now(), immediate, earned=immediate))
        self.balance += immediate

    @precondition(lambda self: any(b.refunded < b.amount for b in self.bought))
    @rule(data=st.data())
    def refund(self, data) -> None:
        b = data.draw(st.sampled_from([b for b in self.bought if b.refunded < b.amount]))
        part = data.draw(st.integers(1, b.amount - b.refunded))
        result = self.run(purchases.refund_purchase(self.env.identity, "M002", b.receipt, part, unique("K")))
        b.refunded += part
        settle = b.earned * b.refunded // b.amount - b.reversed
        b.reversed += settle
        if not b.released:
            b.cancelled = PENDING_POINTS * b.refunded // b.amount
        assert result.points_reversed == settle
        self.balance -= settle

    @rule(days=st.integers(1, 10))
    def advance(self, days: int) -> None:
        clock.freeze(clock.now() + timedelta(days=days))

    @rule()
    def release_run(self) -> None:
        self.run(earning.release_pending(clock.now()))
        for b in self.bought:
            if not b.released and b.cancelled < PENDING_POINTS and b.at + timedelta(days=RETURN_DAYS) <= clock.now():
                b.released = True
                self.balance += PENDING_POINTS - b.cancelled
                b.earned += PENDING_POINTS
                b.reversed += b.cancelled

    @invariant()
    def database_matches_model(self) -> None:
        if not hasattr(self, "member_id"):
            return
        state = self.run(snapshot(self.member_id))
        pending = self.run(earning.pending_totals([self.member_id])).get(self.member_id, 0)
        assert state["balance"] == self.balance
        assert pending == sum(PENDING_POINTS - b.cancelled for b in self.bought if not b.released)
        self.run(assert_ledger_invariant())

    def teardown(self) -> None:
        clock.freeze(None)


@pytest_asyncio.fixture(loop_scope="session")
async def pending_rule(backend):
    now = clock.now()
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO earn_rule (code, name, trigger, status, priority, stacking, stack_group, conditions, action,"
            " action_value, apply_tier_multiplier, growth_action, growth_value, return_days, created_at, updated_at)"
            " VALUES ($1, '退货期积分', 'PURCHASE', 'ACTIVE', 0, 'ADD', NULL, '{\"merchantCodes\": [\"M002\"]}',"
            " 'FIXED_POINTS', $2, FALSE, 'NONE', 0, $3, $4, $4)", unique("PENDING"), PENDING_POINTS, RETURN_DAYS, now)
    earning.invalidate_cache()


def test_pending_points_follow_the_model(ledger_env: Env, pending_rule) -> None:  # noqa: F811
    run_state_machine_as_test(
        lambda: PendingMachine(ledger_env),
        settings=settings(max_examples=EXAMPLES, stateful_step_count=20, deadline=None, report_multiple_bugs=False,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]),
    )
