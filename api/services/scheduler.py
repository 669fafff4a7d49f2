"""Scheduled runs: pending-points release, invite rewards left over, expiry, tier evaluation, unpaid
points-mall orders lapsing, abandoned parking stays, the KPI rollup and the RFM/lifecycle recomputation.

In the server (off unless MALLPOINTS_SCHEDULER=on) every MALLPOINTS_SCHEDULER_INTERVAL_SECONDS, and from
the command line (`mallpoints earning-run`). A server runs only while it holds the `earning` lease
row (a conditional update: one holder until the lease expires), and every job is safe to repeat and
to run twice at once anyway: each releases, expires or closes a row only after locking the account
and finding it still due.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import Q

from api.config import settings
from api.db import transaction
from api.models import JobLease
from api.services import clock, draws, earning, insight, installation, ledger, loops, mall, parking, tiers
from api.services import sql as core_sql
from api.services.audit import Actor, audit
from api.services.earning import invites
from api.services.mall import flash_sales
from api.services.notifications import dispatcher, reminders
from api.services.segments import campaigns

log = logging.getLogger(__name__)
HOLDER = f"{socket.gethostname()}:{os.getpid()}"
LEASE = "earning"  # the one lease row


@dataclass(frozen=True)
class RunResult:
    pending_released: int
    pending_points_released: int
    invites_rewarded: int
    points_expired: int
    tier_periods_closed: int
    orders_expired: int = 0
    stays_abandoned: int = 0
    reminders_queued: int = 0  # reach (issue 13): expiry reminders written
    campaign_notifications: int = 0  # notifications written for due campaigns
    notifications_pushed: int = 0  # delivered by SMS / WeChat in this run's dispatch pass
    kpi_days_rolled: int = 0
    insight_members: int = 0


async def acquire_lease(ttl_seconds: int, holder: str = HOLDER) -> bool:
    now = clock.now()
    free = Q(holder__isnull=True) | Q(holder=holder) | Q(expires_at__isnull=True) | Q(expires_at__lt=now)
    async with transaction() as tx:
        await tx.execute(core_sql.LEASE_ROW, LEASE)
        taken = await JobLease.filter(free, name=LEASE).update(holder=holder,
                                                               expires_at=now + timedelta(seconds=ttl_seconds))
    return bool(taken)


async def release_lease(holder: str = HOLDER) -> None:
    async with transaction():
        await JobLease.filter(name=LEASE, holder=holder).update(holder=None, expires_at=None, last_run_at=clock.now())


async def run_once(actor: Actor, as_of: datetime | None = None) -> RunResult:
    """Every job once, as of a moment (default now; the future is refused), audited. A job that fails
    is logged and counted as 0; the others still run (each is safe to repeat at the next run)."""
    as_of = clock.check_as_of(as_of)  # 2000-01-01 .. now + 1 min, else INVALID_INPUT on asOf
    failed: list[str] = []

    async def job(name: str, run: Callable[[], Awaitable[Any]], *fields: str) -> tuple[int, ...]:
        try:
            outcome = await run()
        except Exception:  # noqa: BLE001 - one job's fault must not stop the others
            log.exception("scheduled job %s failed", name)
            failed.append(name)
            return (0,) * len(fields)
        return tuple(int(outcome if f == "" else getattr(outcome, f)) for f in fields)

    released, released_points = await job("pending_release", lambda: earning.release_pending(as_of), "released", "points")
    (rewarded,) = await job("invite_rewards", invites.reward_due, "")
    (expired,) = await job("expiry", lambda: ledger.expire_due(as_of), "points_expired")
    (closed,) = await job("tier_evaluation", lambda: tiers.evaluate_periods(as_of), "members_evaluated")
    (lapsed,) = await job("order_lapse", lambda: mall.expire_orders(as_of), "orders_expired")
    (abandoned,) = await job("parking_abandon",
                             lambda: parking.abandon_stays(actor, parking.ABANDON_AFTER_HOURS, as_of), "stays_abandoned")
    (points_reminders, voucher_reminders) = await job(
        "expiry_reminders", lambda: reminders.queue_reminders(as_of), "points_reminders", "voucher_reminders")
    (campaign_notes,) = await job("campaigns", lambda: campaigns.send_due(as_of), "notifications")
    (pushed,) = await job("notify_dispatch", lambda: dispatcher.dispatch_due(max_batches=1), "delivered")
    # Insight (issue 13), after the jobs that write the ledger: the KPI rollup of closed days, and the
    # RFM/lifecycle recomputation once per Asia/Shanghai day.
    (rolled,) = await job("kpi_rollup", lambda: insight.rollup_run(as_of), "days_rolled")
    (scored,) = await job("insight_rfm", lambda: _rfm_due(as_of), "")
    result = RunResult(released, released_points, rewarded, expired, closed, lapsed, abandoned,
                       points_reminders + voucher_reminders, campaign_notes, pushed, rolled, scored)
    async with transaction() as tx:
        await audit(tx, actor, "earning.scheduled_run", None, None,
                    {"as_of": as_of.isoformat(), **asdict(result), "failed": failed})
    return result


async def _rfm_due(as_of: datetime) -> int:
    done = await insight.recompute_if_due(as_of)
    return done.members if done is not None else 0


async def refresh_gates(redis: Any) -> int:
    """Reloads the Redis gates of the flash sales and lucky-draw games on now from the database, so a
    unit a crashed process left taken in a gate (between its gate step and its commit or undo) comes
    back (after `IN_FLIGHT_SECONDS` when the gate noted its pass: until then the pass counts as running).
    Safe while buyers press: a gate only rejects early, the database decides.
    Each gate on its own: one that cannot be reloaded (its Redis shard down) does not hold up the others."""
    now = clock.now()
    gates: list[tuple[str, int]] = [("sale", sale_id) for sale_id in await flash_sales.live_sale_ids(now)]
    for g in await draws.games_page(1000, None, include_hidden=False):
        if g.open(now):
            gates += [("prize", p.id) for p in g.prizes if p.stock is not None]
    failed = 0
    for kind, pk in gates:
        try:
            if kind == "sale":
                await flash_sales.load_gate(redis, pk, force=True)
            else:
                await draws.reload_prize_gate(redis, pk)
        except Exception:  # noqa: BLE001 - the next interval tries again; the database decides meanwhile
            failed += 1
    if failed:
        log.warning("gate reconciliation: %s of %s gates could not be reloaded", failed, len(gates))
    return len(gates) - failed


async def refresh_gates_now_and_then(redis: Any, interval_seconds: int) -> int | None:
    """One refresh of this interval, unless another server already did it: a Redis key set with NX for
    the interval elects one server per interval (it only saves work: two refreshes at once are safe).
    None when another server had it or Redis is unavailable."""
    try:
        name = await installation.key("mallpoints:gates:refreshed")
        if not await redis.set(name, HOLDER, nx=True, px=max(1, interval_seconds * 1000 - 200)):
            return None
    except Exception:  # noqa: BLE001 - Redis down: no gates to refresh, the database decides alone
        return None
    return await refresh_gates(redis)


async def gate_loop(redis: Any, interval_seconds: int, stopping: asyncio.Event) -> None:
    """Every server: the gates reconciled with the database once at start (a restored database, or a
    worker that replaced a crashed one) and then every interval, so a unit a crashed process left taken
    in a gate comes back within seconds, without an operator and without the scheduled runs. Ends when
    `stopping` is set (`api.services.loops`)."""
    first = True
    while not stopping.is_set():
        try:
            if first:
                count = await refresh_gates(redis)
                log.info("gates reconciled at start: %s", count)
            else:
                await refresh_gates_now_and_then(redis, interval_seconds)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - keep reconciling; Redis or the database may be back next time
            log.warning("gate reconciliation failed; retrying in %s s", interval_seconds, exc_info=True)
        first = False
        await loops.pause(interval_seconds, stopping)


async def loop(redis: Any, stopping: asyncio.Event) -> None:
    """The server's schedule: run when the lease is ours (and refresh the Redis gates when no gate loop
    does), then pause an interval; ends when `stopping` is set. The holder keeps the lease by renewing
    it; another server takes over two intervals after the holder stopped renewing."""
    interval = settings().scheduler_interval_seconds
    while not stopping.is_set():
        try:
            if await acquire_lease(interval * 2):
                result = await run_once(("system", HOLDER))
                log.info("scheduled run: %s", result)
                if redis is not None and settings().gate_refresh_seconds == 0:  # else gate_loop does it
                    log.info("gates refreshed: %s", await refresh_gates(redis))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - keep the schedule alive; the next run retries
            log.exception("scheduled run failed")
        await loops.pause(interval, stopping)
