"""The operators' endpoint schema (GraphiQL and introspection allowed; operator token required)."""
from __future__ import annotations

from typing import Optional

import strawberry
from graphql import ASTValidationRule
from strawberry.extensions import AddValidationRules, MaskErrors, ParserCache, ValidationCache
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule

from api.resolvers import admin as a
from api.resolvers import draws as drr
from api.resolvers import earning_admin as ea
from api.resolvers import mall as mr
from api.resolvers import operators as o
from api.resolvers import parking as pkr
from api.resolvers import public as r
from api.resolvers import staff as st
from api.schema import draws as dr
from api.schema import earning as e
from api.schema import mall as m
from api.schema import parking as pk
from api.schema import payloads as p
from api.schema import staff as sp
from api.schema.errors import should_mask
from api.schema.execution import AcyclicExecutionContext
from api.schema.insight import InsightMutation, InsightQuery
from api.schema.merchant_assistant.root import MerchantAssistantAdminMutation, MerchantAssistantAdminQuery
from api.schema.operators.permissions import RolePermissions
from api.schema.operators.root import OperatorsMutation, OperatorsQuery
from api.schema.reach.restrictions import OperatorsSchema
from api.schema.reach.root import ReachMutation, ReachQuery
from api.schema.settlement.root import SettlementMutation, SettlementQuery
from api.schema.types import Connection, Member, Merchant, Node, PointsEntry, Purchase, Tier


@strawberry.type
class Query(OperatorsQuery, MerchantAssistantAdminQuery, ReachQuery, SettlementQuery, InsightQuery):
    members: Connection[Member] = strawberry.field(
        resolver=a.members_page, description="Members, searched by phone digits or nickname.")
    member: Optional[Member] = strawberry.field(resolver=a.member)
    merchants: Connection[Merchant] = strawberry.field(resolver=a.merchants_page)
    tiers: list[Tier] = strawberry.field(resolver=o.tiers_for_operators)
    node: Optional[Node] = strawberry.field(resolver=r.node)
    sms_messages: list[p.SmsMessage] = strawberry.field(
        resolver=a.sms_messages, description="Dev-only: the console SMS sender's outbox, newest first.")
    integration_keys: list[p.IntegrationKey] = strawberry.field(resolver=a.integration_keys)
    products: Connection[m.Product] = strawberry.field(resolver=mr.admin_products, description="Every product.")
    flash_sales: Connection[m.FlashSale] = strawberry.field(resolver=mr.admin_flash_sales)
    draw_games: Connection[dr.DrawGame] = strawberry.field(resolver=drr.games, description="Every game.")
    draw_plays: Connection[dr.DrawPlay] = strawberry.field(
        resolver=drr.admin_plays, description="Plays, newest first (optionally one game's), with their draw inputs.")
    car_parks: list[pk.CarPark] = strawberry.field(resolver=pkr.car_parks)
    parking_sessions: Connection[pk.ParkingSession] = strawberry.field(
        resolver=pkr.parking_sessions, description="Stays, newest first (optionally one car park's, one status).")
    parking_occupancy: list[pk.CarParkOccupancy] = strawberry.field(
        resolver=pkr.parking_occupancy, description="Open stays per car park; today's entries and exits.")
    parking_offset_totals: list[pk.ParkingOffsetTotals] = strawberry.field(
        resolver=pkr.parking_offset_totals, description="Fees and discounts by kind of the stays that exited in [from, to).")
    mall_orders: Connection[m.MallOrder] = strawberry.field(
        resolver=mr.admin_orders, description="Orders of the points mall, newest first (optionally one member's).")
    merchant_staff: Connection[sp.MerchantStaff] = strawberry.field(
        resolver=st.merchant_staff_page, description="Merchant staff accounts, optionally of one merchant.")
    # earning (issue 3)
    earn_rules: Connection[e.EarnRule] = strawberry.field(resolver=ea.earn_rules)
    earn_tasks: Connection[e.Task] = strawberry.field(resolver=ea.earn_tasks)
    mall_events: Connection[e.MallEvent] = strawberry.field(resolver=ea.mall_events)


