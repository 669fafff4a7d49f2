"""Operators define games and prizes: checks, create, change terms, re-weight and restock prizes."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from tortoise.expressions import F

from api import locks
from api.db import transaction
from api.locks import Rank
from api.models import DrawGame, DrawPrize
from api.services import clock, mall, tiers
from api.services import text as hygiene
from api.services.audit import Actor, audit
from api.services.draws.games import GameInfo, forget, game
from api.services.draws.gate import reload_prize_gate
from api.services.errors import DomainError, ErrorCode
from api.services.segments import membership

GAME_KINDS = ("WHEEL", "NINE_GRID", "SCRATCH")
PRIZE_KINDS = ("POINTS", "COUPON", "GIFT", "NOTHING")
STATUSES = ("ACTIVE", "PAUSED", "ARCHIVED")
MAX_PRIZES = 12
MAX_WEIGHT = 1_000_000


@dataclass(frozen=True)
class PrizeData:
    name: str
    kind: str
    weight: int
    points: int | None = None
    product_id: int | None = None
    stock: int | None = None
    position: int = 0


def _invalid(message: str, *field: str) -> DomainError:
    return DomainError(ErrorCode.INVALID_INPUT, message, ["input", *field])


async def _check_prize(p: PrizeData, index: int) -> None:
    field = ("prizes", str(index))
    if p.kind not in PRIZE_KINDS:
        raise _invalid(f"kind must be one of {', '.join(PRIZE_KINDS)}", *field, "kind")
    hygiene.name(p.name, ["input", *field, "name"], 128)  # 1 to 128 characters, no control characters
    if not 1 <= p.weight <= MAX_WEIGHT:
        raise _invalid(f"weight must be 1 to {MAX_WEIGHT}", *field, "weight")
    if p.stock is not None and not 0 <= p.stock <= mall.MAX_STOCK:
        raise _invalid("stock must be 0 or more (null: unlimited)", *field, "stock")
    if (p.kind == "POINTS") != (p.points is not None) or (p.points is not None and not 0 < p.points <= 10_000_000):
        raise _invalid("a POINTS prize needs points (1 to 10,000,000); other kinds none", *field, "points")
    if p.kind in ("COUPON", "GIFT"):
        if p.product_id is None:
            raise _invalid("a COUPON or GIFT prize needs a product of the catalogue", *field, "productId")
        product = await mall.product(p.product_id, ["input", "productId"])
        wanted = ("GOODS",) if p.kind == "GIFT" else ("COUPON", "MERCHANT_VOUCHER", "PARKING_COUPON")
        if product.kind not in wanted:
            raise _invalid(f"a {p.kind} prize needs a product of kind {' or '.join(wanted)}", *field, "productId")
    elif p.product_id is not None:
        raise _invalid("only COUPON and GIFT prizes have a product", *field, "productId")


def _check_game(name: str, kind: str, cost_points: int, free_plays: dict[str, int], daily_limit: int | None,
                total_limit: int | None, starts_at: datetime, ends_at: datetime, status: str) -> None:
    hygiene.name(name, ["input", "name"], 128)  # 1 to 128 characters, no control characters
    if kind not in GAME_KINDS:
        raise _invalid(f"kind must be one of {', '.join(GAME_KINDS)}", "kind")
    if not 0 <= cost_points <= mall.MAX_PRICE:
        raise _invalid("costPoints must be 0 or more", "costPoints")
    if any(not 0 <= v <= 100 for v in free_plays.values()):
        raise _invalid("free plays per day must be 0 to 100", "freePlays")
    for value, field in ((daily_limit, "dailyLimit"), (total_limit, "totalLimit")):
        if value is not None and not 1 <= value <= 10_000:
            raise _invalid(f"{field} must be 1 to 10000 (or null: no limit)", field)
    if ends_at <= starts_at:
        raise _invalid("endsAt must be after startsAt", "endsAt")
    if status not in STATUSES:
        raise _invalid(f"status must be one of {', '.join(STATUSES)}", "status")


async def _check_tier_codes(free_plays: dict[str, int]) -> None:
    unknown = set(free_plays) - {t.code for t in await tiers.all_tiers()} - {"*"}
    if unknown:
        raise DomainError(ErrorCode.NOT_FOUND, f"no tier {', '.join(sorted(unknown))}", ["input", "freePlays"])


async def create_game(actor: Actor, *, name: str, kind: str, cost_points: int, free_plays: dict[str, int],
                      daily_limit: int | None, total_limit: int | None, starts_at: datetime, ends_at: datetime,
                      prizes: list[PrizeData], segment_id: int | None = None) -> GameInfo:
    starts_at, ends_at = clock.to_utc(starts_at), clock.to_utc(ends_at)
    _check_game(name, kind, cost_points, free_plays, daily_limit, total_limit, starts_at, ends_at, "ACTIVE")
    await _check_tier_codes(free_plays)
    if segment_id is not None:
        await membership.require(segment_id, ["input", "segmentId"])
    if not 1 <= len(prizes) <= MAX_PRIZES:
        raise _invalid(f"a game has 1 to {MAX_PRIZES} prizes", "prizes")
    now = clock.now()
    async with transaction() as tx:
        for index, p in enumerate(prizes):
            await _check_prize(p, index)
        created = await DrawGame.create(
            name=name.strip(), kind=kind, cost_points=cost_points, free_plays=json.dumps(free_plays),
            daily_limit=daily_limit, total_limit=total_limit, starts_at=starts_at, ends_at=ends_at, status="ACTIVE",
            segment_id=segment_id, created_at=now, updated_at=now)
        for p in prizes:
            await DrawPrize.create(game_id=created.id, name=p.name.strip(), kind=p.kind, points=p.points,
                                   product_id=p.product_id, weight=p.weight, stock=p.stock, stock_total=p.stock,
                                   position=p.position, active=True, created_at=now)
        await audit(tx, actor, "draw_game.create", "draw_game", str(created.id),
                    {"name": name, "kind": kind, "costPoints": cost_points, "freePlays": free_plays,
                     "segmentId": segment_id, "prizes": [asdict(p) for p in prizes]})
    return await game(created.id, fresh=True)


def _merged(current: GameInfo, changes: dict[str, Any], clear: frozenset[str]) -> dict[str, Any]:
    """The game's terms after an update: None leaves a term as it is; `clear` empties a limit."""
    new = {n: getattr(current, n) for n in ("name", "kind", "cost_points", "free_plays", "daily_limit",
                                              "total_limit", "starts_at", "ends_at", "status")}
    new.update({n: clock.to_utc(v) if n.endswith("_at") else v for n, v in changes.items() if v is not None})
    new.update({n: None for n in clear})
    return new


