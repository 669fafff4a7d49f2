"""A member plays (luckyDrawPlay). See the package's notes for the steps of a play."""
from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast

from tortoise.expressions import F

from api import db, locks
from api.db import Tx, transaction
from api.locks import Rank
from api.models import DrawPlay, DrawPrize
from api.services import clock, idempotency, ledger, mall, tiers
from api.services.draws import sql
from api.services.draws.games import GameInfo, PrizeInfo, game
from api.services.draws.gate import db_stock, gate_key, gate_ttl, play_token, stock_now
from api.services.draws.reads import PlayInfo
from api.services.errors import DomainError, ErrorCode
from api.services.mall import stock_gate
from api.services.notifications import outbox
from api.services.segments import membership


def pick(candidates: list[tuple[int, int]], roll: int) -> int:
    """The prize whose cumulative weight range holds `roll` (0 ≤ roll < total weight)."""
    assert 0 <= roll < sum(w for _, w in candidates)
    for prize_id, weight in candidates:
        if roll < weight:
            return prize_id
        roll -= weight
    raise AssertionError("unreachable")


# The OS's CSPRNG draws (a name of this module, so that a test can give the draws it wants).
draw_number = secrets.randbelow


class _PrizeGone(Exception):
    """The database found the drawn prize out of stock: draw again without it."""


@dataclass(frozen=True)
class PlayResult:
    play_id: int
    points_balance: int
    # The play and its prize as booked (not on a repeat): the answer needs no read after commit.
    booked: tuple[PlayInfo, PrizeInfo] | None = field(default=None, compare=False, repr=False)

    def stored(self) -> dict[str, int]:
        """What the idempotency record keeps (a repeat's answer)."""
        return {"play_id": self.play_id, "points_balance": self.points_balance}


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
    if not await membership.eligible(g.segment_id, member_id):  # one query, only for a game restricted to a segment
        await _first_result(member_id, g.id, key)
        raise DomainError(ErrorCode.SEGMENT_NOT_ELIGIBLE, "this game is for another group of members",
                          ["input", "gameId"])
    gone: set[int] = set()
    for redraws in range(len(g.prizes) + 1):
        left = await stock_now(g, redis) if redis is not None else await _stock_in_db(g)
        candidates = [(p.id, p.weight) for p in g.prizes
                      if p.id in left and p.id not in gone and _in_stock(left[p.id])]
        if not candidates:
            await _first_result(member_id, g.id, key)
            raise _all_gone()
        roll = draw_number(sum(w for _, w in candidates))
        prize = next(p for p in g.prizes if p.id == pick(candidates, roll))
        result = await _reserve_and_book(member_id, g, prize, candidates, roll, redraws, key, now, redis)
        if result is not None:
            return result
        gone.add(prize.id)
    raise _all_gone()


_stock_reads: dict[int, asyncio.Future[list[Any]]] = {}


async def _stock_in_db(g: GameInfo) -> dict[int, int | None]:
    """Units left per active prize (None: unlimited) without a Redis gate, as `stock_now` reads them
    from the database. Plays of a game in this process that arrive while a read is in flight share it
    (one query instead of one per play); a unit taken since then fails the conditional update and the
    draw is made again without the prize, as when the gate is behind."""
    pending = _stock_reads.get(g.id)
    if pending is None:
        pending = asyncio.ensure_future(db.fetch(sql.STOCK_LEFT, g.id))
        _stock_reads[g.id] = pending
        pending.add_done_callback(lambda _f: _stock_reads.pop(g.id, None))
    rows = await asyncio.shield(pending)
    found: dict[int, int | None] = {p.id: None for p in g.prizes if p.active and p.stock is None}
    limited = {p.id for p in g.prizes if p.active and p.stock is not None}
    found.update((r["id"], r["stock"]) for r in rows if r["id"] in limited)
    return found


async def _reserve_and_book(member_id: int, g: GameInfo, prize: PrizeInfo, candidates: list[tuple[int, int]],
                            roll: int, redraws: int, key: str, now: datetime, redis: Any) -> PlayResult | None:
    """Reserves a limited prize in the gate, then books the play; None when the prize is gone."""
    reserved = None
    gate, token = gate_key(g.id, prize.id), play_token(member_id, key)
    if prize.stock is not None and redis is not None:
        reserved = await stock_gate.take(redis, gate, lambda: db_stock(prize.id), await gate_ttl(g.id), token)
        if reserved is False:
            return None
    try:
        result, repeated = await _book(member_id, g, prize, candidates, roll, redraws, key, now)
    except _PrizeGone:
        if reserved:
            await stock_gate.undo(redis, gate, none_left=True, token=token)
        return None
    except BaseException:
        if reserved:
            await stock_gate.undo(redis, gate, none_left=False, token=token)
        raise
    if repeated and reserved:
        await stock_gate.undo(redis, gate, none_left=False, token=token)
    return result


