"""Reads outside any move: spendable and held points, points expiring soon, a member's entries."""
from __future__ import annotations

from datetime import datetime, timedelta

from tortoise.functions import Sum

from api.db import fetch
from api.models import PointsEntry, PointsLot
from api.services import clock
from api.services.ledger import sql
from api.services.ledger.accounts import Entry


async def balances(member_ids: list[int], as_of: datetime | None = None) -> dict[int, int]:
    """Points spendable now: the cached balance less lots already due but not yet expired by a run,
    less live holds."""
    if not member_ids:
        return {}
    rows = await fetch(sql.SPENDABLE + f"({sql.sql_ids(member_ids)})", as_of or clock.now())
    return {r["member_id"]: int(r["spendable"]) for r in rows}


async def held_points(member_ids: list[int], as_of: datetime | None = None) -> dict[int, int]:
    """Points set aside by live holds (checkouts waiting for payment, parking stays)."""
    if not member_ids:
        return {}
    rows = await fetch(sql.HELD_BY_MEMBER + f"({sql.sql_ids(member_ids)})", as_of or clock.now())
    return {r["member_id"]: int(r["held"]) for r in rows}


async def expiring_soon(member_id: int, days: int) -> tuple[int, datetime | None]:
    """Points that expire within `days`, and the earliest such expiry."""
    now = clock.now()
    lots = PointsLot.filter(account__member_id=member_id, kind="EARN", remaining__gt=0, expires_at__gt=now,
                            expires_at__lte=now + timedelta(days=days))
    total = await lots.annotate(total=Sum("remaining")).group_by("account_id").values("total")
    if not total:
        return 0, None
    earliest = await lots.order_by("expires_at").first()
    points = int(total[0]["total"])
    return points, earliest.expires_at if earliest is not None else None


async def entries_page(member_id: int, limit: int, before_id: int | None) -> list[Entry]:
    """A member's entries, newest first, `limit` of them after the cursor."""
    query = PointsEntry.filter(account__member_id=member_id)
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    return [Entry.of(e) for e in await query.order_by("-id").limit(limit)]


async def entry_with_owner(entry_id: int) -> tuple[Entry, int] | None:
    entry = await PointsEntry.filter(id=entry_id).select_related("account").first()
    return (Entry.of(entry), entry.account.member_id) if entry is not None else None
