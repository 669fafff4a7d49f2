"""Merchant staff (商户助手) types: accounts, the staff viewer, voucher write-off inputs and payloads."""
from __future__ import annotations

from datetime import date, datetime
from typing import Optional

import strawberry

from api.schema.base import Connection, Money, Node, check_first, from_cursor, global_id
from api.schema.core import Merchant
from api.schema.errors import UserError
from api.schema.mall.types import Voucher
from api.schema.merchant_assistant.types import (
    MerchantDay,
    MerchantStaffRole,
    MerchantVoucherProposal,
    MerchantVoucherProposalStatus,
)
from api.services import staff
from api.services.errors import DomainError, forbidden
from api.services.mall import vouchers
from api.services.merchant_assistant import day, proposals, team


def voucher_of(view: vouchers.VoucherView) -> Voucher:
    return Voucher.of(view.info, view.merchant_code)


@strawberry.type(description="An account of a merchant's staff: looks up and writes off its merchant's vouchers.")
class MerchantStaff(Node):
    pk: strawberry.Private[int]
    username: str
    display_name: str
    active: bool
    created_at: datetime
    merchant: Merchant
    role: MerchantStaffRole

    @classmethod
    def of(cls, s: staff.StaffInfo) -> "MerchantStaff":
        return cls(id=global_id("MerchantStaff", s.id), pk=s.id, username=s.username,
                   display_name=s.display_name, active=s.active, created_at=s.created_at,
                   merchant=Merchant.of(s.merchant), role=MerchantStaffRole(s.role))


@strawberry.type(description="Vouchers written off at a merchant on one Asia/Shanghai day.")
class WriteOffSummary:
    day: date
    count: int
    face_value: Money = strawberry.field(description="Sum of the face values (vouchers without one count 0).")


@strawberry.type(description="The signed-in merchant staff account and its merchant's write-offs.")
class MerchantStaffViewer:
    pk: strawberry.Private[int]
    merchant_pk: strawberry.Private[int]
    id: strawberry.ID = strawberry.field(description="The MerchantStaff global ID.")
    username: str
    display_name: str
    merchant: Merchant
    role: MerchantStaffRole = strawberry.field(description="What this account may do (docs/merchant-assistant.md).")

    @classmethod
    def of(cls, s: staff.StaffInfo) -> "MerchantStaffViewer":
        return cls(pk=s.id, merchant_pk=s.merchant.id, id=global_id("MerchantStaff", s.id),
                   username=s.username, display_name=s.display_name, merchant=Merchant.of(s.merchant),
                   role=MerchantStaffRole(s.role))

    @strawberry.field(description="This merchant's figures of today (Asia/Shanghai): write-offs, points issued "
                      "on its receipts, points paid at its tills, points-mall orders of its goods.")
    async def today(self) -> MerchantDay:
        return MerchantDay.of(await day.day_of(self.merchant_pk))

    @strawberry.field(description="This merchant's voucher proposals, oldest first (every role sees them).")
    async def voucher_proposals(self, first: int, after: Optional[str] = None,
                                status: Optional[MerchantVoucherProposalStatus] = None
                                ) -> Connection[MerchantVoucherProposal]:
        check_first(first)
        rows = await proposals.page(first + 1, from_cursor(after), merchant_id=self.merchant_pk,
                                    status=status.value if status else None)
        return Connection.of([MerchantVoucherProposal.of(r) for r in rows], first, after)

    @strawberry.field(description="MANAGER only (FORBIDDEN for a clerk): this merchant's staff accounts, "
                      "in creation order.")
    async def staff_accounts(self, first: int, after: Optional[str] = None) -> Connection[MerchantStaff]:
        check_first(first)
        try:
            rows = await team.page(self.pk, first + 1, from_cursor(after))
        except DomainError as err:
            raise forbidden(err.message) from None
        return Connection.of([MerchantStaff.of(r) for r in rows], first, after)

    @strawberry.field(description="Vouchers written off at this merchant, newest write-off first.")
    async def write_offs(self, first: int, after: Optional[str] = None) -> Connection[Voucher]:
        check_first(first)
        rows = await vouchers.written_off_page(self.merchant_pk, first + 1, from_cursor(after))
        return Connection.of([voucher_of(r) for r in rows], first, after)

    @strawberry.field(description="Count and face value written off on an Asia/Shanghai day (default today).")
    async def write_off_summary(self, day: Optional[date] = None) -> WriteOffSummary:
        summary = await vouchers.write_off_summary(self.merchant_pk, day)
        return WriteOffSummary(day=summary.day, count=summary.count, face_value=Money(amount_fen=summary.face_value_fen))


# --- inputs and payloads -------------------------------------------------------------------------


@strawberry.input
class MerchantStaffLoginInput:
    username: str
    password: str


@strawberry.type
class MerchantStaffLoginPayload:
    token: Optional[str] = None
    staff: Optional[MerchantStaff] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class VoucherWriteOffInput:
    code: str = strawberry.field(description="The voucher code as typed, or the scanned QR payload (MPV1:<code>).")
    idempotency_key: str


@strawberry.type
class VoucherWriteOffPayload:
    voucher: Optional[Voucher] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class MerchantStaffCreateInput:
    merchant_code: str
    username: str
    display_name: str
    password: str = strawberry.field(description="At least 10 characters.")
    role: MerchantStaffRole = strawberry.field(
        default=MerchantStaffRole.MANAGER, description="MANAGER (default) or CLERK (docs/merchant-assistant.md).")


@strawberry.type
class MerchantStaffCreatePayload:
    staff: Optional[MerchantStaff] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class MerchantStaffDeactivateInput:
    staff_id: strawberry.ID


@strawberry.type
class MerchantStaffDeactivatePayload:
    staff: Optional[MerchantStaff] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)
