"""Segment restrictions (issue 13 item 3): whether a member is in a segment, for the domains that restrict an
earning rule, a task, a draw game or a product to one. Kept apart from `segments.py` (which reads members'
records) so that earning, draws and the mall can ask without an import circle.

Segments are never changed or deleted once created (a restricted object holds a RESTRICT foreign key), so each
process keeps their filters: a membership check is one query (`is_member`)."""
from __future__ import annotations

from collections.abc import Iterable

from api.db import is_postgres
from api.models import Segment
from api.services.errors import DomainError, ErrorCode
from api.services.segments.filters import SegmentFilter, members_query

_filters: dict[int, SegmentFilter] = {}


async def is_member(f: SegmentFilter, member_id: int) -> bool:
    return await members_query(f, is_postgres()).filter(id=member_id).exists()


async def _filters_of(segment_ids: set[int]) -> dict[int, SegmentFilter]:
    missing = [i for i in segment_ids if i not in _filters]
    if missing:
        for row in await Segment.filter(id__in=missing).values("id", "definition"):
            _filters[int(row["id"])] = SegmentFilter.from_json(row["definition"])
    return {i: _filters[i] for i in segment_ids if i in _filters}


async def require(segment_id: int, field: list[str]) -> int:
    """An operator's segment id, checked: NOT_FOUND at `field` when there is no such segment."""
    if not await _filters_of({segment_id}):
        raise DomainError(ErrorCode.NOT_FOUND, "no such segment", field)
    return segment_id


async def member_segments(member_id: int, segment_ids: Iterable[int | None]) -> frozenset[int]:
    """Which of these segments the member is in now: one `is_member` per distinct segment."""
    wanted = {i for i in segment_ids if i is not None}
    if not wanted:
        return frozenset()
    filters = await _filters_of(wanted)
    return frozenset([i for i, f in sorted(filters.items()) if await is_member(f, member_id)])


async def eligible(segment_id: int | None, member_id: int) -> bool:
    """Whether a member may have what is restricted to `segment_id` (None: everyone)."""
    return segment_id is None or segment_id in await member_segments(member_id, (segment_id,))


async def check_eligible(segment_id: int | None, member_id: int, field: list[str], what: str) -> None:
    """SEGMENT_NOT_ELIGIBLE at `field` unless the member is in the segment (or there is none)."""
    if not await eligible(segment_id, member_id):
        raise DomainError(ErrorCode.SEGMENT_NOT_ELIGIBLE, f"this {what} is for another group of members", field)


def reset_cache() -> None:
    """Forget the segments' filters (a process that switches databases: tests)."""
    _filters.clear()
