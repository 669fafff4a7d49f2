"""Thin resolvers of the points mall (members, the payment integration, operators)."""
from __future__ import annotations

from typing import Optional

import strawberry
from strawberry.types import Info

from api.resolvers import input_pk, user_errors
from api.schema import mall as s
from api.schema.base import Connection, check_first, from_cursor, from_global_id
from api.services import draws, mall, merchants, operators, tiers
from api.services.errors import DomainError, ErrorCode
from api.services.mall import flash_sales, vouchers


async def _order_payload(order_id: int) -> s.MallOrder:
    found = await mall.order(order_id)
    assert found is not None
    return s.MallOrder.of(found)


# --- members -------------------------------------------------------------------------------------

async def products(info: Info, first: int, after: Optional[str] = None, kind: Optional[s.ProductKind] = None,
                   zone: Optional[str] = None, affordable: bool = False) -> Connection[s.Product]:
    """What the caller may see: exclusive zones only to their tiers; `affordable` by spendable points."""
    check_first(first)
    member_id = info.context.caller.member_id
    spendable = await info.context.loaders.balance.load(member_id) if member_id is not None and affordable else None
    rows = await mall.browse(tier_id=await _tier_of_caller(info), spendable=spendable,
                             kind=kind.value if kind else None, zone=zone, affordable=affordable,
                             include_hidden=False, limit=first + 1, after_id=from_cursor(after), member_id=member_id)
    return Connection.of([s.Product.of(p) for p in rows], first, after)


async def _tier_of_caller(info: Info) -> Optional[int]:
    member_id = info.context.caller.member_id
    record = await info.context.loaders.member.load(member_id) if member_id is not None else None
    return record.tier_id if record else None


async def flash_sales_list(info: Info, first: int, after: Optional[str] = None) -> Connection[s.FlashSale]:
    """Live and coming sales of the products the caller's tier may see."""
    check_first(first)
    rows = await flash_sales.sales_page(first + 1, from_cursor(after), include_hidden=False,
                                        tier_id=await _tier_of_caller(info), member_id=info.context.caller.member_id)
    return Connection.of([s.FlashSale.of(x) for x in rows], first, after)


@user_errors(s.PointsMallRedeemPayload)
async def points_mall_redeem(info: Info, input: s.PointsMallRedeemInput) -> s.PointsMallRedeemPayload:
    result = await mall.redeem(info.context.require_member(), input_pk(input.product_id, "Product", "productId"),
                               input.quantity, input.idempotency_key)
    return s.PointsMallRedeemPayload(order=await _order_payload(result.order_id), points_balance=result.points_balance)


@user_errors(s.CheckoutCreatePayload)
async def checkout_create(info: Info, input: s.CheckoutCreateInput) -> s.CheckoutCreatePayload:
    member_id = info.context.require_member()
    result = await mall.checkout_create(member_id, input_pk(input.product_id, "Product", "productId"),
                                        input.quantity, input.idempotency_key)
    payment = await mall.payment_for_order(result.order_id)
    return s.CheckoutCreatePayload(order=await _order_payload(result.order_id), points_balance=result.points_balance,
                                   payment_request=s.PaymentRequest.of(payment) if payment else None)


@user_errors(s.CheckoutCancelPayload)
async def checkout_cancel(info: Info, input: s.CheckoutCancelInput) -> s.CheckoutCancelPayload:
    order = await mall.cancel_checkout(info.context.require_member(), input_pk(input.order_id, "MallOrder", "orderId"))
    return s.CheckoutCancelPayload(order=s.MallOrder.of(order))


@user_errors(s.FlashSaleRedeemPayload)
async def flash_sale_redeem(info: Info, input: s.FlashSaleRedeemInput) -> s.FlashSaleRedeemPayload:
    member_id = info.context.require_member()
    result = await flash_sales.redeem(member_id, input_pk(input.flash_sale_id, "FlashSale", "flashSaleId"),
                                      input.idempotency_key, info.context.redis, info.context.gate_pass)
    return s.FlashSaleRedeemPayload(order=await _order_payload(result.order_id), points_balance=result.points_balance)


@user_errors(s.PaymentNotifyPayload)
async def payment_notify(info: Info, input: s.PaymentNotifyInput) -> s.PaymentNotifyPayload:
    info.context.require_integration("payment")
    result = await mall.payment_notify(input.provider, input.out_trade_no, input.transaction_id, input.amount_fen,
                                       input.paid_at)
    return s.PaymentNotifyPayload(order=await _order_payload(result.order_id),
                                  payment_status=s.PaymentStatus(result.payment_status),
                                  refund_requested=s.Money(amount_fen=result.refund_requested_fen))


