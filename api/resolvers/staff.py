"""Merchant staff: accounts (operators), sign-in, voucher look-up and write-off (public endpoint)."""
from __future__ import annotations

from typing import Optional

from strawberry.types import Info

from api.resolvers import client_address, user_errors
from api.schema import staff as s
from api.schema.base import Connection, check_first, from_cursor, from_global_id
from api.schema.mall.types import Voucher
from api.services import staff
from api.services.errors import DomainError, ErrorCode
from api.services.mall import vouchers

# --- public endpoint -----------------------------------------------------------------------------


@user_errors(s.MerchantStaffLoginPayload)
async def merchant_staff_login(info: Info, input: s.MerchantStaffLoginInput) -> s.MerchantStaffLoginPayload:
    account, token = await staff.login(input.username, input.password, client=client_address(info),
                                       redis=info.context.redis)
    return s.MerchantStaffLoginPayload(token=token, staff=s.MerchantStaff.of(account))


async def staff_viewer(info: Info) -> Optional[s.MerchantStaffViewer]:
    staff_id = info.context.caller.staff_id
    account = await staff.get_active(staff_id) if staff_id is not None else None
    return s.MerchantStaffViewer.of(account) if account else None


async def _staff_node(info: Info, staff_id: int) -> Optional[s.MerchantStaff]:
    """node(id:) of a MerchantStaff: the account itself, or an operator on the operators' endpoint."""
    if not info.context.may_read_staff(staff_id):
        return None
    found = await staff.get(staff_id)
    return s.MerchantStaff.of(found) if found else None


NODES = {"MerchantStaff": _staff_node}


async def voucher_lookup(info: Info, code: str) -> Optional[Voucher]:
    """A typed code or scanned QR payload, if the caller's merchant may write it off; else null."""
    _, merchant_id = info.context.require_staff()
    found = await vouchers.lookup_for_staff(merchant_id, code)
    return s.voucher_of(found) if found else None


@user_errors(s.VoucherWriteOffPayload)
async def voucher_write_off(info: Info, input: s.VoucherWriteOffInput) -> s.VoucherWriteOffPayload:
    staff_id, merchant_id = info.context.require_staff()
    written = await vouchers.write_off(staff_id, merchant_id, input.code, input.idempotency_key)
    return s.VoucherWriteOffPayload(voucher=s.voucher_of(written))


# --- operators' endpoint -------------------------------------------------------------------------


async def merchant_staff_page(info: Info, first: int, after: Optional[str] = None,
                              merchant_code: Optional[str] = None) -> Connection[s.MerchantStaff]:
    info.context.require_operator()
    check_first(first)
    try:
        rows = await staff.page(first + 1, from_cursor(after), merchant_code)
    except DomainError:
        rows = []  # an unknown merchant has no staff
    return Connection.of([s.MerchantStaff.of(r) for r in rows], first, after)


@user_errors(s.MerchantStaffCreatePayload)
async def merchant_staff_create(info: Info, input: s.MerchantStaffCreateInput) -> s.MerchantStaffCreatePayload:
    actor = info.context.operator_actor()
    account = await staff.create(actor, input.merchant_code, input.username, input.display_name, input.password,
                                 role=input.role.value)
    return s.MerchantStaffCreatePayload(staff=s.MerchantStaff.of(account))


@user_errors(s.MerchantStaffDeactivatePayload)
async def merchant_staff_deactivate(info: Info, input: s.MerchantStaffDeactivateInput) -> s.MerchantStaffDeactivatePayload:
    actor = info.context.operator_actor()
    parsed = from_global_id(input.staff_id, "MerchantStaff")
    if parsed is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such staff account", ["staffId"])
    return s.MerchantStaffDeactivatePayload(staff=s.MerchantStaff.of(await staff.deactivate(actor, parsed[1])))

