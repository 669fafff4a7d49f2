"""The one-statement earn (PostgreSQL) and the general earn write the same rows.

The same random receipts (several members in several tiers, a merchant rule that stacks on the
default one, lots coming due, a refund's claw-back debt) go through both paths, on two member sets
set up the same way: set A as a till's receipts go (the one-statement path wherever it applies),
set B with the plan withheld (the general path always). Every row they write is compared: the
purchase, the entries, the lots, the lot moves, the breakdowns, growth and tier changes, the
account, the member, and the idempotency key's stored result.
"""
from __future__ import annotations

import dataclasses
import json
import random
from datetime import timedelta

import pytest

from api import db
from api.services import clock, ledger, merchants, purchases
from api.services.integrations import IntegrationIdentity
from tests.conftest import make_member, unique

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

MERCHANTS = ("M001", "M002", "M003")


async def _identity() -> IntegrationIdentity:
    ids = frozenset([(await merchants.by_code(code, [])).id for code in MERCHANTS])
    return IntegrationIdentity("path-test", "path comparison", ids)


async def _stacking_rule() -> None:
    """A stateless rule on M003 that the plan can evaluate: ×1.5 more points (tier multiplier
    applied) and 7 growth per receipt. Archived after the test by the conftest."""
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO earn_rule (code, name, trigger, status, priority, stacking, stack_group, conditions, action,"
            " action_value, apply_tier_multiplier, growth_action, growth_value, return_days, created_at, updated_at)"
            " VALUES ($1, '三号店加倍', 'PURCHASE', 'ACTIVE', 5, 'ADD', NULL, '{\"merchantCodes\": [\"M003\"]}',"
            " 'MULTIPLIER_PERCENT', 150, TRUE, 'FIXED_GROWTH', 7, 0, $2, $2)", unique("PATHS"), clock.now())
    from api.services import earning

    earning.invalidate_cache()


class Twins:
    """Member pairs: each receipt goes to one member of set A (one-statement where it applies) and to
    its twin in set B (general path only)."""

    def __init__(self, identity: IntegrationIdentity, pairs: list[tuple[int, int]]) -> None:
        self.identity = identity
        self.pairs = pairs
        self.general_calls = {"A": 0, "B": 0}

    async def book(self, receipts: list[tuple[int, str, int, int]], *, general_for_a: bool = False) -> None:
        """Books (pair index, merchant, amount, minutes ago) receipts as one group per set."""
        now = clock.now()
        suffixes = [unique() for _ in receipts]  # the same receipt number in both sets, but for its side
        for side in ("A", "B"):
            items = []
            for n, (pair, merchant, amount, ago) in enumerate(receipts):
                member_id = self.pairs[pair][0 if side == "A" else 1]
                data = purchases.PurchaseInput(
                    "", merchant, f"{side}{suffixes[n]}", amount,
                    now - timedelta(minutes=ago), unique("K"))
                item = await self._check(member_id, data, now)
                if side == "B" or general_for_a:
                    item = dataclasses.replace(item, plan=None)
                items.append((item, now))
            outcome = await purchases._book_together(items)
            assert not any(isinstance(o, Exception) for o in outcome), outcome

    async def _check(self, member_id: int, data: purchases.PurchaseInput, now) -> purchases._Checked:
        """`_check_purchase` without a member code (the member is given): the same digest and plan."""
        from api.services import earning, idempotency

        merchant = await merchants.by_code(data.merchant_code, [])
        digest = idempotency.request_hash("purchaseRecord", {"member": member_id, "receiptNo": data.receipt_no[1:]})
        plan = await earning.purchase_plan(member_id, merchant.code, merchant.category, data.amount_fen,
                                           data.occurred_at)
        return purchases._Checked(purchases.scope_of(self.identity), data.idempotency_key, digest, member_id, merchant,
                                  data.receipt_no, data.amount_fen, data.occurred_at, plan)


def _strip(row: dict, drop: tuple[str, ...]) -> dict:
    return {k: v for k, v in row.items() if k not in drop}


