"""Members: phone + SMS-code sign-in (first login registers), profile, the till code."""
from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import phonenumbers

from api.config import settings
from api.db import Tx, fetch, transaction
from api.services import clock, ratelimit, signing, tiers
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


MEMBER_COLUMNS = "id, phone, nickname, gender, birthday, tier_id, growth_value, created_at"


def _record(row) -> MemberRecord:
    birthday = row["birthday"]
    if isinstance(birthday, str):
        birthday = date.fromisoformat(birthday)
    return MemberRecord(
        row["id"], row["phone"], row["nickname"], row["gender"], birthday, row["tier_id"],
        int(row["growth_value"]), clock.parse_db_time(row["created_at"]),
    )


async def get_members(ids: list[int]) -> dict[int, MemberRecord]:
    if not ids:
        return {}
    id_list = ", ".join(str(int(i)) for i in ids)
    rows = await fetch(f"SELECT {MEMBER_COLUMNS} FROM member WHERE id IN ({id_list})")
    return {r["id"]: _record(r) for r in rows}


async def get_member(member_id: int) -> MemberRecord | None:
    return (await get_members([member_id])).get(member_id)


async def search_members(search: str | None, limit: int, after_id: int | None) -> list[MemberRecord]:
    """Operators' search by phone (any part of the digits) or nickname; ordered by id."""
    args: list = [after_id or 0, limit]
    where = "id > $1"
    if search:
        term = search.strip()
        digits = "".join(ch for ch in term if ch.isdigit())
        clauses = ["nickname LIKE $3"]
        args.append(f"%{term}%")
        if digits:
            clauses.append("phone LIKE $4")
            args.append(f"%{digits}%")
        where += " AND (" + " OR ".join(clauses) + ")"
    rows = await fetch(f"SELECT {MEMBER_COLUMNS} FROM member WHERE {where} ORDER BY id LIMIT $2", *args)
    return [_record(r) for r in rows]


# --- SMS sign-in -----------------------------------------------------------------------------

def _code_hash(phone: str, code: str) -> str:
    return signing.hash_secret("sms-code", f"{phone}:{code}")


SMS_PER_CLIENT_PER_HOUR = 20


async def request_sms_code(raw_phone: str, *, client: str | None = None, redis=None) -> datetime:
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
        await tx.execute(
            "INSERT INTO sms_code (phone, code_hash, attempts, created_at, expires_at) VALUES ($1, $2, 0, $3, $4)",
            phone, _code_hash(phone, code), now, expires_at,
        )
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
    from api.services import invites  # earning (issue 3)
    async with transaction() as tx:
        row = await tx.fetchrow(
            "SELECT id, code_hash, attempts, expires_at, consumed_at FROM sms_code WHERE phone = $1"
            " ORDER BY id DESC LIMIT 1" + (" FOR UPDATE" if tx.postgres else ""),
            phone,
        )
        usable = (
            row is not None and row["consumed_at"] is None and row["attempts"] < cfg.sms_code_max_attempts
            and clock.parse_db_time(row["expires_at"]) > now
        )
        matches = usable and hmac.compare_digest(row["code_hash"], _code_hash(phone, (code or "").strip()))
        if usable and not matches:
            await tx.execute("UPDATE sms_code SET attempts = attempts + 1 WHERE id = $1", row["id"])
        if matches:
            # An invite code is checked only with a valid SMS code; a refusal rolls the login back.
            inviter_id = await invites.resolve(invite_code, phone, tx)
            await tx.execute("UPDATE sms_code SET consumed_at = $1 WHERE id = $2", now, row["id"])
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


async def _find_or_register(tx: Tx, phone: str, now: datetime) -> tuple[int, bool]:
    existing = await tx.fetchval("SELECT id FROM member WHERE phone = $1", phone)
    if existing is not None:
        return existing, False
    base = (await tiers.all_tiers())[0]
    member_id = await tx.fetchval(
        "INSERT INTO member (phone, tier_id, growth_value, tier_period_start, created_at, updated_at)"
        " VALUES ($1, $2, 0, $3, $3, $3) ON CONFLICT (phone) DO NOTHING RETURNING id",
        phone, base.id, now,
    )
    if member_id is None:  # registered by a concurrent login a moment ago
        return await tx.fetchval("SELECT id FROM member WHERE phone = $1", phone), False
    await tx.execute(
        "INSERT INTO points_account (member_id, balance, updated_at) VALUES ($1, 0, $2)", member_id, now
    )
    await tx.execute(
        "INSERT INTO tier_change (member_id, from_tier_id, to_tier_id, direction, growth_value, reason, occurred_at)"
        " VALUES ($1, NULL, $2, 'JOIN', 0, 'registered', $3)",
        member_id, base.id, now,
    )
    from api.services import behaviours  # earning (issue 3): REGISTER rules

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
    sets, args = [], []
    if nickname is not None:
        nickname = nickname.strip()
        if not 1 <= len(nickname) <= 32:
            raise DomainError(ErrorCode.INVALID_INPUT, "nickname must be 1 to 32 characters", ["nickname"])
        sets.append("nickname"), args.append(nickname)
    if gender is not None:
        if gender not in GENDERS:
            raise DomainError(ErrorCode.INVALID_INPUT, f"gender must be one of {', '.join(GENDERS)}", ["gender"])
        sets.append("gender"), args.append(gender)
    if birthday is not None:
        today = clock.now().astimezone(clock.SHANGHAI).date()
        if birthday > today or birthday.year < 1900:
            raise DomainError(ErrorCode.INVALID_INPUT, "birthday must be a past date", ["birthday"])
        sets.append("birthday"), args.append(birthday)
    if sets:
        assignments = ", ".join(f"{col} = ${i + 1}" for i, col in enumerate(sets))
        n = len(sets)
        async with transaction() as tx:
            await tx.execute(
                f"UPDATE member SET {assignments}, updated_at = ${n + 1} WHERE id = ${n + 2}",
                *args, clock.now(), member_id,
            )
    member = await get_member(member_id)
    if member is None:
        raise DomainError(ErrorCode.NOT_FOUND, "member not found")
    from api.services import behaviours  # earning (issue 3): a completed profile earns once

    await behaviours.on_profile_updated(member_id, bool(member.nickname and member.gender and member.birthday))
    return member


def member_code(member_id: int) -> tuple[str, datetime]:
    code, exp = signing.issue_member_code(member_id, settings().member_code_ttl_seconds)
    return code, datetime.fromtimestamp(exp, tz=timezone.utc)
