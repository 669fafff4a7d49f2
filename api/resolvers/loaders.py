"""The request's DataLoaders: one batch per kind of related object, so that a list of N objects costs one
query per field, not N. Field resolvers reach them as `info.context.loaders.<name>.load(key)`.

Most batches are service functions. Three are written here, through the Tortoise models, because the
services have no batch for them yet: orders by id (`DrawPlay.order`), payments by order
(`MallOrder.payment`), each returning the service's own record type, and a member's plays of a page of
games (`DrawGame.myDay`, the counts of `draws.member_day`). `tests/test_nodes.py` checks each against the
service's one-at-a-time read.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from strawberry.dataloader import DataLoader
from tortoise.functions import Count, Sum

from api.models.draws import DrawPlay
from api.models.mall import MallOrder, Payment, PaymentRefund
from api.services import clock, draws, earning, insight, ledger, mall, members, merchants, operators, parking, tiers
from api.services.mall import vouchers
from api.services.segments import segments
from api.services.segments import tags as member_tags

Batch = Callable[[list[Any]], Awaitable[dict[Any, Any] | Sequence[Any]]]

ORDER_FIELDS = ("id", "order_no", "member_id", "product_id", "flash_sale_id", "channel", "status", "quantity",
                "points", "cash_fen", "created_at", "expires_at", "paid_at", "closed_at")


class batched:  # noqa: N801 - used like a field declaration
    """A DataLoader of the request, made on first use (most requests use one or two). `batch` is looked up
    then (so a test that replaces a service function sees its replacement); it returns a list in key order
    or a dict by key (a missing key loads `default`)."""

    def __init__(self, batch: Callable[[], Batch], default: Any = None) -> None:
        self.batch, self.default, self.name = batch, default, ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, loaders: Any, owner: type | None = None) -> DataLoader[Any, Any]:
        fn, default = self.batch(), self.default

        async def load(keys: list[Any]) -> list[Any]:
            found = await fn(list(keys))
            return [found.get(k, default) for k in keys] if isinstance(found, dict) else list(found)

        loader: DataLoader[Any, Any] = DataLoader(load_fn=load)
        loaders.__dict__[self.name] = loader  # later reads find it on the instance
        return loader


async def orders_by_id(ids: list[int]) -> dict[int, mall.OrderInfo]:
    rows = await MallOrder.filter(id__in=ids).values(*ORDER_FIELDS)
    return {row["id"]: mall.OrderInfo(**{**row, "points": int(row["points"]), "cash_fen": int(row["cash_fen"])})
            for row in rows}


async def payments_by_order(order_ids: list[int]) -> dict[int, mall.PaymentInfo]:
    rows = await Payment.filter(order_id__in=order_ids).values(
        "id", "order_id", "provider", "out_trade_no", "amount_fen", "status", "transaction_id", "paid_at",
        "order__expires_at")
    refunded = await PaymentRefund.filter(payment_id__in=[r["id"] for r in rows]).group_by("payment_id").annotate(
        total=Sum("amount_fen")).values("payment_id", "total") if rows else []
    totals = {r["payment_id"]: int(r["total"] or 0) for r in refunded}
    return {r["order_id"]: mall.PaymentInfo(
        r["id"], r["order_id"], r["provider"], r["out_trade_no"], int(r["amount_fen"]), r["status"],
        r["transaction_id"], r["paid_at"], r["order__expires_at"], totals.get(r["id"], 0)) for r in rows}


async def tiers_by_id(ids: list[int]) -> dict[int, tiers.TierInfo]:
    """Every tier (deactivated ones too, as `tiers.tier_by_id`), from the process cache, read once for all the rows of a list (not once per row when the
    cache has just expired), and again if a tier is missing (just created)."""
    found = {t.id: t for t in await tiers.every_tier()}
    if any(i not in found for i in ids):
        found = {t.id: t for t in await tiers.every_tier(refresh=True)}
    return found


async def merchants_by_id(ids: list[int]) -> dict[int, merchants.MerchantInfo]:
    """From the process cache of merchants: the first look-up refreshes it if needed, the others hit it."""
    found = {}
    for merchant_id in ids:
        merchant = await merchants.by_id(merchant_id)
        if merchant is not None:
            found[merchant_id] = merchant
    return found


@dataclass(frozen=True)
class PlayCounts:
    total: int = 0
    today: int = 0  # since the start of today's Asia/Shanghai day
    free_today: int = 0


async def count_plays(keys: list[tuple[int, int]]) -> dict[tuple[int, int], PlayCounts]:
    """A member's plays of each game, by (member id, game id)."""
    since, counts = clock.day_start(clock.now()), {}
    for member_id in {m for m, _ in keys}:
        plays = DrawPlay.filter(member_id=member_id, game_id__in=[g for m, g in keys if m == member_id])
        total = await plays.group_by("game_id").annotate(n=Count("id")).values("game_id", "n")
        today = await plays.filter(played_at__gte=since).group_by("game_id", "free").annotate(
            n=Count("id")).values("game_id", "free", "n")
        for row in total:
            mine = [r for r in today if r["game_id"] == row["game_id"]]
            counts[(member_id, row["game_id"])] = PlayCounts(
                int(row["n"]), sum(int(r["n"]) for r in mine), sum(int(r["n"]) for r in mine if r["free"]))
    return counts


class Loaders:
    """The DataLoaders of one request (`Context.loaders`)."""

    # members and points
    tier = batched(lambda: tiers_by_id)  # int → tiers.TierInfo
    merchant = batched(lambda: merchants_by_id)  # int → merchants.MerchantInfo | None
    member = batched(lambda: members.get_members)  # int → members.MemberRecord | None
    balance = batched(lambda: ledger.balances, 0)  # int → int
    held = batched(lambda: ledger.held_points, 0)  # int → int
    tags = batched(lambda: member_tags.tags_of, [])  # int → list[str] (issue 13)
    breakdown = batched(lambda: earning.breakdowns)  # int → Any
    pending = batched(lambda: earning.pending_totals, 0)  # int → int
    operator = batched(lambda: operators.get_many)  # int → operators.OperatorInfo | None (issue 10)
    insight = batched(lambda: insight.for_members)  # int → insight.InsightRecord | None (issue 13)
    segment = batched(lambda: segments.get_many)  # int → segments.SegmentInfo | None (issue 13)
    # the points mall
    product = batched(lambda: mall.products_by_id)  # int → mall.ProductInfo
    order = batched(lambda: orders_by_id)  # int → mall.OrderInfo | None
    payment = batched(lambda: payments_by_order)  # int → mall.PaymentInfo | None
    order_vouchers = batched(lambda: vouchers.for_orders)  # int → list[vouchers.VoucherView]
    # draws and parking
    draw_game = batched(lambda: draws.games_by_id)  # int → draws.GameInfo
    play_counts = batched(lambda: count_plays, PlayCounts())  # (member id, game id) → PlayCounts
    car_park = batched(lambda: parking.car_parks_by_id)  # int → parking.CarParkInfo
    vehicles = batched(lambda: parking.vehicles_of, [])  # int → list[parking.VehicleInfo]
