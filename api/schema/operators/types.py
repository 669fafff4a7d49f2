"""Operators, approvals and audit entries as GraphQL types."""
from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Optional

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from api.schema.ids import to_global_id
from api.schema.types import Member, Node, PointsEntry
from api.services import audit, ledger, operators
from api.services.operators import roles as R


@strawberry.enum(description="What an operator may do: see docs/operators.md.")
class OperatorRole(Enum):
    ADMIN = R.ADMIN
    MARKETING = R.MARKETING
    SERVICE = R.SERVICE
    FINANCE = R.FINANCE
    AUDITOR = R.AUDITOR


@strawberry.type(description="An operators' console account.")
class Operator(Node):
    pk: strawberry.Private[int]
    username: str
    display_name: str
    roles: list[OperatorRole]
    active: bool
    last_login_at: Optional[datetime]

    @classmethod
    def of(cls, o: operators.OperatorInfo) -> "Operator":
        return cls(id=strawberry.ID(to_global_id("Operator", o.id)), pk=o.id, username=o.username,
                   display_name=o.display_name or o.username, roles=[OperatorRole[r] for r in o.roles],
                   active=o.active, last_login_at=o.last_login_at)


async def load_operator(info: Info, operator_id: int | None) -> Optional[Operator]:
    if operator_id is None:
        return None
    found = await info.context.loaders.operator.load(operator_id)
    return Operator.of(found) if found else None


@strawberry.enum(description="PENDING until a FINANCE or ADMIN operator (not the requester) decides.")
class ApprovalStatus(Enum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


@strawberry.type(description="A SERVICE operator's large adjustment waiting for (or after) a second operator.")
class PointsAdjustApproval(Node):
    pk: strawberry.Private[int]
    rec: strawberry.Private[operators.ApprovalInfo]
    status: ApprovalStatus
    points: int
    reason: str
    note: Optional[str]
    created_at: datetime
    decided_at: Optional[datetime]

    @classmethod
    def of(cls, a: operators.ApprovalInfo) -> "PointsAdjustApproval":
        return cls(id=strawberry.ID(to_global_id("PointsAdjustApproval", a.id)), pk=a.id, rec=a,
                   status=ApprovalStatus(a.status), points=a.points, reason=a.reason, note=a.note,
                   created_at=a.created_at, decided_at=a.decided_at)

    @strawberry.field
    async def member(self, info: Info) -> Optional[Member]:
        record = await info.context.loaders.member.load(self.rec.member_id)
        return Member.of(record) if record else None

    @strawberry.field
    async def requested_by(self, info: Info) -> Optional[Operator]:
        return await load_operator(info, self.rec.requester_id)

    @strawberry.field
    async def decided_by(self, info: Info) -> Optional[Operator]:
        return await load_operator(info, self.rec.decided_by_id)

    @strawberry.field(description="The booked entry, once approved.")
    async def entry(self) -> Optional[PointsEntry]:
        found = await ledger.entry_with_owner(self.rec.entry_id) if self.rec.entry_id else None
        return PointsEntry.of(found[0]) if found else None


@strawberry.type(description="Who did it: an operator, the command line (cli) or the system.")
class AuditActor:
    kind: str
    id: Optional[strawberry.ID]
    name: Optional[str]


@strawberry.type(description="One audited action, with the object before and after it (append-only).")
class AuditEntry(Node):
    pk: strawberry.Private[int]
    actor: AuditActor
    action: str
    object_type: Optional[str]
    object_id: Optional[str]
    before: Optional[JSON]
    after: Optional[JSON]
    created_at: datetime

    @classmethod
    def of(cls, r: audit.AuditRow) -> "AuditEntry":
        kind = {"operator": "Operator", "staff": "MerchantStaff"}.get(r.actor_kind)
        actor_id = to_global_id(kind, r.actor_id) if kind and r.actor_id else r.actor_id
        return cls(id=strawberry.ID(to_global_id("AuditEntry", r.id)), pk=r.id,
                   actor=AuditActor(kind=r.actor_kind, id=strawberry.ID(actor_id) if actor_id else None,
                                    name=r.actor_name),
                   action=r.action, object_type=r.object_type, object_id=r.object_id, before=r.before,
                   after=r.after, created_at=r.created_at)
