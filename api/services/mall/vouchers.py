"""Vouchers: the codes the points mall issues (merchant vouchers, coupons, parking coupons, pickups
for goods), and their write-off (核销) by merchant staff."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from api import locks
from api.db import transaction
from api.locks import Rank
from api.models import Voucher
from api.services import clock, idempotency, settlement
from api.services import text as hygiene
from api.services.audit import audit
from api.services.errors import DomainError, ErrorCode
from api.services.mall import sql
from api.services.mall.records import column, names, record, scalar

# 16 characters of an alphabet without 0/O, 1/I: 80 bits, read aloud or typed without mistakes.
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_LENGTH = 16
QR_PREFIX = "MPV1:"
STAFF_KINDS_EXCLUDED = ("PARKING_COUPON",)  # the car park's system uses these, never a till


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def qr_payload(code: str) -> str:
    """What the member's QR code encodes; staff apps scan it and send the code."""
    return QR_PREFIX + code


def code_from_scan(text: str) -> str:
    """A scanned QR payload or a typed code, normalised."""
    text = (text or "").strip().upper()
    return text[len(QR_PREFIX):] if text.startswith(QR_PREFIX) else text.replace(" ", "").replace("-", "")


@dataclass(frozen=True)
class VoucherInfo:
    id: int
    code: str
    order_id: int
    member_id: int
    product_id: int
    product_name: str
    merchant_id: int | None
    kind: str
    face_value_fen: int | None
    status: str  # ISSUED USED VOID (EXPIRED is derived: ISSUED past valid_until)
    valid_from: datetime
    valid_until: datetime
    used_at: datetime | None
    used_merchant_id: int | None


@dataclass(frozen=True)
class VoucherView:
    """A voucher as shown: its record and the code of the merchant where it can be used (None: anywhere)."""
    info: VoucherInfo
    merchant_code: str | None


async def issue(*, order_id: int, member_id: int, product_id: int, kind: str, merchant_id: int | None,
                face_value_fen: int | None, validity_days: int, quantity: int, now: datetime) -> list[str]:
    """Issues one voucher per unit of an order, in the order's transaction. Returns the codes."""
    codes = [new_code() for _ in range(quantity)]
    valid_until = now + timedelta(days=validity_days)
    for code in codes:
        await Voucher.create(code=code, order_id=order_id, member_id=member_id, product_id=product_id,
                             merchant_id=merchant_id, kind=kind, face_value_fen=face_value_fen, status="ISSUED",
                             valid_from=now, valid_until=valid_until, created_at=now)
    return codes


async def void_for_order(order_id: int) -> int:
    """Voids the unused vouchers of a refunded order; returns how many were used (then the caller refuses).
    The vouchers are locked first: a write-off in flight is waited for, and then seen."""
    ids = await column(Voucher.filter(order_id=order_id), "id")
    locked = await locks.rows(Rank.VOUCHER, Voucher, ids)
    used = sum(1 for v in locked if v.status == "USED")
    if used:
        return used
    await Voucher.filter(order_id=order_id, status="ISSUED").update(status="VOID")
    return 0


def status_at(status: str, valid_until: datetime, now: datetime | None = None) -> str:
    """The status a person sees: an ISSUED voucher past its validity is EXPIRED."""
    if status == "ISSUED" and valid_until <= (now or clock.now()):
        return "EXPIRED"
    return status


def usable_at(info: VoucherInfo, merchant_id: int) -> bool:
    """Whether staff of this merchant may see and write off the voucher (whatever its status)."""
    return info.kind not in STAFF_KINDS_EXCLUDED and info.merchant_id in (None, merchant_id)


# --- reading (the member's own list, staff, DataLoaders) -----------------------------------------

_OWN_FIELDS = tuple(n for n in names(VoucherInfo) if n != "product_name")


async def _views(query: QuerySet[Voucher]) -> list[VoucherView]:
    rows = await query.values(*_OWN_FIELDS, product_name="product__name", merchant_code="merchant__code")
    return [VoucherView(record(VoucherInfo, r), r["merchant_code"]) for r in rows]


async def by_id(voucher_id: int) -> VoucherView | None:
    found = await _views(Voucher.filter(id=voucher_id))
    return found[0] if found else None


async def lookup_for_staff(merchant_id: int, text: str) -> VoucherView | None:
    """A typed code or a scanned QR payload, if staff of this merchant may write it off (in any status,
    so that they see why not); None otherwise: other merchants' vouchers are never shown."""
    code = code_from_scan(text)
    if not code or len(code) > 24 or hygiene.has_control(code):  # PostgreSQL refuses NUL in a query
        return None
    found = await _views(Voucher.filter(code=code))
    return found[0] if found and usable_at(found[0].info, merchant_id) else None


async def written_off_page(merchant_id: int, limit: int, after_id: int | None) -> list[VoucherView]:
    """Vouchers written off at a merchant, newest write-off first; the cursor is a voucher id."""
    query = Voucher.filter(used_merchant_id=merchant_id)
    if after_id is not None:
        anchor = await scalar(Voucher.filter(id=after_id, used_merchant_id=merchant_id), "used_at")
        if anchor is None:
            return []
        query = query.filter(Q(used_at__lt=anchor) | Q(used_at=anchor, id__lt=after_id))
    return await _views(query.order_by("-used_at", "-id").limit(limit))