@strawberry.type
class Mutation(OperatorsMutation, MerchantAssistantAdminMutation, ReachMutation, SettlementMutation, InsightMutation):
    points_expire_run: p.PointsExpireRunPayload = strawberry.mutation(resolver=a.points_expire_run)
    tier_evaluation_run: p.TierEvaluationRunPayload = strawberry.mutation(
        resolver=a.tier_evaluation_run, description="Closes ended qualification periods (downgrades are logged).")
    integration_key_create: p.IntegrationKeyCreatePayload = strawberry.mutation(resolver=a.integration_key_create)
    integration_key_revoke: p.IntegrationKeyRevokePayload = strawberry.mutation(resolver=a.integration_key_revoke)
    product_create: m.ProductPayload = strawberry.mutation(resolver=mr.product_create, description="Audited.")
    product_update: m.ProductPayload = strawberry.mutation(
        resolver=mr.product_update, description="Edits, restocks (stockDelta), pauses or archives; audited.")
    flash_sale_create: m.FlashSalePayload = strawberry.mutation(resolver=mr.flash_sale_create)
    flash_sale_update: m.FlashSalePayload = strawberry.mutation(resolver=mr.flash_sale_update)
    flash_sale_gate_rebuild: m.FlashSaleGateRebuildPayload = strawberry.mutation(
        resolver=mr.flash_sale_gate_rebuild, description="Reloads a sale's Redis gate from the database.")
    draw_game_create: dr.DrawGamePayload = strawberry.mutation(resolver=drr.game_create, description="Audited.")
    draw_game_update: dr.DrawGamePayload = strawberry.mutation(
        resolver=drr.game_update, description="Terms, window, pause or archive; audited.")
    draw_prize_update: dr.DrawGamePayload = strawberry.mutation(
        resolver=drr.prize_update, description="Weight, restock (stockDelta) or switch off a prize; audited.")
    car_park_create: pk.CarParkPayload = strawberry.mutation(resolver=pkr.car_park_create, description="Audited.")
    car_park_update: pk.CarParkPayload = strawberry.mutation(
        resolver=pkr.car_park_update, description="Fee rules and benefits; audited.")
    car_park_key_bind: pk.CarParkKeyBindPayload = strawberry.mutation(
        resolver=pkr.car_park_key_bind, description="Which parking keys may report for a car park; audited.")
    parking_abandon_run: pk.ParkingAbandonRunPayload = strawberry.mutation(
        resolver=pkr.parking_abandon_run, description="Closes open stays older than the limit as ABANDONED; holds released.")
    mall_order_refund: m.MallOrderRefundPayload = strawberry.mutation(
        resolver=mr.mall_order_refund, description="Undoes a PAID order: points, stock, vouchers, cash refund request.")
    mall_orders_expire_run: m.MallOrdersExpireRunPayload = strawberry.mutation(
        resolver=mr.mall_orders_expire_run, description="Lapses unpaid checkouts past their deadline.")
    merchant_staff_create: sp.MerchantStaffCreatePayload = strawberry.mutation(
        resolver=st.merchant_staff_create, description="Opens a merchant staff account; audited.")
    merchant_staff_deactivate: sp.MerchantStaffDeactivatePayload = strawberry.mutation(
        resolver=st.merchant_staff_deactivate, description="Closes a merchant staff account; audited.")
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


RULES: list[type[ASTValidationRule]] = [depth_rule(15, None)]  # built once, so that ValidationCache hits


def build_schema() -> strawberry.Schema:
    return OperatorsSchema(
        query=Query,
        mutation=Mutation,
        types=[Member, PointsEntry, Tier, Purchase, Merchant],
        execution_context_class=AcyclicExecutionContext,
        extensions=[
            lambda: ParserCache(maxsize=256),
            lambda: AddValidationRules(RULES),
            lambda: ValidationCache(maxsize=256),
            RolePermissions,  # issue 10: the roles table, on every root field
            lambda: MaskErrors(should_mask_error=should_mask),
        ],
    )


schema = build_schema()
