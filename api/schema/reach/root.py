"""Reach's root fields, mixed into the operators' Query and Mutation (ReachQuery, ReachMutation) and the
public Mutation (ReachMemberMutation)."""
from __future__ import annotations

import strawberry

from api.resolvers import reach as rr
from api.schema.reach import inputs as i
from api.schema.reach.types import Campaign, Segment
from api.schema.types import Connection


@strawberry.type
class ReachQuery:
    segments: Connection[Segment] = strawberry.field(resolver=rr.segments_page, description="Saved segments, newest first.")
    campaigns: Connection[Campaign] = strawberry.field(
        resolver=rr.campaigns_page, description="Campaigns, newest first, with sent/delivered/failed/opened.")


@strawberry.type
class ReachMutation:
    segment_create: i.SegmentCreatePayload = strawberry.mutation(
        resolver=rr.segment_create, description="Saves a filter over members; audited.")
    member_tag_add: i.MemberTagAddPayload = strawberry.mutation(resolver=rr.member_tag_add, description="Audited.")
    member_tag_remove: i.MemberTagRemovePayload = strawberry.mutation(
        resolver=rr.member_tag_remove, description="Audited.")
    member_tag_add_from_segment: i.MemberTagAddFromSegmentPayload = strawberry.mutation(
        resolver=rr.member_tag_add_from_segment, description="Tags every member of a segment now; audited.")
    member_tag_import: i.MemberTagImportPayload = strawberry.mutation(
        resolver=rr.member_tag_import, description="Tags the members of an uploaded list of phone numbers; audited.")
    campaign_create: i.CampaignCreatePayload = strawberry.mutation(
        resolver=rr.campaign_create, description="Schedules a message to a segment (sent by the scheduled run); audited.")


@strawberry.type
class ReachMemberMutation:
    notification_mark_read: i.NotificationMarkReadPayload = strawberry.mutation(
        resolver=rr.notification_mark_read, description="Marks the signed-in member's notifications read.")
    notification_preferences_update: i.NotificationPreferencesUpdatePayload = strawberry.mutation(
        resolver=rr.notification_preferences_update,
        description="Switches a topic on or off for a channel, for the signed-in member.")
