"""Races in the points mall on real PostgreSQL: N parallel callers, exactly who wins, the final state."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from api import db
from api.schema.ids import from_global_id
from api.services import clock, mall
from api.services.mall.gate import gate_keys
from tests.conftest import unique
from tests.mall_helpers import (
    CHECKOUT,
    FLASH,
    NOTIFY,
    REDEEM,
    create_product,
    funded_member,
    operator_token,
    payment_key,
)
from tests.test_flash_sale import new_sale, sale_pk

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


async def members(n: int, points: int) -> list[tuple[int, str]]:
    return [await funded_member(points) for _ in range(n)]


async def balances(ids: list[int]) -> dict[int, int]:
    rows = await db.fetch(f"SELECT member_id, balance FROM points_account WHERE member_id IN ({', '.join(map(str, ids))})")
    return {r["member_id"]: int(r["balance"]) for r in rows}


def codes(payloads: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in payloads:
        code = p["userErrors"][0]["code"] if p["userErrors"] else "OK"
        out[code] = out.get(code, 0) + 1
    return out


async def test_500_parallel_redemptions_of_50_units_sell_exactly_50(api):
    op = await operator_token(api)
    product = await create_product(api, op, pointsPrice=100, stock=50)
    buyers = await members(500, 100)
    results = await asyncio.gather(*(
        api.post(REDEEM, {"i": {"productId": product["id"], "idempotencyKey": unique("K")}}, token=token)
        for _, token in buyers))
    payloads = [r["data"]["pointsMallRedeem"] for r in results]
    assert codes(payloads) == {"OK": 50, "OUT_OF_STOCK": 450}
    pk = from_global_id(product["id"])[1]
    assert (await db.fetch("SELECT stock FROM product WHERE id = $1", pk))[0]["stock"] == 0
    orders = await db.fetch("SELECT member_id FROM mall_order WHERE product_id = $1", pk)
    assert len(orders) == 50 == len({o["member_id"] for o in orders})
    winners = {o["member_id"] for o in orders}
    assert all(b == (0 if m in winners else 100) for m, b in (await balances([m for m, _ in buyers])).items())


async def test_20_parallel_redemptions_by_one_member_with_a_limit_of_1_give_1(api):
    op = await operator_token(api)
    product = await create_product(api, op, pointsPrice=10, stock=100, limitPerMember=1)
    member_id, token = await funded_member(1000)
    results = await asyncio.gather(*(
        api.post(REDEEM, {"i": {"productId": product["id"], "idempotencyKey": unique("K")}}, token=token)
        for _ in range(20)))
    assert codes([r["data"]["pointsMallRedeem"] for r in results]) == {"OK": 1, "PURCHASE_LIMIT_REACHED": 19}
    assert (await balances([member_id]))[member_id] == 990


async def test_parallel_checkouts_never_hold_more_than_is_spendable(api):
    op = await operator_token(api)
    product = await create_product(api, op, pointsPrice=100, cashPriceFen=100, stock=100)
    member_id, token = await funded_member(500)
    results = await asyncio.gather(*(
        api.post(CHECKOUT, {"i": {"productId": product["id"], "idempotencyKey": unique("K")}}, token=token)
        for _ in range(20)))
    assert codes([r["data"]["checkoutCreate"] for r in results]) == {"OK": 5, "INSUFFICIENT_POINTS": 15}
    held = await db.fetch("SELECT SUM(points) AS held FROM points_hold h JOIN points_account a ON a.id = h.account_id"
                          " WHERE a.member_id = $1 AND h.status = 'HELD'", member_id)
    assert int(held[0]["held"]) == 500


async def test_500_parallel_flash_sale_redemptions_with_the_gate_sell_exactly_50(api, redis):
    api.client._transport.app.state.redis = redis
    op = await operator_token(api)
    sale = await new_sale(api, op, stock=50)
    buyers = await members(500, 100)
    results = await asyncio.gather(*(
        api.post(FLASH, {"i": {"flashSaleId": sale["id"], "idempotencyKey": unique("K")}}, token=token)
        for _, token in buyers))
    assert codes([r["data"]["flashSaleRedeem"] for r in results]) == {"OK": 50, "OUT_OF_STOCK": 450}
    await assert_sale_exact(sale, [m for m, _ in buyers], 100, 100)
    assert int(await redis.get((await gate_keys(sale_pk(sale)))[0])) == 0


async def test_redis_flushed_in_the_middle_of_a_sale_loses_and_oversells_nothing(api, redis):
    api.client._transport.app.state.redis = redis
    op = await operator_token(api)
    sale = await new_sale(api, op, stock=40)
    buyers = await members(200, 100)

    async def press(token: str, key: str) -> dict:
        return (await api.post(FLASH, {"i": {"flashSaleId": sale["id"], "idempotencyKey": key}},
                               token=token))["data"]["flashSaleRedeem"]

    keys = {m: unique("K") for m, _ in buyers}
    first = await asyncio.gather(*(press(t, keys[m]) for m, t in buyers[:60]))
    flushing = asyncio.create_task(redis.flushdb())
    second = await asyncio.gather(*(press(t, keys[m]) for m, t in buyers[60:]))
    await flushing
    # Everyone presses again with the same key (a client's retry): winners get their order back.
    retries = await asyncio.gather(*(press(t, keys[m]) for m, t in buyers))
    outcome = codes(first + second)
    assert outcome["OK"] == 40 and set(outcome) <= {"OK", "OUT_OF_STOCK"}
    assert sum(1 for r in retries if not r["userErrors"]) == 40
    await assert_sale_exact(sale, [m for m, _ in buyers], 100, 100)


async def test_twenty_parallel_flash_presses_by_one_member_give_one(api, redis):
    api.client._transport.app.state.redis = redis
    op = await operator_token(api)
    sale = await new_sale(api, op, stock=10)
    member_id, token = await funded_member(1000)
    results = await asyncio.gather(*(
        api.post(FLASH, {"i": {"flashSaleId": sale["id"], "idempotencyKey": unique("K")}}, token=token)
        for _ in range(20)))
    assert codes([r["data"]["flashSaleRedeem"] for r in results]) == {"OK": 1, "PURCHASE_LIMIT_REACHED": 19}
    assert (await balances([member_id]))[member_id] == 900


async def assert_sale_exact(sale: dict, member_ids: list[int], funded: int, price: int) -> None:
    pk = sale_pk(sale)
    row = (await db.fetch("SELECT stock, stock_total FROM flash_sale WHERE id = $1", pk))[0]
    orders = await db.fetch("SELECT member_id FROM mall_order WHERE flash_sale_id = $1 AND status = 'PAID'", pk)
    assert row["stock"] == 0 and len(orders) == row["stock_total"]
    winners = [o["member_id"] for o in orders]
    assert len(winners) == len(set(winners)), "a member bought twice"
    for member_id, balance in (await balances(member_ids)).items():
        assert balance == funded - (price if member_id in winners else 0)


async def test_payment_notification_racing_the_expiry_run_ends_consistent(api):
    op = await operator_token(api)
    product = await create_product(api, op, pointsPrice=100, cashPriceFen=300, stock=10)
    key_id, secret = await payment_key()
    buyers = await members(10, 100)
    created = [(await api.post(CHECKOUT, {"i": {"productId": product["id"], "idempotencyKey": unique("K")}},
                               token=token))["data"]["checkoutCreate"] for _, token in buyers]
    # Just before the hold lapses the notification is still in time; the run is told it is just after.
    deadline = clock.now() + timedelta(minutes=15)
    clock.freeze(deadline + mall.NOTIFY_GRACE - timedelta(seconds=1))
    notifications = [api.signed(NOTIFY, {"i": {"outTradeNo": c["paymentRequest"]["outTradeNo"],
                                               "transactionId": unique("wx"), "amountFen": 300,
                                               "paidAt": clock.now().isoformat()}}, key_id=key_id, secret=secret)
                     for c in created]
    runs = [mall.expire_orders(deadline + mall.NOTIFY_GRACE + timedelta(seconds=5)) for _ in range(3)]
    await asyncio.gather(*notifications, *runs)
    pk = from_global_id(product["id"])[1]
    rows = await db.fetch(
        "SELECT o.member_id, o.status, p.status AS paid, h.status AS hold, (SELECT COUNT(*) FROM voucher v"
        " WHERE v.order_id = o.id) AS vouchers, (SELECT COALESCE(SUM(amount_fen), 0) FROM payment_refund r"
        " WHERE r.payment_id = p.id) AS refund FROM mall_order o JOIN payment p ON p.order_id = o.id"
        " JOIN points_hold h ON h.source_ref = CAST(o.id AS TEXT) AND h.source_type = 'mall_order'"
        " WHERE o.product_id = $1", pk)
    assert len(rows) == 10
    balance = await balances([m for m, _ in buyers])
    paid = 0
    for r in rows:
        state = (r["status"], r["paid"], r["hold"], int(r["vouchers"]), int(r["refund"]))
        assert state in (("PAID", "PAID", "CAPTURED", 1, 0), ("EXPIRED", "LATE", "RELEASED", 0, 300)), state
        assert balance[r["member_id"]] == (0 if r["status"] == "PAID" else 100)
        paid += r["status"] == "PAID"
    stock = (await db.fetch("SELECT stock FROM product WHERE id = $1", pk))[0]["stock"]
    assert stock == 10 - paid
