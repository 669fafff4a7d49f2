"""The points mall: the catalogue, redemption for points alone, points-plus-cash checkout (hold →
pay → confirm, or lapse), order refunds, flash sales and vouchers.

One idea a module:
    catalogue    products: the record, operators' create and update, reads by id
    zones        exclusive zones (a minimum tier) and the member's catalogue pages
    orders       the order record and reads; the steps every way of buying shares (limits, the order
                 row, the vouchers, the conditional stock update)
    redemption   pointsMallRedeem
    checkout     checkoutCreate, checkoutCancel, and a checkout's confirmation and lapse
    payments     the payment record, the provider's notification, the providers
    expiry       the lapse run of unpaid checkouts
    refunds      mallOrderRefund
    flash_sales  flash sales (operators, flashSaleRedeem); flash_terms (the terms cache) and gate (the
                 Redis gate) behind it
    stock_gate   a Redis counter in front of a stock the database keeps (lucky-draw prizes)
    vouchers     voucher codes and their write-off by merchant staff
    records      the records the schema reads, built from the models by field name
    sql          the few statements that stay SQL, each with the reason

Lock order (api/locks.py): idempotency key, member's account, order, vouchers, product or flash-sale
stock (taken last, by a conditional update whose row count decides).

Flash sales, vouchers and the stock gate are used as modules: `from api.services.mall import flash_sales`.
A module's settings are its own: a test patches `mall.expiry.EXPIRE_CHUNK`, not `mall.EXPIRE_CHUNK`.
"""
from api.services.mall.catalogue import (
    KINDS,
    MAX_PRICE,
    MAX_STOCK,
    STATUSES,
    ProductData,
    ProductInfo,
    create_product,
    product,
    products,
    products_by_id,
    update_product,
)
from api.services.mall.checkout import cancel_checkout, checkout_create, payment_provider
from api.services.mall.expiry import ExpireResult, expire_orders
from api.services.mall.orders import (
    MAX_QUANTITY,
    NOTIFY_GRACE,
    OrderInfo,
    OrderResult,
    insert_order,
    issue_vouchers,
    member_scope,
    new_order_no,
    order,
    orders_page,
    take_stock,
)
from api.services.mall.payments import NotifyResult, PaymentInfo, payment_for_order, payment_notify
from api.services.mall.redemption import redeem
from api.services.mall.refunds import RefundResult, refund_order
from api.services.mall.zones import browse, visible_to, zone_filter

__all__ = [
    "KINDS", "MAX_PRICE", "MAX_QUANTITY", "MAX_STOCK", "NOTIFY_GRACE", "STATUSES",
    "ExpireResult", "NotifyResult", "OrderInfo", "OrderResult", "PaymentInfo", "ProductData", "ProductInfo",
    "RefundResult",
    "browse", "cancel_checkout", "checkout_create", "create_product", "expire_orders", "insert_order",
    "issue_vouchers", "member_scope", "new_order_no", "order", "orders_page", "payment_for_order", "payment_notify",
    "payment_provider", "product", "products", "products_by_id", "redeem", "refund_order", "take_stock",
    "update_product", "visible_to", "zone_filter",
]
