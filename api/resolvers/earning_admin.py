"""Earning on the operators' endpoint: rules, tasks and events, event check-in, previews, runs."""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import strawberry
from strawberry.types import Info

from api.resolvers import input_pk, user_errors
from api.resolvers.earning import preview
from api.schema import earning as e
from api.schema.base import Connection, check_first, from_cursor
from api.services import scheduler
from api.services.earning import admin as earning_admin
from api.services.earning import behaviours


async def earn_rules(info: Info, first: int, after: Optional[str] = None,
                     status: Optional[e.ConfigStatus] = None) -> Connection[e.EarnRule]:
    info.context.require_operator()
    check_first(first)
    rows = await earning_admin.rules_page(first + 1, from_cursor(after), status.value if status else None)
    return Connection.of([e.EarnRule.of(r) for r in rows], first, after)


async def earn_tasks(info: Info, first: int, after: Optional[str] = None) -> Connection[e.Task]:
    info.context.require_operator()
    check_first(first)
    rows = await earning_admin.tasks_page(first + 1, from_cursor(after))
    return Connection.of([e.Task.of(t) for t in rows], first, after)


async def mall_events(info: Info, first: int, after: Optional[str] = None) -> Connection[e.MallEvent]:
    info.context.require_operator()
    check_first(first)
    rows = await earning_admin.events_page(first + 1, from_cursor(after))
    return Connection.of([e.MallEvent.of(r) for r in rows], first, after)


def _segment(segment_id: Optional[strawberry.ID]) -> Optional[int]:
    return input_pk(segment_id, "Segment", "segmentId") if segment_id is not None else None


@user_errors(e.EarnRuleCreatePayload)
async def earn_rule_create(info: Info, input: e.EarnRuleCreateInput) -> e.EarnRuleCreatePayload:
    actor = info.context.operator_actor()
    data = replace(input.to_service(), segment_id=_segment(input.segment_id))
    return e.EarnRuleCreatePayload(rule=e.EarnRule.of(await earning_admin.create_rule(actor, data)))


@user_errors(e.EarnRuleUpdatePayload)
async def earn_rule_update(info: Info, input: e.EarnRuleUpdateInput) -> e.EarnRuleUpdatePayload:
    rule_id = input_pk(input.rule_id, "EarnRule", ["input", "ruleId"])
    data = replace(input.to_service(), segment_id=_segment(input.segment_id))
    rule = await earning_admin.update_rule(info.context.operator_actor(), rule_id, data)
    return e.EarnRuleUpdatePayload(rule=e.EarnRule.of(rule))


async def _rule_status(info: Info, rule_id: str, status: str) -> e.EarnRule:
    pk = input_pk(rule_id, "EarnRule", ["input", "ruleId"])
    return e.EarnRule.of(await earning_admin.set_rule_status(info.context.operator_actor(), pk, status))


@user_errors(e.EarnRulePausePayload)
async def earn_rule_pause(info: Info, input: e.EarnRulePauseInput) -> e.EarnRulePausePayload:
    return e.EarnRulePausePayload(rule=await _rule_status(info, input.rule_id, "PAUSED"))


@user_errors(e.EarnRuleActivatePayload)
async def earn_rule_activate(info: Info, input: e.EarnRuleActivateInput) -> e.EarnRuleActivatePayload:
    return e.EarnRuleActivatePayload(rule=await _rule_status(info, input.rule_id, "ACTIVE"))


@user_errors(e.EarnRuleArchivePayload)
async def earn_rule_archive(info: Info, input: e.EarnRuleArchiveInput) -> e.EarnRuleArchivePayload:
    return e.EarnRuleArchivePayload(rule=await _rule_status(info, input.rule_id, "ARCHIVED"))


@user_errors(e.TaskCreatePayload)
async def task_create(info: Info, input: e.TaskCreateInput) -> e.TaskCreatePayload:
    actor = info.context.operator_actor()
    data = replace(input.to_service(), segment_id=_segment(input.segment_id))
    return e.TaskCreatePayload(task=e.Task.of(await earning_admin.save_task(actor, None, data)))


