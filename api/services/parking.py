"""Parking: members' vehicles, car parks and their fee rules, stays reported by the car park's system
(entry, quote, exit), parking-fee offsets by points and parking coupons, abandoned stays, and the
operators' figures. The fee and discount arithmetic is in `parking_fees` (pure); docs/parking.md.

Lock order everywhere: idempotency key → member (account) → stay → points hold / voucher. A stay's
points are held (`ledger.hold`, source_type "parking_session") from `parkingOffsetApply` until the
exit: spent when the car park reports a paid exit, released when the car leaves unpaid, the stay is
abandoned or the member changes the amount (then a new hold replaces the old one).
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError

from api.db import Tx, fetch, transaction
from api.services import clock, idempotency, ledger, tiers
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode
from api.services.mall import vouchers
from api.services.parking_fees import Bill, Coupon, FeeRules, bill, minutes_between

CONSENT_VERSION = "plate-v1"  # the text members agree to when binding a plate (processing plate records)
MAX_VEHICLES = 3
MAX_COUPONS = 5
HOLD_HOURS = 24  # a points hold outlives its apply by this much; the exit re-holds if it lapsed
FUTURE_SLACK = timedelta(minutes=5)  # a car park's clock may run this far ahead of ours
MAX_EVENT_ID = 64
HOLD_SOURCE = "parking_session"

# --- plates ---------------------------------------------------------------------------------------

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_L = "A-HJ-NP-Z"  # letters on plates: no I, no O
PLATE_PATTERNS = (
    re.compile(f"^[{PROVINCES}][{_L}][{_L}0-9]{{4}}[{_L}0-9学警港澳]$"),  # ordinary: 粤B12345, 粤BA123学
    re.compile(f"^[{PROVINCES}][{_L}][DFA-HJK][{_L}0-9][0-9]{{4}}$"),  # small new-energy: 粤BD12345, 粤BDA1234
    re.compile(f"^[{PROVINCES}][{_L}][0-9]{{5}}[DF]$"),  # large new-energy: 粤B12345D
)


def normalize_plate(text: str | None, field: list[str] | None = None) -> str:
    """A Chinese plate (ordinary, or new-energy of 8 characters), upper-case, without spaces and the
    dot or dash some systems put after the city letter; anything else is PLATE_INVALID."""
    plate = re.sub(r"[\s·•.\-]", "", (text or "")).upper()
    if not any(p.match(plate) for p in PLATE_PATTERNS):
        raise DomainError(ErrorCode.PLATE_INVALID, "not a Chinese licence plate (e.g. 粤B12345, 粤BD12345)",
                          field or ["input", "plate"])
    return plate


# --- vehicles -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VehicleInfo:
    id: int
    member_id: int
    plate: str
    active: bool
    consent_version: str
    consented_at: datetime
    bound_at: datetime
    unbound_at: datetime | None


VEHICLE_COLUMNS = "id, member_id, plate, active, consent_version, consented_at, bound_at, unbound_at"


def _vehicle(row: Any) -> VehicleInfo:
    t = clock.parse_db_time
    return VehicleInfo(int(row["id"]), int(row["member_id"]), row["plate"], bool(row["active"]),
                       row["consent_version"], t(row["consented_at"]), t(row["bound_at"]), t(row["unbound_at"]))


def _is_unique_violation(exc: Exception) -> bool:
    text = str(exc).lower()
    return "unique" in text or "duplicate" in text


async def _lock_member_row(tx: Tx, member_id: int) -> None:
    found = await tx.fetchval("SELECT id FROM member WHERE id = $1" + (" FOR UPDATE" if tx.postgres else ""),
                              member_id)
    if found is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such member", None)


async def bind_vehicle(member_id: int, plate: str, consent: bool) -> VehicleInfo:
    """vehicleBind: at most MAX_VEHICLES active per member (counted under a lock of the member's row),
    a plate active for one member at a time (the partial unique index `vehicle_plate_active` has the
    final word); binding one's own plate again returns it. Open stays of the plate that have no member
    yet become the member's (the car is inside the car park while the member binds)."""
    plate = normalize_plate(plate)
    if consent is not True:
        raise DomainError(ErrorCode.CONSENT_REQUIRED, "binding a plate needs consent to process plate records",
                          ["input", "consent"])
    now = clock.now()
    try:
        async with transaction() as tx:
            await _lock_plate(tx, plate)  # the plate first, then the member (the order of an entry's FK check)
            await _lock_member_row(tx, member_id)
            rows = await tx.fetch(f"SELECT {VEHICLE_COLUMNS} FROM vehicle WHERE plate = $1 AND active", plate)
            if rows:
                found = _vehicle(rows[0])
                if found.member_id == member_id:
                    return found
                raise DomainError(ErrorCode.PLATE_BOUND_ELSEWHERE, "this plate is bound to another member",
                                  ["input", "plate"])
            count = await tx.fetchval("SELECT COUNT(*) FROM vehicle WHERE member_id = $1 AND active", member_id)
            if int(count) >= MAX_VEHICLES:
                raise DomainError(ErrorCode.VEHICLE_LIMIT_REACHED, f"at most {MAX_VEHICLES} vehicles per member",
                                  ["input", "plate"])
            vehicle_id = await tx.fetchval(
                "INSERT INTO vehicle (member_id, plate, active, consent_version, consented_at, bound_at)"
                " VALUES ($1, $2, TRUE, $3, $4, $4) RETURNING id", member_id, plate, CONSENT_VERSION, now)
            await tx.execute("UPDATE parking_session SET member_id = $1 WHERE plate = $2 AND status = 'OPEN'"
                             " AND member_id IS NULL", member_id, plate)
    except IntegrityError as exc:
        if not _is_unique_violation(exc):
            raise
        raise DomainError(ErrorCode.PLATE_BOUND_ELSEWHERE, "this plate is bound to another member",
                          ["input", "plate"]) from None
    return VehicleInfo(vehicle_id, member_id, plate, True, CONSENT_VERSION, now, now, None)


PLATE_LOCK_SPACE = 4711  # the first key of pg_advisory_xact_lock(int, int) for plates


async def _lock_plate(tx: Tx, plate: str) -> None:
    """Serialises a plate's entry with its binding and unbinding (PostgreSQL; SQLite runs one
    transaction at a time): an entry racing an unbind must not link the stay to the former owner. Taken
    before any member or account lock (an entry's insert checks its member's row); it ends with the
    transaction."""
    if tx.postgres:
        await tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", PLATE_LOCK_SPACE, plate)


async def unbind_vehicle(member_id: int, vehicle_id: int) -> VehicleInfo:
    """vehicleUnbind (own vehicles only). The plate's open stays are no longer the member's: their points
    hold is released and their chosen coupons forgotten (a member who sold the car pays nothing more)."""
    now = clock.now()
    async with transaction() as tx:
        plate = await tx.fetchval("SELECT plate FROM vehicle WHERE id = $1 AND member_id = $2", vehicle_id, member_id)
        if plate is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such vehicle", ["input", "vehicleId"])
        await _lock_plate(tx, plate)  # the plate first, then the account (the order of an entry's FK check)
        acct = await _lock_account(tx, member_id, now)
        found = _vehicle(await tx.fetchrow(f"SELECT {VEHICLE_COLUMNS} FROM vehicle WHERE id = $1", vehicle_id))
        if not found.active:
            raise DomainError(ErrorCode.VEHICLE_NOT_BOUND, "this vehicle is no longer bound", ["input", "vehicleId"])
        await tx.execute("UPDATE vehicle SET active = FALSE, unbound_at = $2 WHERE id = $1", vehicle_id, now)
        stays = await tx.fetch(
            "SELECT id, hold_id FROM parking_session WHERE plate = $1 AND member_id = $2 AND status = 'OPEN'"
            + (" FOR UPDATE" if tx.postgres else ""), found.plate, member_id)
        for stay in stays:
            await _release_hold(tx, acct, stay["hold_id"], now)
            await tx.execute("UPDATE parking_session SET member_id = NULL, offset_points = 0, hold_id = NULL,"
                             " coupon_codes = '[]' WHERE id = $1", stay["id"])
    return VehicleInfo(found.id, member_id, found.plate, False, found.consent_version, found.consented_at,
                       found.bound_at, now)


async def vehicles_of(member_ids: list[int]) -> dict[int, list[VehicleInfo]]:
    """Active vehicles of each member (a DataLoader's batch), in binding order."""
    if not member_ids:
        return {}
    ids = ", ".join(str(int(i)) for i in member_ids)
    rows = await fetch(f"SELECT {VEHICLE_COLUMNS} FROM vehicle WHERE active AND member_id IN ({ids}) ORDER BY id")
    found: dict[int, list[VehicleInfo]] = {int(i): [] for i in member_ids}
    for r in rows:
        found[int(r["member_id"])].append(_vehicle(r))
    return found


async def vehicle(vehicle_id: int) -> VehicleInfo | None:
    rows = await fetch(f"SELECT {VEHICLE_COLUMNS} FROM vehicle WHERE id = $1", vehicle_id)
    return _vehicle(rows[0]) if rows else None


# --- car parks ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CarParkInfo:
    id: int
    code: str
    name: str
    free_minutes: int
    hourly_fen: int
    daily_cap_fen: int | None
    tier_free_minutes: dict[str, int]
    purchase_min_fen: int | None
    purchase_free_minutes: int
    offset_points_per_yuan: int
    offset_max_points: int
    created_at: datetime
    updated_at: datetime

    @property
    def rules(self) -> FeeRules:
        return FeeRules(self.free_minutes, self.hourly_fen, self.daily_cap_fen, self.offset_points_per_yuan,
                        self.offset_max_points)


CAR_PARK_COLUMNS = ("id, code, name, free_minutes, hourly_fen, daily_cap_fen, tier_free_minutes, purchase_min_fen,"
                    " purchase_free_minutes, offset_points_per_yuan, offset_max_points, created_at, updated_at")
_INT_OR_NONE = lambda v: None if v is None else int(v)  # noqa: E731


def _car_park(row: Any) -> CarParkInfo:
    return CarParkInfo(
        int(row["id"]), row["code"], row["name"], int(row["free_minutes"]), int(row["hourly_fen"]),
        _INT_OR_NONE(row["daily_cap_fen"]), {k: int(v) for k, v in json.loads(row["tier_free_minutes"] or "{}").items()},
        _INT_OR_NONE(row["purchase_min_fen"]), int(row["purchase_free_minutes"]), int(row["offset_points_per_yuan"]),
        int(row["offset_max_points"]), clock.parse_db_time(row["created_at"]), clock.parse_db_time(row["updated_at"]),
    )


@dataclass(frozen=True)
class CarParkData:
    """What an operator sets on a car park; on update, None leaves a field as it is."""

    name: str | None = None
    free_minutes: int | None = None
    hourly_fen: int | None = None
    daily_cap_fen: int | None = None
    tier_free_minutes: dict[str, int] | None = None
    purchase_min_fen: int | None = None
    purchase_free_minutes: int | None = None
    offset_points_per_yuan: int | None = None
    offset_max_points: int | None = None


_CP_WRITABLE = ("name", "free_minutes", "hourly_fen", "daily_cap_fen", "tier_free_minutes", "purchase_min_fen",
                "purchase_free_minutes", "offset_points_per_yuan", "offset_max_points")
MAX_FEN = 100_000_000


def _invalid(message: str, field: str) -> DomainError:
    return DomainError(ErrorCode.INVALID_INPUT, message, ["input", field])


async def _validate_car_park(c: dict[str, Any]) -> None:
    if not 1 <= len((c["name"] or "").strip()) <= 128:
        raise _invalid("name must be 1 to 128 characters", "name")
    for name, field, hi in (("free_minutes", "freeMinutes", 1440), ("purchase_free_minutes", "purchaseFreeMinutes", 1440),
                            ("hourly_fen", "hourlyFen", MAX_FEN), ("offset_max_points", "offsetMaxPoints", 10_000_000)):
        if c[name] is None or not 0 <= c[name] <= hi:
            raise _invalid(f"{field} must be 0 to {hi}", field)
    if c["daily_cap_fen"] is not None and not 0 <= c["daily_cap_fen"] <= MAX_FEN:
        raise _invalid(f"dailyCapFen must be 0 to {MAX_FEN} (or null: no cap)", "dailyCapFen")
    if c["purchase_min_fen"] is not None and not 1 <= c["purchase_min_fen"] <= MAX_FEN:
        raise _invalid(f"purchaseMinFen must be 1 to {MAX_FEN} (or null: no purchase benefit)", "purchaseMinFen")
    if c["offset_points_per_yuan"] is None or not 1 <= c["offset_points_per_yuan"] <= 100_000:
        raise _invalid("offsetPointsPerYuan must be 1 to 100000", "offsetPointsPerYuan")
    codes = {t.code for t in await tiers.all_tiers()}
    for code, minutes in (c["tier_free_minutes"] or {}).items():
        if code not in codes:
            raise _invalid(f"no tier {code!r}", "tierFreeMinutes")
        if not 0 <= minutes <= 1440:
            raise _invalid("tier free minutes must be 0 to 1440", "tierFreeMinutes")


async def create_car_park(actor: Actor, code: str, data: CarParkData) -> CarParkInfo:
    code = (code or "").strip().upper()
    if not re.fullmatch(r"[A-Z0-9_-]{1,32}", code):
        raise _invalid("code must be 1 to 32 of A-Z 0-9 _ -", "code")
    fields = {n: getattr(data, n) for n in _CP_WRITABLE}
    fields["tier_free_minutes"] = fields["tier_free_minutes"] or {}
    fields["purchase_free_minutes"] = fields["purchase_free_minutes"] or 0
    fields["offset_points_per_yuan"] = fields["offset_points_per_yuan"] or 100
    fields["offset_max_points"] = fields["offset_max_points"] or 0
    await _validate_car_park(fields)
    now = clock.now()
    async with transaction() as tx:
        car_park_id = await tx.fetchval(
            "INSERT INTO car_park (code, name, free_minutes, hourly_fen, daily_cap_fen, tier_free_minutes,"
            " purchase_min_fen, purchase_free_minutes, offset_points_per_yuan, offset_max_points, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) ON CONFLICT (code) DO NOTHING RETURNING id",
            code, fields["name"].strip(), fields["free_minutes"], fields["hourly_fen"], fields["daily_cap_fen"],
            json.dumps(fields["tier_free_minutes"]), fields["purchase_min_fen"], fields["purchase_free_minutes"],
            fields["offset_points_per_yuan"], fields["offset_max_points"], now,
        )
        if car_park_id is None:
            raise _invalid("a car park with this code exists", "code")
        await audit(tx, actor, "car_park.create", "car_park", str(car_park_id), {"code": code, **fields})
    return await car_park_by_id(car_park_id)


async def update_car_park(actor: Actor, car_park_id: int, data: CarParkData,
                          clear: frozenset[str] = frozenset()) -> CarParkInfo:
    """Changes the given fields (`clear`: daily_cap_fen or purchase_min_fen to null). New rules apply to
    every quote and exit from now on, open stays included."""
    async with transaction() as tx:
        row = await tx.fetchrow(f"SELECT {CAR_PARK_COLUMNS} FROM car_park WHERE id = $1"
                                + (" FOR UPDATE" if tx.postgres else ""), car_park_id)
        if row is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such car park", ["input", "carParkId"])
        current = _car_park(row)
        changes = {n: getattr(data, n) for n in _CP_WRITABLE if getattr(data, n) is not None}
        changes.update({n: None for n in clear})
        merged = {**{n: getattr(current, n) for n in _CP_WRITABLE}, **changes}
        await _validate_car_park(merged)
        if not changes:
            return current
        sets = ", ".join(f"{n} = ${i + 3}" for i, n in enumerate(changes))
        values = [json.dumps(v) if n == "tier_free_minutes" else v for n, v in changes.items()]
        await tx.execute(f"UPDATE car_park SET updated_at = $2, {sets} WHERE id = $1", car_park_id, clock.now(),
                         *values)
        await audit(tx, actor, "car_park.update", "car_park", str(car_park_id), changes)
    return await car_park_by_id(car_park_id)


async def car_parks() -> list[CarParkInfo]:
    return [_car_park(r) for r in await fetch(f"SELECT {CAR_PARK_COLUMNS} FROM car_park ORDER BY code")]


async def car_parks_by_id(ids: list[int]) -> dict[int, CarParkInfo]:
    if not ids:
        return {}
    rows = await fetch(f"SELECT {CAR_PARK_COLUMNS} FROM car_park WHERE id IN ({', '.join(str(int(i)) for i in ids)})")
    return {int(r["id"]): _car_park(r) for r in rows}


async def car_park_by_id(car_park_id: int) -> CarParkInfo:
    found = (await car_parks_by_id([car_park_id])).get(car_park_id)
    if found is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such car park", ["input", "carParkId"])
    return found


async def car_park_by_code(code: str, field: list[str] | None = None) -> CarParkInfo:
    rows = await fetch(f"SELECT {CAR_PARK_COLUMNS} FROM car_park WHERE code = $1", (code or "").strip().upper())
    if not rows:
        raise DomainError(ErrorCode.NOT_FOUND, "no such car park", field or ["input", "carParkCode"])
    return _car_park(rows[0])


# --- which keys may report for a car park ---------------------------------------------------------

async def require_key(key_id: str, car_park_code: str) -> None:
    """A car park's system signs with a key bound to that car park (operators bind it); another car
    park's key is refused, even with the parking scope."""
    bound = await fetch(
        "SELECT 1 AS ok FROM car_park_key ck JOIN car_park c ON c.id = ck.car_park_id"
        " JOIN integration_key k ON k.id = ck.key_id WHERE c.code = $1 AND k.key_id = $2",
        (car_park_code or "").strip().upper(), key_id)
    if not bound:
        await car_park_by_code(car_park_code)  # NOT_FOUND first, for an unknown car park
        raise DomainError(ErrorCode.CAR_PARK_NOT_ALLOWED, "this key may not report for that car park",
                          ["input", "carParkCode"])


async def bind_key(actor: Actor, car_park_code: str, key_id: str, bound: bool) -> list[str]:
    """Binds (or unbinds) an integration key with the parking scope to a car park; audited. Returns the
    car park's keys."""
    cp = await car_park_by_code(car_park_code)
    async with transaction() as tx:
        key = await tx.fetchrow("SELECT id, scopes, revoked_at FROM integration_key WHERE key_id = $1", key_id)
        if key is None or key["revoked_at"] is not None:
            raise DomainError(ErrorCode.NOT_FOUND, "no active key with that id", ["input", "keyId"])
        if "parking" not in (key["scopes"] or "pos").split(","):
            raise DomainError(ErrorCode.INVALID_INPUT, "the key needs the parking scope", ["input", "keyId"])
        if bound:
            await tx.execute("INSERT INTO car_park_key (car_park_id, key_id, created_at) VALUES ($1, $2, $3)"
                             " ON CONFLICT (car_park_id, key_id) DO NOTHING", cp.id, key["id"], clock.now())
        else:
            await tx.execute("DELETE FROM car_park_key WHERE car_park_id = $1 AND key_id = $2", cp.id, key["id"])
        await audit(tx, actor, "car_park.key_bind" if bound else "car_park.key_unbind", "car_park", str(cp.id),
                    {"keyId": key_id})
    return await keys_of(cp.id)


async def keys_of(car_park_id: int) -> list[str]:
    rows = await fetch("SELECT k.key_id FROM car_park_key ck JOIN integration_key k ON k.id = ck.key_id"
                       " WHERE ck.car_park_id = $1 ORDER BY k.key_id", car_park_id)
    return [r["key_id"] for r in rows]


# --- stays ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StayInfo:
    id: int
    car_park_id: int
    plate: str
    member_id: int | None
    status: str
    entry_event: str
    exit_event: str | None
    entered_at: datetime
    exited_at: datetime | None
    offset_points: int
    hold_id: int | None
    coupon_codes: list[str]
    fee_fen: int | None
    tier_discount_fen: int | None
    tier_minutes_used: int | None
    purchase_discount_fen: int | None
    coupon_discount_fen: int | None
    points_discount_fen: int | None
    points_spent: int | None
    payable_fen: int | None
    paid: bool | None


STAY_COLUMNS = ("id, car_park_id, plate, member_id, status, entry_event, exit_event, entered_at, exited_at,"
                " offset_points, hold_id, coupon_codes, fee_fen, tier_discount_fen, tier_minutes_used,"
                " purchase_discount_fen, coupon_discount_fen, points_discount_fen, points_spent, payable_fen, paid")


def _stay(row: Any) -> StayInfo:
    t, n = clock.parse_db_time, _INT_OR_NONE
    return StayInfo(
        int(row["id"]), int(row["car_park_id"]), row["plate"], n(row["member_id"]), row["status"], row["entry_event"],
        row["exit_event"], t(row["entered_at"]), t(row["exited_at"]), int(row["offset_points"]), n(row["hold_id"]),
        json.loads(row["coupon_codes"] or "[]"), n(row["fee_fen"]), n(row["tier_discount_fen"]),
        n(row["tier_minutes_used"]), n(row["purchase_discount_fen"]), n(row["coupon_discount_fen"]),
        n(row["points_discount_fen"]), n(row["points_spent"]), n(row["payable_fen"]),
        None if row["paid"] is None else bool(row["paid"]),
    )


def final_bill(s: StayInfo) -> Bill:
    """The bill fixed at a stay's exit (CLOSED stays only)."""
    assert s.status == "CLOSED" and s.exited_at is not None
    return Bill(
        minutes=minutes_between(s.entered_at.timestamp(), s.exited_at.timestamp()), fee_fen=s.fee_fen or 0,
        tier_minutes=s.tier_minutes_used or 0, tier_discount_fen=s.tier_discount_fen or 0, purchase_minutes=0,
        purchase_discount_fen=s.purchase_discount_fen or 0, coupon_discount_fen=s.coupon_discount_fen or 0,
        coupons_used=tuple(s.coupon_codes), points_discount_fen=s.points_discount_fen or 0,
        points=s.points_spent or 0, payable_fen=s.payable_fen or 0,
    )


class _Autocommit:
    """Reads outside a transaction, with the Tx interface (quotes and the members' views)."""

    postgres = False

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        return await fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        rows = await fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else next(iter(row.values()))


async def _tier_minutes_left(q: Any, cp: CarParkInfo, s: StayInfo) -> int:
    """The member's tier allowance on the Shanghai day of the entry, less what that day's other closed
    stays used (in any car park)."""
    tier_id = await q.fetchval("SELECT tier_id FROM member WHERE id = $1", s.member_id)
    allowance = cp.tier_free_minutes.get((await tiers.tier_by_id(tier_id)).code, 0) if tier_id is not None else 0
    if not allowance:
        return 0
    start, end = clock.day_bounds(clock.business_day(s.entered_at))
    used = await q.fetchval(
        "SELECT COALESCE(SUM(tier_minutes_used), 0) FROM parking_session WHERE member_id = $1 AND status = 'CLOSED'"
        " AND id <> $2 AND entered_at >= $3 AND entered_at < $4", s.member_id, s.id, start, end)
    return max(0, allowance - int(used))


async def _purchase_minutes(q: Any, cp: CarParkInfo, s: StayInfo, at: datetime) -> int:
    """Free minutes for spending at least purchase_min_fen (net of refunds) from the start of the entry's
    Shanghai day to the end of the day of `at`."""
    if cp.purchase_min_fen is None or not cp.purchase_free_minutes:
        return 0
    start, _ = clock.day_bounds(clock.business_day(s.entered_at))
    _, end = clock.day_bounds(clock.business_day(max(at, s.entered_at)))
    spent = await q.fetchval(
        "SELECT COALESCE(SUM(amount_fen - refunded_fen), 0) FROM purchase WHERE member_id = $1"
        " AND occurred_at >= $2 AND occurred_at < $3", s.member_id, start, end)
    return cp.purchase_free_minutes if int(spent) >= cp.purchase_min_fen else 0


async def _coupons(q: Any, member_id: int, codes: list[str], now: datetime, lock: bool = False) -> list[Coupon]:
    """The chosen codes that are still the member's usable parking coupons, in the member's order."""
    if not codes:
        return []
    marks = ", ".join(f"${i + 3}" for i in range(len(codes)))
    rows = await q.fetch(
        f"SELECT code, face_value_fen FROM voucher WHERE member_id = $1 AND kind = 'PARKING_COUPON'"
        f" AND status = 'ISSUED' AND valid_until > $2 AND code IN ({marks}) ORDER BY id"
        + (" FOR UPDATE" if lock and q.postgres else ""), member_id, now, *codes)
    value = {r["code"]: int(r["face_value_fen"] or 0) for r in rows}
    return [Coupon(c, value[c]) for c in codes if c in value]


async def _live_hold_points(q: Any, s: StayInfo, now: datetime) -> int:
    if s.hold_id is None or not s.offset_points:
        return 0
    row = await q.fetchrow("SELECT status, expires_at FROM points_hold WHERE id = $1", s.hold_id)
    live = row is not None and row["status"] == "HELD" and clock.parse_db_time(row["expires_at"]) > now
    return s.offset_points if live else 0


async def _compute(q: Any, cp: CarParkInfo, s: StayInfo, at: datetime, now: datetime, *,
                   coupons: list[Coupon] | None = None, points: int | None = None) -> Bill:
    """The bill of a stay that ends (or is quoted) at `at`, with the member's benefits and choices."""
    minutes = minutes_between(s.entered_at.timestamp(), at.timestamp())
    if s.member_id is None:
        return bill(cp.rules, minutes)
    return bill(
        cp.rules, minutes, tier_minutes_left=await _tier_minutes_left(q, cp, s),
        purchase_minutes=await _purchase_minutes(q, cp, s, at),
        coupons=coupons if coupons is not None else await _coupons(q, s.member_id, s.coupon_codes, now),
        points=points if points is not None else await _live_hold_points(q, s, now),
    )


def _check_event(event_id: str) -> str:
    event_id = (event_id or "").strip()
    if not 1 <= len(event_id) <= MAX_EVENT_ID:
        raise DomainError(ErrorCode.INVALID_INPUT, f"eventId must be 1 to {MAX_EVENT_ID} characters", ["input", "eventId"])
    return event_id


def _check_time(value: datetime, field: str, now: datetime) -> datetime:
    try:
        value = clock.to_utc(value)
    except ValueError:
        raise DomainError(ErrorCode.INVALID_INPUT, "times must carry a zone", ["input", field]) from None
    if value > now + FUTURE_SLACK:
        raise DomainError(ErrorCode.INVALID_INPUT, "this time is in the future", ["input", field])
    return value


async def record_entry(car_park_code: str, plate: str, entered_at: datetime, event_id: str) -> StayInfo:
    """parkingEntryRecord: a stay opens (linked to the member whose active vehicle has the plate). The
    same event again returns the same stay; another entry while the plate's stay is open is refused."""
    plate = normalize_plate(plate)
    event_id = _check_event(event_id)
    now = clock.now()
    entered_at = _check_time(entered_at, "enteredAt", now)
    cp = await car_park_by_code(car_park_code)
    for _attempt in range(3):
        try:
            async with transaction() as tx:
                await _lock_plate(tx, plate)  # a bind or unbind of this plate commits before or after, not during
                # The event first, then the plate's open stay: a parallel report of the same entry may commit
                # between the two reads, so an open stay of this very event is a repeat too.
                for where, value in (("entry_event = $2", event_id), ("plate = $2 AND status = 'OPEN'", plate)):
                    row = await tx.fetchrow(f"SELECT {STAY_COLUMNS} FROM parking_session WHERE car_park_id = $1"
                                            f" AND {where}", cp.id, value)
                    if row is None:
                        continue
                    found = _stay(row)
                    if found.entry_event != event_id:
                        raise _already_open()
                    if found.plate != plate or found.entered_at != entered_at:
                        raise DomainError(ErrorCode.IDEMPOTENCY_KEY_REUSED,
                                          "this eventId was reported before for another entry", ["input", "eventId"])
                    return found
                member_id = await tx.fetchval("SELECT member_id FROM vehicle WHERE plate = $1 AND active", plate)
                stay_id = await tx.fetchval(
                    "INSERT INTO parking_session (car_park_id, plate, member_id, status, entry_event, entered_at,"
                    " offset_points, coupon_codes, created_at) VALUES ($1, $2, $3, 'OPEN', $4, $5, 0, '[]', $6)"
                    " RETURNING id", cp.id, plate, member_id, event_id, entered_at, now)
                return await _stay_in(tx, stay_id)
        except IntegrityError as exc:  # a parallel report of the same entry, or of another one
            if not _is_unique_violation(exc):
                raise
    raise _already_open()


def _already_open() -> DomainError:
    return DomainError(ErrorCode.STAY_ALREADY_OPEN, "this plate has an open stay in this car park; report its exit first",
                       ["input", "plate"])


async def _stay_in(q: Any, stay_id: int, lock: bool = False) -> StayInfo:
    row = await q.fetchrow(f"SELECT {STAY_COLUMNS} FROM parking_session WHERE id = $1"
                           + (" FOR UPDATE" if lock and q.postgres else ""), stay_id)
    assert row is not None
    return _stay(row)


async def stay(stay_id: int) -> StayInfo | None:
    rows = await fetch(f"SELECT {STAY_COLUMNS} FROM parking_session WHERE id = $1", stay_id)
    return _stay(rows[0]) if rows else None


async def _lock_account(tx: Tx, member_id: int, now: datetime) -> ledger.LockedAccount:
    acct = await ledger.lock_account(tx, member_id, now)
    if acct is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such member", None)
    await ledger.expire_account(tx, acct, now)
    return acct


async def _release_hold(tx: Tx, acct: ledger.LockedAccount | None, hold_id: int | None, now: datetime) -> int:
    """Releases a stay's hold if it is live; returns the points it still held."""
    if hold_id is None:
        return 0
    row = await tx.fetchrow("SELECT points, expires_at FROM points_hold WHERE id = $1 AND status = 'HELD'", hold_id)
    if row is None or not await ledger.release(tx, hold_id):
        return 0
    if clock.parse_db_time(row["expires_at"]) <= now:
        return 0
    if acct is not None:
        acct.held -= int(row["points"])
    return int(row["points"])


@dataclass(frozen=True)
class Quote:
    stay: StayInfo
    bill: Bill
    at: datetime


async def quote(car_park_code: str, plate: str, at: datetime | None) -> Quote:
    """parkingSessionQuote: the open stay's fee at `at` (default now), each discount, the points
    applied and what is left to pay. A plate whose latest stay has ended: STAY_ENDED."""
    plate = normalize_plate(plate)
    now = clock.now()
    at = _check_time(at, "at", now) if at is not None else now
    cp = await car_park_by_code(car_park_code)
    await tiers.all_tiers()
    q = _Autocommit()
    row = await q.fetchrow(f"SELECT {STAY_COLUMNS} FROM parking_session WHERE car_park_id = $1 AND plate = $2"
                           " ORDER BY (CASE WHEN status = 'OPEN' THEN 0 ELSE 1 END), id DESC LIMIT 1", cp.id, plate)
    if row is None:
        raise DomainError(ErrorCode.NO_OPEN_STAY, "no stay of this plate in this car park", ["input", "plate"])
    s = _stay(row)
    if s.status != "OPEN":
        raise DomainError(ErrorCode.STAY_ENDED, f"the plate's last stay has ended ({s.status})", ["input", "plate"])
    if at < s.entered_at:
        raise DomainError(ErrorCode.INVALID_INPUT, "at is before the entry", ["input", "at"])
    return Quote(s, await _compute(q, cp, s, at, now), at)


async def open_stay_quote(s: StayInfo) -> Bill:
    """An open stay's bill now (members' views)."""
    now = clock.now()
    cp = (await car_parks_by_id([s.car_park_id]))[s.car_park_id]
    await tiers.all_tiers()
    return await _compute(_Autocommit(), cp, s, max(now, s.entered_at), now)


@dataclass(frozen=True)
class ExitResult:
    stay_id: int


async def record_exit(car_park_code: str, plate: str, exited_at: datetime, event_id: str, paid: bool) -> ExitResult:
    """parkingExitRecord: the stay closes with its fee and discounts fixed. Paid: the chosen coupons it
    needs are written off and the points it needs are spent (the rest of the hold released). Unpaid
    (the car left without paying the rest): no coupon is used, the hold is released; the minute benefits
    (tier, purchase) are recorded as given. The same event again returns the same stay."""
    plate = normalize_plate(plate)
    event_id = _check_event(event_id)
    now = clock.now()
    exited_at = _check_time(exited_at, "exitedAt", now)
    cp = await car_park_by_code(car_park_code)
    await tiers.all_tiers()
    for _attempt in range(3):
        try:
            async with transaction() as tx:
                repeat = await _exit_repeat(tx, cp, plate, event_id, exited_at, paid)
                if repeat is not None:
                    return repeat
                row = await tx.fetchrow(f"SELECT {STAY_COLUMNS} FROM parking_session WHERE car_park_id = $1"
                                        " AND plate = $2 AND status = 'OPEN'", cp.id, plate)
                if row is None:  # (a parallel report of this exit may have committed since the first read)
                    repeat = await _exit_repeat(tx, cp, plate, event_id, exited_at, paid)
                    if repeat is not None:
                        return repeat
                    raise DomainError(ErrorCode.NO_OPEN_STAY, "no open stay of this plate in this car park",
                                      ["input", "plate"])
                first = _stay(row)
                acct = await _lock_account(tx, first.member_id, now) if first.member_id is not None else None
                s = await _stay_in(tx, first.id, lock=True)
                if s.status != "OPEN" or s.member_id != first.member_id:
                    continue  # closed or re-linked meanwhile: look again (a repeat of this event finds its stay)
                if exited_at < s.entered_at:
                    raise DomainError(ErrorCode.INVALID_INPUT, "exitedAt is before the entry", ["input", "exitedAt"])
                await _close(tx, cp, s, acct, exited_at, event_id, paid, now)
                return ExitResult(s.id)
        except IntegrityError as exc:  # the same exit event id closed another stay at this moment
            if not _is_unique_violation(exc):
                raise
            raise DomainError(ErrorCode.IDEMPOTENCY_KEY_REUSED, "this eventId was reported before for another exit",
                              ["input", "eventId"]) from None
    raise DomainError(ErrorCode.NO_OPEN_STAY, "no open stay of this plate in this car park", ["input", "plate"])


async def _exit_repeat(tx: Tx, cp: CarParkInfo, plate: str, event_id: str, exited_at: datetime,
                       paid: bool) -> ExitResult | None:
    """The stay an exit event closed before, when this is a repeat of it; the same event id with another
    plate, time or payment is refused (a car park that reuses event ids must not close the wrong stay)."""
    row = await tx.fetchrow("SELECT id, plate, exited_at, paid FROM parking_session WHERE car_park_id = $1"
                            " AND exit_event = $2", cp.id, event_id)
    if row is None:
        return None
    if row["plate"] != plate or clock.parse_db_time(row["exited_at"]) != exited_at or bool(row["paid"]) != paid:
        raise DomainError(ErrorCode.IDEMPOTENCY_KEY_REUSED, "this eventId was reported before for another exit",
                          ["input", "eventId"])
    return ExitResult(int(row["id"]))


async def _close(tx: Tx, cp: CarParkInfo, s: StayInfo, acct: ledger.LockedAccount | None, exited_at: datetime,
                 event_id: str, paid: bool, now: datetime) -> None:
    entry_id = None
    if acct is None:
        b = await _compute(tx, cp, s, exited_at, now)
    elif not paid:
        b = await _compute(tx, cp, s, exited_at, now, coupons=[], points=0)
        await _release_hold(tx, acct, s.hold_id, now)
    else:
        coupons = await _coupons(tx, s.member_id, s.coupon_codes, now, lock=True)
        b = await _compute(tx, cp, s, exited_at, now, coupons=coupons, points=s.offset_points if s.hold_id else 0)
        entry_id, b = await _spend_points(tx, cp, s, acct, b, exited_at, now, coupons)
        for code in b.coupons_used:
            used = await tx.execute(
                "UPDATE voucher SET status = 'USED', used_at = $1 WHERE code = $2 AND member_id = $3"
                " AND kind = 'PARKING_COUPON' AND status = 'ISSUED' AND valid_until > $1", now, code, s.member_id)
            assert used == 1, f"parking coupon {code} was locked as usable yet could not be used"
    await tx.execute(
        "UPDATE parking_session SET status = 'CLOSED', exit_event = $2, exited_at = $3, fee_fen = $4,"
        " tier_discount_fen = $5, tier_minutes_used = $6, purchase_discount_fen = $7, coupon_discount_fen = $8,"
        " points_discount_fen = $9, points_spent = $10, payable_fen = $11, paid = $12, spend_entry_id = $13,"
        " coupon_codes = $14 WHERE id = $1 AND status = 'OPEN'",
        s.id, event_id, exited_at, b.fee_fen, b.tier_discount_fen, b.tier_minutes, b.purchase_discount_fen,
        b.coupon_discount_fen, b.points_discount_fen, b.points, b.payable_fen, paid, entry_id,
        json.dumps(list(b.coupons_used)),
    )


async def _spend_points(tx: Tx, cp: CarParkInfo, s: StayInfo, acct: ledger.LockedAccount, b: Bill,
                        exited_at: datetime, now: datetime, coupons: list[Coupon]) -> tuple[int | None, Bill]:
    """Spends exactly the points the bill uses: the stay's hold when it is live and all of it is
    needed; otherwise the hold is released and just the points needed are held and captured at once
    (a hold that lapsed is renewed if the points are still spendable; if not, no points are used)."""
    hold_row = await tx.fetchrow("SELECT points, status, expires_at FROM points_hold WHERE id = $1",
                                 s.hold_id) if s.hold_id else None
    live = (hold_row is not None and hold_row["status"] == "HELD"
            and clock.parse_db_time(hold_row["expires_at"]) > now)
    reason = f"停车抵扣 {cp.name} {s.plate}"
    spend = dict(reason=reason, source_type=HOLD_SOURCE, source_ref=str(s.id), occurred_at=now)
    if b.points and live and b.points == int(hold_row["points"]):
        return (await ledger.capture(tx, acct, s.hold_id, **spend)).id, b
    await _release_hold(tx, acct, s.hold_id, now)
    if not b.points:
        return None, b
    hold_id = await ledger.hold(tx, acct, points=b.points, source_type=HOLD_SOURCE, source_ref=f"{s.id}:exit",
                                expires_at=now + timedelta(minutes=1))
    if hold_id is None:  # the lapsed hold's points were spent elsewhere: the car park is paid in cash
        return None, await _compute(tx, cp, s, exited_at, now, coupons=coupons, points=0)
    return (await ledger.capture(tx, acct, hold_id, **spend)).id, b


# --- offsets (members) ----------------------------------------------------------------------------

@dataclass(frozen=True)
class OffsetResult:
    stay_id: int
    points_held: int
    points_balance: int


async def apply_offset(member_id: int, stay_id: int, points: int, coupon_codes: list[str],
                       idempotency_key: str) -> OffsetResult:
    """parkingOffsetApply: the member chooses parking coupons and points for an open stay. Points are
    capped per stay (OFFSET_CAP_EXCEEDED above the cap) and never more than the stay needs now (fewer
    are held then); they are HELD until the exit. Applying again replaces the choice and the hold
    (points 0 and no coupons cancel). Once per request; idempotent by key."""
    key = idempotency.check_key(idempotency_key, ["input", "idempotencyKey"])
    if not isinstance(points, int) or points < 0:
        raise DomainError(ErrorCode.INVALID_INPUT, "points must be 0 or more", ["input", "points"])
    codes: list[str] = []
    for text in coupon_codes or []:
        code = vouchers.code_from_scan(text)
        if code and code not in codes:
            codes.append(code)
    if len(codes) > MAX_COUPONS or any(len(c) > 24 for c in codes):
        raise DomainError(ErrorCode.INVALID_INPUT, f"at most {MAX_COUPONS} coupon codes", ["input", "couponCodes"])
    digest = idempotency.request_hash("parkingOffsetApply", {"stayId": stay_id, "points": points, "coupons": codes})
    now = clock.now()
    await tiers.all_tiers()
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, f"member:{member_id}", key, digest, ["input", "idempotencyKey"])
        if stored is not None:
            return OffsetResult(**stored)
        acct = await _lock_account(tx, member_id, now)
        row = await tx.fetchrow(f"SELECT {STAY_COLUMNS} FROM parking_session WHERE id = $1"
                                + (" FOR UPDATE" if tx.postgres else ""), stay_id)
        if row is None or row["member_id"] is None or int(row["member_id"]) != member_id:
            raise DomainError(ErrorCode.NOT_FOUND, "no such parking stay", ["input", "sessionId"])
        s = _stay(row)
        if s.status != "OPEN":
            raise DomainError(ErrorCode.STAY_ENDED, f"this stay has ended ({s.status})", ["input", "sessionId"])
        cp = await _car_park_in(tx, s.car_park_id)
        if points > cp.offset_max_points:
            raise DomainError(ErrorCode.OFFSET_CAP_EXCEEDED,
                              f"at most {cp.offset_max_points} points per stay in this car park", ["input", "points"])
        coupons = await _coupons(tx, member_id, codes, now)
        await _check_coupons(tx, member_id, codes, {c.code for c in coupons}, now)
        b = await _compute(tx, cp, s, max(now, s.entered_at), now, coupons=coupons, points=0)
        to_hold = min(points, b.points_needed)
        await _release_hold(tx, acct, s.hold_id, now)
        hold_id = None
        if to_hold:
            hold_id = await ledger.hold(tx, acct, points=to_hold, source_type=HOLD_SOURCE,
                                        source_ref=f"{s.id}:{record_id}", expires_at=now + timedelta(hours=HOLD_HOURS))
            if hold_id is None:
                raise DomainError(ErrorCode.INSUFFICIENT_POINTS, f"{to_hold} points needed; {ledger.shortfall(acct)}",
                                  ["input", "points"])
        await tx.execute("UPDATE parking_session SET offset_points = $2, hold_id = $3, coupon_codes = $4 WHERE id = $1",
                         s.id, to_hold, hold_id, json.dumps(codes))
        result = OffsetResult(s.id, to_hold, acct.spendable)
        await idempotency.remember(tx, record_id, asdict(result))
    return result


