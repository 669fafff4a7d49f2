"""Earning on the public endpoint: members check in, share and claim tasks; integrations report
reviews and event check-ins and preview an earn."""
from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, Optional

from strawberry.types import Info

from api.resolvers import input_pk, user_errors
from api.schema import earning as e
from api.services import earning, signing
from api.services.earning import admin as earning_admin
from api.services.earning import behaviours, tasks


async def _config_node(info: Info, type_name: str, pk: int) -> Optional[Any]:
    """node(id:) for rules, tasks and events: only for operators on their endpoint, else null."""
    if not info.context.is_operator:
        return None
    found = await earning_admin.find(type_name, pk)
    of: dict[str, Callable[[Any], Any]] = {"EarnRule": e.EarnRule.of, "Task": e.Task.of, "MallEvent": e.MallEvent.of}
    return None if found is None else of[type_name](found)


async def _rule_node(info: Info, pk: int) -> Optional[e.EarnRule]:
    return await _config_node(info, "EarnRule", pk)


async def _task_node(info: Info, pk: int) -> Optional[e.Task]:
    return await _config_node(info, "Task", pk)


async def _event_node(info: Info, pk: int) -> Optional[e.MallEvent]:
    return await _config_node(info, "MallEvent", pk)


NODES = {"EarnRule": _rule_node, "Task": _task_node, "MallEvent": _event_node}


@user_errors(e.MemberCheckInPayload)
async def member_check_in(info: Info, input: e.MemberCheckInInput) -> e.MemberCheckInPayload:
    result = await behaviours.check_in(info.context.require_member(), input.idempotency_key)
    return e.MemberCheckInPayload(
        check_in=e.CheckInDay(date=date.fromisoformat(result.day), streak=result.streak, points=result.points),
        points_earned=result.points, points_balance=result.points_balance)


@user_errors(e.ShareRecordPayload)
async def share_record(info: Info, input: e.ShareRecordInput) -> e.ShareRecordPayload:
    result = await behaviours.share(info.context.require_member(), input.channel, input.target, input.idempotency_key,
                                    redis=info.context.redis)
    return e.ShareRecordPayload(points_earned=result.points, points_balance=result.points_balance)


@user_errors(e.TaskClaimPayload)
async def task_claim(info: Info, input: e.TaskClaimInput) -> e.TaskClaimPayload:
    member_id = info.context.require_member()
    result = await tasks.claim(member_id, input_pk(input.task_id, "Task", ["taskId"]), input.idempotency_key)
    return e.TaskClaimPayload(points_earned=result.points, growth_value_earned=result.growth,
                              points_balance=result.points_balance)


@user_errors(e.ReviewRecordPayload)
async def review_record(info: Info, input: e.ReviewRecordInput) -> e.ReviewRecordPayload:
    identity = info.context.require_integration()
    result = await behaviours.review(identity, input.merchant_code, input.receipt_no, input.rating,
                                     input.idempotency_key)
    return e.ReviewRecordPayload(points_earned=result.points)


@user_errors(e.EventCheckInPayload)
async def event_check_in(info: Info, input: e.EventCheckInInput) -> e.EventCheckInPayload:
    result = await behaviours.event_check_in(
        input_pk(input.event_id, "MallEvent", ["eventId"]), None, input.member_code, input.idempotency_key,
        identity=info.context.require_integration())
    return e.EventCheckInPayload(points_earned=result.points)


async def preview(member_id: int, data: e.PointsEarnPreviewInput, identity=None) -> e.PointsEarnPreviewPayload:
    outcome = await earning.preview_receipt(member_id, data.merchant_code, data.amount_fen, data.occurred_at, identity)
    return e.PointsEarnPreviewPayload(points=outcome.points, points_now=outcome.immediate_points,
                                      points_pending=outcome.pending_points, growth_value=outcome.growth,
                                      breakdown=e.EarnBreakdownItem.list_of(outcome))


@user_errors(e.PointsEarnPreviewPayload)
async def points_earn_preview(info: Info, input: e.PointsEarnPreviewInput) -> e.PointsEarnPreviewPayload:
    identity = info.context.require_integration()
    return await preview(signing.read_member_code(input.member_code or ""), input, identity)
