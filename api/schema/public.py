"""The public endpoint's schema (members, merchant staff, integrations)."""
from __future__ import annotations

from typing import Optional

import strawberry
from strawberry.extensions import (
    AddValidationRules, DisableIntrospection, MaskErrors, MaxTokensLimiter, ParserCache, ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.config import StrawberryConfig

from api.resolvers import earning as er
from api.resolvers import public as r
from api.schema import payloads as p
from api.schema.earning import (
    EventCheckInPayload, MemberCheckInPayload, PointsEarnPreviewPayload, ReviewRecordPayload, ShareRecordPayload,
    TaskClaimPayload,
)
from api.schema.errors import should_mask
from api.schema.rules import OncePerRequest
from api.schema.types import Member, Node, PointsEntry, Purchase, Tier, Viewer

MAX_DEPTH = 10
MAX_ALIASES = 15
MAX_TOKENS = 2000
# Built once: ValidationCache keys on the rule classes, so rules made per request would never hit it.
RULES = [depth_rule(MAX_DEPTH, None), alias_rule(MAX_ALIASES), OncePerRequest]


@strawberry.type
class Query:
    viewer: Viewer = strawberry.field(resolver=r.viewer, description="The caller's own data.")
    tiers: list[Tier] = strawberry.field(resolver=r.all_tiers)
    node: Optional[Node] = strawberry.field(resolver=r.node)


@strawberry.type
class Mutation:
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


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        types=[Member, PointsEntry, Tier, Purchase],
        config=StrawberryConfig(disable_field_suggestions=True),
        extensions=[
            lambda: ParserCache(maxsize=1024),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            DisableIntrospection,
            lambda: AddValidationRules(RULES),
            lambda: ValidationCache(maxsize=1024),
            lambda: MaskErrors(should_mask_error=should_mask),
        ],
    )


schema = build_schema()
