"""The points mall: catalogue, orders, points holds, payments, vouchers, flash sales, merchant staff."""
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

if TYPE_CHECKING:
    from api.models.ledger import PointsAccount, PointsEntry
    from api.models.members import Member, Tier
    from api.models.merchants import Merchant


class Product(Model):
    # Something the mall sells for points, or points plus cash. Kinds: GOODS (picked up at a service
    # desk), COUPON (mall-wide), MERCHANT_VOUCHER (bound to a merchant, with a face value),
    # PARKING_COUPON. Every sale issues a voucher: a unique code that is written off once.

    id = fields.IntField(primary_key=True)
    kind = fields.CharField(max_length=20)
    name = fields.CharField(max_length=128)
    description = fields.TextField(null=True)
    image_urls = fields.TextField(default="[]")  # JSON list of URLs
    merchant: fields.ForeignKeyNullableRelation["Merchant"] = fields.ForeignKeyField(
        "models.Merchant", related_name=False, on_delete=fields.RESTRICT, null=True)
    merchant_id: int | None
    face_value_fen = fields.BigIntField(null=True)
    validity_days = fields.IntField(default=30)  # a voucher is valid this many days after it is issued
    points_price = fields.BigIntField()
    cash_price_fen = fields.BigIntField(default=0)
    stock = fields.BigIntField()
    limit_per_member = fields.IntField(null=True)  # in total
    limit_per_member_daily = fields.IntField(null=True)  # per Asia/Shanghai day
    zone = fields.CharField(max_length=32, null=True)  # e.g. GOLD: a zone shown to min_tier and above
    min_tier: fields.ForeignKeyNullableRelation["Tier"] = fields.ForeignKeyField(
        "models.Tier", related_name=False, on_delete=fields.RESTRICT, null=True)
    min_tier_id: int | None
    # Only members of this segment (issue 13 item 3); null = everyone.
    # (typed as a Model: api.models.reach refers to this module, and the import graph has no circles)
    segment: fields.ForeignKeyNullableRelation[Model] = fields.ForeignKeyField(
        "models.Segment", related_name=False, on_delete=fields.RESTRICT, null=True)
    segment_id: int | None
    sale_starts_at = fields.DatetimeField(null=True)
    sale_ends_at = fields.DatetimeField(null=True)
    status = fields.CharField(max_length=12, default="ACTIVE")  # ACTIVE PAUSED ARCHIVED
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "product"
        indexes = (("status", "kind"),)
        constraints = (
            CheckConstraint(check="stock >= 0", name="product_stock_nonneg"),
            CheckConstraint(
                check="points_price >= 0 AND cash_price_fen >= 0 AND points_price + cash_price_fen > 0",
                name="product_price",
            ),
        )


class FlashSale(Model):
    # 秒杀: a product sold for points in a window, from a stock of its own, at most per_member_limit
    # per member. The row's stock is the record; Redis only gates in front of it.

    id = fields.IntField(primary_key=True)
    product: fields.ForeignKeyRelation["Product"] = fields.ForeignKeyField(
        "models.Product", related_name="flash_sales", on_delete=fields.RESTRICT)
    product_id: int
    title = fields.CharField(max_length=128)
    points_price = fields.BigIntField()
    stock = fields.BigIntField()
    stock_total = fields.BigIntField()
    per_member_limit = fields.IntField(default=1)
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField()
    status = fields.CharField(max_length=12, default="ACTIVE")  # ACTIVE PAUSED ARCHIVED
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "flash_sale"
        indexes = (("starts_at",),)
        constraints = (
            CheckConstraint(check="stock >= 0 AND stock <= stock_total", name="flash_sale_stock"),
            CheckConstraint(check="points_price > 0 AND per_member_limit > 0", name="flash_sale_terms"),
        )


