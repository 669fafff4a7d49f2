"""Regressions found in review: races and repeats around refunds, gates and expiry."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from api import db
from api.schema.ids import from_global_id, to_global_id
from api.services import clock, integrations, ledger, mall, signing
from api.services.errors import DomainError, ErrorCode
from api.services.mall import flash_sales
from tests.conftest import PURCHASE, make_member, purchase_input, unique
from tests.mall_helpers import (
    CHECKOUT,
    FLASH,
    ME,
    REDEEM,
    REFUND,
    create_product,
    funded_member,
    later,
    operator_token,
    payment_key,
    state,
)
from tests.waiting import postgres_dsn, wait_for_lock_waiters

PLAY = """mutation($i: LuckyDrawPlayInput!) { luckyDrawPlay(input: $i) {
  play { id prize { name kind } order { id } } pointsBalance userErrors { code field message } } }"""
GAME_CREATE = """mutation($i: DrawGameCreateInput!) { drawGameCreate(input: $i) {
  game { id prizes { id } } userErrors { code field message } } }"""
postgres_only = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


async def _game(api, op, prizes, **terms):
    data = {"name": unique("转盘"), "kind": "WHEEL", "costPoints": 10, "startsAt": later(minutes=-1),
            "endsAt": later(days=1), "prizes": prizes, **terms}
    r = (await api.post(GAME_CREATE, {"i": data}, token=op, admin=True))["data"]["drawGameCreate"]
    assert not r["userErrors"], r
    return r["game"]


async def test_refunding_a_draw_win_gives_the_unit_back_to_the_prize(api):
    op = await operator_token(api)
    coupon = await create_product(api, op, kind="COUPON", stock=0)
    game = await _game(api, op, [{"name": "券", "kind": "COUPON", "productId": coupon["id"], "weight": 1, "stock": 1}])
    member_id, token = await funded_member(100)
    r = (await api.post(PLAY, {"i": {"gameId": game["id"], "idempotencyKey": unique("K")}}, token=token))
    order_gid = r["data"]["luckyDrawPlay"]["play"]["order"]["id"]
    await api.post(REFUND, {"i": {"orderId": order_gid, "reason": "测试退款", "idempotencyKey": unique("K")}},
                         token=op, admin=True)
    pid = from_global_id(coupon["id"])[1]
    stock = (await db.fetch("SELECT stock FROM product WHERE id = $1", pid))[0]["stock"]
    prize = (await db.fetch("SELECT stock FROM draw_prize WHERE game_id = $1", from_global_id(game["id"])[1]))[0]
    assert stock == 0, f"product stock became {stock} (was 0, never sold)"
    assert prize["stock"] == 1  # the unit went back to the prize


async def test_a_draw_retry_after_the_prizes_are_gone_gets_the_first_play(api):
    op = await operator_token(api)
    game = await _game(api, op, [{"name": "唯一", "kind": "POINTS", "points": 5, "weight": 1, "stock": 1}])
    member_id, token = await funded_member(100)
    key = unique("K")
    first = (await api.post(PLAY, {"i": {"gameId": game["id"], "idempotencyKey": key}}, token=token))["data"]["luckyDrawPlay"]
    assert first["userErrors"] == []
    again = (await api.post(PLAY, {"i": {"gameId": game["id"], "idempotencyKey": key}}, token=token))["data"]["luckyDrawPlay"]
    assert again["userErrors"] == [] and again["play"]["id"] == first["play"]["id"]


async def test_a_flash_retry_after_the_sale_ended_gets_the_first_order(api):
    op = await operator_token(api)
    product = await create_product(api, op, pointsPrice=100, stock=10)
    sale = await flash_sales.create_sale(("operator", "1"), product_id=from_global_id(product["id"])[1], title="秒杀",
                                         points_price=10, stock=5, per_member_limit=1,
                                         starts_at=clock.now(), ends_at=clock.now() + timedelta(minutes=1))
    member_id, token = await funded_member(100)
    key = unique("K")
    sid = to_global_id("FlashSale", sale.id)
    r1 = (await api.post(FLASH, {"i": {"flashSaleId": sid, "idempotencyKey": key}}, token=token))["data"]["flashSaleRedeem"]
    assert r1["userErrors"] == []
    clock.freeze(clock.now() + timedelta(minutes=2))
    token = signing.issue_token("member", member_id, 3600)
    flash_sales._terms.clear()
    r2 = (await api.post(FLASH, {"i": {"flashSaleId": sid, "idempotencyKey": key}}, token=token))["data"]["flashSaleRedeem"]
    assert r2["userErrors"] == []


async def test_a_refunded_flash_unit_is_for_sale_again_through_the_gate(api, redis):
    api.client._transport.app.state.redis = redis
    op = await operator_token(api)
    product = await create_product(api, op, pointsPrice=100, stock=10)
    sale = await flash_sales.create_sale(("operator", "1"), product_id=from_global_id(product["id"])[1], title="秒杀",
                                         points_price=10, stock=1, per_member_limit=1,
                                         starts_at=clock.now(), ends_at=clock.now() + timedelta(hours=1), redis=redis)
    sid = to_global_id("FlashSale", sale.id)
    a, ta = await funded_member(100)
    b, tb = await funded_member(100)
    r1 = (await api.post(FLASH, {"i": {"flashSaleId": sid, "idempotencyKey": unique("K")}}, token=ta))["data"]["flashSaleRedeem"]
    assert r1["userErrors"] == []
    ref = await api.post(REFUND, {"i": {"orderId": r1["order"]["id"], "reason": "退款测试", "idempotencyKey": unique("K")}},
                         token=op, admin=True)
    assert ref["data"]["mallOrderRefund"]["userErrors"] == [], ref
    db_stock = (await db.fetch("SELECT stock FROM flash_sale WHERE id = $1", sale.id))[0]["stock"]
    r2 = (await api.post(FLASH, {"i": {"flashSaleId": sid, "idempotencyKey": unique("K")}}, token=tb))["data"]["flashSaleRedeem"]
    # and the refunded buyer again: the one unit is gone
    again = (await api.post(FLASH, {"i": {"flashSaleId": sid, "idempotencyKey": unique("K")}}, token=ta))["data"]["flashSaleRedeem"]
    assert db_stock == 1 and r2["userErrors"] == []
    assert again["order"] is None and again["userErrors"], again


@postgres_only
async def test_a_refund_racing_a_write_off_never_refunds_a_used_voucher(api, backend):
    op = await operator_token(api)
    product = await create_product(api, op, pointsPrice=100, stock=10)
    member_id, token = await funded_member(500)
    r = (await api.post(REDEEM, {"i": {"productId": product["id"], "idempotencyKey": unique("K")}}, token=token))
    order = r["data"]["pointsMallRedeem"]["order"]
    order_id = from_global_id(order["id"])[1]
    conn = await asyncpg.connect(postgres_dsn())
    try:
        tr = conn.transaction()
        await tr.start()
        # a till writes the voucher off (committed once the refund waits for it)
        await conn.execute("UPDATE voucher SET status = 'USED', used_at = now() WHERE order_id = $1 AND status = 'ISSUED'", order_id)
        refund = asyncio.create_task(mall.refund_order(1, order_id, "退款测试", unique("K")))
        await wait_for_lock_waiters(1, blocked_by=conn)
        await tr.commit()
        with pytest.raises(DomainError) as refused:
            await refund
        assert refused.value.code == ErrorCode.ORDER_STATE_INVALID
    finally:
        await conn.close()
    rows = await db.fetch("SELECT status FROM voucher WHERE order_id = $1", order_id)
    o = await mall.order(order_id)
    assert o.status == "PAID" and [x["status"] for x in rows] == ["USED"]
    assert (await state(member_id))["balance"] == 400


@postgres_only
async def test_points_given_back_to_an_expired_lot_are_not_spent_by_a_waiting_redeem(api, backend):
    op = await operator_token(api)
    p1 = await create_product(api, op, pointsPrice=100, stock=10)
    p2 = await create_product(api, op, pointsPrice=100, stock=10)
    member_id, _ = await make_member()
    t0 = clock.now()
    async with db.transaction() as tx:
        acct = await ledger.lock_account(tx, member_id)
        # a lot that expires in an hour (earned 12 months ago, rolling policy)
        await ledger.credit(tx, acct, points=100, kind="ADJUST", reason="测试", source_type="test", source_ref=None,
                            occurred_at=clock.add_months(t0, -12) + timedelta(hours=1))
    first = await mall.redeem(member_id, from_global_id(p1["id"])[1], 1, unique("K"))
    clock.freeze(t0 + timedelta(hours=2))  # lot A has expired (nothing left in it)
    conn = await asyncpg.connect(postgres_dsn())
    try:
        tr = conn.transaction()
        await tr.start()
        await conn.execute("SELECT 1 FROM points_account WHERE member_id = $1 FOR UPDATE", member_id)
        refund = asyncio.create_task(mall.refund_order(1, first.order_id, "退款测试", unique("K")))
        await wait_for_lock_waiters(1, blocked_by=conn)  # the refund waits for the account
        second = asyncio.create_task(mall.redeem(member_id, from_global_id(p2["id"])[1], 1, unique("K")))
        await wait_for_lock_waiters(2)  # and the redeem waits behind it
        await tr.commit()
        await refund
        try:
            outcome = await second
        except DomainError as exc:
            outcome = exc.code
    finally:
        await conn.close()
    entries = await db.fetch("SELECT e.kind, e.points FROM points_entry e JOIN points_account a ON a.id = e.account_id"
                             " WHERE a.member_id = $1 ORDER BY e.id", member_id)
    assert outcome == ErrorCode.INSUFFICIENT_POINTS, f"expired points were spent: {[tuple(x.values()) for x in entries]}"


@postgres_only
async def test_two_expiry_runners_do_not_deadlock(api, backend, monkeypatch):
    op = await operator_token(api)
    x = from_global_id((await create_product(api, op, pointsPrice=10, cashPriceFen=100, stock=100))["id"])[1]
    y = from_global_id((await create_product(api, op, pointsPrice=10, cashPriceFen=100, stock=100))["id"])[1]
    monkeypatch.setattr(mall.expiry, "EXPIRE_CHUNK", 2)
    errors = []
    for _attempt in range(5):
        for pid in (x, y, y, x):
            m, _ = await funded_member(100)
            await mall.checkout_create(m, pid, 1, unique("K"))
        saved = clock.now()
        clock.freeze(saved + timedelta(hours=1))
        results = await asyncio.gather(mall.expire_orders(), mall.expire_orders(), return_exceptions=True)
        clock.freeze(None)
        errors += [r for r in results if isinstance(r, Exception)]
    assert not errors, errors


async def test_a_key_without_the_pos_scope_cannot_use_the_till(api):
    key_id, secret = await payment_key()
    async with db.transaction() as tx:  # even when an operator bound it to a merchant
        await tx.execute("INSERT INTO integration_key_merchant (key_id, merchant_id) SELECT k.id, m.id"
                         " FROM integration_key k, merchant m WHERE k.key_id = $1 AND m.code = 'M001'", key_id)
    integrations._keys.clear()
    member_id, _ = await make_member()
    result = await api.signed(PURCHASE, {"input": purchase_input(member_id)}, key_id=key_id, secret=secret)
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await state(member_id))["entries"] == 0


async def test_draw_wins_do_not_use_up_purchase_limits(api):
    op = await operator_token(api)
    coupon = await create_product(api, op, kind="COUPON", pointsPrice=10, stock=5, limitPerMember=1)
    game = await _game(api, op, [{"name": "券", "kind": "COUPON", "productId": coupon["id"], "weight": 1, "stock": 1}],
                       costPoints=0)
    _, token = await funded_member(100)
    won = (await api.post(PLAY, {"i": {"gameId": game["id"], "idempotencyKey": unique("K")}}, token=token))
    assert won["data"]["luckyDrawPlay"]["play"]["prize"]["kind"] == "COUPON"
    bought = await api.post(REDEEM, {"i": {"productId": coupon["id"], "idempotencyKey": unique("K")}}, token=token)
    assert bought["data"]["pointsMallRedeem"]["userErrors"] == []


async def test_a_time_without_an_offset_is_invalid_input_and_a_batch_books_the_rest(api):
    member_id, _ = await make_member()
    naive = {**purchase_input(member_id, 1000), "occurredAt": "2026-11-23T10:00:00"}
    result = await api.signed(PURCHASE, {"input": naive})
    assert result["data"]["purchaseRecord"]["userErrors"][0]["code"] == "INVALID_INPUT"
    batch = """mutation($i: PurchaseRecordBatchInput!) { purchaseRecordBatch(input: $i) {
      results { pointsEarned userErrors { code } } userErrors { code } } }"""
    good = purchase_input(member_id, 2000)
    answer = await api.signed(batch, {"i": {"purchases": [naive, good]}})
    results = answer["data"]["purchaseRecordBatch"]["results"]
    assert results[0]["userErrors"][0]["code"] == "INVALID_INPUT" and results[1]["pointsEarned"] == 20


async def test_payloads_show_the_spendable_balance_while_points_are_held(api):
    op = await operator_token(api)
    product = await create_product(api, op, pointsPrice=300, cashPriceFen=100, stock=1)
    member_id, token = await funded_member(1000)
    await api.post(CHECKOUT, {"i": {"productId": product["id"], "idempotencyKey": unique("K")}}, token=token)
    earned = (await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000)}))["data"]["purchaseRecord"]
    me = (await api.post(ME, token=token))["data"]["viewer"]["member"]
    assert (me["pointsHeld"], earned["pointsBalance"]) == (300, me["pointsBalance"]) == (300, 800)
