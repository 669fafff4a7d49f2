"""The dispatcher: after commit, pushes the PENDING notifications whose channel is SMS or WECHAT.

Claims a batch (api/services/notifications/sql.py CLAIM_*), leaves them alone in quiet hours, skips the
ones the member opted out of (topic and channel) or cannot be reached on (no phone, no openid), sends the
rest through the channel's adapter at most MALLPOINTS_NOTIFY_RATE_<CHANNEL> a second, and records each
outcome: DELIVERED, PENDING again with backoff (1, 2, 4 … minutes) after a passing fault, FAILED after a
refusal or the last attempt. Idempotent per notification: a row is claimed by one dispatcher at a time
and never sent again once DELIVERED (a crash between the vendor's answer and the write sends it once more
after the lease: at least once, the vendor's OutId/SessionContext carry the notification id).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from api.db import transaction
from api.models import Member, MemberWechat, Notification, NotificationPreference
from api.services import clock, loops
from api.services.notifications import sql
from api.services.notifications.channels.base import Channel, Message, Outcome
from api.services.notifications.settings import NotifySettings, notify_settings

log = logging.getLogger("mallpoints.notify")
SHANGHAI = ZoneInfo("Asia/Shanghai")
LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class DispatchResult:
    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0
    quiet: bool = False


def in_quiet_hours(at: datetime, hours: tuple[int, int] | None) -> bool:
    if hours is None:
        return False
    start, end = hours
    hour = at.astimezone(SHANGHAI).hour
    return start <= hour < end if start < end else hour >= start or hour < end


def backoff(attempts: int) -> timedelta:
    return timedelta(minutes=min(2 ** max(0, attempts - 1), 24 * 60))


class _Throttle:
    """At most `rate` sends a second for one channel."""

    def __init__(self, rate: int) -> None:
        self.gap = 1.0 / rate
        self.next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        if self.next > now:
            await asyncio.sleep(self.next - now)
        self.next = max(now, self.next) + self.gap


def configured_channels(cfg: NotifySettings | None = None) -> dict[str, Channel]:
    """The adapters the settings name (their secrets stay inside them)."""
    from api.services.notifications.channels import aliyun, console, tencent, wechat

    cfg = cfg or notify_settings()
    channels: dict[str, Channel] = {}
    if cfg.sms_provider == "aliyun":
        channels["SMS"] = aliyun.AliyunSms(cfg.get("MALLPOINTS_ALIYUN_ACCESS_KEY_ID"),
                                           cfg.get("MALLPOINTS_ALIYUN_ACCESS_KEY_SECRET"),
                                           cfg.get("MALLPOINTS_ALIYUN_SIGN_NAME"),
                                           cfg.get("MALLPOINTS_ALIYUN_TEMPLATE_CODE"))
    elif cfg.sms_provider == "tencent":
        channels["SMS"] = tencent.TencentSms(cfg.get("MALLPOINTS_TENCENT_SECRET_ID"),
                                             cfg.get("MALLPOINTS_TENCENT_SECRET_KEY"),
                                             cfg.get("MALLPOINTS_TENCENT_SDK_APP_ID"),
                                             cfg.get("MALLPOINTS_TENCENT_SIGN_NAME"),
                                             cfg.get("MALLPOINTS_TENCENT_TEMPLATE_ID"),
                                             region=cfg.get("MALLPOINTS_TENCENT_REGION", "ap-guangzhou"))
    else:
        channels["SMS"] = console.ConsoleSms()
    if cfg.get("MALLPOINTS_WECHAT_APP_ID"):
        channels["WECHAT"] = wechat.WechatSubscribe(cfg.get("MALLPOINTS_WECHAT_APP_ID"),
                                                    cfg.get("MALLPOINTS_WECHAT_APP_SECRET"),
                                                    cfg.get("MALLPOINTS_WECHAT_TEMPLATE_ID"),
                                                    cfg.get("MALLPOINTS_WECHAT_PAGE", "pages/notifications/index"))
    return channels


_channels: dict[str, Channel] = {}


def channels() -> dict[str, Channel]:
    if not _channels:
        _channels.update(configured_channels())
    return _channels


def use_channels(replacement: dict[str, Channel] | None) -> None:
    """Tests and embedders: the adapters to send through (None: from the settings again)."""
    _channels.clear()
    if replacement is not None:
        _channels.update(replacement)


async def _claim(now: datetime, batch: int) -> list[dict]:
    async with transaction() as tx:
        return await tx.fetch(sql.CLAIM_PG if tx.postgres else sql.CLAIM_SQLITE, now, now + LEASE, batch)


async def _reachability(rows: list[dict]) -> tuple[set[tuple[int, str, str]], dict[int, str], dict[int, str]]:
    members = list({int(r["member_id"]) for r in rows})
    off = {(p["member_id"], p["topic"], p["channel"])
           for p in await NotificationPreference.filter(member_id__in=members, enabled=False)
           .values("member_id", "topic", "channel")}
    phones = dict(await Member.filter(id__in=members).values_list("id", "phone"))
    openids = dict(await MemberWechat.filter(member_id__in=members).values_list("member_id", "openid"))
    return off, phones, openids


async def dispatch_due(now: datetime | None = None, batch: int = 500, max_batches: int = 20) -> DispatchResult:
    """Pushes what is due, batch by batch, until nothing is due or max_batches were sent."""
    cfg = notify_settings()
    now = now or clock.now()
    if in_quiet_hours(now, cfg.quiet_hours):
        return DispatchResult(quiet=True)
    totals: dict[str, Any] = {"claimed": 0, "delivered": 0, "retrying": 0, "failed": 0, "skipped": 0}
    throttles = {name: _Throttle(cfg.rates.get(name, 20)) for name in ("SMS", "WECHAT")}
    for _ in range(max_batches):
        rows = await _claim(now, batch)
        if not rows:
            break
        totals["claimed"] += len(rows)
        for key, value in (await _send_batch(rows, cfg, throttles)).items():
            totals[key] += value
    if totals["claimed"]:
        log.info("notifications dispatched: %s", totals)
    return DispatchResult(**totals)


async def _send_batch(rows: list[dict], cfg: NotifySettings, throttles: dict[str, _Throttle]) -> dict[str, int]:
    off, phones, openids = await _reachability(rows)
    adapters = channels()
    outcomes: dict[int, tuple[str, Outcome]] = {}
    for row in rows:
        nid, member_id, channel = int(row["id"]), int(row["member_id"]), row["channel"]
        if (member_id, row["topic"], channel) in off:
            outcomes[nid] = ("SKIPPED", Outcome(False, code="OPTED_OUT"))
            continue
        adapter = adapters.get(channel)
        if adapter is None:
            outcomes[nid] = ("SKIPPED", Outcome(False, code="CHANNEL_NOT_CONFIGURED"))
            continue
        message = Message(nid, row["topic"], row["title"], row["body"], phone=phones.get(member_id),
                          openid=openids.get(member_id))
        if (channel == "SMS" and not message.phone) or (channel == "WECHAT" and not message.openid):
            outcomes[nid] = ("SKIPPED", Outcome(False, code="UNREACHABLE"))
            continue
        await throttles[channel].wait()
        try:
            outcome = await adapter.send(message)
        except Exception as exc:  # noqa: BLE001 - an adapter's fault is this notification's, not the batch's
            outcome = Outcome(False, retry=True, code=f"ERROR:{type(exc).__name__}")
        if outcome.ok:
            outcomes[nid] = ("DELIVERED", outcome)
        elif outcome.retry and int(row["attempts"]) < cfg.max_attempts:
            outcomes[nid] = ("PENDING", outcome)
        else:
            outcomes[nid] = ("FAILED", outcome)
            log.warning("notification %s failed on %s: %s", nid, channel, outcome.code)
    await _record(rows, outcomes)
    counts = {"delivered": 0, "retrying": 0, "failed": 0, "skipped": 0}
    names = {"DELIVERED": "delivered", "PENDING": "retrying", "FAILED": "failed", "SKIPPED": "skipped"}
    for status, _ in outcomes.values():
        counts[names[status]] += 1
    return counts


async def _record(rows: list[dict], outcomes: dict[int, tuple[str, Outcome]]) -> None:
    """One UPDATE per outcome kind (status, code, retry time) of the batch; only rows still PENDING (a
    claimed row is ours until the lease ends, and DELIVERED is final)."""
    now = clock.now()
    attempts = {int(r["id"]): int(r["attempts"]) for r in rows}
    groups: dict[tuple, list[int]] = {}
    for nid, (status, outcome) in outcomes.items():
        retry_at = now + backoff(attempts[nid]) if status == "PENDING" else None
        groups.setdefault((status, outcome.code[:120] or None, retry_at), []).append(nid)
    async with transaction():
        for (status, code, retry_at), ids in groups.items():
            changes: dict = {"status": status, "error": code}
            if status == "DELIVERED":
                changes["sent_at"] = now
            if retry_at is not None:
                changes["next_attempt_at"] = retry_at
            await Notification.filter(id__in=ids, status="PENDING").update(**changes)


async def loop(stopping: asyncio.Event, interval_seconds: float = 15.0) -> None:
    """The server's push loop (started with the scheduler): every interval, whatever is due, until
    `stopping` is set. Several servers may run it at once: a claim skips rows another dispatcher holds."""
    while not stopping.is_set():
        try:
            await dispatch_due()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - keep pushing; the next pass retries
            log.exception("notification dispatch failed")
        await loops.pause(interval_seconds, stopping)
