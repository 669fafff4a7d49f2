"""Members: phone + SMS-code sign-in (first login registers), profile, the till code."""
from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import phonenumbers
from tortoise.expressions import F, Q

from api import locks
from api.config import settings
from api.db import Tx, transaction
from api.models import Member, PointsAccount, SmsCode, TierChange
from api.services import clock, ratelimit, signing, text, tiers
from api.services import sql as core_sql
from api.services.earning import behaviours, invites
from api.services.errors import DomainError, ErrorCode
from api.services.sms import get_sender, reserve_send

GENDERS = ("MALE", "FEMALE", "UNDISCLOSED")


@dataclass(frozen=True)
class MemberRecord:
    id: int
    phone: str
    nickname: str | None
    gender: str | None
    birthday: date | None
    tier_id: int
    growth_value: int
    created_at: datetime

    @property
    def phone_masked(self) -> str:
        return mask_phone(self.phone)

    @classmethod
    def of(cls, m: Member) -> MemberRecord:
        return cls(m.id, m.phone, m.nickname, m.gender, m.birthday, m.tier_id, m.growth_value, m.created_at)


def mask_phone(phone: str) -> str:
    """+8613812345678 -> 138****5678 (national form for China, last four kept elsewhere)."""
    national = phone[3:] if phone.startswith("+86") else phone
    if len(national) >= 11:
        return national[:3] + "****" + national[-4:]
    return "*" * max(0, len(national) - 4) + national[-4:]


def normalize_phone(raw: str) -> str:
    """E.164; numbers without a country code are read as Chinese."""
    try:
        number = phonenumbers.parse((raw or "").strip(), "CN")
    except phonenumbers.NumberParseException:
        raise DomainError(ErrorCode.INVALID_INPUT, "not a phone number", ["phone"]) from None
    if not phonenumbers.is_valid_number(number):
        raise DomainError(ErrorCode.INVALID_INPUT, "not a valid phone number", ["phone"])
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


async def get_members(ids: list[int]) -> dict[int, MemberRecord]:
    if not ids:
        return {}
    return {m.id: MemberRecord.of(m) for m in await Member.filter(id__in=ids)}


async def get_member(member_id: int) -> MemberRecord | None:
    return (await get_members([member_id])).get(member_id)


async def search_members(search: str | None, limit: int, after_id: int | None) -> list[MemberRecord]:
    """Operators' search by phone (any part of the digits) or nickname; ordered by id."""
    query = Member.filter(id__gt=after_id or 0)
    if search:
        term = text.strip_controls(search).strip()
        digits = "".join(ch for ch in term if ch.isdigit())
        match = Q(nickname__contains=term)
        if digits:
            match |= Q(phone__contains=digits)
        query = query.filter(match)
    return [MemberRecord.of(m) for m in await query.order_by("id").limit(limit)]


# --- SMS sign-in -----------------------------------------------------------------------------

def _code_hash(phone: str, code: str) -> str:
    return signing.hash_secret("sms-code", f"{phone}:{code}")


SMS_PER_CLIENT_PER_HOUR = 20


async def request_sms_code(raw_phone: str, *, client: str | None = None, redis: Any = None) -> datetime:
    """Sends a sign-in code; one send per phone per `sms_resend_seconds`, and at most
    SMS_PER_CLIENT_PER_HOUR per client address (against SMS pumping). Returns the code's expiry."""
    cfg = settings()
    phone = normalize_phone(raw_phone)
    if client and not await ratelimit.allow(redis, f"sms:{client}", SMS_PER_CLIENT_PER_HOUR, 3600):
        raise DomainError(ErrorCode.RATE_LIMITED, "too many codes requested from this address; try later", ["phone"])
    now = clock.now()
    code = cfg.test_sms_code if (cfg.test_sms_code and not cfg.is_production) else f"{secrets.randbelow(10**6):06d}"
    expires_at = now + timedelta(seconds=cfg.sms_code_ttl_seconds)
    async with transaction() as tx:
        wait = await reserve_send(tx, phone, now, cfg.sms_resend_seconds)
        if wait:
            raise DomainError(ErrorCode.RATE_LIMITED, f"a code was sent recently; try again in {wait} s", ["phone"])
        await SmsCode.create(phone=phone, code_hash=_code_hash(phone, code), attempts=0, created_at=now,
                             expires_at=expires_at)
        await get_sender().send(tx, phone, f"【商场会员】验证码 {code}，5分钟内有效。Your code is {code}.")
    return expires_at


@dataclass(frozen=True)
class LoginResult:
    member: MemberRecord
    token: str
    registered: bool