# --- node(id:) ------------------------------------------------------------------------------------

async def _product_node(info: Info, pk: int) -> Optional[s.Product]:
    """Products for everyone who may see them (exclusive zones by tier, archived ones to operators only)."""
    found = (await mall.products_by_id([pk])).get(pk)
    if found is None:
        return None
    if info.context.endpoint == "admin":
        return s.Product.of(found)
    visible = found.status != "ARCHIVED" and await mall.visible_to(await _tier_of_caller(info), found)
    return s.Product.of(found) if visible else None


async def _flash_sale_node(info: Info, pk: int) -> Optional[s.FlashSale]:
    try:
        sale = await flash_sales.sale(pk)
    except DomainError:
        return None
    if info.context.endpoint == "admin":
        return s.FlashSale.of(sale)
    product = (await mall.products_by_id([sale.product_id]))[sale.product_id]
    return s.FlashSale.of(sale) if await mall.visible_to(await _tier_of_caller(info), product) else None


async def _order_node(info: Info, pk: int) -> Optional[s.MallOrder]:
    found = await mall.order(pk)
    return s.MallOrder.of(found) if found and info.context.may_read_member(found.member_id) else None


async def _voucher_node(info: Info, pk: int) -> Optional[s.Voucher]:
    found = await vouchers.by_id(pk)
    if found is None or not info.context.may_read_member(found.info.member_id):
        return None
    return s.Voucher.of(found.info, found.merchant_code)


NODES = {"Product": _product_node, "FlashSale": _flash_sale_node, "MallOrder": _order_node, "Voucher": _voucher_node}


# --- operators -----------------------------------------------------------------------------------

async def _merchant_id(code: Optional[str]) -> Optional[int]:
    return None if code is None else (await merchants.by_code(code, ["input", "merchantCode"])).id


async def _tier_id(code: Optional[str]) -> Optional[int]:
    if code is None:
        return None
    found = next((t for t in await tiers.all_tiers() if t.code == code), None)
    if found is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no tier {code!r}", ["input", "minTierCode"])
    return found.id


async def admin_products(info: Info, first: int, after: Optional[str] = None,
                         kind: Optional[s.ProductKind] = None) -> Connection[s.Product]:
    info.context.require_operator()
    check_first(first)
    rows = await mall.browse(tier_id=None, spendable=None, kind=kind.value if kind else None, zone=None,
                             affordable=False, include_hidden=True, limit=first + 1, after_id=from_cursor(after))
    return Connection.of([s.Product.of(p) for p in rows], first, after)


async def _product_data(input: s.ProductCreateInput | s.ProductUpdateInput) -> mall.ProductData:
    return mall.ProductData(
        kind=input.kind.value if isinstance(input, s.ProductCreateInput) else None, name=input.name, description=input.description,
        image_urls=input.image_urls, merchant_id=await _merchant_id(input.merchant_code),
        face_value_fen=input.face_value_fen, validity_days=input.validity_days, points_price=input.points_price,
        cash_price_fen=input.cash_price_fen, limit_per_member=input.limit_per_member,
        limit_per_member_daily=input.limit_per_member_daily, zone=input.zone,
        min_tier_id=await _tier_id(input.min_tier_code),
        segment_id=input_pk(input.segment_id, "Segment", "segmentId") if input.segment_id is not None else None,
        sale_starts_at=input.sale_starts_at,
        sale_ends_at=input.sale_ends_at, status=input.status.value if input.status else None,
    )


@user_errors(s.ProductPayload)
async def product_create(info: Info, input: s.ProductCreateInput) -> s.ProductPayload:
    actor = info.context.operator_actor()
    return s.ProductPayload(product=s.Product.of(await mall.create_product(actor, await _product_data(input), input.stock)))


_CLEARABLE = {"description": "description", "merchantCode": "merchant_id", "faceValueFen": "face_value_fen",
              "limitPerMember": "limit_per_member", "limitPerMemberDaily": "limit_per_member_daily", "zone": "zone",
              "minTierCode": "min_tier_id", "segmentId": "segment_id", "saleStartsAt": "sale_starts_at", "saleEndsAt": "sale_ends_at"}


@user_errors(s.ProductPayload)
async def product_update(info: Info, input: s.ProductUpdateInput) -> s.ProductPayload:
    actor = info.context.operator_actor()
    unknown = [c for c in input.clear or [] if c not in _CLEARABLE]
    if unknown:
        raise DomainError(ErrorCode.INVALID_INPUT, f"cannot clear {', '.join(unknown)}", ["input", "clear"])
    product = await mall.update_product(actor, input_pk(input.product_id, "Product", "productId"),
                                        await _product_data(input), input.stock_delta,
                                        frozenset(_CLEARABLE[c] for c in input.clear or []))
    return s.ProductPayload(product=s.Product.of(product))


