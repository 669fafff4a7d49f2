"""The points mall end to end over GraphQL: catalogue, redemption, checkout with holds, payment
notifications, lapses, refunds. On SQLite and PostgreSQL; the races are in test_mall_concurrency."""
from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from tortoise import connections

from api import db, locks
from api.models import Product
from api.schema.ids import from_global_id
from api.services import clock, mall, signing
from tests.conftest import unique
from tests.mall_helpers import (
    CANCEL,
    CHECKOUT,
    ME,
    NOTIFY,
    PRODUCT_CREATE,
    PRODUCT_UPDATE,
    REDEEM,
    REFUND,
    create_product,
    funded_member,
    later,
    operator_token,
    payment_key,
    state,
)


async def test_operator_creates_and_member_redeems_for_points(api):
    op = await operator_token(api)
    product = await create_product(api, op, kind="MERCHANT_VOUCHER", merchantCode="M001", faceValueFen=5000,
                                   pointsPrice=300, stock=5)
    assert product["onSale"] and product["stock"] == 5
    audit = await db.fetch("SELECT action FROM audit_log WHERE target_type = 'product' AND target_id = $1",
                           str(int(__import__("api.schema.ids", fromlist=["x"]).from_global_id(product["id"])[1])))
    assert [r["action"] for r in audit] == ["product.create"]
    member_id, token = await funded_member(1000)
    key = unique("K")
    result = await api.post(REDEEM, {"i": {"productId": product["id"], "quantity": 2, "idempotencyKey": key}},
                            token=token)
    payload = result["data"]["pointsMallRedeem"]
    assert payload["userErrors"] == [] and payload["pointsBalance"] == 400
    order = payload["order"]
    assert (order["status"], order["channel"], order["points"], order["quantity"]) == ("PAID", "REDEEM", 600, 2)
    assert len(order["vouchers"]) == 2 and len({v["code"] for v in order["vouchers"]}) == 2
    voucher = order["vouchers"][0]
    assert voucher["qrPayload"] == "MPV1:" + voucher["code"] and voucher["merchantCode"] == "M001"
    assert voucher["faceValue"] == {"amountFen": 5000} and voucher["status"] == "ISSUED"
    assert (await state(member_id, product["id"]))["stock"] == 3
    # A repeat returns the first order; the same key with another input is refused.
    again = await api.post(REDEEM, {"i": {"productId": product["id"], "quantity": 2, "idempotencyKey": key}},
                           token=token)
    assert again["data"]["pointsMallRedeem"]["order"]["orderNo"] == order["orderNo"]
    before = await state(member_id, product["id"])
    reused = await api.post(REDEEM, {"i": {"productId": product["id"], "quantity": 1, "idempotencyKey": key}},
                            token=token)
    assert reused["data"]["pointsMallRedeem"]["userErrors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await state(member_id, product["id"]) == before
    ledger_rows = await api.post("{ viewer { member { pointsLedger(first: 1) { edges { node { kind points } } } } } }",
                                 token=token)
    assert ledger_rows["data"]["viewer"]["member"]["pointsLedger"]["edges"][0]["node"] == {"kind": "SPEND", "points": -600}


async def test_refusals_change_nothing(api):
    op = await operator_token(api)
    member_id, token = await funded_member(250)
    cases = []
    cheap = await create_product(api, op, pointsPrice=100, stock=5, limitPerMember=1)
    cases.append(({"productId": cheap["id"], "quantity": 2}, "PURCHASE_LIMIT_REACHED"))
    dear = await create_product(api, op, pointsPrice=300, stock=5)
    cases.append(({"productId": dear["id"]}, "INSUFFICIENT_POINTS"))
    empty = await create_product(api, op, pointsPrice=10, stock=0)
    cases.append(({"productId": empty["id"]}, "OUT_OF_STOCK"))
    gold = await create_product(api, op, pointsPrice=10, stock=5, zone="GOLD", minTierCode="GOLD")
    cases.append(({"productId": gold["id"]}, "TIER_NOT_ELIGIBLE"))
    later_sale = await create_product(api, op, pointsPrice=10, stock=5, saleStartsAt=later(days=1))
    cases.append(({"productId": later_sale["id"]}, "NOT_ON_SALE"))
    paused = await create_product(api, op, pointsPrice=10, stock=5, status="PAUSED")
    cases.append(({"productId": paused["id"]}, "NOT_ON_SALE"))
    cash = await create_product(api, op, pointsPrice=10, cashPriceFen=990, stock=5)
    cases.append(({"productId": cash["id"]}, "INVALID_INPUT"))
    cases.append(({"productId": cheap["id"], "quantity": 0}, "INVALID_INPUT"))
    cases.append(({"productId": "bm9wZQ"}, "NOT_FOUND"))
    for data, code in cases:
        before = await state(member_id, data["productId"] if code != "NOT_FOUND" else None)
        result = await api.post(REDEEM, {"i": {**data, "idempotencyKey": unique("K")}}, token=token)
        errors = result["data"]["pointsMallRedeem"]["userErrors"]
        assert [e["code"] for e in errors] == [code], (data, errors)
        assert await state(member_id, data["productId"] if code != "NOT_FOUND" else None) == before


async def test_daily_limit_and_tier_zone_visibility(api):
    op = await operator_token(api)
    daily = await create_product(api, op, pointsPrice=10, stock=10, limitPerMemberDaily=1)
    gold = await create_product(api, op, pointsPrice=10, stock=5, zone="GOLD", minTierCode="GOLD")
    member_id, token = await funded_member(100)
    first = await api.post(REDEEM, {"i": {"productId": daily["id"], "idempotencyKey": unique("K")}}, token=token)
    assert first["data"]["pointsMallRedeem"]["userErrors"] == []
    second = await api.post(REDEEM, {"i": {"productId": daily["id"], "idempotencyKey": unique("K")}}, token=token)
    assert second["data"]["pointsMallRedeem"]["userErrors"][0]["code"] == "PURCHASE_LIMIT_REACHED"
    clock.freeze(clock.now() + timedelta(days=1))
    token = signing.issue_token("member", member_id, 3600)
    third = await api.post(REDEEM, {"i": {"productId": daily["id"], "idempotencyKey": unique("K")}}, token=token)
    assert third["data"]["pointsMallRedeem"]["userErrors"] == []
    clock.freeze(None)
    browse = 'query($z: String) { products(first: 100, zone: $z) { edges { node { id zone } } } }'
    normal_sees = await api.post(browse, {"z": "GOLD"}, token=token)
    assert gold["id"] not in [e["node"]["id"] for e in normal_sees["data"]["products"]["edges"]]
    _, gold_token = await funded_member(100, "GOLD")
    gold_sees = await api.post(browse, {"z": "GOLD"}, token=gold_token)
    assert gold["id"] in [e["node"]["id"] for e in gold_sees["data"]["products"]["edges"]]
    node = await api.post('query($id: ID!) { node(id: $id) { id } }', {"id": gold["id"]}, token=token)
    assert node["data"]["node"] is None
    redeemed = await api.post(REDEEM, {"i": {"productId": gold["id"], "idempotencyKey": unique("K")}}, token=gold_token)
    assert redeemed["data"]["pointsMallRedeem"]["userErrors"] == []


async def test_browse_filters_kind_and_affordable(api):
    op = await operator_token(api)
    cheap = await create_product(api, op, kind="GOODS", pointsPrice=50, stock=3)
    dear = await create_product(api, op, kind="GOODS", pointsPrice=5000, stock=3)
    _, token = await funded_member(100)
    query = '{ products(first: 100, kind: GOODS, affordable: true) { edges { node { id kind } } } }'
    seen = [e["node"]["id"] for e in (await api.post(query, token=token))["data"]["products"]["edges"]]
    assert cheap["id"] in seen and dear["id"] not in seen
    anonymous = '{ products(first: 100, kind: GOODS) { edges { node { id } } } }'
    assert dear["id"] in [e["node"]["id"] for e in (await api.post(anonymous))["data"]["products"]["edges"]]


async def test_operator_restocks_pauses_and_refuses_bad_products(api):
    op = await operator_token(api)
    product = await create_product(api, op, stock=2)
    restock = await api.post(PRODUCT_UPDATE, {"i": {"productId": product["id"], "stockDelta": 5, "status": "PAUSED"}},
                             token=op, admin=True)
    assert restock["data"]["productUpdate"]["product"]["stock"] == 7
    assert restock["data"]["productUpdate"]["product"]["status"] == "PAUSED"
    too_many = await api.post(PRODUCT_UPDATE, {"i": {"productId": product["id"], "stockDelta": -8}}, token=op, admin=True)
    assert too_many["data"]["productUpdate"]["userErrors"][0]["code"] == "OUT_OF_STOCK"
    for bad in ({"pointsPrice": 0}, {"kind": "MERCHANT_VOUCHER"}, {"kind": "PARKING_COUPON"}, {"imageUrls": ["ftp://x"]},
                {"saleStartsAt": later(days=2), "saleEndsAt": later(days=1)}, {"minTierCode": "NOPE"}):
        result = await api.post(PRODUCT_CREATE, {"i": {"kind": "COUPON", "name": "x", "pointsPrice": 10, "stock": 1,
                                                       **bad}}, token=op, admin=True)
        assert result["data"]["productCreate"]["userErrors"][0]["code"] in ("INVALID_INPUT", "NOT_FOUND"), bad


async def test_checkout_holds_then_payment_confirms(api):
    op = await operator_token(api)
    product = await create_product(api, op, kind="GOODS", pointsPrice=200, cashPriceFen=1990, stock=3)
    member_id, token = await funded_member(500)
    created = (await api.post(CHECKOUT, {"i": {"productId": product["id"], "idempotencyKey": unique("K")}},
                              token=token))["data"]["checkoutCreate"]
    assert created["userErrors"] == [] and created["order"]["status"] == "PENDING_PAYMENT"
    assert created["pointsBalance"] == 300 and created["order"]["vouchers"] == []
    assert created["paymentRequest"]["amount"] == {"amountFen": 1990}
    me = (await api.post(ME, token=token))["data"]["viewer"]["member"]
    assert (me["pointsBalance"], me["pointsHeld"]) == (300, 200)
    # Held points cannot be spent elsewhere.
    other = await create_product(api, op, pointsPrice=301, stock=3)
    refused = await api.post(REDEEM, {"i": {"productId": other["id"], "idempotencyKey": unique("K")}}, token=token)
    assert refused["data"]["pointsMallRedeem"]["userErrors"][0]["code"] == "INSUFFICIENT_POINTS"
    before = await state(member_id, product["id"])
    assert before["stock"] == 2 and before["balance"] == 500
    # Only a key with the payment scope may notify; the POS key may not.
    notify = {"outTradeNo": created["paymentRequest"]["outTradeNo"], "transactionId": unique("wx"),
              "amountFen": 1990, "paidAt": clock.now().isoformat()}
    pos = await api.signed(NOTIFY, {"i": notify})
    assert pos["errors"][0]["extensions"]["code"] == "FORBIDDEN" and await state(member_id, product["id"]) == before
    key_id, secret = await payment_key()
    wrong = await api.signed(NOTIFY, {"i": {**notify, "amountFen": 1}}, key_id=key_id, secret=secret)
    assert wrong["data"]["paymentNotify"]["userErrors"][0]["code"] == "PAYMENT_AMOUNT_MISMATCH"
    assert await state(member_id, product["id"]) == before
    paid = (await api.signed(NOTIFY, {"i": notify}, key_id=key_id, secret=secret))["data"]["paymentNotify"]
    assert paid["userErrors"] == [] and paid["paymentStatus"] == "PAID"
    assert paid["order"]["status"] == "PAID" and len(paid["order"]["vouchers"]) == 1
    twice = (await api.signed(NOTIFY, {"i": notify}, key_id=key_id, secret=secret))["data"]["paymentNotify"]
    assert twice["paymentStatus"] == "PAID" and twice["order"]["vouchers"] == paid["order"]["vouchers"]
    me = (await api.post(ME, token=token))["data"]["viewer"]["member"]
    assert (me["pointsBalance"], me["pointsHeld"]) == (300, 0)
    after = await state(member_id, product["id"])
    assert (after["balance"], after["stock"], after["vouchers"]) == (300, 2, 1)


async def test_unpaid_checkout_lapses_and_a_late_payment_is_refunded(api):
    op = await operator_token(api)
    product = await create_product(api, op, kind="COUPON", pointsPrice=100, cashPriceFen=500, stock=1)
    member_id, token = await funded_member(100)
    created = (await api.post(CHECKOUT, {"i": {"productId": product["id"], "idempotencyKey": unique("K")}},
                              token=token))["data"]["checkoutCreate"]
    assert (await state(member_id, product["id"]))["stock"] == 0
    clock.freeze(clock.now() + timedelta(minutes=15) + mall.NOTIFY_GRACE + timedelta(seconds=1))
    run = await api.post("mutation { mallOrdersExpireRun(input: {}) { ordersExpired pointsReleased userErrors { code } } }",
                         token=op, admin=True)
    assert run["data"]["mallOrdersExpireRun"]["ordersExpired"] >= 1
    me = (await api.post(ME, token=token))["data"]["viewer"]["member"]
    assert (me["pointsBalance"], me["pointsHeld"], me["orders"]["edges"][0]["node"]["status"]) == (100, 0, "EXPIRED")
    assert (await state(member_id, product["id"]))["stock"] == 1
    again = await api.post("mutation { mallOrdersExpireRun(input: {}) { ordersExpired } }", token=op, admin=True)
    assert again["data"]["mallOrdersExpireRun"]["ordersExpired"] == 0
    key_id, secret = await payment_key()
    late = (await api.signed(NOTIFY, {"i": {"outTradeNo": created["paymentRequest"]["outTradeNo"],
                                            "transactionId": unique("wx"), "amountFen": 500,
                                            "paidAt": clock.now().isoformat()}},
                             key_id=key_id, secret=secret))["data"]["paymentNotify"]
    assert late["userErrors"] == [] and late["paymentStatus"] == "LATE"
    assert late["refundRequested"] == {"amountFen": 500} and late["order"]["status"] == "EXPIRED"
    final = await state(member_id, product["id"])
    assert (final["balance"], final["stock"], final["vouchers"]) == (100, 1, 0)


async def test_member_cancels_an_unpaid_checkout(api):
    op = await operator_token(api)
    product = await create_product(api, op, pointsPrice=100, cashPriceFen=500, stock=1)
    member_id, token = await funded_member(100)
    created = (await api.post(CHECKOUT, {"i": {"productId": product["id"], "idempotencyKey": unique("K")}},
                              token=token))["data"]["checkoutCreate"]
    _, stranger = await funded_member(0)
    theirs = await api.post(CANCEL, {"i": {"orderId": created["order"]["id"]}}, token=stranger)
    assert theirs["data"]["checkoutCancel"]["userErrors"][0]["code"] == "NOT_FOUND"
    cancelled = await api.post(CANCEL, {"i": {"orderId": created["order"]["id"]}}, token=token)
    assert cancelled["data"]["checkoutCancel"]["order"]["status"] == "CANCELLED"
    me = (await api.post(ME, token=token))["data"]["viewer"]["member"]
    assert (me["pointsBalance"], me["pointsHeld"]) == (100, 0)
    assert (await state(member_id, product["id"]))["stock"] == 1
    twice = await api.post(CANCEL, {"i": {"orderId": created["order"]["id"]}}, token=token)
    assert twice["data"]["checkoutCancel"]["userErrors"][0]["code"] == "ORDER_STATE_INVALID"


async def test_dev_provider_pays_through_its_cashier_route(api):
    op = await operator_token(api)
    product = await create_product(api, op, pointsPrice=10, cashPriceFen=100, stock=1)
    _, token = await funded_member(10)
    created = (await api.post(CHECKOUT, {"i": {"productId": product["id"], "idempotencyKey": unique("K")}},
                              token=token))["data"]["checkoutCreate"]
    url = __import__("json").loads(created["paymentRequest"]["payParams"])["payUrl"]
    response = await api.client.post(url)
    assert response.status_code == 200 and response.json()["orderStatus"] == "PAID"


async def test_refund_returns_points_stock_and_voids_vouchers(api):
    op = await operator_token(api)
    product = await create_product(api, op, pointsPrice=150, stock=2)
    member_id, token = await funded_member(400)
    order = (await api.post(REDEEM, {"i": {"productId": product["id"], "idempotencyKey": unique("K")}},
                            token=token))["data"]["pointsMallRedeem"]["order"]
    key = unique("R")
    refund = {"orderId": order["id"], "reason": "顾客退货", "idempotencyKey": key}
    result = (await api.post(REFUND, {"i": refund}, token=op, admin=True))["data"]["mallOrderRefund"]
    assert result["userErrors"] == [] and result["pointsReturned"] == 150 and result["order"]["status"] == "REFUNDED"
    after = await state(member_id, product["id"])
    assert (after["balance"], after["stock"]) == (400, 2)
    vouchers = await db.fetch("SELECT status FROM voucher WHERE member_id = $1", member_id)
    assert [v["status"] for v in vouchers] == ["VOID"]
    repeat = (await api.post(REFUND, {"i": refund}, token=op, admin=True))["data"]["mallOrderRefund"]
    assert repeat["pointsReturned"] == 150 and await state(member_id, product["id"]) == after
    again = (await api.post(REFUND, {"i": {**refund, "idempotencyKey": unique("R")}}, token=op, admin=True))
    assert again["data"]["mallOrderRefund"]["userErrors"][0]["code"] == "ORDER_STATE_INVALID"
    # A used voucher cannot be refunded.
    used = (await api.post(REDEEM, {"i": {"productId": product["id"], "idempotencyKey": unique("K")}},
                           token=token))["data"]["pointsMallRedeem"]["order"]
    await db.fetch("UPDATE voucher SET status = 'USED', used_at = $2 WHERE order_id = $1 RETURNING id",
                   int(__import__("api.schema.ids", fromlist=["x"]).from_global_id(used["id"])[1]), clock.now())
    before = await state(member_id, product["id"])
    refused = await api.post(REFUND, {"i": {"orderId": used["id"], "reason": "退货", "idempotencyKey": unique("R")}},
                             token=op, admin=True)
    assert refused["data"]["mallOrderRefund"]["userErrors"][0]["code"] == "ORDER_STATE_INVALID"
    assert await state(member_id, product["id"]) == before


async def test_refund_of_a_cash_order_requests_the_cash_back(api):
    op = await operator_token(api)
    product = await create_product(api, op, pointsPrice=100, cashPriceFen=800, stock=1)
    member_id, token = await funded_member(100)
    created = (await api.post(CHECKOUT, {"i": {"productId": product["id"], "idempotencyKey": unique("K")}},
                              token=token))["data"]["checkoutCreate"]
    url = __import__("json").loads(created["paymentRequest"]["payParams"])["payUrl"]
    await api.client.post(url)
    refund = (await api.post(REFUND, {"i": {"orderId": created["order"]["id"], "reason": "商品缺货",
                                            "idempotencyKey": unique("R")}}, token=op, admin=True))
    payload = refund["data"]["mallOrderRefund"]
    assert payload["cashRefund"] == {"amountFen": 800} and payload["pointsReturned"] == 100
    assert (await state(member_id, product["id"]))["balance"] == 100


async def test_mall_mutations_run_alone_in_a_request(api):
    _, token = await funded_member(10)
    query = ('mutation { a: pointsMallRedeem(input: {productId: "x", idempotencyKey: "1"}) { userErrors { code } }'
             ' b: pointsMallRedeem(input: {productId: "x", idempotencyKey: "2"}) { userErrors { code } } }')
    result = await api.post(query, token=token)
    assert "only field" in result["errors"][0]["message"]
    query = ('mutation { a: flashSaleRedeem(input: {flashSaleId: "x", idempotencyKey: "1"}) { userErrors { code } }'
             ' viewer: checkoutCreate(input: {productId: "x", idempotencyKey: "2"}) { userErrors { code } } }')
    assert "only field" in (await api.post(query, token=token))["errors"][0]["message"]


async def test_anonymous_and_operators_cannot_redeem(api):
    op = await operator_token(api)
    product = await create_product(api, op)
    anonymous = await api.post(REDEEM, {"i": {"productId": product["id"], "idempotencyKey": "k"}})
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    as_operator = await api.post(REDEEM, {"i": {"productId": product["id"], "idempotencyKey": "k"}}, token=op)
    assert as_operator["errors"][0]["extensions"]["code"] in ("FORBIDDEN", "UNAUTHENTICATED")


async def test_reads_inside_a_transaction_run_on_its_connection(api):
    """Tortoise binds a transaction's connection in a context variable: inside db.transaction() the
    models and api.db's reads run on it (they take no second pool connection, and see the
    transaction's own uncommitted writes). The mall's services read products and tiers inside their
    transactions relying on this; on PostgreSQL a read on another pooled connection would see 5."""
    op = await operator_token(api)
    pk = from_global_id((await create_product(api, op, stock=5))["id"])[1]
    async with db.transaction() as tx:
        assert connections.get("default") is tx.conn
        await tx.execute("UPDATE product SET stock = 4 WHERE id = $1", pk)
        assert (await mall.product(pk)).stock == 4
        assert await db.fetchval("SELECT stock FROM product WHERE id = $1", pk) == 4
        assert [p.stock for p in await mall.products(id=pk)] == [4]
    assert connections.get("default") is not tx.conn
    assert (await mall.product(pk)).stock == 4


async def test_stock_moves_take_their_place_in_the_global_lock_order(api):
    """The conditional stock update registers its row with api/locks.py: after a lock of a higher rank
    it is refused before it runs, and the refused move changes nothing."""
    op = await operator_token(api)
    first, second = [from_global_id((await create_product(api, op, stock=5))["id"])[1] for _ in range(2)]
    with pytest.raises(locks.LockOrderError, match="PRODUCT"):
        async with db.transaction():
            await mall.take_stock(Product, first, 1)
            locks.enter(locks.Rank.PRIZE)
            await mall.take_stock(Product, second, 1)
    assert [(await mall.product(pk)).stock for pk in (first, second)] == [5, 5]


async def test_a_redemption_touches_the_mall_tables_once_each(api, caplog):
    """The benchmarked redemption, as far as the mall's own tables go: one read of the product, the
    order, one voucher per unit, the conditional stock update (the ledger's statements are its own).
    On PostgreSQL the writes go out as one statement with the spend (`mall.sql.order_writes`)."""
    op = await operator_token(api)
    pk = from_global_id((await create_product(api, op, pointsPrice=10, stock=5))["id"])[1]
    member_id, _ = await funded_member(100)
    with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
        await mall.redeem(member_id, pk, 2, unique("K"))
    mall_tables = re.compile(r'^(SELECT .* FROM "?product"?|INSERT INTO "?(mall_order|voucher)"?|UPDATE "?product"?)\b')
    statements = [r.getMessage() for r in caplog.records if r.name == "tortoise.db_client"]
    ours = [s.split(" ")[0] + " " + re.findall(r'(?:FROM|INTO|UPDATE) "?(\w+)', s)[0] for s in statements
            if mall_tables.match(s)]
    if not db.is_postgres():
        assert ours == ["SELECT product", "INSERT mall_order", "INSERT voucher", "INSERT voucher", "UPDATE product"]
        return
    assert ours == ["SELECT product"]
    writes = [s for s in statements if s.startswith("WITH") and "INSERT INTO mall_order" in s]
    assert len(writes) == 1
    assert all(part in writes[0] for part in ("INSERT INTO voucher", "UPDATE product SET stock = stock -",
                                              "INSERT INTO points_entry", "UPDATE idempotency_record"))
    assert await db.fetchval("SELECT COUNT(*) FROM voucher WHERE member_id = $1", member_id) == 2
