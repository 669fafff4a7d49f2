"""Scheduled jobs run by an operator (or the command line) by hand, audited with their result; the
development SMS outbox."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from api.config import settings
from api.db import transaction
from api.models import SmsMessage
from api.services import clock, ledger, mall, tiers
from api.services.audit import Actor, audit
from api.services.errors import forbidden


async def _run(actor: Actor, action: str, as_of: datetime | None, run: Callable[[datetime], Awaitable[Any]]) -> Any:
    """A scheduled job run by hand: as of a moment (default now; `clock.check_as_of`: the future is
    refused, so nothing expires or closes early, and so is anything over ten years ago), audited
    with its result."""
    as_of = clock.check_as_of(as_of)
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
    return list(await SmsMessage.all().order_by("-id").limit(limit).values("id", "phone", "body", "created_at"))
