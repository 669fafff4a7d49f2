"""The operators' endpoint schema (GraphiQL and introspection allowed; operator token required)."""
from __future__ import annotations

from typing import Optional

import strawberry
from strawberry.extensions import AddValidationRules, MaskErrors, ParserCache, ValidationCache
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule

from api.resolvers import admin as a
from api.resolvers import earning_admin as ea
from api.resolvers import public as r
from api.schema import earning as e
from api.schema import payloads as p
from api.schema.errors import should_mask
from api.schema.types import Connection, Member, Merchant, Node, PointsEntry, Purchase, Tier


@strawberry.type
class Query:
    members: Connection[Member] = strawberry.field(
        resolver=a.members_page, description="Members, searched by phone digits or nickname.")
    member: Optional[Member] = strawberry.field(resolver=a.member)
    merchants: Connection[Merchant] = strawberry.field(resolver=a.merchants_page)
    tiers: list[Tier] = strawberry.field(resolver=r.all_tiers)
    node: Optional[Node] = strawberry.field(resolver=r.node)
    sms_messages: list[p.SmsMessage] = strawberry.field(
        resolver=a.sms_messages, description="Dev-only: the console SMS sender's outbox, newest first.")
    integration_keys: list[p.IntegrationKey] = strawberry.field(resolver=a.integration_keys)
    # earning (issue 3)
    earn_rules: Connection[e.EarnRule] = strawberry.field(resolver=ea.earn_rules)
    earn_tasks: Connection[e.Task] = strawberry.field(resolver=ea.earn_tasks)
    mall_events: Connection[e.MallEvent] = strawberry.field(resolver=ea.mall_events)


@strawberry.type
class Mutation:
    operator_login: p.OperatorLoginPayload = strawberry.mutation(resolver=a.operator_login)
    points_adjust: p.PointsAdjustPayload = strawberry.mutation(
        resolver=a.points_adjust, description="Adds or takes points with a reason; audited.")
    points_expire_run: p.PointsExpireRunPayload = strawberry.mutation(resolver=a.points_expire_run)
    tier_evaluation_run: p.TierEvaluationRunPayload = strawberry.mutation(
        resolver=a.tier_evaluation_run, description="Closes ended qualification periods (downgrades are logged).")
    integration_key_create: p.IntegrationKeyCreatePayload = strawberry.mutation(resolver=a.integration_key_create)
    integration_key_revoke: p.IntegrationKeyRevokePayload = strawberry.mutation(resolver=a.integration_key_revoke)
    # earning (issue 3): rules, tasks, events, check-in to events, previews, the scheduled run
    earn_rule_create: e.EarnRuleCreatePayload = strawberry.mutation(resolver=ea.earn_rule_create)
    earn_rule_update: e.EarnRuleUpdatePayload = strawberry.mutation(resolver=ea.earn_rule_update)
    earn_rule_pause: e.EarnRulePausePayload = strawberry.mutation(resolver=ea.earn_rule_pause)
    earn_rule_activate: e.EarnRuleActivatePayload = strawberry.mutation(resolver=ea.earn_rule_activate)
    earn_rule_archive: e.EarnRuleArchivePayload = strawberry.mutation(resolver=ea.earn_rule_archive)
    task_create: e.TaskCreatePayload = strawberry.mutation(resolver=ea.task_create)
    task_update: e.TaskUpdatePayload = strawberry.mutation(resolver=ea.task_update)
    task_pause: e.TaskPausePayload = strawberry.mutation(resolver=ea.task_pause)
    task_activate: e.TaskActivatePayload = strawberry.mutation(resolver=ea.task_activate)
    task_archive: e.TaskArchivePayload = strawberry.mutation(resolver=ea.task_archive)
    mall_event_create: e.MallEventCreatePayload = strawberry.mutation(resolver=ea.mall_event_create)
    mall_event_update: e.MallEventUpdatePayload = strawberry.mutation(resolver=ea.mall_event_update)
    mall_event_archive: e.MallEventArchivePayload = strawberry.mutation(resolver=ea.mall_event_archive)
    event_check_in: e.EventCheckInPayload = strawberry.mutation(
        resolver=ea.event_check_in, description="Checks a member in to an event (once per event).")
    points_earn_preview: e.PointsEarnPreviewPayload = strawberry.mutation(
        resolver=ea.points_earn_preview, description="What a receipt would earn for a member; books nothing.")
    earning_schedule_run: e.EarningScheduleRunPayload = strawberry.mutation(
        resolver=ea.earning_schedule_run,
        description="Runs the scheduled jobs now: pending release, invite rewards, expiry, tier evaluation.")


RULES = [depth_rule(15, None)]  # built once, so that ValidationCache hits


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        types=[Member, PointsEntry, Tier, Purchase, Merchant],
        extensions=[
            lambda: ParserCache(maxsize=256),
            lambda: AddValidationRules(RULES),
            lambda: ValidationCache(maxsize=256),
            lambda: MaskErrors(should_mask_error=should_mask),
        ],
    )


schema = build_schema()