async def admin_flash_sales(info: Info, first: int, after: Optional[str] = None) -> Connection[s.FlashSale]:
    info.context.require_operator()
    check_first(first)
    rows = await flash_sales.sales_page(first + 1, from_cursor(after), include_hidden=True)
    return Connection.of([s.FlashSale.of(x) for x in rows], first, after)


@user_errors(s.FlashSalePayload)
async def flash_sale_create(info: Info, input: s.FlashSaleCreateInput) -> s.FlashSalePayload:
    sale = await flash_sales.create_sale(
        info.context.operator_actor(), product_id=input_pk(input.product_id, "Product", "productId"), title=input.title,
        points_price=input.points_price, stock=input.stock, per_member_limit=input.per_member_limit,
        starts_at=input.starts_at, ends_at=input.ends_at, redis=info.context.redis)
    return s.FlashSalePayload(flash_sale=s.FlashSale.of(sale))


@user_errors(s.FlashSalePayload)
async def flash_sale_update(info: Info, input: s.FlashSaleUpdateInput) -> s.FlashSalePayload:
    sale = await flash_sales.update_sale(
        info.context.operator_actor(), input_pk(input.flash_sale_id, "FlashSale", "flashSaleId"), title=input.title,
        points_price=input.points_price, per_member_limit=input.per_member_limit, starts_at=input.starts_at,
        ends_at=input.ends_at, status=input.status.value if input.status else None, stock_delta=input.stock_delta,
        redis=info.context.redis)
    return s.FlashSalePayload(flash_sale=s.FlashSale.of(sale))


@user_errors(s.FlashSaleGateRebuildPayload)
async def flash_sale_gate_rebuild(info: Info, input: s.FlashSaleGateRebuildInput) -> s.FlashSaleGateRebuildPayload:
    info.context.require_operator()
    sale_id = input_pk(input.flash_sale_id, "FlashSale", "flashSaleId")
    await flash_sales.sale(sale_id, fresh=True)
    redis = info.context.redis
    if redis is None or not await flash_sales.load_gate(redis, sale_id, force=True):
        raise DomainError(ErrorCode.INVALID_INPUT, "Redis is not configured or not reachable: the database decides alone",
                          ["input", "flashSaleId"])
    state = await flash_sales.gate_state(redis, sale_id)
    return s.FlashSaleGateRebuildPayload(gate=s.FlashSaleGate(loaded=state.loaded, stock=state.stock, buyers=state.buyers))


async def admin_orders(info: Info, first: int, after: Optional[str] = None,
                       member_id: Optional[strawberry.ID] = None) -> Connection[s.MallOrder]:
    info.context.require_operator()
    check_first(first)
    member_pk = from_global_id(member_id, "Member") if member_id else None
    if member_id and member_pk is None:
        return Connection.of([], first, after)
    rows = await mall.orders_page(member_pk[1] if member_pk else None, first + 1, from_cursor(after))
    return Connection.of([s.MallOrder.of(o) for o in rows], first, after)


@user_errors(s.MallOrderRefundPayload)
async def mall_order_refund(info: Info, input: s.MallOrderRefundInput) -> s.MallOrderRefundPayload:
    result = await mall.refund_order(info.context.require_operator(), input_pk(input.order_id, "MallOrder", "orderId"),
                                     input.reason, input.idempotency_key)
    await refreshed_gates(info.context.redis, result)
    return s.MallOrderRefundPayload(order=await _order_payload(result.order_id), points_returned=result.points_returned,
                                    cash_refund=s.Money(amount_fen=result.cash_refund_fen))


async def refreshed_gates(redis, result: mall.RefundResult) -> None:
    """A refunded unit is for sale (or to win) again: the Redis gate is reloaded from the database."""
    if redis is not None and result.flash_sale_id is not None:
        await flash_sales.load_gate(redis, result.flash_sale_id, force=True)
    if redis is not None and result.draw_prize_id is not None:
        await draws.reload_prize_gate(redis, result.draw_prize_id)


@user_errors(s.MallOrdersExpireRunPayload)
async def mall_orders_expire_run(info: Info, input: s.MallOrdersExpireRunInput) -> s.MallOrdersExpireRunPayload:
    result = await operators.run_order_expiry(info.context.operator_actor(), input.as_of)
    return s.MallOrdersExpireRunPayload(orders_expired=result.orders_expired, points_released=result.points_released)
