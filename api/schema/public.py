"""The public endpoint's schema (members, merchant staff, integrations)."""
from __future__ import annotations

from typing import Optional

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxTokensLimiter,
)
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.config import StrawberryConfig

from api.resolvers import draws as drr
from api.resolvers import earning as er
from api.resolvers import mall as mr
from api.resolvers import nodes
from api.resolvers import parking as pkr
from api.resolvers import public as r
from api.resolvers import staff as st
from api.schema import draws as dr
from api.schema import mall as m
from api.schema import parking as pk
from api.schema import payloads as p
from api.schema import staff as sp
from api.schema.base import Connection, Node
from api.schema.core import PointsEntry, Purchase, Tier
from api.schema.earning import (
    EventCheckInPayload,
    MemberCheckInPayload,
    PointsEarnPreviewPayload,
    ReviewRecordPayload,
    ShareRecordPayload,
    TaskClaimPayload,
)
from api.schema.errors import should_mask
from api.schema.execution import NoSuggestionsExecutionContext, NoSuggestionsSchema
from api.schema.mall import Voucher
from api.schema.member import Member, Viewer
from api.schema.merchant_assistant.root import MerchantAssistantMutation
from api.schema.merchant_assistant.types import MerchantVoucherProposal
from api.schema.reach.root import ReachMemberMutation
from api.schema.rules import OncePerRequest
from api.schema.settlement.root import SettlementStaffMutation

MAX_DEPTH = 10
MAX_ALIASES = 15
MAX_TOKENS = 2000
# Built once: ValidationCache keys on the rule classes, so rules made per request would never hit it.
RULES = [depth_rule(MAX_DEPTH, None), alias_rule(MAX_ALIASES), OncePerRequest]


@strawberry.type
class Query:
    viewer: Viewer = strawberry.field(resolver=r.viewer, description="The caller's own data.")
    tiers: list[Tier] = strawberry.field(resolver=r.all_tiers)
    node: Optional[Node] = strawberry.field(resolver=nodes.node)
    products: Connection[m.Product] = strawberry.field(
        resolver=mr.products, description="The points mall: what the caller may see (exclusive zones by tier).")
    flash_sales: Connection[m.FlashSale] = strawberry.field(
        resolver=mr.flash_sales_list, description="Flash sales on now or coming, by start time.")
    draw_games: Connection[dr.DrawGame] = strawberry.field(
        resolver=drr.games, description="Lucky-draw games open now or coming.")
    voucher_lookup: Optional[Voucher] = strawberry.field(
        resolver=st.voucher_lookup, description="Merchant staff: a voucher by typed code or scanned QR payload, "
        "if it can be written off at the staff's merchant (any status); otherwise null.")


