"""Behaviours that earn: daily check-in, share, review, event attendance, profile completion and
registration. Each is recorded in `member_behaviour`, whose unique (member, kind, ref) makes the
once-only ones once-only in the database (a check-in once per Asia/Shanghai day, a review once per
purchase, an event once); caps (shares per day) are rule caps, counted under the account lock."""
from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from api.db import Tx, retry_on_deadlock, transaction
from api.models import MallEvent, MemberBehaviour, Purchase
from api.services import clock, idempotency, ledger, merchants, ratelimit, signing
from api.services.audit import audit
from api.services.earning import sql
from api.services.earning.cache import forget_birthday
from api.services.earning.counters import local_day
from api.services.earning.engine import apply, facts_for
from api.services.errors import DomainError, ErrorCode
from api.services.integrations import IntegrationIdentity, require_merchant


def member_scope(member_id: int) -> str:
    return f"member:{member_id}"


@dataclass(frozen=True)
class Earned:
    points: int
    growth: int
    points_balance: int
    entry_id: int | None
    streak: int = 0
    day: str = ""


async def _record(tx: Tx, acct: ledger.LockedAccount, kind: str, ref: str, now: datetime, streak: int = 0) -> int | None:
    return await tx.fetchval(sql.BEHAVIOUR_RECORD, acct.member_id, kind, ref, local_day(now).isoformat(), streak, now)


async def _earn(tx: Tx, acct: ledger.LockedAccount, behaviour_id: int, trigger: str, reason: str, now: datetime,
                **facts: Any) -> Earned:
    await ledger.expire_account(tx, acct, now)
    applied = await apply(
        tx, acct, await facts_for(acct, trigger, now, **facts), reason=reason, source_type="behaviour",
        source_ref=str(behaviour_id), occurred_at=now, now=now)
    await MemberBehaviour.filter(id=behaviour_id).update(points=applied.points, entry_id=applied.entry_id)
    return Earned(applied.points, applied.growth, acct.spendable, applied.entry_id)


async def _locked(tx: Tx, member_id: int, now: datetime) -> ledger.LockedAccount:
    acct = await ledger.lock_account(tx, member_id, now)
    if acct is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such member", ["memberId"])
    return acct


# --- daily check-in ----------------------------------------------------------------------------

@retry_on_deadlock()
async def check_in(member_id: int, idempotency_key: str) -> Earned:
    """Once per Asia/Shanghai day: the unique (member, CHECK_IN, day) row decides, so two devices in
    the same second get one check-in and one ALREADY_CHECKED_IN. The streak continues from
    yesterday's check-in, else starts at 1; CHECK_IN rules with `streakDays` give the bonuses."""
    key = idempotency.check_key(idempotency_key, ["idempotencyKey"])
    now = clock.now()
    today = local_day(now)
    digest = idempotency.request_hash("memberCheckIn", {"memberId": member_id})
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, member_scope(member_id), key, digest, ["idempotencyKey"])
        if stored is not None:
            return Earned(**stored)
        acct = await _locked(tx, member_id, now)
        yesterday = await MemberBehaviour.filter(member_id=member_id, kind="CHECK_IN",
                                                 ref=(today - timedelta(days=1)).isoformat()).only("id", "streak").first()
        streak = (yesterday.streak if yesterday is not None else 0) + 1
        behaviour_id = await _record(tx, acct, "CHECK_IN", today.isoformat(), now, streak)
        if behaviour_id is None:
            raise DomainError(ErrorCode.ALREADY_CHECKED_IN, "already checked in today", [])
        earned = await _earn(tx, acct, behaviour_id, "CHECK_IN", f"每日签到（连续第{streak}天）", now, streak=streak)
        result = Earned(earned.points, earned.growth, earned.points_balance, earned.entry_id, streak, today.isoformat())
        await idempotency.remember(tx, record_id, asdict(result))
    return result


@dataclass(frozen=True)
class CheckInDay:
    day: date
    streak: int
    points: int


