"""The operators' root fields (issue 10), mixed into the operators' Query and Mutation."""
from __future__ import annotations

from typing import Optional

import strawberry

from api.resolvers import operators as o
from api.schema.operators import payloads as p
from api.schema.operators.types import AuditEntry, Operator, PointsAdjustApproval
from api.schema.payloads import OperatorLoginPayload
from api.schema.types import Connection


@strawberry.type
class OperatorsQuery:
    operator_me: Optional[Operator] = strawberry.field(resolver=o.operator_me, description="The signed-in operator.")
    operators: Connection[Operator] = strawberry.field(resolver=o.operators_page)
    audit_log: Connection[AuditEntry] = strawberry.field(
        resolver=o.audit_log, description="Audited actions, newest first, with before/after.")
    points_adjust_approvals: Connection[PointsAdjustApproval] = strawberry.field(
        resolver=o.points_adjust_approvals, description="Adjustments held for approval, oldest first.")


@strawberry.type
class OperatorsMutation:
    operator_login: OperatorLoginPayload = strawberry.mutation(resolver=o.operator_login)
    operator_create: p.OperatorCreatePayload = strawberry.mutation(
        resolver=o.operator_create, description="A new operator with roles you may give; audited.")
    operator_update: p.OperatorUpdatePayload = strawberry.mutation(
        resolver=o.operator_update, description="Display name, roles, active, password; audited.")
    points_adjust: p.PointsAdjustPayload = strawberry.mutation(
        resolver=o.points_adjust,
        description="Adds or takes points with a reason; audited. A SERVICE operator's large one waits for approval.")
    points_adjust_approve: p.PointsAdjustApprovePayload = strawberry.mutation(
        resolver=o.points_adjust_approve, description="Approves (books once) or rejects another operator's request.")
    merchant_create: p.MerchantCreatePayload = strawberry.mutation(resolver=o.merchant_create, description="Audited.")
    merchant_update: p.MerchantUpdatePayload = strawberry.mutation(
        resolver=o.merchant_update, description="Code, name, category, active; audited.")
    tier_create: p.TierCreatePayload = strawberry.mutation(resolver=o.tier_create, description="Audited.")
    tier_update: p.TierUpdatePayload = strawberry.mutation(
        resolver=o.tier_update, description="From now on, never rewriting history; audited.")