async def _written(member_id: int) -> dict:
    """Every row the earns wrote for this member, with ids replaced by their rank in the member's own
    rows (the two sets have different ids) and receipt numbers by their suffix."""
    acct = dict((await db.fetch("SELECT * FROM points_account WHERE member_id = $1", member_id))[0])
    member = dict((await db.fetch("SELECT * FROM member WHERE id = $1", member_id))[0])
    bought = [dict(r) for r in await db.fetch("SELECT * FROM purchase WHERE member_id = $1 ORDER BY id", member_id)]
    p_no = {str(p["id"]): n for n, p in enumerate(bought)}
    entries = [dict(r) for r in await db.fetch(
        "SELECT * FROM points_entry WHERE account_id = $1 ORDER BY id", acct["id"])]
    e_no = {e["id"]: n for n, e in enumerate(entries)}
    lots = [dict(r) for r in await db.fetch("SELECT * FROM points_lot WHERE account_id = $1 ORDER BY id", acct["id"])]
    l_no = {lot["id"]: n for n, lot in enumerate(lots)}
    moves = [dict(r) for r in await db.fetch(
        "SELECT m.* FROM points_lot_move m JOIN points_lot l ON l.id = m.lot_id WHERE l.account_id = $1"
        " ORDER BY m.id", acct["id"])]
    breakdowns = [dict(r) for r in await db.fetch(
        "SELECT b.* FROM earn_breakdown b JOIN points_entry e ON e.id = b.entry_id WHERE e.account_id = $1"
        " ORDER BY b.id", acct["id"])]
    growth = [dict(r) for r in await db.fetch("SELECT * FROM growth_entry WHERE member_id = $1 ORDER BY id", member_id)]
    changes = [dict(r) for r in await db.fetch("SELECT * FROM tier_change WHERE member_id = $1 ORDER BY id", member_id)]
    journal = [dict(r) for r in await db.fetch(
        "SELECT j.* FROM journal_entry j JOIN purchase p ON j.posting = 'purchase:' || CAST(p.id AS TEXT)"
        " WHERE p.member_id = $1 ORDER BY j.id", member_id)]
    notes = [dict(r) for r in await db.fetch(
        "SELECT topic, channel, title, body, source_ref, status FROM notification WHERE member_id = $1 ORDER BY id",
        member_id)]
    stored = {}
    for r in await db.fetch("SELECT result FROM idempotency_record WHERE scope = 'integration:path-test'"
                            " AND result IS NOT NULL"):
        result = json.loads(r["result"])
        if "purchase_id" in result:
            stored[result["purchase_id"]] = result
    results = []
    for p in bought:
        result = stored[p["id"]]
        result["purchase_id"] = p_no[str(p["id"])]
        result["receipt_no"] = result["receipt_no"][1:]
        results.append(result)

    def ref(row: dict) -> dict:
        row = dict(row)
        if row.get("source_type") in ("purchase", "purchase_refund"):
            row["source_ref"] = p_no[row["source_ref"]]
        return row

    return {
        "account": _strip(acct, ("id", "member_id")),
        "member": _strip(member, ("id", "phone", "created_at", "nickname")),
        "purchases": [dict(_strip(p, ("id", "member_id")), receipt_no=p["receipt_no"][1:]) for p in bought],
        "entries": [ref(_strip(e, ("id", "account_id"))) | {"reverses_id": e_no.get(e["reverses_id"])}
                    for e in entries],
        "lots": [_strip(lot, ("id", "account_id")) | {"entry_id": e_no[lot["entry_id"]]} for lot in lots],
        "moves": [{"entry": e_no[m["entry_id"]], "lot": l_no[m["lot_id"]], "delta": m["delta"]} for m in moves],
        "breakdowns": [{"entry": e_no[b["entry_id"]], "breakdown": json.loads(b["breakdown"])} for b in breakdowns],
        "growth": [ref(_strip(g, ("id", "member_id"))) for g in growth],
        "tier_changes": [_strip(c, ("id", "member_id")) for c in changes],
        "results": results,
        # the settlement postings of the receipts (POINTS_ISSUED: the merchant's share and the mall's)
        # (source: purchase:<id>, or purchase:<id>:<tier id> for an upgrade, on every path)
        "notifications": sorted((n["topic"], n["channel"], n["title"], n["body"], n["status"],
                                 ":".join([str(p_no[n["source_ref"].split(":")[1]]), *n["source_ref"].split(":")[2:]]))
                                for n in notes),
        "journal": [_strip(j, ("id", "posting")) | {"purchase": p_no[j["posting"].split(":")[1]]} for j in journal],
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_one_statement_and_general_paths_write_the_same_rows(api, backend, seed, monkeypatch):
    rng = random.Random(seed)
    start = clock.now().replace(microsecond=0)
    clock.freeze(start)
    await _stacking_rule()
    general = []
    real_earn = purchases._earn

    async def counting_earn(tx, member_id, *args, **kwargs):
        general.append(member_id)
        return await real_earn(tx, member_id, *args, **kwargs)

    monkeypatch.setattr(purchases.earn, "earn", counting_earn)
    pairs = [((await make_member(at=start))[0], (await make_member(at=start))[0]) for _ in range(4)]
    twins = Twins(await _identity(), pairs)
    # Different tiers to start with (the general path for both sets, so they start equal).
    for pair, amount in enumerate((0, 600_000, 1_600_000, 6_000_000)):
        if amount:
            await twins.book([(pair, "M001", amount, 1)], general_for_a=True)
    set_a = {a for a, _ in pairs}
    general.clear()
    for step in range(12):
        group = [(rng.randrange(len(pairs)), rng.choice(MERCHANTS), rng.randrange(100, 900_000), rng.randrange(0, 600))
                 for _ in range(rng.randrange(1, 5))]
        await twins.book(group)
        if step == 5:  # the set-up's lots and the first receipts come due: both paths must expire first
            clock.freeze(ledger.expiry_for(start) + timedelta(minutes=30))
        if step == 8:  # a claw-back debt on one pair: the earn pays it off first
            for a_or_b in (0, 1):
                await _claw_back(twins, pairs[0][a_or_b])
    receipts = sum(1 for m in general if m not in set_a)  # set B books every receipt on the general path
    one_statement = receipts - sum(1 for m in general if m in set_a)
    assert one_statement >= receipts // 2, f"set A took the one-statement path for {one_statement} of {receipts}"
    assert one_statement < receipts, "set A never needed the general path (due lots, debt)"
    for a, b in pairs:
        assert await _written(a) == await _written(b)


async def _claw_back(twins: Twins, member_id: int) -> None:
    """Spends every spendable point, then refunds the member's latest receipt in full (the real
    refund): what it earned is owed, a claw-back debt."""
    async with db.transaction() as tx:
        acct = await ledger.lock_account(tx, member_id)
        await ledger.expire_account(tx, acct, clock.now())
        if acct.spendable > 0:
            await ledger.debit(tx, acct, points=acct.spendable, kind="SPEND", reason="测试消费", source_type="test",
                               source_ref="spend", occurred_at=clock.now())
    latest = (await db.fetch("SELECT p.receipt_no, p.amount_fen, m.code FROM purchase p JOIN merchant m"
                             " ON m.id = p.merchant_id WHERE p.member_id = $1 ORDER BY p.id DESC LIMIT 1",
                             member_id))[0]
    await purchases.refund_purchase(twins.identity, latest["code"], latest["receipt_no"], int(latest["amount_fen"]),
                                    unique("K"))
