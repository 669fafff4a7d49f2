"""Notifications as members see them: a leaf of the reach schema (no Member import), so that the Member
type can carry `notifications` and `notificationPreferences` through `MemberReachFields`."""
from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Optional

import strawberry
from strawberry.types import Info

from api.schema.base import Connection, Node, check_first, from_cursor, global_id
from api.schema.errors import ApiError
from api.services.notifications import inbox


@strawberry.enum
class NotificationChannel(Enum):
    INBOX = "INBOX"
    SMS = "SMS"
    WECHAT = "WECHAT"


@strawberry.enum
class NotificationTopic(Enum):
    POINTS_EARNED = "POINTS_EARNED"
    POINTS_EXPIRING = "POINTS_EXPIRING"
    TIER_CHANGED = "TIER_CHANGED"
    VOUCHER_EXPIRING = "VOUCHER_EXPIRING"
    PARKING = "PARKING"
    PRIZE = "PRIZE"
    CAMPAIGN = "CAMPAIGN"


@strawberry.type
class Notification(Node):
    pk: strawberry.Private[int]
    topic: NotificationTopic
    title: str
    body: str
    created_at: datetime
    read_at: Optional[datetime]

    @classmethod
    def of(cls, n: inbox.NotificationInfo) -> "Notification":
        return cls(id=global_id("Notification", n.id), pk=n.id, topic=NotificationTopic(n.topic), title=n.title,
                   body=n.body, created_at=n.created_at, read_at=n.read_at)


@strawberry.type(description="Whether the member gets a topic on a channel (no choice made: enabled).")
class NotificationPreference:
    topic: NotificationTopic
    channel: NotificationChannel
    enabled: bool

    @classmethod
    def of(cls, p: inbox.Preference) -> "NotificationPreference":
        return cls(topic=NotificationTopic(p.topic), channel=NotificationChannel(p.channel), enabled=p.enabled)


@strawberry.type
class MemberReachFields:
    """Fields of `Member` from reach: a base class of the Member type."""

    pk: strawberry.Private[int]

    @strawberry.field(description="Operators' labels of the member, A-Z. Only on the operators' endpoint.")
    async def tags(self, info: Info) -> list[str]:
        if not info.context.is_operator:
            raise ApiError("tags are for operators", "FORBIDDEN")
        return list(await info.context.loaders.tags.load(self.pk))

    @strawberry.field(description="The member's inbox, newest first (topics switched off for INBOX left out). "
                      "Only for the member themself.")
    async def notifications(self, info: Info, first: int, after: Optional[str] = None,
                            unread_only: Optional[bool] = None) -> Connection[Notification]:
        info.context.require_self(self.pk, "read their notifications")
        check_first(first)
        rows = await inbox.page(self.pk, first + 1, from_cursor(after), bool(unread_only))
        return Connection.of([Notification.of(n) for n in rows], first, after)

    @strawberry.field(description="Every topic × channel and whether it is on. Only for the member themself.")
    async def notification_preferences(self, info: Info) -> list[NotificationPreference]:
        info.context.require_self(self.pk, "read their notification preferences")
        return [NotificationPreference.of(p) for p in await inbox.preferences(self.pk)]