class MallOrder(Model):
    # One purchase in the points mall. channel: REDEEM (points alone), CHECKOUT (points plus cash),
    # FLASH_SALE. status: PENDING_PAYMENT (checkout, holding stock and points) -> PAID, or EXPIRED /
    # CANCELLED (holds released); PAID -> REFUNDED.

    id = fields.BigIntField(primary_key=True)
    order_no = fields.CharField(max_length=32, unique=True)
    member: fields.ForeignKeyRelation["Member"] = fields.ForeignKeyField(
        "models.Member", related_name=False, on_delete=fields.RESTRICT)
    member_id: int
    product: fields.ForeignKeyRelation["Product"] = fields.ForeignKeyField(
        "models.Product", related_name=False, on_delete=fields.RESTRICT)
    product_id: int
    flash_sale: fields.ForeignKeyNullableRelation["FlashSale"] = fields.ForeignKeyField(
        "models.FlashSale", related_name=False, on_delete=fields.RESTRICT, null=True)
    flash_sale_id: int | None
    channel = fields.CharField(max_length=12)
    status = fields.CharField(max_length=16)
    quantity = fields.IntField()
    points = fields.BigIntField()  # in total
    cash_fen = fields.BigIntField()  # in total
    idempotency_key = fields.CharField(max_length=128)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(null=True)  # when an unpaid checkout lapses
    paid_at = fields.DatetimeField(null=True)
    closed_at = fields.DatetimeField(null=True)  # expired, cancelled or refunded
    spend_entry: fields.ForeignKeyNullableRelation["PointsEntry"] = fields.ForeignKeyField(
        "models.PointsEntry", related_name=False, on_delete=fields.RESTRICT, null=True)
    spend_entry_id: int | None
    refund_entry: fields.ForeignKeyNullableRelation["PointsEntry"] = fields.ForeignKeyField(
        "models.PointsEntry", related_name=False, on_delete=fields.RESTRICT, null=True)
    refund_entry_id: int | None

    class Meta:
        table = "mall_order"
        indexes = (("member_id", "product_id", "created_at"), ("flash_sale_id", "member_id"), ("status", "expires_at"))
        constraints = (
            CheckConstraint(check="quantity > 0 AND points >= 0 AND cash_fen >= 0", name="mall_order_amounts"),
        )


class PointsHold(Model):
    # Points set aside for an order that waits for something (payment, a parking exit). Held points
    # are not spendable; the hold is captured (one SPEND entry), or released. It is not an entry:
    # the balance does not change until the capture. A hold past expires_at no longer holds.

    id = fields.BigIntField(primary_key=True)
    account: fields.ForeignKeyRelation["PointsAccount"] = fields.ForeignKeyField(
        "models.PointsAccount", related_name=False, on_delete=fields.RESTRICT)
    account_id: int
    points = fields.BigIntField()
    status = fields.CharField(max_length=10)  # HELD CAPTURED RELEASED
    source_type = fields.CharField(max_length=32)
    source_ref = fields.CharField(max_length=64)
    expires_at = fields.DatetimeField()
    created_at = fields.DatetimeField()
    settled_at = fields.DatetimeField(null=True)
    entry: fields.ForeignKeyNullableRelation["PointsEntry"] = fields.ForeignKeyField(
        "models.PointsEntry", related_name=False, on_delete=fields.RESTRICT, null=True)
    entry_id: int | None

    class Meta:
        table = "points_hold"
        unique_together = (("source_type", "source_ref"),)
        indexes = (("account_id", "status"),)
        constraints = (CheckConstraint(check="points > 0", name="points_hold_pos"),)


class Payment(Model):
    # The cash part of a checkout, as asked of the payment provider and as it notified us.
    # status: PENDING -> PAID; LATE (paid after the order lapsed: the cash goes back, see refunds).

    id = fields.BigIntField(primary_key=True)
    order: fields.OneToOneRelation["MallOrder"] = fields.OneToOneField(
        "models.MallOrder", related_name="payment", on_delete=fields.RESTRICT)
    order_id: int
    provider = fields.CharField(max_length=16)
    out_trade_no = fields.CharField(max_length=32, unique=True)
    amount_fen = fields.BigIntField()
    status = fields.CharField(max_length=10)
    transaction_id = fields.CharField(max_length=64, null=True, unique=True)
    created_at = fields.DatetimeField()
    paid_at = fields.DatetimeField(null=True)

    class Meta:
        table = "payment"
        constraints = (CheckConstraint(check="amount_fen > 0", name="payment_amount_pos"),)


