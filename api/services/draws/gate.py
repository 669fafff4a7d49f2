"""The Redis stock gate in front of limited prizes: rejects early, rolls back when the database step
fails, and is rebuilt from the database (the database's conditional update decides)."""
from __future__ import annotations

from typing import Any, cast

from api.db import fetch
from api.models import DrawPrize
from api.services import clock
from api.services.draws import sql
from api.services.draws.games import GameInfo, game
from api.services.mall import stock_gate


def gate_key(game_id: int, prize_id: int) -> str:
    """The logical key of a prize's counter (api/services/mall/stock_gate.py adds the installation id);
    `{draw:<game>}` is the hash tag that keeps one game's prizes in one slot of a Redis Cluster."""
    return f"mallpoints:{{draw:{game_id}}}:prize:{prize_id}"


async def gate_ttl(game_id: int) -> int:
    g = await game(game_id)
    return max(60, int((g.ends_at - clock.now()).total_seconds()) + 86400)


async def stock_now(g: GameInfo, redis: Any) -> dict[int, int | None]:
    """Units left per prize (None: unlimited), from the gate where loaded, else from the database."""
    limited = [p for p in g.prizes if p.active and p.stock is not None]
    found: dict[int, int | None] = {p.id: None for p in g.prizes if p.active and p.stock is None}
    gate = await stock_gate.peek(redis, [gate_key(g.id, p.id) for p in limited]) if redis is not None else None
    missing = [p.id for i, p in enumerate(limited) if gate is None or gate[i] is None]
    for i, p in enumerate(limited):
        if gate is not None and gate[i] is not None:
            found[p.id] = gate[i]
    if missing:
        found.update(await DrawPrize.filter(id__in=missing).values_list("id", "stock"))
    return found


async def db_stock(prize_id: int) -> int | None:
    """A prize's units left in the database (the gate's loader)."""
    return cast("int | None", await DrawPrize.filter(id=prize_id).first().values_list("stock", flat=True))


def play_token(member_id: int, key: str) -> str:
    """What a play's unit is taken under in the prize's counter, as its `draw_play` row records it."""
    return f"{member_id}:{key}"


async def reload_prize_gate(redis: Any, prize_id: int) -> None:
    """The gate's counter from the database (the reconciliation, a refunded win, an operator's change):
    the prize's units left, less the units of plays still in flight (api/services/mall/stock_gate.py)."""
    rows = await fetch(sql.PRIZE_SNAPSHOT, prize_id)
    if not rows or rows[0]["stock"] is None:
        return
    game_id, stock = int(rows[0]["game_id"]), int(rows[0]["stock"])
    recorded = [play_token(r["member_id"], r["idempotency_key"]) for r in rows if r["member_id"] is not None]
    await stock_gate.reload(redis, gate_key(game_id, prize_id), stock, await gate_ttl(game_id), recorded)
