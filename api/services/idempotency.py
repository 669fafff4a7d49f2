"""Idempotency keys: claimed in the same transaction as the write they protect.

The first call inserts (scope, key, hash of the input); the result is stored before commit. A repeat
with the same input returns the stored result; the same key with a different input is refused.
A call that fails with a userError rolls back, so its key stays free for a corrected retry.
On PostgreSQL a concurrent repeat waits on the unique index until the first commits.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from api.db import Tx
from api.models import IdempotencyRecord
from api.services import clock, text
from api.services import sql as core_sql
from api.services.errors import DomainError, ErrorCode

MAX_KEY_LENGTH = 128


def request_hash(operation: str, payload: dict[str, Any]) -> str:
    canonical = json.dumps([operation, payload], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str, field: list[str]) -> str:
    """Every mutation's idempotency key: 1 to MAX_KEY_LENGTH characters once stripped, no control
    characters (PostgreSQL cannot store NUL; SQLite would); INVALID_INPUT naming `field` otherwise."""
    return text.identifier(key, field, MAX_KEY_LENGTH)


async def claim(tx: Tx, scope: str, key: str, digest: str, field: list[str]) -> tuple[int | None, Any]:
    """Returns (record id, None) when this call owns the key, or (None, stored result) on a repeat."""
    record_id = await tx.fetchval(core_sql.CLAIM_KEY, scope, key, digest, clock.now())
    if record_id is not None:
        return record_id, None
    first = await IdempotencyRecord.filter(scope=scope, key=key).first()
    if first is None or first.request_hash != digest:
        raise DomainError(
            ErrorCode.IDEMPOTENCY_KEY_REUSED, "this idempotencyKey was used before with a different input", field
        )
    assert first.result is not None, "a committed claim always has its result"
    return None, json.loads(first.result)


async def remember(tx: Tx, record_id: int | None, result: Any) -> None:
    """Stores the result under the key this call claimed (`claim` gave it the record id)."""
    assert record_id is not None, "remember() after a claim that returned the stored result"
    await tx.execute(core_sql.REMEMBER, json.dumps(result, separators=(",", ":"), default=str), record_id)


async def release(tx: Tx, scope: str, key: str, digest: str) -> None:
    """Frees a key claimed in this transaction by a call that then failed (groups of receipts, where
    the transaction goes on for the others). A call that failed owns its claim: had the key been
    committed before with this input, the call would have returned that result instead."""
    await IdempotencyRecord.filter(scope=scope, key=key, request_hash=digest).delete()


async def stored(scope: str, key: str, digest: str, field: list[str]) -> Any:
    """The committed first result of a key, read outside any transaction (None when there is none):
    for answering a retry when the thing it asked for is no longer there (a sale that ended, a prize
    that ran out), before refusing it."""
    first = await IdempotencyRecord.filter(scope=scope, key=key).first()
    if first is None:
        return None
    if first.request_hash != digest:
        raise DomainError(
            ErrorCode.IDEMPOTENCY_KEY_REUSED, "this idempotencyKey was used before with a different input", field
        )
    return None if first.result is None else json.loads(first.result)
