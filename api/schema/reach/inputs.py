"""Inputs and payloads of reach's mutations (one each)."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

import strawberry

from api.schema.errors import UserError
from api.schema.reach.lifecycle import LifecycleStage
from api.schema.reach.notify_types import NotificationChannel, NotificationPreference, NotificationTopic
from api.schema.reach.types import Campaign, Segment


@strawberry.input(description="Conditions on members, all ANDed; leave out what should not restrict.")
class SegmentFilterInput:
    tier_codes: Optional[list[str]] = strawberry.field(default=None, description="The member's tier is one of these.")
    tags_all: Optional[list[str]] = strawberry.field(default=None, description="Has every one of these tags.")
    tags_any: Optional[list[str]] = strawberry.field(default=None, description="Has at least one of these tags.")
    tags_none: Optional[list[str]] = strawberry.field(default=None, description="Has none of these tags.")
    last_purchase_within_days: Optional[int] = strawberry.field(
        default=None, description="Bought something in the last N days (1-3660).")
    no_purchase_for_days: Optional[int] = strawberry.field(
        default=None, description="Bought nothing in the last N days (members who never bought included).")
    points_balance_min: Optional[int] = None
    points_balance_max: Optional[int] = None
    birthday_months: Optional[list[int]] = strawberry.field(default=None, description="Months 1-12.")
    merchant_categories: Optional[list[str]] = strawberry.field(
        default=None, description="Bought from a merchant of one of these categories within merchantCategoryWithinDays.")
    merchant_category_within_days: Optional[int] = strawberry.field(default=None, description="Default 365.")
    lifecycle_stages: Optional[list[LifecycleStage]] = strawberry.field(
        default=None, description="The member's lifecycle stage is one of these (computed by the insight run).")
    r_min: Optional[int] = strawberry.field(default=None, description="RFM scores 1-5 (computed by the insight run).")
    r_max: Optional[int] = None
    f_min: Optional[int] = None
    f_max: Optional[int] = None
    m_min: Optional[int] = None
    m_max: Optional[int] = None


@strawberry.input
class SegmentCreateInput:
    name: str
    filter: SegmentFilterInput


@strawberry.type
class SegmentCreatePayload:
    segment: Optional[Segment] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class MemberTagAddInput:
    member_ids: list[strawberry.ID] = strawberry.field(description="At most 1000 members.")
    tag: str = strawberry.field(description="1 to 32 characters.")


@strawberry.type
class MemberTagAddPayload:
    count: Optional[int] = strawberry.field(default=None, description="Members who did not have the tag before.")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class MemberTagRemoveInput:
    member_ids: list[strawberry.ID]
    tag: str


@strawberry.type
class MemberTagRemovePayload:
    count: Optional[int] = strawberry.field(default=None, description="Members who had the tag.")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class MemberTagAddFromSegmentInput:
    segment_id: strawberry.ID
    tag: str


@strawberry.type
class MemberTagAddFromSegmentPayload:
    count: Optional[int] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input(description="A list of phone numbers (the first column; a header row is skipped) as a file.")
class MemberTagImportInput:
    tag: str
    file_name: str = strawberry.field(description="Ends in .csv (UTF-8 or GB18030) or .xlsx (the first sheet).")
    content_base64: str = strawberry.field(description="The file's bytes in base64, at most 700 KiB decoded.")


@strawberry.type
class MemberTagImportPayload:
    rows: Optional[int] = None
    count: Optional[int] = strawberry.field(default=None, description="Members newly tagged.")
    unknown: Optional[int] = strawberry.field(default=None, description="Rows that matched no member.")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class CampaignCreateInput:
    name: str
    segment_id: strawberry.ID
    channel: NotificationChannel
    title: str = strawberry.field(description="Up to 64 characters; may use {nickname}, {tier}, {points}.")
    body: str = strawberry.field(description="Up to 500 characters; may use {nickname}, {tier}, {points}.")
    send_at: Optional[datetime] = strawberry.field(default=None, description="Default: now (the next scheduled run).")
    holdout_percent: int = strawberry.field(default=0, description="0 to 90: the share of the segment that "
                                            "receives nothing, to measure the effect against.")
    grant_points: int = strawberry.field(default=0, description="0 to 10,000 points each target member receives "
                                         "with the message (an EARN lot that expires under the policy).")
    coupon_product_id: Optional[strawberry.ID] = strawberry.field(
        default=None, description="A voucher of this active COUPON, MERCHANT_VOUCHER or PARKING_COUPON product for "
        "each target member (the product's stock is not drawn on).")
    idempotency_key: Optional[str] = strawberry.field(
        default=None, description="Required with an offer (grantPoints or couponProductId): a repeat returns the "
        "first campaign; the same key with other input is refused.")


@strawberry.type
class CampaignCreatePayload:
    campaign: Optional[Campaign] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class NotificationMarkReadInput:
    notification_ids: list[strawberry.ID] = strawberry.field(description="1 to 100 of the member's notifications.")


@strawberry.type
class NotificationMarkReadPayload:
    count: Optional[int] = strawberry.field(default=None, description="How many were unread.")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class NotificationPreferencesUpdateInput:
    topic: NotificationTopic
    channel: NotificationChannel
    enabled: bool


@strawberry.type
class NotificationPreferencesUpdatePayload:
    preferences: Optional[list[NotificationPreference]] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)
