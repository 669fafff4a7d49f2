"""A member plays (luckyDrawPlay). See the package's notes for the steps of a play."""
from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from tortoise.expressions import F

from api import db, locks
from api.db import Tx, transaction
from api.locks import Rank
from api.models import DrawPlay, DrawPrize
from api.services import clock, idempotency, ledger, mall, tiers
from api.services.draws import sql
from api.services.draws.games import GameInfo, PrizeInfo, game
from api.services.draws.gate import db_stock, gate_key, gate_ttl, stock_now
from api.services.errors import DomainError, ErrorCode
from api.services.mall import stock_gate
from api.services.notifications import outbox


def pick(candidates: list[tuple[int, int]], roll: int) -> int:
    """The prize whose cumulative weight range holds `roll` (0 ≤ roll < total weight)."""
    assert 0 <= roll < sum(w for _, w in candidates)
    for prize_id, weight in candidates:
        if roll < weight:
            return prize_id
        roll -= weight
    raise AssertionError("unreachable")


class _PrizeGone(Exception):
    """The database found the drawn prize out of stock: draw again without it."""


@dataclass(frozen=True)
class PlayResult:
    play_id: int
    points_balance: int


class _Repeat(Exception):
    def __init__(self, result: PlayResult) -> None:
        self.result = result


def _in_stock(units: int | None) -> bool:
    return units is None or units > 0


def _all_gone() -> DomainError:
    return DomainError(ErrorCode.OUT_OF_STOCK, "every prize of this game is gone", ["input", "gameId"])


def _not_open() -> DomainError:
    return DomainError(ErrorCode.GAME_NOT_OPEN, "this game is not open now", ["input", "gameId"])


async def play(member_id: int, game_id: int, idempotency_key: str, redis: Any = None) -> PlayResult:
    """luckyDrawPlay. Idempotent: a repeat returns the first play."""
    try:
        return await _draw_and_book(member_id, game_id, idempotency_key, redis)
    except _Repeat as repeat:
        return repeat.result


async def _draw_and_book(member_id: int, game_id: int, idempotency_key: str, redis: Any) -> PlayResult:
    key = idempotency.check_key(idempotency_key, ["input", "idempotencyKey"])
    g = await game(game_id)
    now = clock.now()
    if not g.open(now):
        await _first_result(member_id, g.id, key)
        raise _not_open()
    gone: set[int] = set()
    for redraws in range(len(g.prizes) + 1):
        left = await stock_now(g, redis)
        candidates = [(p.id, p.weight) for p in g.prizes
                      if p.id in left and p.id not in gone and _in_stock(left[p.id])]
        if not candidates:
            await _first_result(member_id, g.id, key)
            raise _all_gone()
        roll = secrets.randbelow(sum(w for _, w in candidates))
        prize = next(p for p in g.prizes if p.id == pick(candidates, roll))
        result = await _reserve_and_book(member_id, g, prize, candidates, roll, redraws, key, now, redis)
        if result is not None:
            return result
        gone.add(prize.id)
    raise _all_gone()


async def _reserve_and_book(member_id: int, g: GameInfo, prize: PrizeInfo, candidates: list[tuple[int, int]],
                            roll: int, redraws: int, key: str, now: datetime, redis: Any) -> PlayResult | None:
    """Reserves a limited prize in the gate, then books the play; None when the prize is gone."""
    reserved = None
    gate = gate_key(g.id, prize.id)
    if prize.stock is not None and redis is not None:
        reserved = await stock_gate.take(redis, gate, lambda: db_stock(prize.id), await gate_ttl(g.id))
        if reserved is False:
            return None
    try:
        result, repeated = await _book(member_id, g, prize, candidates, roll, redraws, key, now)
    except _PrizeGone:
        if reserved:
            await stock_gate.undo(redis, gate, none_left=True)
        return None
    except BaseException:
        if reserved:
            await stock_gate.undo(redis, gate, none_left=False)
        raise
    if repeated and reserved:
        await stock_gate.undo(redis, gate, none_left=False)
    return result


async def _first_result(member_id: int, game_id: int, key: str) -> None:
    """A retry of a play that happened gets its first result, even when the game has closed or its
    prizes are gone since (raised as _Repeat, caught by play)."""
    first = await idempotency.stored(mall.member_scope(member_id), key, _digest(game_id), ["input", "idempotencyKey"])
    if first is not None:
        raise _Repeat(PlayResult(**first))


def _digest(game_id: int) -> str:
    return idempotency.request_hash("luckyDrawPlay", {"gameId": game_id})


