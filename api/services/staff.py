"""Merchant staff accounts (商户助手): created and deactivated by operators, signed in with a password
(argon2id, like operators) on the public endpoint, where they look up and write off vouchers."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from api.db import transaction
from api.models import MerchantStaff
from api.services import clock, merchants, passwords, signing, text
from api.services import sql as core_sql
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode

STAFF_TOKEN_TTL_SECONDS = 12 * 3600  # one shift
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
CACHE_SECONDS = 10.0  # how long a deactivated account's token may still work in another process
MANAGER, CLERK = "MANAGER", "CLERK"
ROLES = (MANAGER, CLERK)


@dataclass(frozen=True)
class StaffInfo:
    id: int
    merchant: merchants.MerchantInfo
    username: str
    display_name: str
    active: bool
    created_at: datetime
    role: str = MANAGER  # MANAGER or CLERK (issue 12; docs/merchant-assistant.md)


def info_of(s: MerchantStaff) -> StaffInfo:
    m = s.merchant
    return StaffInfo(s.id, merchants.MerchantInfo(m.id, m.code, m.name, m.category), s.username, s.display_name,
                     bool(s.active), s.created_at, s.role or MANAGER)


async def _load(staff_id: int) -> MerchantStaff | None:
    return await MerchantStaff.filter(id=staff_id).select_related("merchant").first()


def _username(value: str, field: list[str]) -> str:
    username = (value or "").strip().lower()
    if not USERNAME.match(username):
        raise DomainError(ErrorCode.INVALID_INPUT, "username: 3 to 64 of a-z, 0-9, '.', '_', '-'", field)
    return username


def check_password(password: str | None, field: list[str]) -> str:
    """The password rule of staff and operators: MIN_PASSWORD_LENGTH to MAX_PASSWORD_LENGTH characters."""
    if not MIN_PASSWORD_LENGTH <= len(password or "") <= MAX_PASSWORD_LENGTH:
        raise DomainError(ErrorCode.INVALID_INPUT,
                          f"password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters", field)
    return password or ""


async def create(actor: Actor, merchant_code: str, username: str, display_name: str, password: str,
                 role: str = MANAGER, field_prefix: tuple[str, ...] = ()) -> StaffInfo:
    """An account for a merchant's staff (an operator opens any; a merchant's manager opens clerks);
    audited without the password. `field_prefix` goes before the field names of userErrors."""
    assert role in ROLES, role
    merchant = await merchants.by_code(merchant_code, ["merchantCode"])
    username = _username(username, [*field_prefix, "username"])
    display_name = text.name(display_name, [*field_prefix, "displayName"], 64)
    password_hash = await passwords.hash_password_off_loop(check_password(password, [*field_prefix, "password"]))
    async with transaction() as tx:
        staff_id = await tx.fetchval(core_sql.INSERT_STAFF, merchant.id, username, display_name, password_hash,
                                     clock.now(), role)
        if staff_id is None:
            raise DomainError(ErrorCode.INVALID_INPUT, "this username is taken", [*field_prefix, "username"])
        await audit(tx, actor, "merchant_staff.create", "merchant_staff", str(staff_id),
                    {"merchant": merchant.code, "username": username, "display_name": display_name, "role": role})
        staff = await _load(staff_id)
    assert staff is not None
    return info_of(staff)


async def deactivate(actor: Actor, staff_id: int) -> StaffInfo:
    """Closes an account: its tokens stop working (within CACHE_SECONDS in other processes)."""
    async with transaction() as tx:
        staff = await _load(staff_id)
        if staff is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such staff account", ["staffId"])
        await MerchantStaff.filter(id=staff_id).update(active=False)
        await audit(tx, actor, "merchant_staff.deactivate", "merchant_staff", str(staff_id),
                    {"merchant": staff.merchant.code, "username": staff.username, "was_active": bool(staff.active)})
        staff.active = False
    _cache.pop(staff_id, None)
    return info_of(staff)


async def page(limit: int, after_id: int | None, merchant_code: str | None = None) -> list[StaffInfo]:
    """Accounts in creation order, optionally of one merchant."""
    query = MerchantStaff.filter(id__gt=after_id or 0)
    if merchant_code:
        merchant = await merchants.by_code(merchant_code, ["merchantCode"])
        query = query.filter(merchant_id=merchant.id)
    return [info_of(s) for s in await query.select_related("merchant").order_by("id").limit(limit)]


async def login(username: str, password: str, *, client: str | None = None,
                redis: Any = None) -> tuple[StaffInfo, str]:
    """Password login (api/services/passwords.py: argon2id, a failure limit per username and address).
    Inactive accounts cannot sign in."""
    name = (username or "").strip().lower()

    async def find() -> dict[str, Any] | None:
        if text.has_control(name):  # no account has one (USERNAME); PostgreSQL refuses NUL in a query
            return None
        return await MerchantStaff.filter(username=name).first().values("id", "password_hash", "active")

    # A name with a control character matches no account (USERNAME) and is throttled without them
    # (PostgreSQL refuses NUL in a query or a throttle row).
    row = await passwords.check("staff", text.strip_controls(name), password, find, "active", client=client,
                                redis=redis)
    async with transaction() as tx:
        await passwords.rehash_if_needed(tx, "merchant_staff", row, password)
        await audit(tx, ("staff", str(row["id"])), "merchant_staff.login", "merchant_staff", str(row["id"]), None)
    staff = await _load(row["id"])
    assert staff is not None
    return info_of(staff), signing.issue_token("staff", row["id"], STAFF_TOKEN_TTL_SECONDS)


async def get(staff_id: int) -> StaffInfo | None:
    """An account, active or not."""
    staff = await _load(staff_id)
    return info_of(staff) if staff is not None else None


_cache: dict[int, tuple[float, StaffInfo | None]] = {}


async def get_active(staff_id: int) -> StaffInfo | None:
    """The account behind a staff token, if it is still active (cached for CACHE_SECONDS)."""
    hit = _cache.get(staff_id)
    if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    staff = await _load(staff_id)
    info = info_of(staff) if staff is not None and staff.active else None
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[staff_id] = (time.monotonic(), info)
    return info


def forget(staff_id: int) -> None:
    """Drops one account from this process's cache (after it was deactivated)."""
    _cache.pop(staff_id, None)


def invalidate_cache() -> None:
    _cache.clear()
