"""Flash sales over GraphQL, with the Redis gate and on the database alone (SQLite and PostgreSQL;
the parallel contests are in test_mall_concurrency)."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from api import db
from api.schema.ids import from_global_id
from api.services import clock
from api.services.errors import DomainError, ErrorCode
from api.services.mall import flash_sales, flash_terms
from api.services.mall.gate import gate_keys
from tests.conftest import unique
from tests.mall_helpers import FLASH, create_product, funded_member, later, operator_token, state

SALE_CREATE = """mutation($i: FlashSaleCreateInput!) { flashSaleCreate(input: $i) {
  flashSale { id stock stockTotal perMemberLimit onSale pointsPrice } userErrors { code field message } } }"""
SALE_UPDATE = """mutation($i: FlashSaleUpdateInput!) { flashSaleUpdate(input: $i) {
  flashSale { id stock stockTotal status } userErrors { code field message } } }"""
REBUILD = """mutation($i: FlashSaleGateRebuildInput!) { flashSaleGateRebuild(input: $i) {
  gate { loaded stock buyers } userErrors { code message } } }"""


async def new_sale(api, op: str, stock: int = 3, **terms) -> dict:
    product = await create_product(api, op, kind="MERCHANT_VOUCHER", merchantCode="M002", faceValueFen=2000, stock=0)
    data = {"productId": product["id"], "title": unique("秒杀"), "pointsPrice": 100, "stock": stock,
            "startsAt": later(minutes=-1), "endsAt": later(hours=1), **terms}
    result = (await api.post(SALE_CREATE, {"i": data}, token=op, admin=True))["data"]["flashSaleCreate"]
    assert not result["userErrors"], result
    return result["flashSale"]


def sale_pk(sale: dict) -> int:
    return from_global_id(sale["id"])[1]


async def sale_stock(sale: dict) -> int:
    return int((await db.fetch("SELECT stock FROM flash_sale WHERE id = $1", sale_pk(sale)))[0]["stock"])


async def test_sale_sells_its_stock_once_per_member(api, gate):
    op = await operator_token(api)
    sale = await new_sale(api, op, stock=2)
    assert sale["onSale"] and sale["perMemberLimit"] == 1
    buyers = [await funded_member(300) for _ in range(3)]
    key = unique("K")
    first = (await api.post(FLASH, {"i": {"flashSaleId": sale["id"], "idempotencyKey": key}},
                            token=buyers[0][1]))["data"]["flashSaleRedeem"]
    assert first["userErrors"] == [] and first["pointsBalance"] == 200
    assert first["order"]["channel"] == "FLASH_SALE" and first["order"]["vouchers"][0]["merchantCode"] == "M002"
    # A repeat of the same key returns the first order (the gate sends it on to the database).
    repeat = (await api.post(FLASH, {"i": {"flashSaleId": sale["id"], "idempotencyKey": key}},
                             token=buyers[0][1]))["data"]["flashSaleRedeem"]
    assert repeat["order"]["orderNo"] == first["order"]["orderNo"]
    before = await state(buyers[0][0])
    again = (await api.post(FLASH, {"i": {"flashSaleId": sale["id"], "idempotencyKey": unique("K")}},
                            token=buyers[0][1]))["data"]["flashSaleRedeem"]
    assert again["userErrors"][0]["code"] == "PURCHASE_LIMIT_REACHED" and await state(buyers[0][0]) == before
    second = (await api.post(FLASH, {"i": {"flashSaleId": sale["id"], "idempotencyKey": unique("K")}},
                             token=buyers[1][1]))["data"]["flashSaleRedeem"]
    assert second["userErrors"] == []
    before = await state(buyers[2][0])
    sold_out = (await api.post(FLASH, {"i": {"flashSaleId": sale["id"], "idempotencyKey": unique("K")}},
                               token=buyers[2][1]))["data"]["flashSaleRedeem"]
    assert sold_out["userErrors"][0]["code"] == "OUT_OF_STOCK" and await state(buyers[2][0]) == before
    assert await sale_stock(sale) == 0
    if gate is not None:
        assert int(await gate.get((await gate_keys(sale_pk(sale)))[0])) == 0
    # Sold out: the first buyer's retry still gets their order; the key on another sale is refused.
    retry = (await api.post(FLASH, {"i": {"flashSaleId": sale["id"], "idempotencyKey": key}},
                            token=buyers[0][1]))["data"]["flashSaleRedeem"]
    assert retry["order"]["orderNo"] == first["order"]["orderNo"]
    other = await new_sale(api, op, stock=0 + 1)
    await db.fetch("UPDATE flash_sale SET stock = 0 WHERE id = $1 RETURNING id", sale_pk(other))
    flash_sales._terms.clear()
    reused = (await api.post(FLASH, {"i": {"flashSaleId": other["id"], "idempotencyKey": key}},
                             token=buyers[0][1]))["data"]["flashSaleRedeem"]
    assert reused["userErrors"][0]["code"] in ("IDEMPOTENCY_KEY_REUSED", "OUT_OF_STOCK")
    if gate is None:  # the database alone sees the key before the stock
        assert reused["userErrors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"


async def test_refusals_leave_gate_and_database_unchanged(api, gate):
    op = await operator_token(api)
    sale = await new_sale(api, op, stock=1)
    poor_id, poor = await funded_member(50)
    before = await state(poor_id)
    result = (await api.post(FLASH, {"i": {"flashSaleId": sale["id"], "idempotencyKey": unique("K")}},
                             token=poor))["data"]["flashSaleRedeem"]
    assert result["userErrors"][0]["code"] == "INSUFFICIENT_POINTS" and await state(poor_id) == before
    assert await sale_stock(sale) == 1
    if gate is not None:  # the gate's step was undone
        state_now = await flash_sales.gate_state(gate, sale_pk(sale))
        assert (state_now.stock, state_now.buyers) == (1, 0) or state_now.stock == 1
    # The unit is still there for someone who can pay.
    _, rich = await funded_member(100)
    ok = (await api.post(FLASH, {"i": {"flashSaleId": sale["id"], "idempotencyKey": unique("K")}},
                         token=rich))["data"]["flashSaleRedeem"]
    assert ok["userErrors"] == [] and await sale_stock(sale) == 0


async def test_outside_the_window_and_paused(api, gate):
    op = await operator_token(api)
    upcoming = await new_sale(api, op, startsAt=later(hours=1), endsAt=later(hours=2))
    member_id, token = await funded_member(500)
    result = await api.post(FLASH, {"i": {"flashSaleId": upcoming["id"], "idempotencyKey": unique("K")}}, token=token)
    assert result["data"]["flashSaleRedeem"]["userErrors"][0]["code"] == "NOT_ON_SALE"
    live = await new_sale(api, op)
    paused = await api.post(SALE_UPDATE, {"i": {"flashSaleId": live["id"], "status": "PAUSED"}}, token=op, admin=True)
    assert paused["data"]["flashSaleUpdate"]["flashSale"]["status"] == "PAUSED"
    result = await api.post(FLASH, {"i": {"flashSaleId": live["id"], "idempotencyKey": unique("K")}}, token=token)
    assert result["data"]["flashSaleRedeem"]["userErrors"][0]["code"] == "NOT_ON_SALE"
    unknown = await api.post(FLASH, {"i": {"flashSaleId": "eHg", "idempotencyKey": unique("K")}}, token=token)
    assert unknown["data"]["flashSaleRedeem"]["userErrors"][0]["code"] == "NOT_FOUND"
    clock.freeze(clock.now() + timedelta(hours=3))
    assert (await state(member_id))["orders"] == 0


async def test_operator_adds_stock_and_bad_terms_are_refused(api, gate):
    op = await operator_token(api)
    sale = await new_sale(api, op, stock=1)
    grown = await api.post(SALE_UPDATE, {"i": {"flashSaleId": sale["id"], "stockDelta": 2}}, token=op, admin=True)
    assert grown["data"]["flashSaleUpdate"]["flashSale"]["stock"] == 3
    assert grown["data"]["flashSaleUpdate"]["flashSale"]["stockTotal"] == 3
    too_far = await api.post(SALE_UPDATE, {"i": {"flashSaleId": sale["id"], "stockDelta": -4}}, token=op, admin=True)
    assert too_far["data"]["flashSaleUpdate"]["userErrors"][0]["code"] == "OUT_OF_STOCK"
    product = await create_product(api, op)
    for bad in ({"pointsPrice": 0}, {"stock": 0}, {"perMemberLimit": 0},
                {"startsAt": later(hours=2), "endsAt": later(hours=1)}):
        data = {"productId": product["id"], "title": "x", "pointsPrice": 10, "stock": 1,
                "startsAt": later(minutes=1), "endsAt": later(hours=1), **bad}
        result = await api.post(SALE_CREATE, {"i": data}, token=op, admin=True)
        assert result["data"]["flashSaleCreate"]["userErrors"][0]["code"] == "INVALID_INPUT", bad
    _, token = await funded_member(300)
    for _ in range(1):
        ok = await api.post(FLASH, {"i": {"flashSaleId": sale["id"], "idempotencyKey": unique("K")}}, token=token)
        assert ok["data"]["flashSaleRedeem"]["userErrors"] == []
    assert await sale_stock(sale) == 2


async def test_gate_is_rebuilt_from_the_database(api, redis):
    api.client._transport.app.state.redis = redis
    op = await operator_token(api)
    sale = await new_sale(api, op, stock=3)
    buyer_id, buyer = await funded_member(300)
    key = unique("K")
    await api.post(FLASH, {"i": {"flashSaleId": sale["id"], "idempotencyKey": key}}, token=buyer)
    await redis.flushdb()  # Redis lost everything: the database still has the order
    rebuilt = (await api.post(REBUILD, {"i": {"flashSaleId": sale["id"]}}, token=op, admin=True))
    assert rebuilt["data"]["flashSaleGateRebuild"]["gate"] == {"loaded": True, "stock": 2, "buyers": 1}
    # The buyer's repeat still returns the first order; a new key is refused by the gate.
    repeat = (await api.post(FLASH, {"i": {"flashSaleId": sale["id"], "idempotencyKey": key}},
                             token=buyer))["data"]["flashSaleRedeem"]
    assert repeat["userErrors"] == [] and repeat["order"] is not None
    again = (await api.post(FLASH, {"i": {"flashSaleId": sale["id"], "idempotencyKey": unique("K")}},
                            token=buyer))["data"]["flashSaleRedeem"]
    assert again["userErrors"][0]["code"] == "PURCHASE_LIMIT_REACHED"
    assert (await state(buyer_id))["orders"] == 1


async def test_a_dead_redis_leaves_the_database_deciding(api):
    from redis.asyncio import from_url

    dead = from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    api.client._transport.app.state.redis = dead
    op = await operator_token(api)
    sale = await new_sale(api, op, stock=1)
    _, token = await funded_member(100)
    ok = await api.post(FLASH, {"i": {"flashSaleId": sale["id"], "idempotencyKey": unique("K")}}, token=token)
    assert ok["data"]["flashSaleRedeem"]["userErrors"] == []
    _, other = await funded_member(100)
    sold = await api.post(FLASH, {"i": {"flashSaleId": sale["id"], "idempotencyKey": unique("K")}}, token=other)
    assert sold["data"]["flashSaleRedeem"]["userErrors"][0]["code"] == "OUT_OF_STOCK"
    await dead.aclose()


async def test_a_sale_of_an_exclusive_zone_product_is_shown_to_that_tier_only(api):
    op = await operator_token(api)
    product = await create_product(api, op, kind="COUPON", stock=0, zone="GOLD", minTierCode="GOLD")
    data = {"productId": product["id"], "title": unique("金卡秒杀"), "pointsPrice": 10, "stock": 1,
            "startsAt": later(minutes=-1), "endsAt": later(hours=1)}
    sale = (await api.post(SALE_CREATE, {"i": data}, token=op, admin=True))["data"]["flashSaleCreate"]["flashSale"]
    listed = "{ flashSales(first: 100) { edges { node { id } } } }"
    _, normal = await funded_member(100)
    _, gold = await funded_member(100, "GOLD")
    assert sale["id"] not in [e["node"]["id"] for e in (await api.post(listed, token=normal))["data"]["flashSales"]["edges"]]
    assert sale["id"] in [e["node"]["id"] for e in (await api.post(listed, token=gold))["data"]["flashSales"]["edges"]]
    node = 'query($id: ID!) { node(id: $id) { id } }'
    assert (await api.post(node, {"id": sale["id"]}, token=normal))["data"]["node"] is None
    assert (await api.post(node, {"id": sale["id"]}, token=gold))["data"]["node"] == {"id": sale["id"]}
    refused = await api.post(FLASH, {"i": {"flashSaleId": sale["id"], "idempotencyKey": unique("K")}}, token=normal)
    assert refused["data"]["flashSaleRedeem"]["userErrors"][0]["code"] == "TIER_NOT_ELIGIBLE"


async def test_the_scheduled_gate_refresh_gives_back_a_unit_a_crash_left_taken(api, redis):
    from api.services import scheduler

    api.client._transport.app.state.redis = redis
    op = await operator_token(api)
    sale = await new_sale(api, op, stock=2)
    key = (await gate_keys(sale_pk(sale)))[0]
    await redis.decr(key)  # a process took a unit in the gate and died before its commit or undo
    assert int(await redis.get(key)) == 1
    assert await scheduler.refresh_gates(redis) >= 1
    assert int(await redis.get(key)) == 2


async def test_a_sold_out_press_costs_one_read_at_most(api, gate, monkeypatch, caplog):
    """The benchmarked sold-out path: with the gate no statement at all, on the database alone one read
    (the sale's committed stock and the key's first result) and no transaction."""
    monkeypatch.setattr(flash_terms, "TERMS_SECONDS", 600.0)  # the terms stay cached for the whole test
    op = await operator_token(api)
    sale = await new_sale(api, op, stock=1)
    winner, _ = await funded_member(100)
    await flash_sales.redeem(winner, sale_pk(sale), unique("K"), redis=gate)
    late, _ = await funded_member(100)
    with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
        with pytest.raises(DomainError) as refused:
            await flash_sales.redeem(late, sale_pk(sale), unique("K"), redis=gate)
    assert refused.value.code == ErrorCode.OUT_OF_STOCK
    statements = [r.getMessage() for r in caplog.records if r.name == "tortoise.db_client"
                  and r.getMessage().lstrip()[:6].upper() in ("SELECT", "INSERT", "UPDATE", "DELETE")]
    assert len(statements) == (0 if gate is not None else 1), statements
    assert all(s.startswith("SELECT f.stock") for s in statements)
