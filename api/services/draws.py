"""Lucky draws (幸运抽奖): operators define games and prizes; members play.

A play (docs/draws.md):
  1. the candidates are the game's active prizes that still have stock (read from the Redis gate, or
     from the database without one); a prize is picked by weight with `secrets.randbelow`, the OS's
     CSPRNG;
  2. a limited prize is reserved in the Redis gate first (a prize the gate says is gone is dropped and
     the draw is made again among the rest);
  3. one transaction claims the idempotency key, locks the member's account, checks the window and the
     play limits (counted under the lock), uses a free play or charges the cost, grants the prize
     (points credited, or an order with its voucher), records the play with its inputs (candidates and
     weights, the roll, the redraws), and takes the prize's stock last with a conditional update. When
     that update finds the prize gone, the whole transaction (the charge with it) is rolled back, the
     gate is told, and the draw is made again without it. So a prize out of stock is never drawn, and
     a play either charges and grants together or does nothing.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from api.db import Tx, fetch, transaction
from api.services import clock, idempotency, ledger, mall, tiers
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode
from api.services.mall import stock_gate

GAME_KINDS = ("WHEEL", "NINE_GRID", "SCRATCH")
PRIZE_KINDS = ("POINTS", "COUPON", "GIFT", "NOTHING")
STATUSES = ("ACTIVE", "PAUSED", "ARCHIVED")
MAX_PRIZES = 12
MAX_WEIGHT = 1_000_000


@dataclass(frozen=True)
class PrizeInfo:
    id: int
    game_id: int
    name: str
    kind: str
    points: int | None
    product_id: int | None
    weight: int
    stock: int | None
    stock_total: int | None
    position: int
    active: bool


@dataclass(frozen=True)
class GameInfo:
    id: int
    name: str
    kind: str
    cost_points: int
    free_plays: dict[str, int]
    daily_limit: int | None
    total_limit: int | None
    starts_at: datetime
    ends_at: datetime
    status: str
    created_at: datetime
    updated_at: datetime
    prizes: tuple[PrizeInfo, ...]

    def open(self, now: datetime) -> bool:
        return self.status == "ACTIVE" and self.starts_at <= now < self.ends_at

    def free_allowance(self, tier_code: str) -> int:
        return int(self.free_plays.get(tier_code, self.free_plays.get("*", 0)))


GAME_COLUMNS = ("id, name, kind, cost_points, free_plays, daily_limit, total_limit, starts_at, ends_at, status,"
                " created_at, updated_at")
PRIZE_COLUMNS = "id, game_id, name, kind, points, product_id, weight, stock, stock_total, position, active"


def _prize(row: Any) -> PrizeInfo:
    d = dict(row)
    d["active"] = bool(d["active"])
    for name in ("points", "stock", "stock_total"):
        d[name] = None if d[name] is None else int(d[name])
    return PrizeInfo(**d)


def _game(row: Any, prizes: list[PrizeInfo]) -> GameInfo:
    d = dict(row)
    d["free_plays"] = json.loads(d["free_plays"] or "{}")
    d["cost_points"] = int(d["cost_points"])
    for name in ("starts_at", "ends_at", "created_at", "updated_at"):
        d[name] = clock.parse_db_time(d[name])
    return GameInfo(**d, prizes=tuple(sorted(prizes, key=lambda p: (p.position, p.id))))


async def games_by_id(ids: list[int]) -> dict[int, GameInfo]:
    if not ids:
        return {}
    id_list = ", ".join(str(int(i)) for i in ids)
    rows = await fetch(f"SELECT {GAME_COLUMNS} FROM draw_game WHERE id IN ({id_list})")
    prizes = await fetch(f"SELECT {PRIZE_COLUMNS} FROM draw_prize WHERE game_id IN ({id_list})")
    by_game: dict[int, list[PrizeInfo]] = {}
    for p in prizes:
        by_game.setdefault(p["game_id"], []).append(_prize(p))
    return {r["id"]: _game(r, by_game.get(r["id"], [])) for r in rows}


_cache: dict[int, tuple[float, GameInfo]] = {}
CACHE_SECONDS = 2.0  # an operator's change reaches every process within this time


async def game(game_id: int, fresh: bool = False) -> GameInfo:
    cached = _cache.get(game_id)
    if not fresh and cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    found = (await games_by_id([game_id])).get(game_id)
    if found is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such game", ["input", "gameId"])
    _cache[game_id] = (time.monotonic(), found)
    return found


async def games_page(limit: int, after_id: int | None, *, include_hidden: bool) -> list[GameInfo]:
    where = "id > $1" + ("" if include_hidden else " AND status = 'ACTIVE' AND ends_at > $3")
    args: list[Any] = [after_id or 0, limit] + ([] if include_hidden else [clock.now()])
    rows = await fetch(f"SELECT id FROM draw_game WHERE {where} ORDER BY id LIMIT $2", *args)
    found = await games_by_id([r["id"] for r in rows])
    return [found[r["id"]] for r in rows]


# --- operators -----------------------------------------------------------------------------------

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


async def _check_prize(tx: Tx, p: PrizeData, index: int) -> None:
    field = ("prizes", str(index))
    if p.kind not in PRIZE_KINDS:
        raise _invalid(f"kind must be one of {', '.join(PRIZE_KINDS)}", *field, "kind")
    if not 1 <= len(p.name.strip()) <= 128:
        raise _invalid("name must be 1 to 128 characters", *field, "name")
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
    if not 1 <= len(name.strip()) <= 128:
        raise _invalid("name must be 1 to 128 characters", "name")
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
                      prizes: list[PrizeData]) -> GameInfo:
    starts_at, ends_at = clock.to_utc(starts_at), clock.to_utc(ends_at)
    _check_game(name, kind, cost_points, free_plays, daily_limit, total_limit, starts_at, ends_at, "ACTIVE")
    await _check_tier_codes(free_plays)
    if not 1 <= len(prizes) <= MAX_PRIZES:
        raise _invalid(f"a game has 1 to {MAX_PRIZES} prizes", "prizes")
    now = clock.now()
    async with transaction() as tx:
        for index, p in enumerate(prizes):
            await _check_prize(tx, p, index)
        game_id = await tx.fetchval(
            "INSERT INTO draw_game (name, kind, cost_points, free_plays, daily_limit, total_limit, starts_at, ends_at,"
            " status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'ACTIVE', $9, $9) RETURNING id",
            name.strip(), kind, cost_points, json.dumps(free_plays), daily_limit, total_limit, starts_at, ends_at, now,
        )
        for p in prizes:
            await tx.execute(
                "INSERT INTO draw_prize (game_id, name, kind, points, product_id, weight, stock, stock_total, position,"
                " active, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, TRUE, $9)",
                game_id, p.name.strip(), p.kind, p.points, p.product_id, p.weight, p.stock, p.position, now,
            )
        await audit(tx, actor, "draw_game.create", "draw_game", str(game_id),
                    {"name": name, "kind": kind, "costPoints": cost_points, "freePlays": free_plays,
                     "prizes": [asdict(p) for p in prizes]})
    return await game(game_id, fresh=True)


async def update_game(actor: Actor, game_id: int, *, name: str | None = None, cost_points: int | None = None,
                      free_plays: dict[str, int] | None = None, daily_limit: int | None = None,
                      total_limit: int | None = None, starts_at: datetime | None = None,
                      ends_at: datetime | None = None, status: str | None = None,
                      clear: frozenset[str] = frozenset()) -> GameInfo:
    """Changes the given terms (None leaves a term as it is; `clear` sets dailyLimit / totalLimit back to
    no limit). The game's row is locked while it is read and written, so two operators' changes apply one
    after the other."""
    if free_plays is not None:
        await _check_tier_codes(free_plays)
    async with transaction() as tx:
        row = await tx.fetchrow(f"SELECT {GAME_COLUMNS} FROM draw_game WHERE id = $1"
                                + (" FOR UPDATE" if tx.postgres else ""), game_id)
        if row is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such game", ["input", "gameId"])
        current = _game(row, [])
        new = {"name": name if name is not None else current.name, "kind": current.kind,
               "cost_points": cost_points if cost_points is not None else current.cost_points,
               "free_plays": free_plays if free_plays is not None else current.free_plays,
               "daily_limit": None if "daily_limit" in clear else (
                   daily_limit if daily_limit is not None else current.daily_limit),
               "total_limit": None if "total_limit" in clear else (
                   total_limit if total_limit is not None else current.total_limit),
               "starts_at": clock.to_utc(starts_at) if starts_at else current.starts_at,
               "ends_at": clock.to_utc(ends_at) if ends_at else current.ends_at,
               "status": status if status is not None else current.status}
        _check_game(**new)
        await tx.execute(
            "UPDATE draw_game SET name = $2, cost_points = $3, free_plays = $4, daily_limit = $5, total_limit = $6,"
            " starts_at = $7, ends_at = $8, status = $9, updated_at = $10 WHERE id = $1",
            game_id, new["name"], new["cost_points"], json.dumps(new["free_plays"]), new["daily_limit"],
            new["total_limit"], new["starts_at"], new["ends_at"], new["status"], clock.now(),
        )
        await audit(tx, actor, "draw_game.update", "draw_game", str(game_id), new)
    _cache.pop(game_id, None)
    return await game(game_id, fresh=True)


async def update_prize(actor: Actor, prize_id: int, *, weight: int | None = None, stock_delta: int = 0,
                       active: bool | None = None, redis: Any = None) -> GameInfo:
    """Re-weights, restocks (never below what is left) or switches a prize off; the gate is reloaded."""
    async with transaction() as tx:
        row = await tx.fetchrow(f"SELECT {PRIZE_COLUMNS} FROM draw_prize WHERE id = $1"
                                + (" FOR UPDATE" if tx.postgres else ""), prize_id)
        if row is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such prize", ["input", "prizeId"])
        p = _prize(row)
        if weight is not None and not 1 <= weight <= MAX_WEIGHT:
            raise _invalid(f"weight must be 1 to {MAX_WEIGHT}", "weight")
        if stock_delta and p.stock is None:
            raise _invalid("this prize has no stock limit", "stockDelta")
        if p.stock is not None and (p.stock + stock_delta < 0 or abs(stock_delta) > mall.MAX_STOCK):
            raise DomainError(ErrorCode.OUT_OF_STOCK, f"only {p.stock} left", ["input", "stockDelta"])
        await tx.execute(
            "UPDATE draw_prize SET weight = $2, active = $3, stock = stock + $4, stock_total = stock_total + $4"
            " WHERE id = $1", prize_id, weight if weight is not None else p.weight,
            active if active is not None else p.active, stock_delta,
        )
        await audit(tx, actor, "draw_prize.update", "draw_prize", str(prize_id),
                    {"weight": weight, "stockDelta": stock_delta, "active": active})
        stock = await tx.fetchval("SELECT stock FROM draw_prize WHERE id = $1", prize_id)
    _cache.pop(p.game_id, None)
    if redis is not None and stock is not None:
        await stock_gate.reload(redis, _gate_key(p.game_id, prize_id), int(stock), await _gate_ttl(p.game_id))
    return await game(p.game_id, fresh=True)


# --- playing -------------------------------------------------------------------------------------

def _gate_key(game_id: int, prize_id: int) -> str:
    return f"mallpoints:draw:{{{game_id}}}:prize:{prize_id}"


async def _gate_ttl(game_id: int) -> int:
    g = await game(game_id)
    return max(60, int((g.ends_at - clock.now()).total_seconds()) + 86400)


async def _stock_now(g: GameInfo, redis: Any) -> dict[int, int | None]:
    """Units left per prize (None: unlimited), from the gate where loaded, else from the database."""
    limited = [p for p in g.prizes if p.active and p.stock is not None]
    found: dict[int, int | None] = {p.id: None for p in g.prizes if p.active and p.stock is None}
    gate = await stock_gate.peek(redis, [_gate_key(g.id, p.id) for p in limited]) if redis is not None else None
    missing = [p for i, p in enumerate(limited) if gate is None or gate[i] is None]
    for i, p in enumerate(limited):
        if gate is not None and gate[i] is not None:
            found[p.id] = gate[i]
    if missing:
        rows = await fetch(f"SELECT id, stock FROM draw_prize WHERE id IN ({', '.join(str(p.id) for p in missing)})")
        found.update({r["id"]: int(r["stock"]) for r in rows})
    return found


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
        raise DomainError(ErrorCode.GAME_NOT_OPEN, "this game is not open now", ["input", "gameId"])
    await tiers.all_tiers()  # warm: nothing inside the transaction may need a second connection
    gone: set[int] = set()
    for redraws in range(len(g.prizes) + 1):
        left = await _stock_now(g, redis)
        candidates = [(p.id, p.weight) for p in g.prizes
                      if p.id in left and p.id not in gone and (left[p.id] is None or left[p.id] > 0)]
        if not candidates:
            await _first_result(member_id, g.id, key)
            raise DomainError(ErrorCode.OUT_OF_STOCK, "every prize of this game is gone", ["input", "gameId"])
        roll = secrets.randbelow(sum(w for _, w in candidates))
        prize = next(p for p in g.prizes if p.id == pick(candidates, roll))
        reserved = None
        if prize.stock is not None and redis is not None:
            reserved = await stock_gate.take(redis, _gate_key(g.id, prize.id), lambda p=prize: _db_stock(p.id),
                                             await _gate_ttl(g.id))
            if reserved is False:
                gone.add(prize.id)
                continue
        try:
            result, repeated = await _book(member_id, g, prize, candidates, roll, redraws, key, now)
        except _PrizeGone:
            if reserved:
                await stock_gate.undo(redis, _gate_key(g.id, prize.id), none_left=True)
            gone.add(prize.id)
            continue
        except BaseException:
            if reserved:
                await stock_gate.undo(redis, _gate_key(g.id, prize.id), none_left=False)
            raise
        if repeated and reserved:
            await stock_gate.undo(redis, _gate_key(g.id, prize.id), none_left=False)
        return result
    raise DomainError(ErrorCode.OUT_OF_STOCK, "every prize of this game is gone", ["input", "gameId"])


class _Repeat(Exception):
    def __init__(self, result: PlayResult) -> None:
        self.result = result


async def _first_result(member_id: int, game_id: int, key: str) -> None:
    """A retry of a play that happened gets its first result, even when the game has closed or its
    prizes are gone since (raised as _Repeat, caught by play)."""
    first = await idempotency.stored(mall.member_scope(member_id), key, _digest(game_id), ["input", "idempotencyKey"])
    if first is not None:
        raise _Repeat(PlayResult(**first))


def _digest(game_id: int) -> str:
    return idempotency.request_hash("luckyDrawPlay", {"gameId": game_id})


async def reload_prize_gate(redis: Any, prize_id: int) -> None:
    """After a unit came back to a prize (a refunded win): the gate's counter from the database."""
    rows = await fetch("SELECT game_id, stock FROM draw_prize WHERE id = $1", prize_id)
    if rows and rows[0]["stock"] is not None:
        game_id = rows[0]["game_id"]
        await stock_gate.reload(redis, _gate_key(game_id, prize_id), int(rows[0]["stock"]), await _gate_ttl(game_id))


