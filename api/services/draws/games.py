"""Games and their prizes as the rest of the draws see them, and their look-ups (with a short
process cache for plays)."""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime

from api.db import held_locks
from api.models import DrawGame, DrawPrize
from api.services import clock
from api.services.errors import DomainError, ErrorCode


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

    @classmethod
    def of(cls, m: DrawPrize) -> PrizeInfo:
        return cls(**{f.name: getattr(m, f.name) for f in fields(cls)})


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
    segment_id: int | None  # only members of this segment may play (issue 13 item 3)
    prizes: tuple[PrizeInfo, ...]

    @classmethod
    def of(cls, m: DrawGame, prizes: Iterable[PrizeInfo]) -> GameInfo:
        values = {f.name: getattr(m, f.name) for f in fields(cls) if f.name not in ("free_plays", "prizes")}
        return cls(**values, free_plays=json.loads(m.free_plays or "{}"),
                   prizes=tuple(sorted(prizes, key=lambda p: (p.position, p.id))))

    def open(self, now: datetime) -> bool:
        return self.status == "ACTIVE" and self.starts_at <= now < self.ends_at

    def free_allowance(self, tier_code: str) -> int:
        return int(self.free_plays.get(tier_code, self.free_plays.get("*", 0)))


async def _with_prizes(games: list[DrawGame]) -> list[GameInfo]:
    """The games with their prizes (one query for all of them)."""
    by_game: dict[int, list[PrizeInfo]] = {g.id: [] for g in games}
    if games:
        for p in await DrawPrize.filter(game_id__in=list(by_game)):
            by_game[p.game_id].append(PrizeInfo.of(p))
    return [GameInfo.of(g, by_game[g.id]) for g in games]


async def games_by_id(ids: list[int]) -> dict[int, GameInfo]:
    """Games by id (a DataLoader's batch)."""
    if not ids:
        return {}
    return {g.id: g for g in await _with_prizes(list(await DrawGame.filter(id__in=list(ids))))}


_cache: dict[int, tuple[float, GameInfo]] = {}
CACHE_SECONDS = 2.0  # an operator's change reaches every process within this time


_loading: dict[int, asyncio.Future[GameInfo]] = {}


async def game(game_id: int, fresh: bool = False) -> GameInfo:
    """A game with its prizes, from the process's cache (at most CACHE_SECONDS old) unless `fresh`. In
    a crowd, one read per process is in flight at a time and the others wait for it: thousands of plays
    missing the cache at once (a new game, an expired copy) would each read it, two queries apiece."""
    cached = _cache.get(game_id)
    if not fresh and cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    if fresh or held_locks.get() is not None:  # inside a transaction: on its connection, not shared
        return await _read(game_id)
    pending = _loading.get(game_id)
    if pending is None:
        pending = asyncio.ensure_future(_read(game_id))
        _loading[game_id] = pending
        pending.add_done_callback(lambda _f: _loading.pop(game_id, None))
    return await asyncio.shield(pending)


async def _read(game_id: int) -> GameInfo:
    found = (await games_by_id([game_id])).get(game_id)
    if found is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such game", ["input", "gameId"])
    _cache[game_id] = (time.monotonic(), found)
    return found


def forget(game_id: int | None = None) -> None:
    """Drops a game (None: every game) from this process's cache (after an operator changed it)."""
    if game_id is None:
        _cache.clear()
        _loading.clear()
    else:
        _cache.pop(game_id, None)
        _loading.pop(game_id, None)


async def games_page(limit: int, after_id: int | None, *, include_hidden: bool) -> list[GameInfo]:
    query = DrawGame.filter(id__gt=after_id or 0)
    if not include_hidden:
        query = query.filter(status="ACTIVE", ends_at__gt=clock.now())
    return await _with_prizes(list(await query.order_by("id").limit(limit)))