async def calendar(member_id: int, month: str) -> list[CheckInDay]:
    try:
        first = date.fromisoformat(f"{month}-01")
    except ValueError:
        raise DomainError(ErrorCode.INVALID_INPUT, "month must be YYYY-MM", ["month"]) from None
    nxt = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    rows = await MemberBehaviour.filter(member_id=member_id, kind="CHECK_IN", ref__gte=first.isoformat(),
                                        ref__lt=nxt.isoformat()).order_by("ref").values_list("ref", "streak", "points")
    return [CheckInDay(date.fromisoformat(ref), int(streak), int(points)) for ref, streak, points in rows]


async def current_streak(member_id: int) -> int:
    """Today's streak if checked in today, else yesterday's (still alive until today ends), else 0."""
    today = local_day(clock.now())
    days = await MemberBehaviour.filter(
        member_id=member_id, kind="CHECK_IN", ref__in=[today.isoformat(), (today - timedelta(days=1)).isoformat()],
    ).only("id", "ref", "streak")
    by_day = {d.ref: d.streak for d in days}
    return by_day.get(today.isoformat(), by_day.get((today - timedelta(days=1)).isoformat(), 0))


# --- share (member-reported, capped by the SHARE rules) ----------------------------------------

SHARES_PER_HOUR = 200  # recorded shares per member (rewards are capped by the SHARE rules)


@retry_on_deadlock()
async def share(member_id: int, channel: str, target: str | None, idempotency_key: str, redis: Any = None) -> Earned:
    key = idempotency.check_key(idempotency_key, ["idempotencyKey"])
    if not await ratelimit.allow(redis, f"share:{member_id}", SHARES_PER_HOUR, 3600):
        raise DomainError(ErrorCode.RATE_LIMITED, "too many shares; try again later", [])
    channel = (channel or "").strip()
    if not 1 <= len(channel) <= 32:
        raise DomainError(ErrorCode.INVALID_INPUT, "channel must be 1 to 32 characters", ["channel"])
    target = (target or "").strip()[:64] or None
    now = clock.now()
    digest = idempotency.request_hash("shareRecord", {"memberId": member_id, "channel": channel, "target": target})
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, member_scope(member_id), key, digest, ["idempotencyKey"])
        if stored is not None:
            return Earned(**stored)
        acct = await _locked(tx, member_id, now)
        behaviour_id = await _record(tx, acct, "SHARE", uuid.uuid4().hex, now)
        assert behaviour_id is not None, "a share's ref is new"
        result = await _earn(tx, acct, behaviour_id, "SHARE", f"分享（{channel}）", now)
        await idempotency.remember(tx, record_id, asdict(result))
    return result


# --- review (a signed integration reports it; once per purchase) --------------------------------

@retry_on_deadlock()
async def review(identity: IntegrationIdentity, merchant_code: str, receipt_no: str, rating: int,
                 idempotency_key: str) -> Earned:
    key = idempotency.check_key(idempotency_key, ["idempotencyKey"])
    if not 1 <= rating <= 5:
        raise DomainError(ErrorCode.INVALID_INPUT, "rating must be 1 to 5", ["rating"])
    merchant = await merchants.by_code(merchant_code, ["merchantCode"])
    require_merchant(identity, merchant.id, ["merchantCode"])
    receipt_no = (receipt_no or "").strip()
    digest = idempotency.request_hash("reviewRecord", {"merchantCode": merchant.code, "receiptNo": receipt_no,
                                                       "rating": rating})
    now = clock.now()
    purchase = await Purchase.filter(merchant_id=merchant.id, receipt_no=receipt_no).first().values_list("id", "member_id")
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, f"integration:{identity.key_id}", key, digest,
                                                    ["idempotencyKey"])
        if stored is not None:
            return Earned(**stored)
        if purchase is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such purchase at this merchant", ["receiptNo"])
        acct = await _locked(tx, purchase[1], now)
        behaviour_id = await _record(tx, acct, "REVIEW", str(purchase[0]), now)
        if behaviour_id is None:
            raise DomainError(ErrorCode.ALREADY_RECORDED, "this purchase has been reviewed already", ["receiptNo"])
        result = await _earn(tx, acct, behaviour_id, "REVIEW", f"{merchant.name} 评价", now)
        await idempotency.remember(tx, record_id, asdict(result))
    return result


