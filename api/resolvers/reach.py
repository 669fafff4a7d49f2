"""Tags, segments and campaigns (operators), notifications (members): issue 13 items 3-5. Roles are checked
per root field before these run (api/schema/operators/permissions.py)."""
from __future__ import annotations

from typing import Optional

import strawberry
from strawberry.types import Info

from api.resolvers import input_pk, user_errors
from api.schema.ids import from_cursor, from_global_id
from api.schema.reach import inputs as i
from api.schema.reach.notify_types import Notification, NotificationPreference
from api.schema.reach.types import Campaign, Segment
from api.schema.types import Connection, check_first
from api.services.errors import DomainError, ErrorCode
from api.services.notifications import inbox
from api.services.segments import campaigns, filters, segments, tags


def _member_pks(ids: list[strawberry.ID]) -> list[int]:
    pks = []
    for index, global_id in enumerate(ids):
        parsed = from_global_id(global_id, "Member")
        if parsed is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such member", ["input", "memberIds", str(index)])
        pks.append(parsed[1])
    return pks


def _filter(f: i.SegmentFilterInput) -> filters.SegmentFilter:
    return filters.build(
        tier_codes=f.tier_codes, tags_all=f.tags_all, tags_any=f.tags_any, tags_none=f.tags_none,
        last_purchase_within_days=f.last_purchase_within_days, no_purchase_for_days=f.no_purchase_for_days,
        points_balance_min=f.points_balance_min, points_balance_max=f.points_balance_max,
        birthday_months=f.birthday_months, merchant_categories=f.merchant_categories,
        merchant_category_within_days=f.merchant_category_within_days,
        lifecycle_stages=[s.value for s in f.lifecycle_stages] if f.lifecycle_stages is not None else None,
        scores={"r_min": f.r_min, "r_max": f.r_max, "f_min": f.f_min, "f_max": f.f_max, "m_min": f.m_min,
                "m_max": f.m_max})


async def segments_page(info: Info, first: int, after: Optional[str] = None) -> Connection[Segment]:
    check_first(first)
    rows = await segments.page(first + 1, from_cursor(after))
    return Connection.of([Segment.of(s) for s in rows], first, after)


@user_errors(i.SegmentCreatePayload)
async def segment_create(info: Info, input: i.SegmentCreateInput) -> i.SegmentCreatePayload:
    created = await segments.create(info.context.operator_actor(), input.name, _filter(input.filter))
    return i.SegmentCreatePayload(segment=Segment.of(created))


@user_errors(i.MemberTagAddPayload)
async def member_tag_add(info: Info, input: i.MemberTagAddInput) -> i.MemberTagAddPayload:
    count = await tags.add(info.context.operator_actor(), _member_pks(input.member_ids), input.tag)
    return i.MemberTagAddPayload(count=count)


@user_errors(i.MemberTagRemovePayload)
async def member_tag_remove(info: Info, input: i.MemberTagRemoveInput) -> i.MemberTagRemovePayload:
    count = await tags.remove(info.context.operator_actor(), _member_pks(input.member_ids), input.tag)
    return i.MemberTagRemovePayload(count=count)


@user_errors(i.MemberTagAddFromSegmentPayload)
async def member_tag_add_from_segment(info: Info, input: i.MemberTagAddFromSegmentInput) -> i.MemberTagAddFromSegmentPayload:
    count = await tags.add_from_segment(info.context.operator_actor(), input_pk(input.segment_id, "Segment", "segmentId"),
                                        input.tag)
    return i.MemberTagAddFromSegmentPayload(count=count)


@user_errors(i.MemberTagImportPayload)
async def member_tag_import(info: Info, input: i.MemberTagImportInput) -> i.MemberTagImportPayload:
    result = await tags.import_phones(info.context.operator_actor(), input.tag, input.file_name, input.content_base64)
    return i.MemberTagImportPayload(rows=result.rows, count=result.added, unknown=result.unknown)


async def campaigns_page(info: Info, first: int, after: Optional[str] = None) -> Connection[Campaign]:
    check_first(first)
    rows = await campaigns.page(first + 1, from_cursor(after))
    counts = await campaigns.counts([c.id for c in rows])
    return Connection.of([Campaign.of(c, counts[c.id]) for c in rows], first, after)


@user_errors(i.CampaignCreatePayload)
async def campaign_create(info: Info, input: i.CampaignCreateInput) -> i.CampaignCreatePayload:
    product_id = None if input.coupon_product_id is None else input_pk(input.coupon_product_id, "Product",
                                                                        "couponProductId")
    created = await campaigns.create(info.context.operator_actor(), input.name,
                                     input_pk(input.segment_id, "Segment", "segmentId"), input.channel.value,
                                     input.title, input.body, input.send_at, input.holdout_percent,
                                     grant_points=input.grant_points, coupon_product_id=product_id,
                                     idempotency_key=input.idempotency_key)
    return i.CampaignCreatePayload(campaign=Campaign.of(created, campaigns.CampaignCounts()))


@user_errors(i.NotificationMarkReadPayload)
async def notification_mark_read(info: Info, input: i.NotificationMarkReadInput) -> i.NotificationMarkReadPayload:
    member_id = info.context.require_member()
    ids = []
    for global_id in input.notification_ids:
        parsed = from_global_id(global_id, "Notification")
        ids.append(parsed[1] if parsed else None)
    return i.NotificationMarkReadPayload(count=await inbox.mark_read(member_id, ids))


@user_errors(i.NotificationPreferencesUpdatePayload)
async def notification_preferences_update(
    info: Info, input: i.NotificationPreferencesUpdateInput,
) -> i.NotificationPreferencesUpdatePayload:
    member_id = info.context.require_member()
    found = await inbox.set_preference(member_id, input.topic.value, input.channel.value, input.enabled)
    return i.NotificationPreferencesUpdatePayload(preferences=[NotificationPreference.of(p) for p in found])


async def _segment_node(info: Info, pk: int) -> Optional[Segment]:
    if not info.context.is_operator:
        return None
    try:
        return Segment.of(await segments.get(pk))
    except DomainError:
        return None


async def _campaign_node(info: Info, pk: int) -> Optional[Campaign]:
    found = await campaigns.get(pk) if info.context.is_operator else None
    return Campaign.of(found, (await campaigns.counts([pk]))[pk]) if found else None


async def _notification_node(info: Info, pk: int) -> Optional[Notification]:
    found = await inbox.get(pk)
    return Notification.of(found) if found and info.context.is_self(found.member_id) else None


# node(id:): segments and campaigns for operators, a notification for its member only.
NODES = {"Segment": _segment_node, "Campaign": _campaign_node, "Notification": _notification_node}