async def _check_coupons(tx: Tx, member_id: int, codes: list[str], usable: set[str], now: datetime) -> None:
    for index, code in enumerate(codes):
        if code in usable:
            continue
        field = ["input", "couponCodes", str(index)]
        row = await tx.fetchrow("SELECT kind, status, valid_until FROM voucher WHERE code = $1 AND member_id = $2",
                                code, member_id)
        if row is None or row["kind"] != "PARKING_COUPON":
            raise DomainError(ErrorCode.NOT_FOUND, f"{code} is not one of your parking coupons", field)
        if row["status"] == "USED":
            raise DomainError(ErrorCode.VOUCHER_ALREADY_USED, f"{code} has been used", field)
        if row["status"] == "VOID":
            raise DomainError(ErrorCode.VOUCHER_VOID, f"{code} was voided", field)
        raise DomainError(ErrorCode.VOUCHER_EXPIRED, f"{code} has expired", field)


async def _car_park_in(tx: Tx, car_park_id: int) -> CarParkInfo:
    return _car_park(await tx.fetchrow(f"SELECT {CAR_PARK_COLUMNS} FROM car_park WHERE id = $1", car_park_id))


# --- abandoned stays (operators, the command line) -------------------------------------------------

@dataclass(frozen=True)
class AbandonResult:
    stays_abandoned: int
    points_released: int