async def update_game(actor: Actor, game_id: int, *, name: str | None = None, cost_points: int | None = None,
                      free_plays: dict[str, int] | None = None, daily_limit: int | None = None,
                      total_limit: int | None = None, starts_at: datetime | None = None,
                      ends_at: datetime | None = None, status: str | None = None, segment_id: int | None = None,
                      clear: frozenset[str] = frozenset()) -> GameInfo:
    """Changes the given terms (None leaves a term as it is; `clear` sets dailyLimit / totalLimit back to
    no limit, segment_id back to everyone). The game's row is locked while it is read and written, so two
    operators' changes apply one after the other."""
    if free_plays is not None:
        await _check_tier_codes(free_plays)
    if segment_id is not None:
        await membership.require(segment_id, ["input", "segmentId"])
    changes = dict(name=name, cost_points=cost_points, free_plays=free_plays, daily_limit=daily_limit,
                   total_limit=total_limit, starts_at=starts_at, ends_at=ends_at, status=status)
    async with transaction() as tx:
        found = await locks.row(Rank.CONFIG, DrawGame, game_id)
        if found is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such game", ["input", "gameId"])
        new = _merged(GameInfo.of(found, ()), changes, clear - {"segment_id"})
        _check_game(**new)
        segment = None if "segment_id" in clear else segment_id if segment_id is not None else found.segment_id
        found.update_from_dict({**new, "free_plays": json.dumps(new["free_plays"]), "segment_id": segment,
                                "updated_at": clock.now()})
        await found.save()
        await audit(tx, actor, "draw_game.update", "draw_game", str(game_id), {**new, "segment_id": segment})
    forget(game_id)
    return await game(game_id, fresh=True)


async def update_prize(actor: Actor, prize_id: int, *, weight: int | None = None, stock_delta: int = 0,
                       active: bool | None = None, redis: Any = None) -> GameInfo:
    """Re-weights, restocks (never below what is left) or switches a prize off; the gate is reloaded."""
    async with transaction() as tx:
        p = await locks.row(Rank.PRIZE, DrawPrize, prize_id)
        if p is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such prize", ["input", "prizeId"])
        if weight is not None and not 1 <= weight <= MAX_WEIGHT:
            raise _invalid(f"weight must be 1 to {MAX_WEIGHT}", "weight")
        if stock_delta and p.stock is None:
            raise _invalid("this prize has no stock limit", "stockDelta")
        if p.stock is not None and (p.stock + stock_delta < 0 or abs(stock_delta) > mall.MAX_STOCK):
            raise DomainError(ErrorCode.OUT_OF_STOCK, f"only {p.stock} left", ["input", "stockDelta"])
        await DrawPrize.filter(id=prize_id).update(
            weight=weight if weight is not None else p.weight, active=active if active is not None else p.active,
            stock=F("stock") + stock_delta, stock_total=F("stock_total") + stock_delta)
        await audit(tx, actor, "draw_prize.update", "draw_prize", str(prize_id),
                    {"weight": weight, "stockDelta": stock_delta, "active": active})
    forget(p.game_id)
    if redis is not None and p.stock is not None:  # a limited prize (a limit is never added or removed here)
        await reload_prize_gate(redis, prize_id)  # reads the stock and the plays in flight itself
    return await game(p.game_id, fresh=True)