async def login_with_sms(raw_phone: str, code: str, invite_code: str | None = None) -> LoginResult:
    cfg = settings()
    phone = normalize_phone(raw_phone)
    now = clock.now()
    async with transaction() as tx:
        row = await _latest_code(phone)
        matches = False
        if row is not None and row.consumed_at is None and row.attempts < cfg.sms_code_max_attempts \
                and row.expires_at > now:
            matches = hmac.compare_digest(row.code_hash, _code_hash(phone, (code or "").strip()))
            if not matches:
                await SmsCode.filter(id=row.id).update(attempts=F("attempts") + 1)
        if matches:
            assert row is not None  # a code matches only a stored row
            # An invite code is checked only with a valid SMS code; a refusal rolls the login back.
            if text.has_control(invite_code):  # no code has one; PostgreSQL refuses NUL in a query
                raise DomainError(ErrorCode.INVITE_CODE_INVALID, "unknown invite code", ["inviteCode"])
            inviter_id = await invites.resolve(invite_code, phone, tx)
            await SmsCode.filter(id=row.id).update(consumed_at=now)
            member_id, registered = await _find_or_register(tx, phone, now)
            if registered and inviter_id is not None:
                await invites.attach(tx, member_id, inviter_id)
    if not matches:
        # The failed attempt above is committed on purpose: five wrong codes burn the code.
        raise DomainError(ErrorCode.SMS_CODE_INVALID, "wrong or expired code; request a new one after 5 tries", ["code"])
    member = await get_member(member_id)
    assert member is not None
    token = signing.issue_token("member", member_id, cfg.member_token_ttl_seconds)
    return LoginResult(member, token, registered)


async def _latest_code(phone: str) -> SmsCode | None:
    """The phone's latest code, locked (two logins with the same code: one consumes it)."""
    latest = await SmsCode.filter(phone=phone).order_by("-id").only("id").first()
    return None if latest is None else await locks.row(locks.Rank.SMS_CODE, SmsCode, latest.id)


async def _find_or_register(tx: Tx, phone: str, now: datetime) -> tuple[int, bool]:
    existing = await Member.filter(phone=phone).only("id").first()
    if existing is not None:
        return existing.id, False
    base = (await tiers.all_tiers())[0]
    member_id = await tx.fetchval(core_sql.REGISTER_MEMBER, phone, base.id, now)
    if member_id is None:  # registered by a concurrent login a moment ago
        winner = await Member.get(phone=phone).only("id")
        return winner.id, False
    await PointsAccount.create(member_id=member_id, balance=0, updated_at=now)
    await TierChange.create(member_id=member_id, from_tier_id=None, to_tier_id=base.id, direction="JOIN",
                            growth_value=0, reason="registered", occurred_at=now)
    await behaviours.on_registered(tx, member_id, now)
    return member_id, True


async def register_member(tx: Tx, phone: str, now: datetime) -> int:
    """For seeds and operators' imports: the same registration as a first login."""
    member_id, _ = await _find_or_register(tx, normalize_phone(phone), now)
    return member_id


# --- profile ---------------------------------------------------------------------------------

async def update_profile(
    member_id: int, *, nickname: str | None = None, gender: str | None = None, birthday: date | None = None,
) -> MemberRecord:
    changes: dict[str, object] = {}
    if nickname is not None:
        # Refused, not cleaned (api/services/text.py): NUL, other controls and bidi overrides.
        changes["nickname"] = text.name(nickname, "nickname", 32)
    if gender is not None:
        if gender not in GENDERS:
            raise DomainError(ErrorCode.INVALID_INPUT, f"gender must be one of {', '.join(GENDERS)}", ["gender"])
        changes["gender"] = gender
    if birthday is not None:
        today = clock.now().astimezone(clock.SHANGHAI).date()
        if birthday > today or birthday.year < 1900:
            raise DomainError(ErrorCode.INVALID_INPUT, "birthday must be a past date", ["birthday"])
        changes["birthday"] = birthday
    if changes:
        async with transaction():
            await Member.filter(id=member_id).update(**changes, updated_at=clock.now())
    member = await get_member(member_id)
    if member is None:
        raise DomainError(ErrorCode.NOT_FOUND, "member not found")
    await behaviours.on_profile_updated(member_id, bool(member.nickname and member.gender and member.birthday))
    return member


def member_code(member_id: int) -> tuple[str, datetime]:
    code, exp = signing.issue_member_code(member_id, settings().member_code_ttl_seconds)
    return code, datetime.fromtimestamp(exp, tz=timezone.utc)
