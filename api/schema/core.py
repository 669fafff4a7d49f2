"""Core types every domain refers to: tiers, merchants, points entries, purchases, member codes."""
from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Optional

import strawberry
from strawberry.types import Info

from api.schema.base import Node, global_id
from api.schema.earning.types import EarnBreakdownItem
from api.services import ledger, tiers


@strawberry.type(description="A membership level. Upgrades happen as soon as growth value reaches the threshold.")
class Tier(Node):
    pk: strawberry.Private[int]
    code: str
    name: str
    growth_threshold: int
    earn_multiplier_percent: int
    benefits: list[str] = strawberry.field(default_factory=list)  # issue 10
    active: bool = True  # issue 10: a deactivated tier is no longer reached

    @classmethod
    def of(cls, t: tiers.TierInfo) -> "Tier":
        return cls(id=global_id("Tier", t.id), pk=t.id, code=t.code, name=t.name,
                   growth_threshold=t.growth_threshold, earn_multiplier_percent=t.earn_multiplier_percent,
                   benefits=list(t.benefits), active=t.active)


@strawberry.type
class TierProgress:
    tier: Tier
    growth_value_needed: int


@strawberry.type
class PointsExpiry:
    points: int
    earliest_expires_at: Optional[datetime]


@strawberry.enum
class PointsEntryKind(Enum):
    EARN = "EARN"
    SPEND = "SPEND"
    EXPIRE = "EXPIRE"
    REVERSE = "REVERSE"
    ADJUST = "ADJUST"


@strawberry.type(description="One line of the points history (积分明细). points < 0 for SPEND, EXPIRE, REVERSE.")
class PointsEntry(Node):
    pk: strawberry.Private[int]
    kind: PointsEntryKind
    points: int
    balance_after: int
    reason: str
    occurred_at: datetime
    expires_at: Optional[datetime]

    @strawberry.field(description="Why an earn has its points: the rules applied, each one's points, the caps"
                      " that cut them. Null for entries that are not earns.")
    async def breakdown(self, info: Info) -> Optional[list[EarnBreakdownItem]]:
        items = await info.context.loaders.breakdown.load(self.pk)
        return None if items is None else [EarnBreakdownItem.of(i) for i in items]

    @classmethod
    def of(cls, e: ledger.Entry) -> "PointsEntry":
        return cls(id=global_id("PointsEntry", e.id), pk=e.id, kind=PointsEntryKind(e.kind),
                   points=e.points, balance_after=e.balance_after, reason=e.reason, occurred_at=e.occurred_at,
                   expires_at=e.expires_at)


@strawberry.type(description="A short-lived, signed code the member shows at the till.")
class MemberCode:
    code: str
    expires_at: datetime


@strawberry.enum
class Gender(Enum):
    MALE = "MALE"
    FEMALE = "FEMALE"
    UNDISCLOSED = "UNDISCLOSED"


@strawberry.type
class Merchant(Node):
    pk: strawberry.Private[int]
    code: str
    name: str
    category: Optional[str]
    active: bool = True  # issue 10: an inactive merchant records no new receipts

    @classmethod
    def of(cls, m) -> "Merchant":
        return cls(id=global_id("Merchant", m.id), pk=m.id, code=m.code, name=m.name, category=m.category,
                   active=getattr(m, "active", True))


@strawberry.type
class Purchase(Node):
    pk: strawberry.Private[int]
    receipt_no: str
    amount_fen: int
