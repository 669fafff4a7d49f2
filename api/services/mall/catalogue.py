"""The catalogue: products, as operators create and change them, and read by id."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.expressions import F

from api import locks
from api.db import transaction
from api.locks import Rank
from api.models import Product
from api.services import clock
from api.services import text as hygiene
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode
from api.services.mall.records import names, record
from api.services.segments import membership

KINDS = ("GOODS", "COUPON", "MERCHANT_VOUCHER", "PARKING_COUPON")
STATUSES = ("ACTIVE", "PAUSED", "ARCHIVED")
MAX_PRICE = 100_000_000
MAX_STOCK = 10_000_000


@dataclass(frozen=True)
class ProductInfo:
    id: int
    kind: str
    name: str
    description: str | None
    image_urls: list[str]
    merchant_id: int | None
    face_value_fen: int | None
    validity_days: int
    points_price: int
    cash_price_fen: int
    stock: int
    limit_per_member: int | None
    limit_per_member_daily: int | None
    zone: str | None
    min_tier_id: int | None
    segment_id: int | None  # only members of this segment may buy it (issue 13 item 3)
    sale_starts_at: datetime | None
    sale_ends_at: datetime | None
    status: str
    created_at: datetime
    updated_at: datetime

    def on_sale(self, now: datetime) -> bool:
        return (self.status == "ACTIVE" and (self.sale_starts_at is None or self.sale_starts_at <= now)
                and (self.sale_ends_at is None or now < self.sale_ends_at))


@dataclass(frozen=True)
class ProductData:
    """What an operator sets on a product; on update, None leaves a field as it is."""

    kind: str | None = None
    name: str | None = None
    description: str | None = None
    image_urls: list[str] | None = None
    merchant_id: int | None = None
    face_value_fen: int | None = None
    validity_days: int | None = None
    points_price: int | None = None
    cash_price_fen: int | None = None
    limit_per_member: int | None = None
    limit_per_member_daily: int | None = None
    zone: str | None = None
    min_tier_id: int | None = None
    segment_id: int | None = None
    sale_starts_at: datetime | None = None
    sale_ends_at: datetime | None = None
    status: str | None = None


def info(source: Product | dict[str, Any]) -> ProductInfo:
    """The record of a product (a model or a `values()` row): the image URLs are stored as JSON."""
    urls = source["image_urls"] if isinstance(source, dict) else source.image_urls
    return record(ProductInfo, source, image_urls=json.loads(urls or "[]"))


async def products(**filters: Any) -> list[ProductInfo]:
    """Products matching `filters` (Tortoise filter arguments), by id."""
    rows = await Product.filter(**filters).order_by("id").values(*names(ProductInfo))
    return [info(r) for r in rows]


async def product(product_id: int, field: list[str] | None = None) -> ProductInfo:
    """A product by id (inside a transaction, read on the transaction's connection); NOT_FOUND at `field`."""
    found = await Product.get_or_none(id=product_id)
    if found is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such product", field or ["productId"])
    return info(found)


async def products_by_id(ids: list[int]) -> dict[int, ProductInfo]:
    """A DataLoader's batch function: the products with these ids."""
    return {p.id: p for p in await products(id__in=ids)} if ids else {}


def _invalid(message: str, field: str) -> DomainError:
    return DomainError(ErrorCode.INVALID_INPUT, message, ["input", field])


def _validate_kind_and_prices(p: dict[str, Any]) -> None:
    if p["kind"] not in KINDS:
        raise _invalid(f"kind must be one of {', '.join(KINDS)}", "kind")
    hygiene.name(p["name"], ["input", "name"], 128)  # 1 to 128 characters, no control characters
    urls = p["image_urls"] or []
    if len(urls) > 10 or any(not str(u).startswith(("https://", "http://")) or len(str(u)) > 500 for u in urls):
        raise _invalid("imageUrls: at most 10 http(s) URLs of up to 500 characters", "imageUrls")
    if not 0 <= p["points_price"] <= MAX_PRICE or not 0 <= p["cash_price_fen"] <= MAX_PRICE:
        raise _invalid(f"prices must be 0 to {MAX_PRICE}", "pointsPrice")
    if p["points_price"] + p["cash_price_fen"] == 0:
        raise _invalid("a product needs a price in points, in cash, or both", "pointsPrice")
    if p["kind"] == "MERCHANT_VOUCHER" and (p["merchant_id"] is None or not p["face_value_fen"]):
        raise _invalid("a merchant voucher needs a merchant and a face value", "merchantCode")
    if p["kind"] == "PARKING_COUPON" and not p["face_value_fen"]:
        raise _invalid("a parking coupon needs a face value (fen off the parking fee)", "faceValueFen")
    if p["face_value_fen"] is not None and not 0 < p["face_value_fen"] <= MAX_PRICE:
        raise _invalid("faceValueFen must be positive", "faceValueFen")


def _validate(p: dict[str, Any]) -> None:
    _validate_kind_and_prices(p)
    if not 1 <= p["validity_days"] <= 3660:
        raise _invalid("validityDays must be 1 to 3660", "validityDays")
    for name, field in (("limit_per_member", "limitPerMember"), ("limit_per_member_daily", "limitPerMemberDaily")):
        if p[name] is not None and not 1 <= p[name] <= 10_000:
            raise _invalid(f"{field} must be 1 to 10000 (or null: no limit)", field)
    if p["sale_starts_at"] and p["sale_ends_at"] and p["sale_ends_at"] <= p["sale_starts_at"]:
        raise _invalid("saleEndsAt must be after saleStartsAt", "saleEndsAt")
    if p["status"] not in STATUSES:
        raise _invalid(f"status must be one of {', '.join(STATUSES)}", "status")
    if p["zone"] is not None and not 1 <= len(p["zone"]) <= 32:
        raise _invalid("zone must be 1 to 32 characters", "zone")
    if p["zone"] is not None and hygiene.has_control(p["zone"]):
        raise _invalid("zone must not contain control characters", "zone")


def _stored(changes: dict[str, Any]) -> dict[str, Any]:
    """Values as the model stores them (the image URLs as JSON)."""
    return {n: json.dumps(v) if n == "image_urls" else v for n, v in changes.items()}


async def create_product(actor: Actor, data: ProductData, stock: int) -> ProductInfo:
    fields = {name: getattr(data, name) for name in names(ProductData)}
    fields["image_urls"] = fields["image_urls"] or []
    fields["validity_days"] = fields["validity_days"] or 30
    fields["cash_price_fen"] = fields["cash_price_fen"] or 0
    fields["points_price"] = fields["points_price"] or 0
    fields["status"] = fields["status"] or "ACTIVE"
    _validate(fields)
    if not 0 <= stock <= MAX_STOCK:
        raise _invalid(f"stock must be 0 to {MAX_STOCK}", "stock")
    if data.segment_id is not None:
        await membership.require(data.segment_id, ["input", "segmentId"])
    now = clock.now()
    async with transaction() as tx:
        created = await Product.create(**_stored(fields), stock=stock, created_at=now, updated_at=now)
        await audit(tx, actor, "product.create", "product", str(created.id), {**fields, "stock": stock})
    return await product(created.id)


async def update_product(actor: Actor, product_id: int, data: ProductData, stock_delta: int = 0,
                         clear: frozenset[str] = frozenset()) -> ProductInfo:
    """Changes the given fields (and `clear` sets optional ones to null); `stock_delta` adds or
    removes stock without racing concurrent sales (stock never goes below zero)."""
    if data.segment_id is not None:
        await membership.require(data.segment_id, ["input", "segmentId"])
    async with transaction() as tx:
        locked = await locks.row(Rank.PRODUCT, Product, product_id)
        if locked is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such product", ["input", "productId"])
        current = info(locked)
        changes = {n: getattr(data, n) for n in names(ProductData) if getattr(data, n) is not None}
        changes.update({n: None for n in clear})
        _validate({**{n: getattr(current, n) for n in names(ProductData)}, **changes})
        if not -MAX_STOCK <= stock_delta <= MAX_STOCK or current.stock + stock_delta > MAX_STOCK:
            raise _invalid("stockDelta is out of range", "stockDelta")
        if current.stock + stock_delta < 0:
            raise DomainError(ErrorCode.OUT_OF_STOCK, f"only {current.stock} in stock", ["input", "stockDelta"])
        await Product.filter(id=product_id).update(stock=F("stock") + stock_delta, updated_at=clock.now(),
                                                   **_stored(changes))
        await audit(tx, actor, "product.update", "product", str(product_id), {**changes, "stockDelta": stock_delta})
    return await product(product_id)