ABANDON_CHUNK = 500
ABANDON_AFTER_HOURS = 72  # the default: a stay with no exit after three days is abandoned


async def abandon_stays(actor: Actor, older_than_hours: int, as_of: datetime | None = None) -> AbandonResult:
    """Closes OPEN stays that entered more than `older_than_hours` before `as_of` (default now) as
    ABANDONED and releases their holds. Safe to repeat and to run twice at once: each stay is taken with
    FOR UPDATE SKIP LOCKED on PostgreSQL (an exit being recorded is passed by) and closed by a
    conditional update."""
    if not isinstance(older_than_hours, int) or not 1 <= older_than_hours <= 24 * 366:
        raise DomainError(ErrorCode.INVALID_INPUT, "olderThanHours must be 1 to 8784", ["input", "olderThanHours"])
    now = clock.now()
    as_of = clock.to_utc(as_of) if as_of else now
    if as_of > now + timedelta(minutes=1):
        raise DomainError(ErrorCode.INVALID_INPUT, "asOf may not be in the future", ["input", "asOf"])
    cutoff = as_of - timedelta(hours=older_than_hours)
    abandoned = released = 0
    while True:
        async with transaction() as tx:
            rows = await tx.fetch(
                "SELECT id, hold_id FROM parking_session WHERE status = 'OPEN' AND entered_at < $1 ORDER BY id"
                " LIMIT $2" + (" FOR UPDATE SKIP LOCKED" if tx.postgres else ""), cutoff, ABANDON_CHUNK)
            for r in rows:
                if await tx.execute("UPDATE parking_session SET status = 'ABANDONED' WHERE id = $1 AND status = 'OPEN'",
                                    r["id"]):
                    abandoned += 1
                    released += await _release_hold(tx, None, r["hold_id"], now)
        if len(rows) < ABANDON_CHUNK:
            break
    result = AbandonResult(abandoned, released)
    async with transaction() as tx:
        await audit(tx, actor, "parking.abandon_run", None, None,
                    {"older_than_hours": older_than_hours, "as_of": as_of.isoformat(), **asdict(result)})
    return result


