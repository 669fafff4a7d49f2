"""Merchant staff accounts (商户助手): created and deactivated by operators, signed in with a password
(argon2id, like operators) on the public endpoint, where they look up and write off vouchers."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime

from api.db import fetch, transaction
from api.services import clock, merchants, passwords, signing
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode

STAFF_TOKEN_TTL_SECONDS = 12 * 3600  # one shift
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
CACHE_SECONDS = 10.0  # how long a deactivated account's token may still work in another process


@dataclass(frozen=True)
class StaffInfo:
    id: int
    merchant: merchants.MerchantInfo
    username: str
    display_name: str
    active: bool
    created_at: datetime


_SELECT = (
    "SELECT s.id, s.username, s.display_name, s.active, s.created_at, s.password_hash,"
    " m.id AS merchant_id, m.code AS merchant_code, m.name AS merchant_name, m.category AS merchant_category"
    " FROM merchant_staff s JOIN merchant m ON m.id = s.merchant_id"
)


def _info(row) -> StaffInfo:
    merchant = merchants.MerchantInfo(row["merchant_id"], row["merchant_code"], row["merchant_name"],
                                      row["merchant_category"])
    return StaffInfo(row["id"], merchant, row["username"], row["display_name"], bool(row["active"]),
                     clock.parse_db_time(row["created_at"]))


def _username(value: str) -> str:
    username = (value or "").strip().lower()
    if not USERNAME.match(username):
        raise DomainError(ErrorCode.INVALID_INPUT, "username: 3 to 64 of a-z, 0-9, '.', '_', '-'", ["username"])
    return username


async def create(actor: Actor, merchant_code: str, username: str, display_name: str, password: str) -> StaffInfo:
    """An operator opens an account for a merchant's staff; audited (without the password)."""
    merchant = await merchants.by_code(merchant_code, ["merchantCode"])
    username = _username(username)
    display_name = (display_name or "").strip()
    if not 1 <= len(display_name) <= 64:
        raise DomainError(ErrorCode.INVALID_INPUT, "displayName must be 1 to 64 characters", ["displayName"])
    if not MIN_PASSWORD_LENGTH <= len(password or "") <= MAX_PASSWORD_LENGTH:
        raise DomainError(ErrorCode.INVALID_INPUT,
                          f"password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters", ["password"])
    password_hash = passwords.hash_password(password)
    async with transaction() as tx:
        staff_id = await tx.fetchval(
            "INSERT INTO merchant_staff (merchant_id, username, display_name, password_hash, active, created_at)"
            " VALUES ($1, $2, $3, $4, TRUE, $5) ON CONFLICT (username) DO NOTHING RETURNING id",
            merchant.id, username, display_name, password_hash, clock.now(),
        )
        if staff_id is None:
            raise DomainError(ErrorCode.INVALID_INPUT, "this username is taken", ["username"])
        await audit(tx, actor, "merchant_staff.create", "merchant_staff", str(staff_id),
                    {"merchant": merchant.code, "username": username, "display_name": display_name})
        row = await tx.fetchrow(_SELECT + " WHERE s.id = $1", staff_id)
    return _info(row)


async def deactivate(actor: Actor, staff_id: int) -> StaffInfo:
    """Closes an account: its tokens stop working (within CACHE_SECONDS in other processes)."""
    async with transaction() as tx:
        row = await tx.fetchrow(_SELECT + " WHERE s.id = $1", staff_id)
        if row is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such staff account", ["staffId"])
        await tx.execute("UPDATE merchant_staff SET active = FALSE WHERE id = $1", staff_id)
        await audit(tx, actor, "merchant_staff.deactivate", "merchant_staff", str(staff_id),
                    {"merchant": row["merchant_code"], "username": row["username"], "was_active": bool(row["active"])})
        row = await tx.fetchrow(_SELECT + " WHERE s.id = $1", staff_id)
    _cache.pop(staff_id, None)
    return _info(row)


async def page(limit: int, after_id: int | None, merchant_code: str | None = None) -> list[StaffInfo]:
    """Accounts in creation order, optionally of one merchant."""
    if merchant_code:
        merchant = await merchants.by_code(merchant_code, ["merchantCode"])
        rows = await fetch(_SELECT + " WHERE s.id > $1 AND s.merchant_id = $2 ORDER BY s.id LIMIT $3",
                           after_id or 0, merchant.id, limit)
    else:
        rows = await fetch(_SELECT + " WHERE s.id > $1 ORDER BY s.id LIMIT $2", after_id or 0, limit)
    return [_info(r) for r in rows]


async def login(username: str, password: str, *, client: str | None = None, redis=None) -> tuple[StaffInfo, str]:
    """Password login (api/services/passwords.py: argon2id, a failure limit per username and address).
    Inactive accounts cannot sign in."""
    name = (username or "").strip().lower()

    async def find():
        rows = await fetch(_SELECT + " WHERE s.username = $1", name)
        return rows[0] if rows else None

    row = await passwords.check("staff", name, password, find, "active", client=client, redis=redis)
    async with transaction() as tx:
        await passwords.rehash_if_needed(tx, "merchant_staff", row, password)
        await audit(tx, ("staff", str(row["id"])), "merchant_staff.login", "merchant_staff", str(row["id"]), None)
    return _info(row), signing.issue_token("staff", row["id"], STAFF_TOKEN_TTL_SECONDS)


async def get(staff_id: int) -> StaffInfo | None:
    """An account, active or not."""
    rows = await fetch(_SELECT + " WHERE s.id = $1", staff_id)
    return _info(rows[0]) if rows else None


_cache: dict[int, tuple[float, StaffInfo | None]] = {}


async def get_active(staff_id: int) -> StaffInfo | None:
    """The account behind a staff token, if it is still active (cached for CACHE_SECONDS)."""
    hit = _cache.get(staff_id)
    if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    rows = await fetch(_SELECT + " WHERE s.id = $1", staff_id)
    info = _info(rows[0]) if rows and rows[0]["active"] else None
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[staff_id] = (time.monotonic(), info)
    return info


def invalidate_cache() -> None:
    _cache.clear()
