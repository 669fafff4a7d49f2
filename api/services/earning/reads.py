"""Reads for the schema's DataLoaders: breakdowns of earn entries and members' pending points."""
from __future__ import annotations

import json

from api.models import EarnBreakdown, PendingPoints


async def breakdowns(entry_ids: list[int]) -> dict[int, list[dict]]:
    """{entry id: its breakdown (the rules applied, each one's points and cuts)} for entries that have one."""
    if not entry_ids:
        return {}
    rows = await EarnBreakdown.filter(entry_id__in=entry_ids).values_list("entry_id", "breakdown")
    return {entry_id: json.loads(text) for entry_id, text in rows}


async def pending_totals(member_ids: list[int]) -> dict[int, int]:
    """{member id: points still waiting for a return window} for members that have some."""
    if not member_ids:
        return {}
    rows = await PendingPoints.filter(status="PENDING", member_id__in=member_ids) \
        .values_list("member_id", "points", "points_cancelled")
    out: dict[int, int] = {}
    for member_id, points, cancelled in rows:
        out[member_id] = out.get(member_id, 0) + int(points) - int(cancelled)
    return out