# --- views ----------------------------------------------------------------------------------------

async def member_open_stay(member_id: int) -> StayInfo | None:
    rows = await fetch(f"SELECT {STAY_COLUMNS} FROM parking_session WHERE member_id = $1 AND status = 'OPEN'"
                       " ORDER BY entered_at DESC, id DESC LIMIT 1", member_id)
    return _stay(rows[0]) if rows else None


async def member_history(member_id: int, limit: int, before_id: int | None) -> list[StayInfo]:
    """A member's stays, newest first (open, closed and abandoned)."""
    rows = await fetch(f"SELECT {STAY_COLUMNS} FROM parking_session WHERE member_id = $1 AND id < $2"
                       " ORDER BY id DESC LIMIT $3", member_id, before_id if before_id is not None else 2**62, limit)
    return [_stay(r) for r in rows]


async def stays_page(car_park_id: int | None, status: str | None, limit: int, before_id: int | None) -> list[StayInfo]:
    """Stays for operators, newest first, optionally of one car park and status."""
    where, args = ["id < $1"], [before_id if before_id is not None else 2**62, limit]
    if car_park_id is not None:
        args.append(car_park_id)
        where.append(f"car_park_id = ${len(args)}")
    if status is not None:
        args.append(status)
        where.append(f"status = ${len(args)}")
    rows = await fetch(f"SELECT {STAY_COLUMNS} FROM parking_session WHERE {' AND '.join(where)}"
                       " ORDER BY id DESC LIMIT $2", *args)
    return [_stay(r) for r in rows]