async def _first_result(member_id: int, game_id: int, key: str) -> None:
    """A retry of a play that happened gets its first result, even when the game has closed or its
    prizes are gone since (raised as _Repeat, caught by play)."""
    first = await idempotency.stored(mall.member_scope(member_id), key, _digest(game_id), ["input", "idempotencyKey"])
    if first is not None:
        raise _Repeat(PlayResult(**first))


def _digest(game_id: int) -> str:
    return idempotency.request_hash("luckyDrawPlay", {"gameId": game_id})


def _terms(g: GameInfo, terms: Any, tier_code: str) -> tuple[GameInfo, bool]:
    """The terms as they are now (the draw used the process's copy, at most CACHE_SECONDS old) and the
    member's play limits, counted under the account lock (sql.PLAY_READ). Returns the game and whether
    the play is free."""
    if not terms["open"]:
        raise _not_open()
    g = replace(g, name=terms["game_name"], cost_points=int(terms["cost_points"]), daily_limit=terms["daily_limit"],
                total_limit=terms["total_limit"], free_plays=json.loads(terms["free_plays"] or "{}"))
    if g.total_limit is not None and int(terms["total"]) >= g.total_limit:
        raise DomainError(ErrorCode.PLAY_LIMIT_REACHED, f"at most {g.total_limit} plays per member",
                          ["input", "gameId"])
    if g.daily_limit is not None and int(terms["today"]) >= g.daily_limit:
        raise DomainError(ErrorCode.PLAY_LIMIT_REACHED, f"at most {g.daily_limit} plays a day", ["input", "gameId"])
    return g, int(terms["free_today"]) < g.free_allowance(tier_code)


def _prize_now(terms: Any, prize: PrizeInfo, stock: int | None) -> PrizeInfo:
    """The drawn prize as stored (read under the lock), with its stock after this play."""
    return PrizeInfo(id=prize.id, game_id=prize.game_id, name=terms["name"], kind=terms["kind"], points=terms["points"],
                     product_id=terms["product_id"], weight=int(terms["weight"]), stock=stock,
                     stock_total=terms["stock_total"], position=int(terms["position"]), active=bool(terms["active"]))


# The writes of a play in one statement on PostgreSQL (sql.play_writes); tests switch it off to compare
# the rows it writes with the general path's.
ONE_STATEMENT = True


async def _book(member_id: int, g: GameInfo, prize: PrizeInfo, candidates: list[tuple[int, int]], roll: int,
                redraws: int, key: str, now: datetime) -> tuple[PlayResult, bool]:
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, mall.member_scope(member_id), key, _digest(g.id),
                                                    ["input", "idempotencyKey"])
        if stored is not None:
            return PlayResult(**stored), True
        assert record_id is not None
        acct = await ledger.lock_account_row(member_id)
        if acct is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such member", None)
        terms = await tx.fetchrow(sql.PLAY_READ, acct.id, now, g.id, prize.id, member_id, clock.day_start(now))
        if terms is None:  # the prize left the game since the process read it
            raise _not_open()
        acct.due, acct.held = int(terms["due"]), int(terms["held"])
        await ledger.expire_account(tx, acct, now)
        g, free = _terms(g, terms, (await tiers.tier_by_id(acct.tier_id)).code)
        cost = 0 if free else g.cost_points
        if acct.spendable < cost:
            raise DomainError(ErrorCode.INSUFFICIENT_POINTS, f"a play costs {cost} points; {ledger.shortfall(acct)}",
                              ["input", "gameId"])
        ref = f"draw:{g.id}:{member_id}:{key}"[:64]
        order_id = await _order(acct, prize, key, now) if prize.kind in ("COUPON", "GIFT") else None
        granted = int(prize.points or 0) if prize.kind == "POINTS" else 0
        one = ONE_STATEMENT and tx.postgres and acct.balance - cost >= 0 and (prize.kind != "POINTS" or granted > 0)
        limited = prize.stock is not None
        if limited:  # the prize's stock last: a conditional update takes its row lock
            locks.enter(Rank.PRIZE, (prize.id,))
        play = _Play(g, prize, free, cost, granted, order_id, candidates, roll, redraws, key, ref, now)
        play_id, stock = await (_write_once(tx, acct, record_id, play) if one else _write_steps(tx, acct, play))
        result = PlayResult(play_id, acct.spendable)
        if prize.kind != "NOTHING":
            await outbox.on_prize(tx, member_id, play_id, prize.name)
        if not one:
            await idempotency.remember(tx, record_id, result.stored())
    info = PlayInfo(id=play_id, game_id=g.id, member_id=member_id, prize_id=prize.id, free=free, cost_points=cost,
                    points_granted=granted, order_id=order_id, candidates=[[i, w] for i, w in candidates], roll=roll,
                    redraws=redraws, played_at=now)
    return replace(result, booked=(info, _prize_now(terms, prize, stock))), False


