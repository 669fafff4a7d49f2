"""The shared and core output types under their historical names (`from api.schema.types import Member`).
They live in `base` (Node, connections, Money), `core` (tiers, merchants, points entries) and `member`."""
from __future__ import annotations

from api.schema.base import MAX_PAGE, Connection, Edge, Money, Node, PageInfo, check_first
from api.schema.core import (
    Gender,
    MemberCode,
    Merchant,
    PointsEntry,
    PointsEntryKind,
    PointsExpiry,
    Purchase,
    Tier,
    TierProgress,
)
from api.schema.member import Member, Viewer

__all__ = [
    "MAX_PAGE", "Connection", "Edge", "Gender", "Member", "MemberCode", "Merchant", "Money", "Node", "PageInfo",
    "PointsEntry", "PointsEntryKind", "PointsExpiry", "Purchase", "Tier", "TierProgress", "Viewer", "check_first",
]