async def _db_stock(prize_id: int) -> int | None:
    rows = await fetch("SELECT stock FROM draw_prize WHERE id = $1", prize_id)
    return None if not rows or rows[0]["stock"] is None else int(rows[0]["stock"])


async def _book(member_id: int, g: GameInfo, prize: PrizeInfo, candidates: list[tuple[int, int]], roll: int,
                redraws: int, key: str, now: datetime) -> tuple[PlayResult, bool]:
    digest = _digest(g.id)
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, mall.member_scope(member_id), key, digest,
                                                    ["input", "idempotencyKey"])
        if stored is not None:
            return PlayResult(**stored), True
        acct = await ledger.lock_account(tx, member_id, now)
        if acct is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such member", None)
        await ledger.expire_account(tx, acct, now)
        # The terms as they are now (the draw used the process's copy, at most CACHE_SECONDS old).
        names = GAME_COLUMNS.replace(" ", "").split(",")
        terms = await tx.fetchrow(
            f"SELECT {', '.join('g.' + n for n in names)}, p.active AS prize_active FROM draw_game g"
            " JOIN draw_prize p ON p.game_id = g.id WHERE g.id = $1 AND p.id = $2", g.id, prize.id)
        g = _game({n: terms[n] for n in names}, list(g.prizes))
        if not g.open(now) or not terms["prize_active"]:
            raise DomainError(ErrorCode.GAME_NOT_OPEN, "this game is not open now", ["input", "gameId"])
        counts = await tx.fetchrow(
            "SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN played_at >= $3 THEN 1 ELSE 0 END), 0) AS today,"
            " COALESCE(SUM(CASE WHEN played_at >= $3 AND free THEN 1 ELSE 0 END), 0) AS free_today"
            " FROM draw_play WHERE game_id = $1 AND member_id = $2", g.id, member_id, clock.day_start(now))
        if g.total_limit is not None and int(counts["total"]) >= g.total_limit:
            raise DomainError(ErrorCode.PLAY_LIMIT_REACHED, f"at most {g.total_limit} plays per member",
                              ["input", "gameId"])
        if g.daily_limit is not None and int(counts["today"]) >= g.daily_limit:
            raise DomainError(ErrorCode.PLAY_LIMIT_REACHED, f"at most {g.daily_limit} plays a day", ["input", "gameId"])
        tier = await tiers.tier_by_id(acct.tier_id)
        free = int(counts["free_today"]) < g.free_allowance(tier.code)
        cost = 0 if free else g.cost_points
        if acct.spendable < cost:
            raise DomainError(ErrorCode.INSUFFICIENT_POINTS, f"a play costs {cost} points; {ledger.shortfall(acct)}",
                              ["input", "gameId"])
        ref = f"draw:{g.id}:{member_id}:{key}"[:64]
        spend = await ledger.debit(tx, acct, points=cost, kind="SPEND", reason=f"幸运抽奖 {g.name}",
                                   source_type="draw", source_ref=ref, occurred_at=now) if cost else None
        grant, order_id = await _grant(tx, acct, g, prize, key, ref, now)
        play_id = await tx.fetchval(
            "INSERT INTO draw_play (game_id, member_id, prize_id, free, cost_points, candidates, roll, redraws,"
            " spend_entry_id, grant_entry_id, order_id, idempotency_key, played_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
            g.id, member_id, prize.id, free, cost, json.dumps([[i, w] for i, w in candidates]), roll, redraws,
            spend.id if spend else None, grant.id if grant else None, order_id, key, now,
        )
        if prize.stock is not None and not await tx.execute(
                "UPDATE draw_prize SET stock = stock - 1 WHERE id = $1 AND stock >= 1", prize.id):
            raise _PrizeGone()
        result = PlayResult(play_id, acct.spendable)
        await idempotency.remember(tx, record_id, asdict(result))
    return result, False


