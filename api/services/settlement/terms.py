"""Settlement terms: per merchant (pointCostSharePercent, commissionPercent), per product (a fixed
settlement price per written-off voucher). New terms apply to postings from now on; posted rows keep theirs."""
from __future__ import annotations

from dataclasses import dataclass

from api.db import transaction
from api.models import MerchantTerms, Product, ProductSettlement
from api.services import clock, merchants
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode

MAX_PRICE_FEN = 100_000_000  # a million yuan per voucher is a typo


@dataclass(frozen=True)
class Terms:
    merchant_id: int
    point_cost_share_percent: int
    commission_percent: int


def _percent(value: int | None, field: str) -> None:
    if value is not None and not 0 <= value <= 100:
        raise DomainError(ErrorCode.INVALID_INPUT, f"{field} must be 0 to 100", ["input", field])


async def of_merchant(merchant_id: int) -> Terms:
    row = await MerchantTerms.filter(merchant_id=merchant_id).first()
    if row is None:
        return Terms(merchant_id, 0, 0)
    return Terms(merchant_id, row.point_cost_share_percent, row.commission_percent)


async def of_merchants(merchant_ids: list[int]) -> dict[int, Terms]:
    rows = await MerchantTerms.filter(merchant_id__in=merchant_ids)
    found = {r.merchant_id: Terms(r.merchant_id, r.point_cost_share_percent, r.commission_percent) for r in rows}
    return {m: found.get(m, Terms(m, 0, 0)) for m in merchant_ids}


async def update(actor: Actor, merchant_code: str, point_cost_share_percent: int | None,
                 commission_percent: int | None) -> merchants.MerchantInfo:
    """Changes a merchant's terms (fields left out keep their value); audited with before and after."""
    _percent(point_cost_share_percent, "pointCostSharePercent")
    _percent(commission_percent, "commissionPercent")
    merchant = await merchants.by_code(merchant_code, ["input", "merchantCode"])
    async with transaction() as tx:
        before = await of_merchant(merchant.id)
        after = Terms(merchant.id,
                      before.point_cost_share_percent if point_cost_share_percent is None else point_cost_share_percent,
                      before.commission_percent if commission_percent is None else commission_percent)
        await MerchantTerms.update_or_create(
            defaults={"point_cost_share_percent": after.point_cost_share_percent,
                      "commission_percent": after.commission_percent, "updated_at": clock.now()},
            merchant_id=merchant.id)
        await audit(tx, actor, "merchant.terms_update", "merchant", str(merchant.id), None,
                    before=_view(before), after=_view(after))
    return merchant


def _view(t: Terms) -> dict:
    return {"pointCostSharePercent": t.point_cost_share_percent, "commissionPercent": t.commission_percent}


async def product_price(product_id: int) -> int | None:
    row = await ProductSettlement.filter(product_id=product_id).first()
    return None if row is None else row.settlement_price_fen


async def set_product_price(actor: Actor, product_id: int, price_fen: int | None) -> int | None:
    """Sets (or, with None, removes: back to the points' value) a product's fixed settlement price."""
    if price_fen is not None and not 0 <= price_fen <= MAX_PRICE_FEN:
        raise DomainError(ErrorCode.INVALID_INPUT, f"settlementPriceFen must be 0 to {MAX_PRICE_FEN}",
                          ["input", "settlementPriceFen"])
    if not await Product.filter(id=product_id, merchant_id__isnull=False).exists():
        raise DomainError(ErrorCode.NOT_FOUND, "no such merchant product", ["input", "productId"])
    async with transaction() as tx:
        before = await product_price(product_id)
        if price_fen is None:
            await ProductSettlement.filter(product_id=product_id).delete()
        else:
            await ProductSettlement.update_or_create(
                defaults={"settlement_price_fen": price_fen, "updated_at": clock.now()}, product_id=product_id)
        await audit(tx, actor, "product.settlement_price", "product", str(product_id), None,
                    before={"settlementPriceFen": before}, after={"settlementPriceFen": price_fen})
    return price_fen
