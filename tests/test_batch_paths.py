"""The set-based batch (PostgreSQL) and booking receipt by receipt write the same rows and answers.

The same seeded random batches go to two member sets set up the same way: set A books each batch as
one group (`book_together`: the set-based path wherever it applies, the general path for the rest),
set B books the same receipts one by one in the same order (one group each: the one-statement or
the general path). The batches hold duplicate receipts, exact repeats of a key inside the batch and
of keys from earlier batches, a key reused with another input, receipts large enough to cross tiers
inside the batch, lots coming due (expiry first), a claw-back debt, and a capped rule (state: the
general path). Every answer and every row written is compared: purchases, entries, lots, lot moves,
breakdowns, growth entries, tier changes, accounts, members and the keys' stored results.
"""
from __future__ import annotations

import dataclasses
import random
from datetime import timedelta

import pytest

from api import db
from api.services import clock, earning, ledger, merchants, purchases
from api.services.errors import DomainError
from tests.conftest import make_member, unique
from tests.test_earn_paths import MERCHANTS, Twins, _claw_back, _identity, _stacking_rule, _written

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


async def _capped_rule() -> None:
    """A rule with a daily cap on M002 (state: receipts there take the general path)."""
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO earn_rule (code, name, trigger, status, priority, stacking, stack_group, conditions, action,"
            " action_value, apply_tier_multiplier, growth_action, growth_value, return_days, cap_daily_points,"
            " created_at, updated_at) VALUES ($1, '二号店封顶', 'PURCHASE', 'ACTIVE', 3, 'ADD', NULL,"
            " '{\"merchantCodes\": [\"M002\"]}', 'FIXED_POINTS', 40, FALSE, 'NONE', 0, 0, 100, $2, $2)",
            unique("CAP"), clock.now())
    earning.invalidate_cache()


def _answer(outcome: purchases.PurchaseResult | DomainError) -> tuple:
    if isinstance(outcome, DomainError):
        return ("error", outcome.code.value, tuple(outcome.field or ()))
    return ("ok", outcome.receipt_no[1:], outcome.amount_fen, outcome.points_earned, outcome.points_balance)


class Receipt:
    def __init__(self, pair: int, merchant: str, amount: int, ago: int, suffix: str, key: str) -> None:
        self.pair, self.merchant, self.amount, self.ago, self.suffix, self.key = pair, merchant, amount, ago, suffix, key


def _batch(rng: random.Random, pairs: int, earlier: list[Receipt]) -> list[Receipt]:
    out: list[Receipt] = []
    for _ in range(rng.randrange(6, 16)):
        roll = rng.random()
        if out and roll < 0.12:  # the same receipt again under a new key: DUPLICATE_RECEIPT
            r = rng.choice(out)
            out.append(Receipt(r.pair, r.merchant, r.amount, r.ago, r.suffix, unique("K")))
        elif out and roll < 0.24:  # an exact repeat inside the batch: the first answer
            out.append(rng.choice(out))
        elif earlier and roll < 0.32:  # a repeat of an earlier batch's call: its stored answer
            out.append(rng.choice(earlier))
        else:
            amount = rng.choice((rng.randrange(100, 90_000), rng.randrange(100_000, 2_500_000)))
            out.append(Receipt(rng.randrange(pairs), rng.choice(MERCHANTS), amount, rng.randrange(0, 600), unique(),
                               unique("K")))
    return out


async def _book(twins: Twins, batch: list[Receipt], now, reuse_key: bool) -> dict[str, list]:
    answers: dict[str, list] = {}
    for side in ("A", "B"):
        items = []
        for r in batch:
            member_id = twins.pairs[r.pair][0 if side == "A" else 1]
            data = purchases.PurchaseInput("", r.merchant, f"{side}{r.suffix}", r.amount,
                                           now - timedelta(minutes=r.ago), f"{side}{r.key}")
            items.append((await twins._check(member_id, data, now), now))
        if reuse_key:  # the last receipt under the first one's key: IDEMPOTENCY_KEY_REUSED or a fresh claim
            items[-1] = (dataclasses.replace(items[-1][0], key=items[0][0].key), now)
        if side == "A":
            answers[side] = list(await purchases._book_together(items))
        else:  # receipt by receipt, in the order a group books them (member order, then input order)
            order = sorted(range(len(items)), key=lambda i: items[i][0].member_id)
            one_by_one = {i: (await purchases._book_together([items[i]]))[0] for i in order}
            answers[side] = [one_by_one[i] for i in range(len(items))]
    return answers