async def _grant(tx: Tx, acct: ledger.LockedAccount, g: GameInfo, prize: PrizeInfo, key: str, ref: str,
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


# --- reading -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlayInfo:
    id: int
    game_id: int
    member_id: int
    prize_id: int
    free: bool
    cost_points: int
    points_granted: int
    order_id: int | None
    candidates: list[list[int]]
    roll: int
    redraws: int
    played_at: datetime


PLAY_COLUMNS = ("d.id, d.game_id, d.member_id, d.prize_id, d.free, d.cost_points, COALESCE(e.points, 0) AS points_granted,"
                " d.order_id, d.candidates, d.roll, d.redraws, d.played_at")


def _play(row: Any) -> PlayInfo:
    d = dict(row)
    d["free"] = bool(d["free"])
    d["candidates"] = json.loads(d["candidates"])
    d["played_at"] = clock.parse_db_time(d["played_at"])
    for name in ("cost_points", "points_granted", "roll"):
        d[name] = int(d[name])
    return PlayInfo(**d)


async def plays_page(*, member_id: int | None, game_id: int | None, limit: int, before_id: int | None) -> list[PlayInfo]:
    where, args = ["d.id < $1"], [before_id if before_id is not None else 2**62, limit]
    if member_id is not None:
        args.append(member_id)
        where.append(f"d.member_id = ${len(args)}")
    if game_id is not None:
        args.append(game_id)
        where.append(f"d.game_id = ${len(args)}")
    rows = await fetch(f"SELECT {PLAY_COLUMNS} FROM draw_play d LEFT JOIN points_entry e ON e.id = d.grant_entry_id"
                       f" WHERE {' AND '.join(where)} ORDER BY d.id DESC LIMIT $2", *args)
    return [_play(r) for r in rows]


async def play_by_id(play_id: int) -> PlayInfo | None:
    rows = await fetch(f"SELECT {PLAY_COLUMNS} FROM draw_play d LEFT JOIN points_entry e ON e.id = d.grant_entry_id"
                       " WHERE d.id = $1", play_id)
    return _play(rows[0]) if rows else None


@dataclass(frozen=True)
class MemberDay:
    plays_today: int
    free_plays_left: int
    plays_total: int


async def member_day(member_id: int, g: GameInfo, tier_code: str) -> MemberDay:
    rows = await fetch(
        "SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN played_at >= $3 THEN 1 ELSE 0 END), 0) AS today,"
        " COALESCE(SUM(CASE WHEN played_at >= $3 AND free THEN 1 ELSE 0 END), 0) AS free_today"
        " FROM draw_play WHERE game_id = $1 AND member_id = $2", g.id, member_id, clock.day_start(clock.now()))
    r = rows[0]
    return MemberDay(int(r["today"]), max(0, g.free_allowance(tier_code) - int(r["free_today"])), int(r["total"]))


@dataclass(frozen=True)
class PrizeStats:
    prize_id: int
    granted: int
    stock_left: int | None


@dataclass(frozen=True)
class GameStats:
    plays: int
    players: int
    free_plays: int
    points_consumed: int
    points_granted: int
    prizes: list[PrizeStats]


async def stats(g: GameInfo) -> GameStats:
    """For operators: plays, points consumed against points granted, and each prize's grants and stock."""
    total = (await fetch(
        "SELECT COUNT(*) AS plays, COUNT(DISTINCT member_id) AS players,"
        " COALESCE(SUM(CASE WHEN free THEN 1 ELSE 0 END), 0) AS free_plays,"
        " COALESCE(SUM(cost_points), 0) AS consumed, COALESCE(SUM(e.points), 0) AS granted"
        " FROM draw_play d LEFT JOIN points_entry e ON e.id = d.grant_entry_id WHERE d.game_id = $1", g.id))[0]
    per_prize = {r["prize_id"]: int(r["n"]) for r in await fetch(
        "SELECT prize_id, COUNT(*) AS n FROM draw_play WHERE game_id = $1 GROUP BY prize_id", g.id)}
    stock = {r["id"]: r["stock"] for r in await fetch("SELECT id, stock FROM draw_prize WHERE game_id = $1", g.id)}
    return GameStats(int(total["plays"]), int(total["players"]), int(total["free_plays"]), int(total["consumed"]),
                     int(total["granted"]), [PrizeStats(p.id, per_prize.get(p.id, 0),
                                                        None if stock.get(p.id) is None else int(stock[p.id]))
                                             for p in g.prizes])
