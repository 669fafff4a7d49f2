"""pointsMallRedeem: a product for points alone, in one transaction.

How a write is done (docs/mall.md): the transaction claims the idempotency key, locks the member's
account (which serialises the member's own orders, so per-member limits are counted safely), checks,
writes the order, spends the points, issues the vouchers, and takes the stock last, with a
conditional update, so that the hot row is locked as briefly as possible.
"""
from __future__ import annotations

from api.db import transaction
from api.services import clock, idempotency
from api.services.errors import DomainError, ErrorCode
from api.services.mall.catalogue import product
from api.services.mall.orders import (
    OrderResult,
    check_quantity,
    check_sale,
    insufficient,
    lock_member,
    member_scope,
    pay_with_points,
)


async def redeem(member_id: int, product_id: int, quantity: int, idempotency_key: str) -> OrderResult:
    """pointsMallRedeem: a product for points alone."""
    key = idempotency.check_key(idempotency_key, ["input", "idempotencyKey"])
    check_quantity(quantity)
    digest = idempotency.request_hash("pointsMallRedeem", {"productId": product_id, "quantity": quantity})
    now = clock.now()
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, member_scope(member_id), key, digest, ["input", "idempotencyKey"])
        if stored is not None:
            return OrderResult(**stored)
        p = await product(product_id, ["input", "productId"])
        if p.cash_price_fen:
            raise DomainError(ErrorCode.INVALID_INPUT, "this product needs cash too: use checkoutCreate",
                              ["input", "productId"])
        if p.stock < quantity:  # a read before any lock: sold-out answers cost no lock at all
            raise DomainError(ErrorCode.OUT_OF_STOCK, "sold out", ["input", "productId"])
        acct = await lock_member(tx, member_id, now)
        await check_sale(tx, acct, p, quantity, now)
        points = p.points_price * quantity
        if acct.spendable < points:
            raise insufficient(acct, points)
        result = await pay_with_points(tx, acct, p, points=points, reason=f"积分商城兑换 {p.name}×{quantity}",
                                       quantity=quantity, channel="REDEEM", flash_sale_id=None, key=key, now=now,
                                       record_id=record_id)
    return result