@pytest.mark.parametrize("seed", [11, 12, 13, 14])
async def test_set_based_batches_write_what_receipt_by_receipt_writes(api, backend, seed, monkeypatch):
    rng = random.Random(seed)
    start = clock.now().replace(microsecond=0)
    clock.freeze(start)
    await _stacking_rule()
    set_based: list[int] = []
    real_book = purchases.batch.book

    async def counting_book(tx, items, fast, order, qualified):
        outcome, rest = await real_book(tx, items, fast, order, qualified)
        set_based.extend(i for i in fast if i not in rest)
        return outcome, rest

    monkeypatch.setattr(purchases.batch, "book", counting_book)
    # M002 funds 15 % of its receipts' points (settlement terms): their postings have both legs.
    m002 = (await merchants.by_code("M002", [])).id
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO merchant_terms (merchant_id, point_cost_share_percent, commission_percent,"
                         " updated_at) VALUES ($1, 15, 0, $2)", m002, start)
    try:
        await _compare_batches(rng, start, set_based)
        assert await db.fetchval("SELECT COUNT(*) FROM journal_entry WHERE merchant_id = $1 AND kind = 'POINTS_ISSUED'"
                                 " AND debit_account = 'MERCHANT_RECEIVABLE'", m002) > 0
    finally:
        async with db.transaction() as tx:
            await tx.execute("DELETE FROM merchant_terms WHERE merchant_id = $1", m002)


async def _compare_batches(rng: random.Random, start, set_based: list[int]) -> None:
    pairs = [((await make_member(at=start))[0], (await make_member(at=start))[0]) for _ in range(5)]
    twins = Twins(await _identity(), pairs)
    for pair, amount in enumerate((0, 600_000, 1_600_000, 6_000_000, 0)):
        if amount:
            await twins.book([(pair, "M001", amount, 1)], general_for_a=True)
    earlier: list[Receipt] = []
    total = 0
    for step in range(9):
        if step == 3:  # the set-up's lots come due: those members expire first (general path)
            clock.freeze(ledger.expiry_for(start) + timedelta(minutes=30))
        if step == 5:  # a claw-back debt: paid off first (general path)
            for a_or_b in (0, 1):
                await _claw_back(twins, pairs[1][a_or_b])
        if step == 7:
            await _capped_rule()
        batch = _batch(rng, len(pairs), earlier)
        answers = await _book(twins, batch, clock.now(), reuse_key=step == 4)
        assert [_answer(o) for o in answers["A"]] == [_answer(o) for o in answers["B"]], f"step {step}"
        earlier.extend(batch)
        total += len(batch)
    assert len(set_based) >= total // 2, f"the set-based path booked {len(set_based)} of {total}"
    for a, b in pairs:
        assert await _written(a) == await _written(b)


async def test_a_lock_timeout_in_a_batch_answers_try_again_and_writes_nothing(api, backend, monkeypatch):
    """A batch that waits for an account longer than the lock timeout is rolled back whole and answers
    TRY_AGAIN (a typed, retryable userError); the same batch sent again afterwards is booked."""
    from api.services.errors import ErrorCode
    from tests.conftest import code_for, snapshot
    from tests.test_lock_snapshots import Holder

    members = [(await make_member())[0] for _ in range(3)]
    identity = await _identity()
    real_book = purchases.batch.book

    async def short_wait(tx, *args):  # the pool's 10 s, shortened for this transaction only
        await tx.execute("SET LOCAL lock_timeout = '300ms'")
        return await real_book(tx, *args)

    monkeypatch.setattr(purchases.batch, "book", short_wait)
    inputs = [purchases.PurchaseInput(code_for(members[n % 3]), "M001", unique("R"), 10_000 + n, clock.now(),
                                      unique("K")) for n in range(6)]
    before = [await snapshot(m) for m in members]

    async def nothing(tx, accts):
        return None

    holder = Holder([members[1]], nothing)
    await holder.pid
    try:
        with pytest.raises(DomainError) as refused:
            await purchases.record_batch(identity, inputs)
        assert refused.value.code is ErrorCode.TRY_AGAIN
    finally:
        await holder.release()
    assert [await snapshot(m) for m in members] == before
    keys = await db.fetch("SELECT COUNT(*) AS n FROM idempotency_record WHERE key = ANY($1::text[])",
                          [i.idempotency_key for i in inputs])
    assert keys[0]["n"] == 0
    again = await purchases.record_batch(identity, inputs)
    assert [item.result.points_earned for item in again if item.result] == [100] * 6
    assert [(await snapshot(m))["purchases"] - b["purchases"] for m, b in zip(members, before, strict=True)] == [2] * 3


async def test_the_same_batch_twice_at_once_books_once_and_answers_alike(api, backend):
    """A till resends a batch while the first is still running: the second waits for the first's
    member locks, finds its keys used and answers with the first's results; everything is booked once."""
    import asyncio

    from tests.conftest import code_for, snapshot

    members = [(await make_member())[0] for _ in range(4)]
    identity = await _identity()
    inputs = [purchases.PurchaseInput(code_for(members[n % 4]), "M002", unique("R"), 20_000 + 100 * n, clock.now(),
                                      unique("K")) for n in range(12)]
    first, second = await asyncio.gather(purchases.record_batch(identity, inputs),
                                         purchases.record_batch(identity, inputs))
    assert all(item.error is None for item in first + second)
    assert [item.result for item in first] == [item.result for item in second]
    for m in members:
        state = await snapshot(m)
        assert state["purchases"] == 3 and state["entries"] == 3
