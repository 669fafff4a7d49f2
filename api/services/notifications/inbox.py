"""The member's inbox (every notification of theirs, newest first, without the topics they switched off
for INBOX), marking read, and their preferences per topic and channel."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from api.db import transaction
from api.models import Notification, NotificationPreference
from api.services import clock
from api.services.errors import DomainError, ErrorCode
from api.services.notifications.outbox import CHANNELS, TOPICS

MAX_IDS = 100


@dataclass(frozen=True)
class NotificationInfo:
    id: int
    member_id: int
    topic: str
    title: str
    body: str
    created_at: datetime
    read_at: datetime | None

    @classmethod
    def of(cls, n: Notification) -> "NotificationInfo":
        return cls(n.id, n.member_id, n.topic, n.title, n.body, n.created_at, n.read_at)


@dataclass(frozen=True)
class Preference:
    topic: str
    channel: str
    enabled: bool


async def _hidden_topics(member_id: int) -> list[str]:
    rows = await NotificationPreference.filter(member_id=member_id, channel="INBOX", enabled=False).values("topic")
    return [r["topic"] for r in rows]


async def page(member_id: int, limit: int, before_id: int | None, unread_only: bool) -> list[NotificationInfo]:
    q = Notification.filter(member_id=member_id)
    hidden = await _hidden_topics(member_id)
    if hidden:
        q = q.exclude(topic__in=hidden)
    if unread_only:
        q = q.filter(read_at__isnull=True)
    if before_id is not None:
        q = q.filter(id__lt=before_id)
    return [NotificationInfo.of(n) for n in await q.order_by("-id").limit(limit)]


async def get(notification_id: int) -> NotificationInfo | None:
    found = await Notification.get_or_none(id=notification_id)
    return NotificationInfo.of(found) if found else None


async def mark_read(member_id: int, ids: list[int | None]) -> int:
    """Marks the member's own notifications read; returns how many were unread. Any id that is not one
    of theirs: NOT_FOUND on it and nothing changed."""
    if not 1 <= len(ids) <= MAX_IDS:
        raise DomainError(ErrorCode.INVALID_INPUT, f"1 to {MAX_IDS} ids", ["input", "notificationIds"])
    own = {int(r["id"]) for r in await Notification.filter(
        member_id=member_id, id__in=[i for i in ids if i is not None]).values("id")}
    for index, nid in enumerate(ids):
        if nid is None or nid not in own:
            raise DomainError(ErrorCode.NOT_FOUND, "no such notification", ["input", "notificationIds", str(index)])
    async with transaction():
        return await Notification.filter(member_id=member_id, id__in=list(own), read_at__isnull=True).update(
            read_at=clock.now())


async def preferences(member_id: int) -> list[Preference]:
    """Every topic × channel; enabled unless the member switched it off."""
    stored = {(p.topic, p.channel): p.enabled for p in await NotificationPreference.filter(member_id=member_id)}
    return [Preference(t, c, stored.get((t, c), True)) for t in TOPICS for c in CHANNELS]


async def set_preference(member_id: int, topic: str, channel: str, enabled: bool) -> list[Preference]:
    if topic not in TOPICS:
        raise DomainError(ErrorCode.INVALID_INPUT, "unknown topic", ["input", "topic"])
    if channel not in CHANNELS:
        raise DomainError(ErrorCode.INVALID_INPUT, "unknown channel", ["input", "channel"])
    async with transaction():
        changed = await NotificationPreference.filter(member_id=member_id, topic=topic, channel=channel).update(
            enabled=enabled, updated_at=clock.now())
        if not changed:
            await NotificationPreference.bulk_create(
                [NotificationPreference(member_id=member_id, topic=topic, channel=channel, enabled=enabled,
                                        updated_at=clock.now())], ignore_conflicts=True)
    return await preferences(member_id)
