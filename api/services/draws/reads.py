"""Reading plays: pages, one play, a member's day, a game's figures, and the batches the schema's
DataLoaders use for a list of plays (the masked phone of each player, the order of each prize)."""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime

from tortoise.functions import Count

from api import db
from api.models import DrawPlay, DrawPrize, MallOrder, Member
from api.services import clock, mall, members
from api.services.draws import sql
from api.services.draws.games import GameInfo


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

    @classmethod
    def of(cls, m: DrawPlay) -> PlayInfo:
        """From a play read with its grant entry (`select_related("grant_entry")`)."""
        values = {f.name: getattr(m, f.name) for f in fields(cls) if f.name not in ("points_granted", "candidates")}
        return cls(**values, points_granted=m.grant_entry.points if m.grant_entry else 0,
                   candidates=json.loads(m.candidates))


async def plays_page(*, member_id: int | None, game_id: int | None, limit: int, before_id: int | None) -> list[PlayInfo]:
    query = DrawPlay.all().select_related("grant_entry")
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    if member_id is not None:
        query = query.filter(member_id=member_id)
    if game_id is not None:
        query = query.filter(game_id=game_id)
    return [PlayInfo.of(p) for p in await query.order_by("-id").limit(limit)]


async def play_by_id(play_id: int) -> PlayInfo | None:
    found = await DrawPlay.filter(id=play_id).select_related("grant_entry").first()
    return PlayInfo.of(found) if found else None


async def phones_masked(member_ids: list[int]) -> dict[int, str]:
    """The masked phone of each player (a DataLoader's batch for a list of plays): one query."""
    if not member_ids:
        return {}
    rows = await Member.filter(id__in=list(member_ids)).values_list("id", "phone")
    return {member_id: members.mask_phone(phone) for member_id, phone in rows}


async def orders_by_id(order_ids: list[int]) -> dict[int, mall.OrderInfo]:
    """The orders holding won vouchers (a DataLoader's batch for a list of plays): one query."""
    if not order_ids:
        return {}
    names = [f.name for f in fields(mall.OrderInfo)]
    return {o.id: mall.OrderInfo(**{n: getattr(o, n) for n in names})
            for o in await MallOrder.filter(id__in=list(order_ids))}


@dataclass(frozen=True)
class MemberDay:
    plays_today: int
    free_plays_left: int
    plays_total: int


async def member_day(member_id: int, g: GameInfo, tier_code: str) -> MemberDay:
    r = (await db.fetch(sql.PLAY_COUNTS, g.id, member_id, clock.day_start(clock.now())))[0]
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
    total = (await db.fetch(sql.GAME_TOTALS, g.id))[0]
    per_prize = dict(await DrawPlay.filter(game_id=g.id).annotate(n=Count("id")).group_by("prize_id")
                     .values_list("prize_id", "n"))
    stock = dict(await DrawPrize.filter(game_id=g.id).values_list("id", "stock"))
    return GameStats(int(total["plays"]), int(total["players"]), int(total["free_plays"]), int(total["consumed"]),
                     int(total["granted"]), [PrizeStats(p.id, per_prize.get(p.id, 0), stock.get(p.id))
                                             for p in g.prizes])