# --- event attendance (an operator or a signed integration of the event's merchant) -------------

async def _open_event(event_id: int, member_id: int | None, member_code: str | None,
                      identity: IntegrationIdentity | None, now: datetime) -> tuple[MallEvent, int]:
    """The event, open for check-in now, and the member to check in (an integration names them by
    their member code, and may act only for the event's merchant)."""
    event = await MallEvent.get_or_none(id=event_id)
    if event is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such event", ["eventId"])
    if identity is not None:
        if event.merchant_id is None:
            raise DomainError(ErrorCode.MERCHANT_NOT_ALLOWED, "only operators check members in to mall events",
                              ["eventId"])
        require_merchant(identity, event.merchant_id, ["eventId"])
        member_id = signing.read_member_code(member_code or "")
    if member_id is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such member", ["memberId"])
    if event.status != "ACTIVE" or not event.starts_at - timedelta(hours=2) <= now < event.ends_at:
        raise DomainError(ErrorCode.NOT_ACTIVE, "the event is not open for check-in now", ["eventId"])
    return event, member_id


@retry_on_deadlock()
async def event_check_in(event_id: int, member_id: int | None, member_code: str | None, idempotency_key: str, *,
                         identity: IntegrationIdentity | None = None, operator_id: int | None = None) -> Earned:
    key = idempotency.check_key(idempotency_key, ["idempotencyKey"])
    now = clock.now()
    event, member_id = await _open_event(event_id, member_id, member_code, identity, now)
    scope = f"integration:{identity.key_id}" if identity is not None else f"operator:{operator_id}"
    digest = idempotency.request_hash("eventCheckIn", {"eventId": event_id, "memberId": member_id})
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, scope, key, digest, ["idempotencyKey"])
        if stored is not None:
            return Earned(**stored)
        acct = await _locked(tx, member_id, now)
        behaviour_id = await _record(tx, acct, "EVENT", str(event_id), now)
        if behaviour_id is None:
            raise DomainError(ErrorCode.ALREADY_RECORDED, "this member is checked in to this event already",
                              ["eventId"])
        result = await _earn(tx, acct, behaviour_id, "EVENT_ATTENDED", f"参加活动：{event.name}", now,
                             event_code=event.code)
        if operator_id is not None:
            await audit(tx, ("operator", str(operator_id)), "event.check_in", "member", str(member_id),
                        {"event_id": event_id, "points": result.points, "entry_id": result.entry_id})
        await idempotency.remember(tx, record_id, asdict(result))
    return result


# --- once per member: registration and a completed profile --------------------------------------

async def on_registered(tx: Tx, member_id: int, now: datetime) -> None:
    """In the registration's transaction: REGISTER rules."""
    acct = await _locked(tx, member_id, now)
    behaviour_id = await _record(tx, acct, "REGISTER", "register", now)
    if behaviour_id is not None:
        await _earn(tx, acct, behaviour_id, "REGISTER", "注册奖励", now)


@retry_on_deadlock()
async def on_profile_updated(member_id: int, complete: bool) -> Earned | None:
    """PROFILE_COMPLETED rules, once per member: the unique behaviour row makes a repeat book nothing."""
    forget_birthday(member_id)
    if not complete:
        return None
    now = clock.now()
    async with transaction() as tx:
        acct = await _locked(tx, member_id, now)
        behaviour_id = await _record(tx, acct, "PROFILE", "profile", now)
        if behaviour_id is None:
            return None
        return await _earn(tx, acct, behaviour_id, "PROFILE_COMPLETED", "完善资料奖励", now)
