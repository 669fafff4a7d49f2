"""Members sign in and edit their profile; tills record purchases, refunds and points payments."""
from __future__ import annotations

from strawberry.types import Info

from api.resolvers import client_address, user_errors
from api.resolvers.nodes import node  # noqa: F401  (both schemas' node(id:))
from api.resolvers.staff import staff_viewer
from api.schema import payloads as p
from api.schema.base import global_id
from api.schema.core import Purchase, Tier
from api.schema.errors import UserError
from api.schema.member import Member, Viewer
from api.services import members, purchases, tiers


async def viewer(info: Info) -> Viewer:
    member_id = info.context.caller.member_id
    record = await info.context.loaders.member.load(member_id) if member_id is not None else None
    return Viewer(member=Member.of(record) if record else None, staff=await staff_viewer(info))


async def all_tiers() -> list[Tier]:
    return [Tier.of(t) for t in await tiers.all_tiers()]


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
        info.context.require_member(), nickname=input.nickname, birthday=input.birthday,
        gender=input.gender.value if input.gender else None,
    )
    return p.MemberProfileUpdatePayload(member=Member.of(record))


def _till(info: Info):
    """The signed caller, which must be a till (a key with the pos scope)."""
    return info.context.require_integration("pos")


def _purchase_input(data: p.PurchaseRecordInput) -> purchases.PurchaseInput:
    return purchases.PurchaseInput(data.member_code, data.merchant_code, data.receipt_no, data.amount_fen,
                                   data.occurred_at, data.idempotency_key)


def _purchase_payload(result: purchases.PurchaseResult) -> p.PurchaseRecordPayload:
    purchase = Purchase(id=global_id("Purchase", result.purchase_id), pk=result.purchase_id,
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
    return p.PurchaseRecordBatchPayload(results=[_batch_result(item) for item in items])


def _batch_result(item: purchases.BatchItem) -> p.PurchaseRecordPayload:
    if item.result is not None:
        return _purchase_payload(item.result)
    assert item.error is not None  # each item has a result or an error
    return p.PurchaseRecordPayload(user_errors=[UserError.of(item.error)])


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


