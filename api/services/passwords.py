"""Password sign-in shared by operators and merchant staff: argon2id, the same answer and the same
time for an unknown name as for a wrong password, and a failure limit per name and client address."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from api.db import Tx
from api.services import ratelimit
from api.services.errors import DomainError, ErrorCode

_hasher = PasswordHasher()  # argon2id with the library's current parameters
_DUMMY_HASH = _hasher.hash("timing-equaliser")
LOGIN_ATTEMPTS_PER_15_MIN = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


async def check(realm: str, username: str, password: str, find: Callable[[], Awaitable[Any]], active_field: str,
                *, client: str | None, redis: Any) -> Any:
    """The account's row if the password is right and the account active; otherwise INVALID_CREDENTIALS
    (the failure is counted), or RATE_LIMITED after LOGIN_ATTEMPTS_PER_15_MIN failures in 15 minutes."""
    bucket = f"{realm}-login:{(username or '').strip().lower()}:{client or '-'}"
    if await ratelimit.exceeded(redis, bucket, LOGIN_ATTEMPTS_PER_15_MIN, 900):
        raise DomainError(ErrorCode.RATE_LIMITED, "too many failed attempts; wait 15 minutes", ["password"])
    row = await find()
    try:
        _hasher.verify(row["password_hash"] if row else _DUMMY_HASH, password or "")
        ok = row is not None and bool(row[active_field])
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok:
        await ratelimit.allow(redis, bucket, LOGIN_ATTEMPTS_PER_15_MIN, 900)  # counts the failure
        raise DomainError(ErrorCode.INVALID_CREDENTIALS, "wrong username or password", ["password"])
    return row


async def rehash_if_needed(tx: Tx, table: str, row: Any, password: str) -> None:
    """Stored hashes follow the library's current parameters, upgraded at the next sign-in."""
    assert table in ("operator", "merchant_staff")
    if _hasher.check_needs_rehash(row["password_hash"]):
        await tx.execute(f"UPDATE {table} SET password_hash = $1 WHERE id = $2", hash_password(password), row["id"])