async def _terms(acct: ledger.LockedAccount, g: GameInfo, prize: PrizeInfo, now: datetime) -> tuple[GameInfo, bool]:
    """The terms as they are now (the draw used the process's copy, at most CACHE_SECONDS old) and the
    member's play limits, counted under the account lock. Returns the game and whether the play is free."""
    terms = (await db.fetch(sql.PLAY_TERMS, g.id, prize.id, now))[0]
    if not terms["open"]:
        raise _not_open()
    g = replace(g, name=terms["name"], cost_points=int(terms["cost_points"]), daily_limit=terms["daily_limit"],
                total_limit=terms["total_limit"], free_plays=json.loads(terms["free_plays"] or "{}"))
    counts = (await db.fetch(sql.PLAY_COUNTS, g.id, acct.member_id, clock.day_start(now)))[0]
    if g.total_limit is not None and int(counts["total"]) >= g.total_limit:
        raise DomainError(ErrorCode.PLAY_LIMIT_REACHED, f"at most {g.total_limit} plays per member",
                          ["input", "gameId"])
    if g.daily_limit is not None and int(counts["today"]) >= g.daily_limit:
        raise DomainError(ErrorCode.PLAY_LIMIT_REACHED, f"at most {g.daily_limit} plays a day", ["input", "gameId"])
    tier = await tiers.tier_by_id(acct.tier_id)
    return g, int(counts["free_today"]) < g.free_allowance(tier.code)


async def _book(member_id: int, g: GameInfo, prize: PrizeInfo, candidates: list[tuple[int, int]], roll: int,
                redraws: int, key: str, now: datetime) -> tuple[PlayResult, bool]:
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, mall.member_scope(member_id), key, _digest(g.id),
                                                    ["input", "idempotencyKey"])
        if stored is not None:
            return PlayResult(**stored), True
        assert record_id is not None
        acct = await ledger.lock_account(tx, member_id, now)
        if acct is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such member", None)
        await ledger.expire_account(tx, acct, now)
        g, free = await _terms(acct, g, prize, now)
        cost = 0 if free else g.cost_points
        if acct.spendable < cost:
            raise DomainError(ErrorCode.INSUFFICIENT_POINTS, f"a play costs {cost} points; {ledger.shortfall(acct)}",
                              ["input", "gameId"])
        ref = f"draw:{g.id}:{member_id}:{key}"[:64]
        spend = await ledger.debit(tx, acct, points=cost, kind="SPEND", reason=f"幸运抽奖 {g.name}",
                                   source_type="draw", source_ref=ref, occurred_at=now) if cost else None
        grant, order_id = await _grant(tx, acct, prize, key, ref, now)
        played = await DrawPlay.create(
            game_id=g.id, member_id=member_id, prize_id=prize.id, free=free, cost_points=cost,
            candidates=json.dumps([[i, w] for i, w in candidates]), roll=roll, redraws=redraws,
            spend_entry_id=spend.id if spend else None, grant_entry_id=grant.id if grant else None,
            order_id=order_id, idempotency_key=key, played_at=now)
        if prize.stock is not None:  # the prize's stock last: a conditional update takes its row lock
            locks.enter(Rank.PRIZE, (prize.id,))
            if not await DrawPrize.filter(id=prize.id, stock__gte=1).update(stock=F("stock") - 1):
                raise _PrizeGone()
        result = PlayResult(played.id, acct.spendable)
        if prize.kind != "NOTHING":
            await outbox.on_prize(tx, member_id, played.id, prize.name)
        await idempotency.remember(tx, record_id, asdict(result))
    return result, False


async def _grant(tx: Tx, acct: ledger.LockedAccount, prize: PrizeInfo, key: str, ref: str,
                 now: datetime) -> tuple[ledger.Entry | None, int | None]:
    if prize.kind == "POINTS":
        entry = await ledger.credit(tx, acct, points=int(prize.points or 0), kind="EARN",
                                    reason=f"幸运抽奖中奖 {prize.name}", source_type="draw", source_ref=ref,
                                    occurred_at=now)
        return entry, None
    if prize.kind in ("COUPON", "GIFT"):
        product = await mall.product(int(prize.product_id or 0), ["input", "productId"])
        order_id = await mall.insert_order(
            order_no=mall.new_order_no(now), member_id=acct.member_id, product_id=product.id, flash_sale_id=None,
            channel="DRAW", status="PAID", quantity=1, points=0, cash_fen=0, key=key, now=now, expires_at=None,
            spend_entry_id=None)
        await mall.issue_vouchers(order_id, acct.member_id, product, 1, now)
        return None, order_id
    return None, None
