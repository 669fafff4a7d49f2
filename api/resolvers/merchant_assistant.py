"""Merchant assistant (issue 12): a manager's clerks and voucher proposals (public endpoint, staff
tokens); operators' list and decision of proposals; node(id:) of a proposal."""
from __future__ import annotations

from typing import Optional

from strawberry.types import Info

from api.resolvers import input_pk, user_errors
from api.schema.base import Connection, check_first, from_cursor
from api.schema.merchant_assistant import payloads as p
from api.schema.merchant_assistant.types import MerchantVoucherProposal, MerchantVoucherProposalStatus
from api.schema.staff import MerchantStaff
from api.services.merchant_assistant import proposals, team

# --- public endpoint (merchant staff) ------------------------------------------------------------


@user_errors(p.MerchantClerkCreatePayload)
async def merchant_clerk_create(info: Info, input: p.MerchantClerkCreateInput) -> p.MerchantClerkCreatePayload:
    staff_id, _ = info.context.require_staff()
    clerk = await team.create_clerk(staff_id, input.username, input.display_name, input.password)
    return p.MerchantClerkCreatePayload(staff=MerchantStaff.of(clerk))


@user_errors(p.MerchantClerkDeactivatePayload)
async def merchant_clerk_deactivate(info: Info, input: p.MerchantClerkDeactivateInput) -> p.MerchantClerkDeactivatePayload:
    staff_id, _ = info.context.require_staff()
    clerk = await team.deactivate_clerk(staff_id, input_pk(input.staff_id, "MerchantStaff", "staffId"))
    return p.MerchantClerkDeactivatePayload(staff=MerchantStaff.of(clerk))


@user_errors(p.MerchantVoucherProposePayload)
async def merchant_voucher_propose(info: Info, input: p.MerchantVoucherProposeInput) -> p.MerchantVoucherProposePayload:
    staff_id, _ = info.context.require_staff()
    terms = proposals.ProposalTerms(input.name, input.face_value_fen, input.quantity, input.validity_days,
                                    input.points_price, input.settlement_price_fen)
    proposal = await proposals.propose(staff_id, terms, input.idempotency_key)
    return p.MerchantVoucherProposePayload(proposal=MerchantVoucherProposal.of(proposal))


# --- operators' endpoint -------------------------------------------------------------------------


async def merchant_voucher_proposals(info: Info, first: int, after: Optional[str] = None,
                                     status: Optional[MerchantVoucherProposalStatus] = None,
                                     merchant_code: Optional[str] = None) -> Connection[MerchantVoucherProposal]:
    info.context.require_operator()
    check_first(first)
    rows = await proposals.operator_page(first + 1, from_cursor(after), status.value if status else None,
                                         merchant_code)
    return Connection.of([MerchantVoucherProposal.of(r) for r in rows], first, after)


@user_errors(p.MerchantVoucherApprovePayload)
async def merchant_voucher_approve(info: Info, input: p.MerchantVoucherApproveInput) -> p.MerchantVoucherApprovePayload:
    actor = info.context.operator_actor()
    proposal_id = input_pk(input.proposal_id, "MerchantVoucherProposal", "proposalId")
    decided = await proposals.decide(actor, info.context.require_operator(), proposal_id, input.approve, input.note)
    return p.MerchantVoucherApprovePayload(proposal=MerchantVoucherProposal.of(decided))


# --- node(id:) -----------------------------------------------------------------------------------


async def _proposal_node(info: Info, pk: int) -> Optional[MerchantVoucherProposal]:
    """Operators see every proposal; merchant staff their own merchant's; nobody else any."""
    found = await proposals.get(pk)
    if found is None:
        return None
    if info.context.is_operator or info.context.caller.staff_merchant_id == found.merchant_id:
        return MerchantVoucherProposal.of(found)
    return None


NODES = {"MerchantVoucherProposal": _proposal_node}