@dataclass(frozen=True)
class _Play:
    """A play decided under the lock, to be written."""
    g: GameInfo
    prize: PrizeInfo
    free: bool
    cost: int
    granted: int  # points of a POINTS prize
    order_id: int | None
    candidates: list[tuple[int, int]]
    roll: int
    redraws: int
    key: str
    ref: str
    now: datetime

    def candidates_json(self) -> str:
        return json.dumps([[i, w] for i, w in self.candidates])


async def _write_once(tx: Tx, acct: ledger.LockedAccount, record_id: int, p: _Play) -> tuple[int, int | None]:
    """The play's writes in one statement (PostgreSQL); the account's balance is set to what it wrote."""
    spend = (p.cost, f"幸运抽奖 {p.g.name}") if p.cost else None
    grant = (p.granted, f"幸运抽奖中奖 {p.prize.name}", ledger.expiry_for(p.now)) if p.granted else None
    balance = acct.balance - p.cost + p.granted
    told = balance - acct.due - acct.held
    statement, args = sql.play_writes(sql.PlayWrite(
        account_id=acct.id, member_id=acct.member_id, balance=acct.balance, told=told, occurred_at=p.now,
        source_ref=p.ref, record_id=record_id, game_id=p.g.id, prize_id=p.prize.id, free=p.free, cost=p.cost,
        candidates=p.candidates_json(), roll=p.roll, redraws=p.redraws, order_id=p.order_id, key=p.key,
        limited=p.prize.stock is not None, spend=spend, grant=grant))
    row = await tx.fetchrow(statement, *args)
    assert row is not None  # one row of scalar subqueries
    if int(row["spent"]) != p.cost:
        raise AssertionError(f"a charge of {p.cost} on account {acct.id} exceeds its lots")
    if not row["took"]:
        raise _PrizeGone()
    acct.balance = balance
    return int(row["play_id"]), row["stock"]


async def _write_steps(tx: Tx, acct: ledger.LockedAccount, p: _Play) -> tuple[int, int | None]:
    """The general path: the ledger's moves and the models, one statement each (SQLite, a debt to pay
    off first)."""
    spend = await ledger.debit(tx, acct, points=p.cost, kind="SPEND", reason=f"幸运抽奖 {p.g.name}",
                               source_type="draw", source_ref=p.ref, occurred_at=p.now) if p.cost else None
    grant = await ledger.credit(tx, acct, points=p.granted, kind="EARN", reason=f"幸运抽奖中奖 {p.prize.name}",
                                source_type="draw", source_ref=p.ref, occurred_at=p.now) if p.granted else None
    if p.prize.kind == "POINTS" and not p.granted:
        raise AssertionError("a POINTS prize grants points")
    played = await DrawPlay.create(
        game_id=p.g.id, member_id=acct.member_id, prize_id=p.prize.id, free=p.free, cost_points=p.cost,
        candidates=p.candidates_json(), roll=p.roll, redraws=p.redraws,
        spend_entry_id=spend.id if spend else None, grant_entry_id=grant.id if grant else None,
        order_id=p.order_id, idempotency_key=p.key, played_at=p.now)
    if p.prize.stock is None:
        return played.id, None
    if not await DrawPrize.filter(id=p.prize.id, stock__gte=1).update(stock=F("stock") - 1):
        raise _PrizeGone()
    left = await DrawPrize.filter(id=p.prize.id).first().values_list("stock", flat=True)
    return played.id, cast("int | None", left)


async def _order(acct: ledger.LockedAccount, prize: PrizeInfo, key: str, now: datetime) -> int:
    """A COUPON or GIFT prize: a DRAW order and its voucher."""
    product = await mall.product(int(prize.product_id or 0), ["input", "productId"])
    order_id = await mall.insert_order(
        order_no=mall.new_order_no(now), member_id=acct.member_id, product_id=product.id, flash_sale_id=None,
        channel="DRAW", status="PAID", quantity=1, points=0, cash_fen=0, key=key, now=now, expires_at=None,
        spend_entry_id=None)
    await mall.issue_vouchers(order_id, acct.member_id, product, 1, now)
    return order_id
