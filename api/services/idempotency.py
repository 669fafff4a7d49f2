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
from api.services import clock
from api.services.errors import DomainError, ErrorCode

MAX_KEY_LENGTH = 128


def request_hash(operation: str, payload: dict[str, Any]) -> str:
    canonical = json.dumps([operation, payload], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str, field: list[str]) -> str:
    key = (key or "").strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise DomainError(ErrorCode.INVALID_INPUT, f"idempotencyKey must be 1 to {MAX_KEY_LENGTH} characters", field)
    return key


async def claim(tx: Tx, scope: str, key: str, digest: str, field: list[str]) -> tuple[int | None, Any]:
    """Returns (record id, None) when this call owns the key, or (None, stored result) on a repeat."""
    row = await tx.fetchrow(
        "INSERT INTO idempotency_record (scope, key, request_hash, created_at) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (scope, key) DO NOTHING RETURNING id",
        scope, key, digest, clock.now(),
    )
    if row is not None:
        return row["id"], None
    first = await tx.fetchrow(
        "SELECT request_hash, result FROM idempotency_record WHERE scope = $1 AND key = $2", scope, key
    )
    if first is None or first["request_hash"] != digest:
        raise DomainError(
            ErrorCode.IDEMPOTENCY_KEY_REUSED, "this idempotencyKey was used before with a different input", field
        )
    return None, json.loads(first["result"])


async def remember(tx: Tx, record_id: int, result: Any) -> None:
    await tx.execute(
        "UPDATE idempotency_record SET result = $1 WHERE id = $2",
        json.dumps(result, separators=(",", ":"), default=str), record_id,
    )


async def release(tx: Tx, scope: str, key: str, digest: str) -> None:
    """Frees a key claimed in this transaction by a call that then failed (groups of receipts, where
    the transaction goes on for the others). A call that failed owns its claim: had the key been
    committed before with this input, the call would have returned that result instead."""
    await tx.execute(
        "DELETE FROM idempotency_record WHERE scope = $1 AND key = $2 AND request_hash = $3", scope, key, digest
    )


async def stored(scope: str, key: str, digest: str, field: list[str]) -> Any:
    """The committed first result of a key, read outside any transaction (None when there is none):
    for answering a retry when the thing it asked for is no longer there (a sale that ended, a prize
    that ran out), before refusing it."""
    from api.db import fetch

    rows = await fetch("SELECT request_hash, result FROM idempotency_record WHERE scope = $1 AND key = $2", scope, key)
    if not rows:
        return None
    if rows[0]["request_hash"] != digest:
        raise DomainError(
            ErrorCode.IDEMPOTENCY_KEY_REUSED, "this idempotencyKey was used before with a different input", field
        )
    return None if rows[0]["result"] is None else json.loads(rows[0]["result"])
