"""Operators' accounts, approvals, audit trail, merchants and tiers (issue 10). Roles are checked for
every root field before these run (api/schema/operators/permissions.py)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Optional

import strawberry
from strawberry.types import Info

from api.resolvers import client_address, input_pk, user_errors
from api.schema.ids import from_cursor, from_global_id
from api.schema.operators import inputs as i
from api.schema.operators import payloads as p
from api.schema.operators.types import ApprovalStatus, AuditEntry, Operator, PointsAdjustApproval
from api.schema.payloads import OperatorLoginInput, OperatorLoginPayload
from api.schema.types import Connection, Member, Merchant, Node, PointsEntry, Tier, check_first
from api.services import audit, ledger, members, merchants, operators, tiers
from api.services.errors import DomainError, ErrorCode


def _actor(info: Info) -> tuple[str, str]:
    return ("operator", str(info.context.operator_id()))


@user_errors(OperatorLoginPayload)
async def operator_login(info: Info, input: OperatorLoginInput) -> OperatorLoginPayload:
    operator, token = await operators.login(input.username, input.password, client=client_address(info),
                                            redis=info.context.redis)
    return OperatorLoginPayload(token=token, operator=Operator.of(operator))


async def operator_me(info: Info) -> Optional[Operator]:
    found = await operators.get_operator(info.context.operator_id())
    return Operator.of(found) if found else None


async def operators_page(info: Info, first: int, after: Optional[str] = None) -> Connection[Operator]:
    check_first(first)
    rows = await operators.page(first + 1, from_cursor(after))
    return Connection.of([Operator.of(o) for o in rows], first)


@user_errors(p.OperatorCreatePayload)
async def operator_create(info: Info, input: i.OperatorCreateInput) -> p.OperatorCreatePayload:
    created = await operators.create_operator(input.username, input.display_name, input.password, input.roles,
                                              actor=_actor(info), grantor=info.context.operator_roles())
    return p.OperatorCreatePayload(operator=Operator.of(created))


@user_errors(p.OperatorUpdatePayload)
async def operator_update(info: Info, input: i.OperatorUpdateInput) -> p.OperatorUpdatePayload:
    updated = await operators.update_operator(
        info.context.operator_id(), info.context.operator_roles(), input_pk(input.operator_id, "Operator", "operatorId"),
        display_name=input.display_name, roles=input.roles, active=input.active, password=input.password)
    return p.OperatorUpdatePayload(operator=Operator.of(updated))


def _member_pk(global_id: str) -> int:
    parsed = from_global_id(global_id, "Member")
    if parsed is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such member", ["memberId"])
    return parsed[1]


@user_errors(p.PointsAdjustPayload)
async def points_adjust(info: Info, input: p.PointsAdjustInput) -> p.PointsAdjustPayload:
    result = await operators.adjust_points(info.context.operator_id(), _member_pk(input.member_id), input.points,
                                           input.reason, input.idempotency_key, info.context.operator_roles())
    record = await members.get_member(result.member_id)
    member = Member.of(record) if record else None
    if result.approval_id is not None:
        approval = await operators.get_approval(result.approval_id)
        return p.PointsAdjustPayload(member=member, approval=PointsAdjustApproval.of(approval) if approval else None)
    entry = await ledger.entry_with_owner(result.entry_id) if result.entry_id else None
    return p.PointsAdjustPayload(entry=PointsEntry.of(entry[0]) if entry else None, member=member)


@user_errors(p.PointsAdjustApprovePayload)
async def points_adjust_approve(info: Info, input: i.PointsAdjustApproveInput) -> p.PointsAdjustApprovePayload:
    approval, entry_id = await operators.decide(
        info.context.operator_id(), info.context.operator_roles(),
        input_pk(input.approval_id, "PointsAdjustApproval", "approvalId"), input.approve, input.note)
    entry = await ledger.entry_with_owner(entry_id) if entry_id else None
    return p.PointsAdjustApprovePayload(approval=PointsAdjustApproval.of(approval),
                                        entry=PointsEntry.of(entry[0]) if entry else None)


async def points_adjust_approvals(info: Info, first: int, after: Optional[str] = None,
                                  status: Optional[ApprovalStatus] = None) -> Connection[PointsAdjustApproval]:
    check_first(first)
    rows = await operators.approvals_page(first + 1, from_cursor(after), status.value if status else None)
    return Connection.of([PointsAdjustApproval.of(a) for a in rows], first)


@user_errors(p.MerchantCreatePayload)
async def merchant_create(info: Info, input: i.MerchantCreateInput) -> p.MerchantCreatePayload:
    created = await merchants.create(_actor(info), input.code, input.name, input.category)
    return p.MerchantCreatePayload(merchant=Merchant.of(created))


@user_errors(p.MerchantUpdatePayload)
async def merchant_update(info: Info, input: i.MerchantUpdateInput) -> p.MerchantUpdatePayload:
    updated = await merchants.update(_actor(info), input_pk(input.merchant_id, "Merchant", "merchantId"),
                                     code=input.code, name=input.name, category=input.category, active=input.active)
    return p.MerchantUpdatePayload(merchant=Merchant.of(updated))


@user_errors(p.TierCreatePayload)
async def tier_create(info: Info, input: i.TierCreateInput) -> p.TierCreatePayload:
    created = await tiers.create(_actor(info), input.code, input.name, input.growth_threshold,
                                 input.earn_multiplier_percent, input.benefits)
    return p.TierCreatePayload(tier=Tier.of(created))


@user_errors(p.TierUpdatePayload)
async def tier_update(info: Info, input: i.TierUpdateInput) -> p.TierUpdatePayload:
    updated = await tiers.update(_actor(info), input_pk(input.tier_id, "Tier", "tierId"), name=input.name,
                                 growth_threshold=input.growth_threshold,
                                 earn_multiplier_percent=input.earn_multiplier_percent, benefits=input.benefits,
                                 active=input.active)
    return p.TierUpdatePayload(tier=Tier.of(updated))


async def audit_log(
    info: Info, first: int, after: Optional[str] = None, action: Optional[str] = None,
    actor_id: Optional[strawberry.ID] = None,
    from_: Annotated[Optional[datetime], strawberry.argument(name="from")] = None,
    to: Optional[datetime] = None, object_type: Optional[str] = None, object_id: Optional[str] = None,
) -> Connection[AuditEntry]:
    """Newest first. actorId: an operator's ID; from inclusive, to exclusive."""
    check_first(first)
    actor = None
    if actor_id is not None:
        parsed = from_global_id(actor_id, "Operator")
        actor = ("operator", str(parsed[1]) if parsed else "-")
    rows = await audit.page(first + 1, from_cursor(after), action=action, actor=actor, object_type=object_type,
                            object_id=object_id, since=from_, until=to)
    return Connection.of([AuditEntry.of(r) for r in rows], first)


NODE_TYPES = ("Operator", "PointsAdjustApproval", "AuditEntry")


async def node(info: Info, type_name: str, pk: int) -> Optional[Node]:
    """node(id:) for the operators' types: on the operators' endpoint only; audit entries only for the
    roles that may read the audit trail."""
    caller = info.context.caller
    if info.context.endpoint != "admin" or caller.operator_id is None:
        return None
    if type_name == "Operator":
        found = await operators.get_any(pk)
        return Operator.of(found) if found else None
    if type_name == "PointsAdjustApproval":
        approval = await operators.get_approval(pk)
        return PointsAdjustApproval.of(approval) if approval else None
    if not operators.roles.may(caller.operator_roles, "auditLog"):
        return None
    rows = await audit.page(1, pk + 1)
    return AuditEntry.of(rows[0]) if rows and rows[0].id == pk else None


async def tiers_for_operators(include_inactive: bool = False) -> list[Tier]:
    """The tiers, lowest first; with includeInactive also the deactivated ones (to reactivate them)."""
    found = await (tiers.every_tier(refresh=True) if include_inactive else tiers.all_tiers())
    return [Tier.of(t) for t in found]
