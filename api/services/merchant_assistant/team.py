"""A merchant's staff as its manager sees them: who may do what (MANAGER or CLERK), and the clerks a
manager opens and closes for their own merchant. Audited with the manager as the actor."""
from __future__ import annotations

from api.db import transaction
from api.models import MerchantStaff
from api.services import staff
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode

MANAGER, CLERK = staff.MANAGER, staff.CLERK
MAX_ID = 2**31 - 1  # merchant_staff ids are 32-bit: a larger id from outside names nothing


def actor(staff_id: int) -> Actor:
    return ("staff", str(staff_id))


async def require_manager(staff_id: int, field: list[str] | None = None) -> staff.StaffInfo:
    """The account, read now (not from the token cache), when it is an active MANAGER;
    STAFF_ROLE_REQUIRED otherwise."""
    account = await staff.get(staff_id)
    if account is None or not account.active or account.role != MANAGER:
        raise DomainError(ErrorCode.STAFF_ROLE_REQUIRED, "only a manager of this merchant may do this", field)
    return account


async def create_clerk(manager_id: int, username: str, display_name: str, password: str) -> staff.StaffInfo:
    """A CLERK account of the manager's own merchant (username, display name and password as operators'
    accounts of staff: api/services/staff.py)."""
    manager = await require_manager(manager_id)
    return await staff.create(actor(manager_id), manager.merchant.code, username, display_name, password,
                              role=CLERK, field_prefix=("input",))


async def deactivate_clerk(manager_id: int, staff_id: int) -> staff.StaffInfo:
    """Closes a CLERK account of the manager's own merchant: its tokens stop working at once in this
    process and within staff.CACHE_SECONDS in others. Another merchant's account is NOT_FOUND (never a
    hint that it exists); a manager's account is closed by operators only. Closing a closed clerk
    changes nothing and is not audited again."""
    manager = await require_manager(manager_id)
    field = ["input", "staffId"]
    async with transaction() as tx:
        found = await MerchantStaff.filter(id=staff_id, merchant_id=manager.merchant.id).first() \
            if 0 < staff_id <= MAX_ID else None
        if found is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such staff account", field)
        if found.role != CLERK:
            raise DomainError(ErrorCode.STAFF_ROLE_REQUIRED, "only clerks are closed here; operators close a "
                              "manager's account", field)
        if await MerchantStaff.filter(id=staff_id, active=True).update(active=False):
            await audit(tx, actor(manager_id), "merchant_staff.deactivate", "merchant_staff", str(staff_id),
                        {"merchant": manager.merchant.code, "username": found.username},
                        before={"active": True, "role": CLERK}, after={"active": False, "role": CLERK})
    staff.forget(staff_id)
    account = await staff.get(staff_id)
    assert account is not None, "staff accounts are never deleted"
    return account


async def page(manager_id: int, limit: int, after_id: int | None) -> list[staff.StaffInfo]:
    """The accounts of the manager's own merchant, in creation order (managers only)."""
    manager = await require_manager(manager_id)
    if after_id is not None and not 0 <= after_id < MAX_ID:
        return []  # past the last possible id
    query = MerchantStaff.filter(merchant_id=manager.merchant.id, id__gt=after_id or 0)
    rows = await query.select_related("merchant").order_by("id").limit(limit)
    return [staff.info_of(s) for s in rows]