class PaymentRefund(Model):
    # Cash to give back through the provider: for a refunded order, or a payment that came too late.

    id = fields.BigIntField(primary_key=True)
    payment: fields.ForeignKeyRelation["Payment"] = fields.ForeignKeyField(
        "models.Payment", related_name="refunds", on_delete=fields.RESTRICT)
    payment_id: int
    amount_fen = fields.BigIntField()
    reason = fields.CharField(max_length=200)
    status = fields.CharField(max_length=10)  # REQUESTED (the provider's answer is recorded later)
    created_at = fields.DatetimeField()

    class Meta:
        table = "payment_refund"
        constraints = (CheckConstraint(check="amount_fen > 0", name="payment_refund_pos"),)


class Voucher(Model):
    # A code the member shows: a merchant voucher, a coupon, a parking coupon or a pickup for goods.
    # Written off (核销) once, by staff of its merchant (any merchant's staff when merchant is null).

    id = fields.BigIntField(primary_key=True)
    code = fields.CharField(max_length=24, unique=True)
    order: fields.ForeignKeyRelation["MallOrder"] = fields.ForeignKeyField(
        "models.MallOrder", related_name="vouchers", on_delete=fields.RESTRICT)
    order_id: int
    member: fields.ForeignKeyRelation["Member"] = fields.ForeignKeyField(
        "models.Member", related_name=False, on_delete=fields.RESTRICT)
    member_id: int
    product: fields.ForeignKeyRelation["Product"] = fields.ForeignKeyField(
        "models.Product", related_name=False, on_delete=fields.RESTRICT)
    product_id: int
    merchant: fields.ForeignKeyNullableRelation["Merchant"] = fields.ForeignKeyField(
        "models.Merchant", related_name=False, on_delete=fields.RESTRICT, null=True)
    merchant_id: int | None
    kind = fields.CharField(max_length=20)
    face_value_fen = fields.BigIntField(null=True)
    status = fields.CharField(max_length=8)  # ISSUED USED VOID
    valid_from = fields.DatetimeField()
    valid_until = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    used_by: fields.ForeignKeyNullableRelation["MerchantStaff"] = fields.ForeignKeyField(
        "models.MerchantStaff", related_name=False, on_delete=fields.RESTRICT, null=True)
    used_by_id: int | None
    used_merchant: fields.ForeignKeyNullableRelation["Merchant"] = fields.ForeignKeyField(
        "models.Merchant", related_name=False, on_delete=fields.RESTRICT, null=True)
    used_merchant_id: int | None
    created_at = fields.DatetimeField()

    class Meta:
        table = "voucher"
        indexes = (("member_id", "id"), ("used_merchant_id", "used_at"))


class MerchantStaff(Model):
    # An account of a merchant's staff (商户助手): sees and writes off its own merchant's vouchers.

    id = fields.IntField(primary_key=True)
    merchant: fields.ForeignKeyRelation["Merchant"] = fields.ForeignKeyField(
        "models.Merchant", related_name="staff", on_delete=fields.RESTRICT)
    merchant_id: int
    username = fields.CharField(max_length=64, unique=True)
    display_name = fields.CharField(max_length=64)
    password_hash = fields.CharField(max_length=256)
    active = fields.BooleanField(default=True)
    # MANAGER (confirms statements, manages clerks) or CLERK (writes off, sees the day); issue 12.
    role = fields.CharField(max_length=16, db_default="MANAGER")
    created_at = fields.DatetimeField()

    class Meta:
        table = "merchant_staff"
