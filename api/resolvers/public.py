from __future__ import annotations

from typing import Optional

import strawberry
from strawberry.types import Info

from api.resolvers import client_address, user_errors
from api.resolvers import mall as mall_resolvers
from api.resolvers import operators as operator_resolvers
from api.resolvers import parking as parking_resolvers
from api.resolvers.staff import staff_node, staff_viewer
from api.schema import payloads as p
from api.schema.errors import UserError
from api.schema.ids import from_global_id, to_global_id
from api.schema.staff import voucher_of
from api.schema.types import Member, Node, PointsEntry, Purchase, Tier, Viewer
from api.services import integrations, ledger, members, purchases, tiers
from api.services.mall import vouchers


async def viewer(info: Info) -> Viewer:
    member_id = info.context.caller.member_id
    record = await info.context.loaders.member.load(member_id) if member_id is not None else None
    return Viewer(member=Member.of(record) if record else None, staff=await staff_viewer(info))


async def all_tiers() -> list[Tier]:
    return [Tier.of(t) for t in await tiers.all_tiers()]


async def node(info: Info, id: strawberry.ID) -> Optional[Node]:
    """Any object by global ID, if the caller may see it; otherwise null (never a hint why)."""
    parsed = from_global_id(id)
    if parsed is None:
        return None
    type_name, pk = parsed
    if type_name == "Tier":
        return next((Tier.of(t) for t in await tiers.all_tiers() if t.id == pk), None)
    if type_name == "Member" and info.context.may_read_member(pk):
        record = await info.context.loaders.member.load(pk)
        return Member.of(record) if record else None
    if type_name == "PointsEntry":
        found = await ledger.entry_with_owner(pk)
        return PointsEntry.of(found[0]) if found and info.context.may_read_member(found[1]) else None
    if type_name == "Voucher":
        voucher = await vouchers.by_id(pk)
        return voucher_of(voucher) if voucher and info.context.may_read_member(voucher.info.member_id) else None
    if type_name == "MerchantStaff":
        return await staff_node(info, pk)
    if type_name in operator_resolvers.NODE_TYPES:  # issue 10: operators' endpoint only
        return await operator_resolvers.node(info, type_name, pk)
    if type_name in parking_resolvers.NODE_TYPES:
        return await parking_resolvers.node(info, type_name, pk)
    if type_name in ("EarnRule", "Task", "MallEvent"):  # earning (issue 3): operators only
        from api.resolvers.earning_admin import config_node

        return await config_node(info, type_name, pk)
    return await mall_resolvers.node(info, type_name, pk)


@user_errors(p.AuthSmsCodeRequestPayload)
async def auth_sms_code_request(info: Info, input: p.AuthSmsCodeRequestInput) -> p.AuthSmsCodeRequestPayload:
    expires_at = await members.request_sms_code(input.phone, client=client_address(info), redis=info.context.redis)
    return p.AuthSmsCodeRequestPayload(code_expires_at=expires_at, resend_after_seconds=60)


@user_errors(p.AuthSmsLoginPayload)
async def auth_sms_login(input: p.AuthSmsLoginInput) -> p.AuthSmsLoginPayload:
    result = await members.login_with_sms(input.phone, input.code, input.invite_code)
    return p.AuthSmsLoginPayload(token=result.token, member=Member.of(result.member), registered=result.registered)


@user_errors(p.MemberProfileUpdatePayload)
async def member_profile_update(info: Info, input: p.MemberProfileUpdateInput) -> p.MemberProfileUpdatePayload:
    record = await members.update_profile(
        info.context.member_id(), nickname=input.nickname, birthday=input.birthday,
        gender=input.gender.value if input.gender else None,
    )
    return p.MemberProfileUpdatePayload(member=Member.of(record))


def _till(info: Info):
    """The signed caller, which must be a till (a key with the pos scope)."""
    identity = info.context.integration()
    integrations.require_scope(identity, "pos")
    return identity


def _purchase_input(data: p.PurchaseRecordInput) -> purchases.PurchaseInput:
    return purchases.PurchaseInput(data.member_code, data.merchant_code, data.receipt_no, data.amount_fen,
                                   data.occurred_at, data.idempotency_key)


def _purchase_payload(result: purchases.PurchaseResult) -> p.PurchaseRecordPayload:
    purchase = Purchase(id=strawberry.ID(to_global_id("Purchase", result.purchase_id)), pk=result.purchase_id,
                        receipt_no=result.receipt_no, amount_fen=result.amount_fen)
    return p.PurchaseRecordPayload(purchase=purchase, points_earned=result.points_earned,
                                   points_balance=result.points_balance)


@user_errors(p.PurchaseRecordPayload)
async def purchase_record(info: Info, input: p.PurchaseRecordInput) -> p.PurchaseRecordPayload:
    identity = _till(info)
    return _purchase_payload(await purchases.record_purchase(identity, _purchase_input(input)))


@user_errors(p.PurchaseRecordBatchPayload)
async def purchase_record_batch(info: Info, input: p.PurchaseRecordBatchInput) -> p.PurchaseRecordBatchPayload:
    identity = _till(info)
    items = await purchases.record_batch(identity, [_purchase_input(i) for i in input.purchases])
    return p.PurchaseRecordBatchPayload(results=[
        _purchase_payload(item.result) if item.result else p.PurchaseRecordPayload(user_errors=[UserError.of(item.error)])
        for item in items
    ])


@user_errors(p.PurchaseRefundPayload)
async def purchase_refund(info: Info, input: p.PurchaseRefundInput) -> p.PurchaseRefundPayload:
    result = await purchases.refund_purchase(
        _till(info), input.merchant_code, input.receipt_no, input.refund_amount_fen, input.idempotency_key
    )
    return p.PurchaseRefundPayload(points_reversed=result.points_reversed, points_balance=result.points_balance)


@user_errors(p.PointsPayPayload)
async def points_pay(info: Info, input: p.PointsPayInput) -> p.PointsPayPayload:
    result = await purchases.pay_with_points(
        _till(info), input.member_code, input.merchant_code, input.receipt_no, input.points,
        input.idempotency_key,
    )
    return p.PointsPayPayload(points_spent=result.points_spent, cash_value_fen=result.cash_value_fen,
                              points_balance=result.points_balance)