@dataclass(frozen=True)
class Occupancy:
    car_park: CarParkInfo
    open_stays: int
    entries_today: int
    exits_today: int


async def occupancy() -> list[Occupancy]:
    """Per car park: stays open now, and entries and exits on today's Asia/Shanghai day."""
    start, end = clock.day_bounds(clock.business_day(clock.now()))
    rows = await fetch(
        "SELECT car_park_id, SUM(CASE WHEN status = 'OPEN' THEN 1 ELSE 0 END) AS open_stays,"
        " SUM(CASE WHEN entered_at >= $1 AND entered_at < $2 THEN 1 ELSE 0 END) AS entries,"
        " SUM(CASE WHEN exited_at >= $1 AND exited_at < $2 THEN 1 ELSE 0 END) AS exits"
        " FROM parking_session WHERE status = 'OPEN' OR entered_at >= $1 OR exited_at >= $1 GROUP BY car_park_id",
        start, end)
    found = {int(r["car_park_id"]): r for r in rows}
    out = []
    for cp in await car_parks():
        r = found.get(cp.id)
        out.append(Occupancy(cp, int(r["open_stays"] or 0) if r else 0, int(r["entries"] or 0) if r else 0,
                             int(r["exits"] or 0) if r else 0))
    return out


@dataclass(frozen=True)
class OffsetTotals:
    car_park: CarParkInfo
    stays: int
    fee_fen: int
    tier_discount_fen: int
    purchase_discount_fen: int
    coupon_discount_fen: int
    points_discount_fen: int
    points_spent: int
    payable_fen: int
    unpaid_stays: int


