"""Thin resolvers of the lucky draws (members and operators)."""
from __future__ import annotations

from typing import Optional

import strawberry
from strawberry.types import Info

from api.resolvers import input_pk, user_errors
from api.schema import draws as d
from api.schema.base import Connection, check_first, from_cursor, from_global_id
from api.services import draws
from api.services.errors import DomainError, ErrorCode


async def games(info: Info, first: int, after: Optional[str] = None) -> Connection[d.DrawGame]:
    check_first(first)
    if info.context.endpoint == "admin":
        info.context.require_operator()
    include_hidden = info.context.is_operator
    rows = await draws.games_page(first + 1, from_cursor(after), include_hidden=include_hidden)
    return Connection.of([d.DrawGame.of(g) for g in rows], first, after)


@user_errors(d.LuckyDrawPlayPayload)
async def lucky_draw_play(info: Info, input: d.LuckyDrawPlayInput) -> d.LuckyDrawPlayPayload:
    result = await draws.play(info.context.require_member(), input_pk(input.game_id, "DrawGame", "gameId"),
                              input.idempotency_key, info.context.redis)
    if result.booked is not None:  # as booked: no read after commit
        booked, prize = result.booked
        return d.LuckyDrawPlayPayload(play=d.DrawPlay.of(booked, prize), points_balance=result.points_balance)
    found = await draws.play_by_id(result.play_id)  # a repeat: the first play
    assert found is not None  # booked before
    return d.LuckyDrawPlayPayload(play=d.DrawPlay.of(found), points_balance=result.points_balance)


async def admin_plays(info: Info, first: int, after: Optional[str] = None,
                      game_id: Optional[strawberry.ID] = None) -> Connection[d.DrawPlay]:
    info.context.require_operator()
    check_first(first)
    game_pk = from_global_id(game_id, "DrawGame") if game_id else None
    rows = await draws.plays_page(member_id=None, game_id=game_pk[1] if game_pk else None, limit=first + 1,
                                  before_id=from_cursor(after))
    return Connection.of([d.DrawPlay.of(p) for p in rows], first, after)


async def _game_node(info: Info, pk: int) -> Optional[d.DrawGame]:
    try:
        g = await draws.game(pk)
    except DomainError:
        return None
    return d.DrawGame.of(g) if g.status != "ARCHIVED" or info.context.endpoint == "admin" else None


async def _play_node(info: Info, pk: int) -> Optional[d.DrawPlay]:
    found = await draws.play_by_id(pk)
    return d.DrawPlay.of(found) if found and info.context.may_read_member(found.member_id) else None


NODES = {"DrawGame": _game_node, "DrawPlay": _play_node}


def _segment(segment_id: Optional[strawberry.ID]) -> Optional[int]:
    return input_pk(segment_id, "Segment", "segmentId") if segment_id is not None else None


def _free(plays: Optional[list[d.FreePlaysInput]]) -> Optional[dict[str, int]]:
    return None if plays is None else {p.tier_code: p.plays_per_day for p in plays}


@user_errors(d.DrawGamePayload)
async def game_create(info: Info, input: d.DrawGameCreateInput) -> d.DrawGamePayload:
    prizes = [draws.PrizeData(name=p.name, kind=p.kind.value, weight=p.weight, points=p.points,
                              product_id=input_pk(p.product_id, "Product", "productId") if p.product_id else None,
                              stock=p.stock, position=p.position) for p in input.prizes]
    game = await draws.create_game(
        info.context.operator_actor(), name=input.name, kind=input.kind.value, cost_points=input.cost_points,
        free_plays=_free(input.free_plays) or {}, daily_limit=input.daily_limit, total_limit=input.total_limit,
        starts_at=input.starts_at, ends_at=input.ends_at, prizes=prizes, segment_id=_segment(input.segment_id))
    return d.DrawGamePayload(game=d.DrawGame.of(game))


_CLEARABLE = {"dailyLimit": "daily_limit", "totalLimit": "total_limit", "segmentId": "segment_id"}


@user_errors(d.DrawGamePayload)
async def game_update(info: Info, input: d.DrawGameUpdateInput) -> d.DrawGamePayload:
    unknown = [c for c in input.clear or [] if c not in _CLEARABLE]
    if unknown:
        raise DomainError(ErrorCode.INVALID_INPUT, f"cannot clear {', '.join(unknown)}", ["input", "clear"])
    actor = info.context.operator_actor()
    game = await draws.update_game(
        actor, input_pk(input.game_id, "DrawGame", "gameId"), name=input.name, cost_points=input.cost_points,
        free_plays=_free(input.free_plays), daily_limit=input.daily_limit, total_limit=input.total_limit,
        starts_at=input.starts_at, ends_at=input.ends_at, status=input.status.value if input.status else None,
        segment_id=_segment(input.segment_id), clear=frozenset(_CLEARABLE[c] for c in input.clear or []))
    return d.DrawGamePayload(game=d.DrawGame.of(game))


@user_errors(d.DrawGamePayload)
async def prize_update(info: Info, input: d.DrawPrizeUpdateInput) -> d.DrawGamePayload:
    actor = info.context.operator_actor()
    game = await draws.update_prize(actor, input_pk(input.prize_id, "DrawPrize", "prizeId"), weight=input.weight,
                                    stock_delta=input.stock_delta, active=input.active, redis=info.context.redis)
    return d.DrawGamePayload(game=d.DrawGame.of(game))