@user_errors(e.TaskUpdatePayload)
async def task_update(info: Info, input: e.TaskUpdateInput) -> e.TaskUpdatePayload:
    pk = input_pk(input.task_id, "Task", ["input", "taskId"])
    actor = info.context.operator_actor()
    data = replace(input.to_service(), segment_id=_segment(input.segment_id))
    return e.TaskUpdatePayload(task=e.Task.of(await earning_admin.save_task(actor, pk, data)))


async def _task_status(info: Info, task_id: str, status: str) -> e.Task:
    pk = input_pk(task_id, "Task", ["input", "taskId"])
    actor = info.context.operator_actor()
    return e.Task.of(await earning_admin.save_task(actor, pk, earning_admin.TaskInput(), status))


@user_errors(e.TaskPausePayload)
async def task_pause(info: Info, input: e.TaskPauseInput) -> e.TaskPausePayload:
    return e.TaskPausePayload(task=await _task_status(info, input.task_id, "PAUSED"))


@user_errors(e.TaskActivatePayload)
async def task_activate(info: Info, input: e.TaskActivateInput) -> e.TaskActivatePayload:
    return e.TaskActivatePayload(task=await _task_status(info, input.task_id, "ACTIVE"))


@user_errors(e.TaskArchivePayload)
async def task_archive(info: Info, input: e.TaskArchiveInput) -> e.TaskArchivePayload:
    return e.TaskArchivePayload(task=await _task_status(info, input.task_id, "ARCHIVED"))


@user_errors(e.MallEventCreatePayload)
async def mall_event_create(info: Info, input: e.MallEventCreateInput) -> e.MallEventCreatePayload:
    actor = info.context.operator_actor()
    event = await earning_admin.save_event(actor, None, input.code, input.name, input.merchant_code,
                                           input.starts_at, input.ends_at)
    return e.MallEventCreatePayload(event=e.MallEvent.of(event))


@user_errors(e.MallEventUpdatePayload)
async def mall_event_update(info: Info, input: e.MallEventUpdateInput) -> e.MallEventUpdatePayload:
    pk = input_pk(input.event_id, "MallEvent", ["input", "eventId"])
    actor = info.context.operator_actor()
    event = await earning_admin.save_event(actor, pk, None, input.name, input.merchant_code, input.starts_at,
                                           input.ends_at)
    return e.MallEventUpdatePayload(event=e.MallEvent.of(event))


@user_errors(e.MallEventArchivePayload)
async def mall_event_archive(info: Info, input: e.MallEventArchiveInput) -> e.MallEventArchivePayload:
    pk = input_pk(input.event_id, "MallEvent", ["input", "eventId"])
    event = await earning_admin.save_event(info.context.operator_actor(), pk, None, None, None, None, None, "ARCHIVED")
    return e.MallEventArchivePayload(event=e.MallEvent.of(event))


@user_errors(e.EventCheckInPayload)
async def event_check_in(info: Info, input: e.EventCheckInInput) -> e.EventCheckInPayload:
    operator_id = info.context.require_operator()
    result = await behaviours.event_check_in(
        input_pk(input.event_id, "MallEvent", ["eventId"]), input_pk(input.member_id or "", "Member", ["memberId"]), None,
        input.idempotency_key, operator_id=operator_id)
    return e.EventCheckInPayload(points_earned=result.points)


@user_errors(e.PointsEarnPreviewPayload)
async def points_earn_preview(info: Info, input: e.PointsEarnPreviewInput) -> e.PointsEarnPreviewPayload:
    info.context.require_operator()
    return await preview(input_pk(input.member_id or "", "Member", ["memberId"]), input)


@user_errors(e.EarningScheduleRunPayload)
async def earning_schedule_run(info: Info, input: e.EarningScheduleRunInput) -> e.EarningScheduleRunPayload:
    r = await scheduler.run_once(info.context.operator_actor(), input.as_of)
    return e.EarningScheduleRunPayload(
        pending_released=r.pending_released, pending_points_released=r.pending_points_released,
        invites_rewarded=r.invites_rewarded, points_expired=r.points_expired, tier_periods_closed=r.tier_periods_closed,
        orders_expired=r.orders_expired, stays_abandoned=r.stays_abandoned)