async def offset_totals(start: datetime, end: datetime, car_park_code: str | None) -> list[OffsetTotals]:
    """Per car park, over the stays that exited in [start, end): fees, each kind of discount in fen,
    points spent and what was left to pay."""
    try:
        start, end = clock.to_utc(start), clock.to_utc(end)
    except ValueError:
        raise DomainError(ErrorCode.INVALID_INPUT, "times must carry a zone", ["from"]) from None
    if end <= start:
        raise DomainError(ErrorCode.INVALID_INPUT, "to must be after from", ["to"])
    parks = [await car_park_by_code(car_park_code, ["carParkCode"])] if car_park_code else await car_parks()
    rows = await fetch(
        "SELECT car_park_id, COUNT(*) AS stays, COALESCE(SUM(fee_fen), 0) AS fee,"
        " COALESCE(SUM(tier_discount_fen), 0) AS tier, COALESCE(SUM(purchase_discount_fen), 0) AS purchase,"
        " COALESCE(SUM(coupon_discount_fen), 0) AS coupon, COALESCE(SUM(points_discount_fen), 0) AS points_fen,"
        " COALESCE(SUM(points_spent), 0) AS points, COALESCE(SUM(payable_fen), 0) AS payable,"
        " SUM(CASE WHEN paid THEN 0 ELSE 1 END) AS unpaid"
        " FROM parking_session WHERE status = 'CLOSED' AND exited_at >= $1 AND exited_at < $2 GROUP BY car_park_id",
        start, end)
    found = {int(r["car_park_id"]): r for r in rows}
    out = []
    for cp in parks:
        r = found.get(cp.id) or {}
        out.append(OffsetTotals(cp, *(int(r.get(k) or 0) for k in ("stays", "fee", "tier", "purchase", "coupon",
                                                                    "points_fen", "points", "payable", "unpaid"))))
    return out