@strawberry.type
class Mutation(MerchantAssistantMutation, ReachMemberMutation, SettlementStaffMutation):
    auth_sms_code_request: p.AuthSmsCodeRequestPayload = strawberry.mutation(resolver=r.auth_sms_code_request)
    auth_sms_login: p.AuthSmsLoginPayload = strawberry.mutation(
        resolver=r.auth_sms_login, description="Signs in with an SMS code; the first login registers.")
    member_profile_update: p.MemberProfileUpdatePayload = strawberry.mutation(resolver=r.member_profile_update)
    purchase_record: p.PurchaseRecordPayload = strawberry.mutation(
        resolver=r.purchase_record, description="A till reports a purchase (signed integration).")
    purchase_record_batch: p.PurchaseRecordBatchPayload = strawberry.mutation(
        resolver=r.purchase_record_batch, description="Up to 100 purchases; results in input order, each on its own.")
    purchase_refund: p.PurchaseRefundPayload = strawberry.mutation(resolver=r.purchase_refund)
    points_pay: p.PointsPayPayload = strawberry.mutation(
        resolver=r.points_pay, description="Points as payment at the till (signed integration).")
    points_mall_redeem: m.PointsMallRedeemPayload = strawberry.mutation(
        resolver=mr.points_mall_redeem, description="A product for points alone: spends, issues the voucher.")
    checkout_create: m.CheckoutCreatePayload = strawberry.mutation(
        resolver=mr.checkout_create, description="Points plus cash: holds stock and points, returns a payment request.")
    checkout_cancel: m.CheckoutCancelPayload = strawberry.mutation(
        resolver=mr.checkout_cancel, description="Gives up an unpaid checkout: holds and stock come back.")
    flash_sale_redeem: m.FlashSaleRedeemPayload = strawberry.mutation(
        resolver=mr.flash_sale_redeem, description="One unit of a flash sale (积分秒杀) for points.")
    lucky_draw_play: dr.LuckyDrawPlayPayload = strawberry.mutation(
        resolver=drr.lucky_draw_play, description="One play of a lucky-draw game (幸运抽奖).")
    vehicle_bind: pk.VehicleBindPayload = strawberry.mutation(
        resolver=pkr.vehicle_bind, description="Binds a plate to the member (consent required; at most 3).")
    vehicle_unbind: pk.VehicleUnbindPayload = strawberry.mutation(resolver=pkr.vehicle_unbind)
    parking_offset_apply: pk.ParkingOffsetApplyPayload = strawberry.mutation(
        resolver=pkr.parking_offset_apply, description="Parking coupons and points for an open stay; points held until the exit.")
    parking_entry_record: pk.ParkingEntryRecordPayload = strawberry.mutation(
        resolver=pkr.parking_entry_record, description="The car park reports an entry (signed, scope parking).")
    parking_exit_record: pk.ParkingExitRecordPayload = strawberry.mutation(
        resolver=pkr.parking_exit_record, description="The car park reports an exit: fee and discounts fixed (signed, scope parking).")
    parking_session_quote: pk.ParkingSessionQuotePayload = strawberry.mutation(
        resolver=pkr.parking_session_quote, description="The car park asks what a stay costs now (signed, scope parking).")
    payment_notify: m.PaymentNotifyPayload = strawberry.mutation(
        resolver=mr.payment_notify, description="The payment provider reports a payment (signed, scope payment).")
    merchant_staff_login: sp.MerchantStaffLoginPayload = strawberry.mutation(
        resolver=st.merchant_staff_login, description="Merchant staff sign in with username and password.")
    voucher_write_off: sp.VoucherWriteOffPayload = strawberry.mutation(
        resolver=st.voucher_write_off, description="Merchant staff write off (核销) a voucher, once.")
    # earning (issue 3)
    member_check_in: MemberCheckInPayload = strawberry.mutation(
        resolver=er.member_check_in, description="Daily check-in: once per Asia/Shanghai day.")
    share_record: ShareRecordPayload = strawberry.mutation(
        resolver=er.share_record, description="The member shared something; SHARE rules (capped) may reward it.")
    task_claim: TaskClaimPayload = strawberry.mutation(
        resolver=er.task_claim, description="Claims a completed task's reward, once per period.")
    review_record: ReviewRecordPayload = strawberry.mutation(
        resolver=er.review_record, description="A signed integration reports a review of a purchase (once each).")
    event_check_in: EventCheckInPayload = strawberry.mutation(
        resolver=er.event_check_in, description="A signed integration checks a member in to its event (once).")
    points_earn_preview: PointsEarnPreviewPayload = strawberry.mutation(
        resolver=er.points_earn_preview, description="What a receipt would earn, with its breakdown; books nothing.")


# Types reachable only through node(id:) or interfaces.
TYPES = [Member, PointsEntry, Tier, Purchase, Voucher, sp.MerchantStaff, MerchantVoucherProposal]
# The public endpoint's pipeline; `api/prepared.py` reads it from the schema, so the hot path runs it too.
# No ParserCache or ValidationCache: the prepared path answers every JSON request and keeps its own cache,
# bounded by bytes and holding valid documents only (issue 11); Strawberry's view sees only what is not JSON.
EXTENSIONS = [
    lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
    DisableIntrospection,
    lambda: AddValidationRules(RULES),
    lambda: MaskErrors(should_mask_error=should_mask),
]


def build_schema() -> strawberry.Schema:
    return NoSuggestionsSchema(
        query=Query,
        mutation=Mutation,
        types=TYPES,
        config=StrawberryConfig(disable_field_suggestions=True),
        execution_context_class=NoSuggestionsExecutionContext,
        extensions=EXTENSIONS,
    )


schema = build_schema()