async def member_page(member_id: int, limit: int, after_id: int | None, status: str | None = None) -> list[VoucherView]:
    """A member's vouchers, newest first, optionally in one shown status (EXPIRED: ISSUED past validity)."""
    query = Voucher.filter(member_id=member_id)
    if after_id is not None:
        query = query.filter(id__lt=after_id)
    if status == "ISSUED":
        query = query.filter(status="ISSUED", valid_until__gt=clock.now())
    elif status == "EXPIRED":
        query = query.filter(status="ISSUED", valid_until__lte=clock.now())
    elif status is not None:
        query = query.filter(status=status)
    return await _views(query.order_by("-id").limit(limit))


async def for_orders(order_ids: list[int]) -> list[list[VoucherView]]:
    """The vouchers of each order (a DataLoader's batch function: one query for a page of orders)."""
    if not order_ids:
        return []
    found: dict[int, list[VoucherView]] = {}
    for view in await _views(Voucher.filter(order_id__in=order_ids).order_by("id")):
        found.setdefault(view.info.order_id, []).append(view)
    return [found.get(i, []) for i in order_ids]


# --- writing off (merchant staff) ----------------------------------------------------------------

async def write_off(staff_id: int, merchant_id: int, text: str, idempotency_key: str) -> VoucherView:
    """Writes off (核销) a voucher at the staff's merchant: one conditional UPDATE decides (its row
    count), so that a code is used once however many tills try it at the same moment. When it changes
    nothing, a read says exactly why (NOT_FOUND, VOUCHER_OTHER_MERCHANT, VOUCHER_VOID,
    VOUCHER_ALREADY_USED, VOUCHER_EXPIRED) and nothing is recorded. A repeat of the key returns the
    first result."""
    key = idempotency.check_key(idempotency_key, ["idempotencyKey"])
    code = code_from_scan(text)
    if not code or len(code) > 24 or hygiene.has_control(code):  # PostgreSQL refuses NUL in a query
        raise DomainError(ErrorCode.NOT_FOUND, "no voucher has this code", ["code"])
    digest = idempotency.request_hash("voucherWriteOff", {"code": code})
    now = clock.now()
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, f"staff:{staff_id}", key, digest, ["idempotencyKey"])
        if stored is not None:
            voucher_id = int(stored["voucher_id"])
        else:
            usable = Voucher.filter(Q(merchant_id=merchant_id) | Q(merchant_id__isnull=True), code=code,
                                    status="ISSUED", valid_until__gt=now, kind__not_in=STAFF_KINDS_EXCLUDED)
            if not await usable.update(status="USED", used_at=now, used_by_id=staff_id, used_merchant_id=merchant_id):
                raise await _why_not(code, merchant_id, now)
            voucher_id = await scalar(Voucher.filter(code=code), "id")
            await settlement.voucher_written_off(tx, voucher_id, now)
            await audit(tx, ("staff", str(staff_id)), "voucher.write_off", "voucher", str(voucher_id),
                        {"code": code, "merchant_id": merchant_id})
            await idempotency.remember(tx, record_id, {"voucher_id": voucher_id})
    view = await by_id(voucher_id)
    assert view is not None, "a written-off voucher is never deleted"
    return view


async def _why_not(code: str, merchant_id: int, now: datetime) -> DomainError:
    row: dict[str, Any] | None = await Voucher.filter(code=code).first().values(
        "merchant_id", "kind", "status", "valid_until", "used_at")
    if row is None:
        return DomainError(ErrorCode.NOT_FOUND, "no voucher has this code", ["code"])
    if row["merchant_id"] not in (None, merchant_id):
        return DomainError(ErrorCode.VOUCHER_OTHER_MERCHANT, "this voucher is for another merchant", ["code"])
    if row["kind"] in STAFF_KINDS_EXCLUDED:
        return DomainError(ErrorCode.VOUCHER_OTHER_MERCHANT, "a parking coupon is used at the car park exit", ["code"])
    if row["status"] == "VOID":
        return DomainError(ErrorCode.VOUCHER_VOID, "this voucher was voided (its order was refunded)", ["code"])
    if row["status"] == "USED":
        return DomainError(ErrorCode.VOUCHER_ALREADY_USED,
                           f"this voucher was written off at {row['used_at'].astimezone(clock.SHANGHAI):%Y-%m-%d %H:%M}",
                           ["code"])
    if row["valid_until"] <= now:
        return DomainError(ErrorCode.VOUCHER_EXPIRED, "this voucher has expired", ["code"])
    raise AssertionError(f"voucher {code} is usable yet the write-off changed nothing")


@dataclass(frozen=True)
class WriteOffSummary:
    day: date
    count: int
    face_value_fen: int


async def write_off_summary(merchant_id: int, day: date | None) -> WriteOffSummary:
    """How many vouchers a merchant wrote off on an Asia/Shanghai day (default today), and their face value."""
    day = day or clock.business_day(clock.now())
    start, end = clock.day_bounds(day)
    count, total = await sql.write_off_summary(merchant_id, start, end)
    return WriteOffSummary(day, count, total)
