"""An order paid with points alone (flashSaleRedeem, pointsMallRedeem) written in one statement on
PostgreSQL (`mall.sql.order_writes`) and step by step (the ledger's debit, the models) writes the same rows.

Two members set up the same way (two lots each, so that a spend takes from both) buy the same things
from twin products and sales: member A with the one-statement path, member B with it switched off. A
redemption of two units (two vouchers), a flash-sale unit, the sale's per-member limit, a sold-out sale
and a repeat of a key. Every row is compared with ids replaced by their position: entries, lots and lot
moves, the account, orders and vouchers (codes are random), the stock, the key's stored result, and the
answers.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from api import db
from api.services import clock, ledger
from api.services.errors import DomainError
from api.services.mall import flash_sales, orders
from api.services.mall import redeem as mall_redeem
from tests.mall_helpers import create_product, funded_member, operator_token
from tests.test_flash_sale import new_sale, sale_pk

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


async def _member() -> int:
    member_id, _ = await funded_member(130)
    async with db.transaction() as tx:  # a second lot: the redemption takes the first one's 130 and 70 of this
        acct = await ledger.lock_account(tx, member_id)
        assert acct is not None
        await ledger.credit(tx, acct, points=400, kind="ADJUST", reason="测试充值", source_type="test",
                            source_ref=None, occurred_at=clock.now())
    return member_id


def _index(ids: list[Any]) -> dict[Any, int]:
    return {v: i for i, v in enumerate(ids)}


async def _rows(member_id: int, product_id: int, sale_ids: list[int]) -> dict[str, Any]:
    account = (await db.fetch("SELECT id, balance, updated_at FROM points_account WHERE member_id = $1", member_id))[0]
    entries = await db.fetch(
        "SELECT id, kind, points, balance_after, reason, source_type, source_ref, occurred_at, expires_at,"
        " operator_id, reverses_id FROM points_entry WHERE account_id = $1 ORDER BY id", account["id"])
    e = _index([r["id"] for r in entries])
    lots = await db.fetch("SELECT id, kind, entry_id, points, remaining, earned_at, expires_at FROM points_lot"
                          " WHERE account_id = $1 ORDER BY id", account["id"])
    lot = _index([r["id"] for r in lots])
    moves = await db.fetch("SELECT m.entry_id, m.lot_id, m.delta FROM points_lot_move m JOIN points_lot l"
                           " ON l.id = m.lot_id WHERE l.account_id = $1 ORDER BY m.id", account["id"])
    found = await db.fetch("SELECT * FROM mall_order WHERE member_id = $1 ORDER BY id", member_id)
    order = _index([r["id"] for r in found])
    order_nos = _index([r["order_no"] for r in found])
    vouchers = await db.fetch("SELECT * FROM voucher WHERE member_id = $1 ORDER BY id", member_id)
    records = await db.fetch("SELECT key, request_hash, result FROM idempotency_record WHERE scope = $1 ORDER BY id",
                             f"member:{member_id}")
    stock = await db.fetch("SELECT stock FROM product WHERE id = $1", product_id)
    sales = [(await db.fetch("SELECT stock FROM flash_sale WHERE id = $1", s))[0]["stock"] for s in sale_ids]
    return {
        "account": (account["balance"], account["updated_at"]),
        "entries": [(r["kind"], r["points"], r["balance_after"], r["reason"].split(" ")[0], r["source_type"],
                     order_nos.get(r["source_ref"], r["source_ref"]), r["occurred_at"], r["expires_at"],
                     r["operator_id"], r["reverses_id"]) for r in entries],
        "lots": [(r["kind"], e[r["entry_id"]], r["points"], r["remaining"], r["earned_at"], r["expires_at"])
                 for r in lots],
        "moves": [(e[r["entry_id"]], lot[r["lot_id"]], r["delta"]) for r in moves],
        "orders": [(r["product_id"] == product_id, r["flash_sale_id"] is not None, r["channel"], r["status"],
                    r["quantity"], r["points"], r["cash_fen"], r["idempotency_key"], r["created_at"], r["expires_at"],
                    r["paid_at"], r["closed_at"], e[r["spend_entry_id"]], r["refund_entry_id"], len(r["order_no"]))
                   for r in found],
        "vouchers": [(order[r["order_id"]], r["product_id"] == product_id, r["merchant_id"], r["kind"],
                      r["face_value_fen"], r["status"], r["valid_from"], r["valid_until"], r["used_at"],
                      r["created_at"], len(r["code"])) for r in vouchers],
        "results": [(r["key"], {**json.loads(r["result"]), "order_id": order[json.loads(r["result"])["order_id"]]})
                    for r in records],
        "stock": (stock[0]["stock"], sales),
    }


async def _buy(member_id: int, product_id: int, sale_ids: list[int]) -> list[Any]:
    """The same calls for either member; the answers with order ids as positions (of this member's orders)."""
    calls = [("redeem", product_id, 2, "m-1"), ("flash", sale_ids[0], 1, "f-1"), ("flash", sale_ids[0], 1, "f-2"),
             ("flash", sale_ids[1], 1, "f-3"), ("redeem", product_id, 2, "m-1")]
    answers: list[Any] = []
    for kind, target, quantity, key in calls:
        try:
            if kind == "redeem":
                result = await mall_redeem(member_id, target, quantity, key)
            else:
                result = await flash_sales.redeem(member_id, target, key)
            answers.append(("ok", result.order_id, result.points_balance, result.payment_id))
        except DomainError as error:
            answers.append(("error", error.code))
    ids = _index(sorted({a[1] for a in answers if a[0] == "ok"}))
    return [(a[0], ids[a[1]], *a[2:]) if a[0] == "ok" else a for a in answers]


async def test_one_statement_and_general_paths_write_the_same_rows(api, monkeypatch):
    clock.freeze(datetime(2026, 11, 3, 4, 5, 6, 654321, tzinfo=UTC))
    op = await operator_token(api)
    sides = []
    for one_statement in (True, False):
        monkeypatch.setattr(orders, "ONE_STATEMENT", one_statement)
        product = await create_product(api, op, kind="MERCHANT_VOUCHER", merchantCode="M002", faceValueFen=2000,
                                       pointsPrice=100, stock=5, name="路径商品")
        from api.schema.ids import from_global_id

        product_id = from_global_id(product["id"])[1]
        sale_ids = [sale_pk(await new_sale(api, op, stock=s, title="路径秒杀")) for s in (3, 0 + 1)]
        member_id = await _member()
        other = await _member()  # takes the second sale's only unit first: sold out for the member
        await flash_sales.redeem(other, sale_ids[1], "other")
        answers = await _buy(member_id, product_id, sale_ids)
        sides.append((answers, await _rows(member_id, product_id, sale_ids)))
    (answers_a, rows_a), (answers_b, rows_b) = sides
    assert answers_a == answers_b
    assert [a[0] if a[0] == "ok" else a[1].value for a in answers_a] == [
        "ok", "ok", "PURCHASE_LIMIT_REACHED", "OUT_OF_STOCK", "ok"], answers_a
    assert answers_a[-1] == answers_a[0], "a repeat answers as the first call"
    for table in rows_a:
        assert rows_a[table] == rows_b[table], table
    spends = [m[0] for m in rows_a["moves"] if m[2] < 0]
    assert any(spends.count(x) > 1 for x in spends), "a spend took two lots"
    assert len(rows_a["vouchers"]) == 3 and rows_a["stock"] == (3, [2, 0])
