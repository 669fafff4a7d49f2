"""Saved segments: create, list, count and page their members (each one set-based query)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tortoise.exceptions import IntegrityError

from api.db import fetch, is_postgres, transaction
from api.models import Member, Segment
from api.services import clock, text
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode
from api.services.members import MemberRecord
from api.services.segments import sql
from api.services.segments.filters import SegmentFilter, members_query
from api.services.segments.membership import is_member


@dataclass(frozen=True)
class SegmentInfo:
    id: int
    name: str
    filter: SegmentFilter
    created_at: datetime

    @classmethod
    def of(cls, s: Segment) -> "SegmentInfo":
        return cls(s.id, s.name, SegmentFilter.from_json(s.definition), s.created_at)


async def insight_available() -> bool:
    """Whether lifecycle stages and RFM scores exist here (insight's member_insight table, issue 13 item 2)."""
    try:
        await fetch(sql.INSIGHT_PRESENT)
    except Exception:  # noqa: BLE001 - a missing table is the only expected fault of this read
        return False
    return True


async def create(actor: Actor, name: str, f: SegmentFilter) -> SegmentInfo:
    clean = text.name(name, ["input", "name"], 64)
    if f.uses_insight and not await insight_available():
        raise DomainError(ErrorCode.INVALID_INPUT, "lifecycle stages and RFM scores are not computed here",
                          ["input", "filter", "lifecycleStages"])
    if await Segment.filter(name=clean).exists():
        raise DomainError(ErrorCode.CODE_TAKEN, "a segment with this name exists", ["input", "name"])
    operator_id = int(actor[1]) if actor[0] == "operator" and actor[1] else None
    try:
        async with transaction() as tx:
            segment = await Segment.create(name=clean, definition=f.to_json(), created_by_id=operator_id,
                                           created_at=clock.now())
            await audit(tx, actor, "segment.create", "Segment", str(segment.id), None,
                        after={"name": clean, "filter": f.to_json()})
    except IntegrityError:  # the same name created at the same moment
        raise DomainError(ErrorCode.CODE_TAKEN, "a segment with this name exists", ["input", "name"]) from None
    return SegmentInfo.of(segment)


async def get(segment_id: int, field: list[str] | None = None) -> SegmentInfo:
    found = await Segment.get_or_none(id=segment_id)
    if found is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such segment", field or ["input", "segmentId"])
    return SegmentInfo.of(found)


async def get_many(ids: list[int]) -> dict[int, SegmentInfo]:
    """A DataLoader's batch: the segments with these ids."""
    return {s.id: SegmentInfo.of(s) for s in await Segment.filter(id__in=ids)} if ids else {}


async def page(limit: int, before_id: int | None) -> list[SegmentInfo]:
    q = Segment.all().order_by("-id")
    if before_id is not None:
        q = q.filter(id__lt=before_id)
    return [SegmentInfo.of(s) for s in await q.limit(limit)]


async def count(f: SegmentFilter) -> int:
    return await members_query(f, is_postgres()).count()


async def members_page(f: SegmentFilter, limit: int, before_id: int | None) -> list[MemberRecord]:
    """Newest members first."""
    q = members_query(f, is_postgres()).order_by("-id")
    if before_id is not None:
        q = q.filter(id__lt=before_id)
    return [MemberRecord.of(m) for m in await q.limit(limit)]


async def member_ids_after(f: SegmentFilter, after_id: int, limit: int) -> list[int]:
    """A chunk of the segment's member ids in id order (bulk tagging, campaign audiences)."""
    rows = await members_query(f, is_postgres()).filter(id__gt=after_id).order_by("id").limit(limit).values("id")
    return [int(r["id"]) for r in rows]


__all__ = ["Member", "SegmentInfo", "count", "create", "get", "get_many", "is_member", "member_ids_after", "members_page", "page"]
