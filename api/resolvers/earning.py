"""Earning on the public endpoint: members check in, share and claim tasks; integrations report
reviews and event check-ins and preview an earn."""
from __future__ import annotations

from datetime import date


from strawberry.types import Info

from api.resolvers import user_errors
from api.schema import earning as e
from api.schema.ids import from_global_id
from api.services import earning, signing
from api.services.earning import behaviours, tasks
from api.services.errors import DomainError, ErrorCode


def pk_of(global_id: str, type_name: str, field: list[str]) -> int:
    parsed = from_global_id(global_id, type_name)
    if parsed is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no such {type_name}", field)
    return parsed[1]


@user_errors(e.MemberCheckInPayload)
async def member_check_in(info: Info, input: e.MemberCheckInInput) -> e.MemberCheckInPayload:
    result = await behaviours.check_in(info.context.member_id(), input.idempotency_key)
    return e.MemberCheckInPayload(
        check_in=e.CheckInDay(date=date.fromisoformat(result.day), streak=result.streak, points=result.points),
        points_earned=result.points, points_balance=result.points_balance)


@user_errors(e.ShareRecordPayload)
async def share_record(info: Info, input: e.ShareRecordInput) -> e.ShareRecordPayload:
    result = await behaviours.share(info.context.member_id(), input.channel, input.target, input.idempotency_key,
                                    redis=info.context.redis)
    return e.ShareRecordPayload(points_earned=result.points, points_balance=result.points_balance)


@user_errors(e.TaskClaimPayload)
async def task_claim(info: Info, input: e.TaskClaimInput) -> e.TaskClaimPayload:
    member_id = info.context.member_id()
    result = await tasks.claim(member_id, pk_of(input.task_id, "Task", ["taskId"]), input.idempotency_key)
    return e.TaskClaimPayload(points_earned=result.points, growth_value_earned=result.growth,
                              points_balance=result.points_balance)


@user_errors(e.ReviewRecordPayload)
async def review_record(info: Info, input: e.ReviewRecordInput) -> e.ReviewRecordPayload:
    result = await behaviours.review(info.context.integration(), input.merchant_code, input.receipt_no, input.rating,
                                     input.idempotency_key)
    return e.ReviewRecordPayload(points_earned=result.points)


@user_errors(e.EventCheckInPayload)
async def event_check_in(info: Info, input: e.EventCheckInInput) -> e.EventCheckInPayload:
    result = await behaviours.event_check_in(
        pk_of(input.event_id, "MallEvent", ["eventId"]), None, input.member_code, input.idempotency_key,
        identity=info.context.integration())
    return e.EventCheckInPayload(points_earned=result.points)


async def preview(member_id: int, data: e.PointsEarnPreviewInput, identity=None) -> e.PointsEarnPreviewPayload:
    outcome = await earning.preview_receipt(member_id, data.merchant_code, data.amount_fen, data.occurred_at, identity)
    return e.PointsEarnPreviewPayload(points=outcome.points, points_now=outcome.immediate_points,
                                      points_pending=outcome.pending_points, growth_value=outcome.growth,
                                      breakdown=e.EarnBreakdownItem.list_of(outcome))


@user_errors(e.PointsEarnPreviewPayload)
async def points_earn_preview(info: Info, input: e.PointsEarnPreviewInput) -> e.PointsEarnPreviewPayload:
    identity = info.context.integration()
    return await preview(signing.read_member_code(input.member_code or ""), input, identity)


