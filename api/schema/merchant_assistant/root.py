"""The merchant assistant's root fields (issue 12), mixed into the public Mutation and the operators'
Query and Mutation (one base class each)."""
from __future__ import annotations

import strawberry

from api.resolvers import merchant_assistant as ma
from api.schema.base import Connection
from api.schema.merchant_assistant import payloads as p
from api.schema.merchant_assistant.types import MerchantVoucherProposal


@strawberry.type
class MerchantAssistantMutation:
    """Public endpoint, merchant staff tokens: a MANAGER's own merchant only (docs/merchant-assistant.md)."""

    merchant_clerk_create: p.MerchantClerkCreatePayload = strawberry.mutation(
        resolver=ma.merchant_clerk_create, description="A manager opens a CLERK account of their merchant; audited.")
    merchant_clerk_deactivate: p.MerchantClerkDeactivatePayload = strawberry.mutation(
        resolver=ma.merchant_clerk_deactivate,
        description="A manager closes a clerk of their merchant: its tokens stop working; audited.")
    merchant_voucher_propose: p.MerchantVoucherProposePayload = strawberry.mutation(
        resolver=ma.merchant_voucher_propose,
        description="A manager proposes a voucher for the points mall; an operator approves it before it is sold.")


@strawberry.type
class MerchantAssistantAdminQuery:
    merchant_voucher_proposals: Connection[MerchantVoucherProposal] = strawberry.field(
        resolver=ma.merchant_voucher_proposals,
        description="Merchants' voucher proposals, oldest first, optionally of one status and one merchant.")


@strawberry.type
class MerchantAssistantAdminMutation:
    merchant_voucher_approve: p.MerchantVoucherApprovePayload = strawberry.mutation(
        resolver=ma.merchant_voucher_approve,
        description="Approves (creates the MERCHANT_VOUCHER product, on sale) or rejects a PENDING proposal; audited.")
