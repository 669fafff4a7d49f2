"""Password sign-in shared by operators and merchant staff: argon2id, the same answer and the same
time for an unknown name as for a wrong password, and failure limits per name and per client address.

Each attempt first reserves a slot of both limits atomically (`ratelimit.reserve`: Redis INCR, or a
counter row in the database), and only then runs the expensive check; a sign-in that succeeds gives its
slots back, so the limits count failures (and attempts still in flight). A burst of concurrent
attempts therefore checks at most the limit, where reading the count first and counting the failure
afterwards let every attempt of the burst through. Unknown usernames take the same path: a slot of
their own name and of the address, and a check against a dummy hash.

argon2 runs in a small dedicated thread pool (`HASH_WORKERS` threads; argon2-cffi releases the GIL),
never on the event loop: a burst of sign-ins queues there while other requests keep being served.
"""
from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from api.db import Tx
from api.models import MerchantStaff, Operator
from api.services import ratelimit
from api.services.errors import DomainError, ErrorCode

_hasher = PasswordHasher()  # argon2id with the library's current parameters
_DUMMY_HASH = _hasher.hash("timing-equaliser")
LOGIN_ATTEMPTS_PER_15_MIN = 10  # failed sign-ins per username (known or not), from all addresses
LOGIN_ATTEMPTS_PER_ADDRESS_15_MIN = 100  # failed sign-ins per client address, over all usernames
WINDOW_SECONDS = 900
HASH_WORKERS = max(1, min(4, os.cpu_count() or 1))
_pool = ThreadPoolExecutor(max_workers=HASH_WORKERS, thread_name_prefix="argon2")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


async def hash_password_off_loop(password: str) -> str:
    """`hash_password` in the argon2 pool."""
    return await asyncio.get_running_loop().run_in_executor(_pool, _hasher.hash, password)


def _matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify(password_hash: str, password: str) -> bool:
    """argon2 verification in the pool; False for a wrong password or an unreadable hash."""
    return await asyncio.get_running_loop().run_in_executor(_pool, _matches, password_hash, password)


async def _reserve(realm: str, username: str, client: str | None, redis: Any) -> list[ratelimit.Slot]:
    slots = [await ratelimit.reserve(redis, f"{realm}-login:user:{username}", LOGIN_ATTEMPTS_PER_15_MIN,
                                     WINDOW_SECONDS)]
    if client:
        slots.append(await ratelimit.reserve(redis, f"{realm}-login:addr:{client}",
                                             LOGIN_ATTEMPTS_PER_ADDRESS_15_MIN, WINDOW_SECONDS))
    return slots


async def check(realm: str, username: str, password: str, find: Callable[[], Awaitable[Any]], active_field: str,
                *, client: str | None, redis: Any) -> Any:
    """The account's row if the password is right and the account active; otherwise INVALID_CREDENTIALS
    (the failure stays counted), or RATE_LIMITED, without a check, once LOGIN_ATTEMPTS_PER_15_MIN
    failures for this username or LOGIN_ATTEMPTS_PER_ADDRESS_15_MIN from this address were counted in
    the current 15-minute window."""
    slots = await _reserve(realm, (username or "").strip().lower(), client, redis)
    if not all(slot.allowed for slot in slots):
        raise DomainError(ErrorCode.RATE_LIMITED, "too many failed attempts; wait 15 minutes", ["password"])
    row = await find()
    right = await verify(row["password_hash"] if row else _DUMMY_HASH, password or "")
    if not (right and row is not None and bool(row[active_field])):
        raise DomainError(ErrorCode.INVALID_CREDENTIALS, "wrong username or password", ["password"])
    for slot in slots:
        await slot.give_back()
    return row


async def rehash_if_needed(tx: Tx, table: str, row: Any, password: str) -> None:
    """Stored hashes follow the library's current parameters, upgraded at the next sign-in."""
    assert table in ("operator", "merchant_staff")
    if _hasher.check_needs_rehash(row["password_hash"]):
        model = Operator if table == "operator" else MerchantStaff
        await model.filter(id=row["id"]).update(password_hash=await hash_password_off_loop(password))
