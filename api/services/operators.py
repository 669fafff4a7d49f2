"""Operators: password login (argon2id), point adjustments and runs, all audited."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from api.config import settings
from api.db import fetch, transaction
from api.services import clock, idempotency, ledger, mall, passwords, signing, tiers
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode, forbidden

hash_password = passwords.hash_password


@dataclass(frozen=True)
class OperatorInfo:
    id: int
    username: str
    display_name: str | None




async def login(username: str, password: str, *, client: str | None = None, redis=None) -> tuple[OperatorInfo, str]:
    """Password login (api/services/passwords.py: argon2id, a failure limit per username and address)."""
    async def find():
        rows = await fetch("SELECT id, username, display_name, password_hash, is_active FROM operator"
                           " WHERE username = $1", (username or "").strip())
        return rows[0] if rows else None

    row = await passwords.check("operator", username, password, find, "is_active", client=client, redis=redis)
    async with transaction() as tx:
        await passwords.rehash_if_needed(tx, "operator", row, password)
        await audit(tx, ("operator", str(row["id"])), "operator.login", "operator", str(row["id"]), None)
    token = signing.issue_token("operator", row["id"], settings().operator_token_ttl_seconds)
    return OperatorInfo(row["id"], row["username"], row["display_name"]), token


async def get_operator(operator_id: int) -> OperatorInfo | None:
    rows = await fetch("SELECT id, username, display_name, is_active FROM operator WHERE id = $1", operator_id)
    if not rows or not rows[0]["is_active"]:
        return None
    return OperatorInfo(rows[0]["id"], rows[0]["username"], rows[0]["display_name"])


async def ensure_operator(tx, username: str, password: str, display_name: str | None = None) -> int:
    existing = await tx.fetchval("SELECT id FROM operator WHERE username = $1", username)
    if existing is not None:
        return existing
    return await tx.fetchval(
        "INSERT INTO operator (username, password_hash, display_name, is_active, created_at)"
        " VALUES ($1, $2, $3, TRUE, $4) RETURNING id",
        username, hash_password(password), display_name, clock.now(),
    )


@dataclass(frozen=True)
class AdjustResult:
    entry_id: int
    member_id: int
    points: int
    balance_after: int


async def adjust_points(
    operator_id: int, member_id: int, points: int, reason: str, idempotency_key: str,
) -> AdjustResult:
    """An operator's correction: positive adds a lot (expiring under the policy), negative takes
    points like a spend and may not exceed the balance. Audited with the reason."""
    key = idempotency.check_key(idempotency_key, ["idempotencyKey"])
    reason = (reason or "").strip()
    if not 2 <= len(reason) <= 200:
        raise DomainError(ErrorCode.INVALID_INPUT, "a reason of 2 to 200 characters is required", ["reason"])
    limit = settings().max_adjust_points
    if points == 0 or abs(points) > limit:
        raise DomainError(ErrorCode.INVALID_INPUT, f"points must be non-zero and at most {limit} either way", ["points"])
    digest = idempotency.request_hash("pointsAdjust", {"memberId": member_id, "points": points, "reason": reason})
    now = clock.now()
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, f"operator:{operator_id}", key, digest, ["idempotencyKey"])
        if stored is not None:
            return AdjustResult(**stored)
        acct = await ledger.lock_account(tx, member_id)
        if acct is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such member", ["memberId"])
        await ledger.expire_account(tx, acct, now)
        text = f"人工调整：{reason}"
        if points > 0:
            entry = await ledger.credit(
                tx, acct, points=points, kind="ADJUST", reason=text, source_type="operator",
                source_ref=str(operator_id), occurred_at=now, operator_id=operator_id,
            )
        else:
            if acct.spendable < -points:
                raise DomainError(ErrorCode.INSUFFICIENT_POINTS,
                                  f"cannot take {-points} points: {ledger.shortfall(acct)}", ["points"])
            entry = await ledger.debit(
                tx, acct, points=-points, kind="ADJUST", reason=text, source_type="operator",
                source_ref=str(operator_id), occurred_at=now, operator_id=operator_id,
            )
        result = AdjustResult(entry.id, member_id, points, entry.balance_after)
        await audit(tx, ("operator", str(operator_id)), "points.adjust", "member", str(member_id),
                    {"points": points, "reason": reason, "entry_id": entry.id})
        await idempotency.remember(tx, record_id, asdict(result))
    return result


async def _run(actor: Actor, action: str, as_of: datetime | None, run: Callable[[datetime], Awaitable[Any]]) -> Any:
    """A scheduled job run by hand: as of a moment (default now; the future is refused, so nothing
    expires or closes early), audited with its result."""
    now = clock.now()
    as_of = clock.to_utc(as_of) if as_of else now
    if as_of > now + timedelta(minutes=1):
        raise DomainError(ErrorCode.INVALID_INPUT, "asOf may not be in the future", ["asOf"])
    result = await run(as_of)
    async with transaction() as tx:
        await audit(tx, actor, action, None, None, {"as_of": as_of.isoformat(), **asdict(result)})
    return result


async def run_expiry(actor: Actor, as_of: datetime | None) -> ledger.ExpiryResult:
    """Expires every lot due at `as_of`."""
    return await _run(actor, "points.expire_run", as_of, ledger.expire_due)


async def run_tier_evaluation(actor: Actor, as_of: datetime | None) -> tiers.EvaluationResult:
    """Closes every tier qualification period that has ended at `as_of`."""
    return await _run(actor, "tiers.evaluate", as_of, tiers.evaluate_periods)


async def run_order_expiry(actor: Actor, as_of: datetime | None) -> "mall.ExpireResult":
    """Lapses unpaid points-plus-cash orders past their deadline: holds released, stock back."""
    return await _run(actor, "mall_orders.expire_run", as_of, mall.expire_orders)


async def sms_outbox(limit: int) -> list[dict]:
    """The console sender's outbox, newest first (development only)."""
    if settings().is_production:
        raise forbidden("the SMS outbox is dev-only")
    rows = await fetch("SELECT id, phone, body, created_at FROM sms_message ORDER BY id DESC LIMIT $1", limit)
    return [{**dict(r), "created_at": clock.parse_db_time(r["created_at"])} for r in rows]
