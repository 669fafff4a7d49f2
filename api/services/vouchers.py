"""Vouchers: the codes the points mall issues (merchant vouchers, coupons, parking coupons, pickups
for goods), and their write-off (核销) by merchant staff."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from api.db import Tx, fetch, transaction
from api.services import clock, idempotency
from api.services.audit import audit
from api.services.errors import DomainError, ErrorCode

# 16 characters of an alphabet without 0/O, 1/I: 80 bits, read aloud or typed without mistakes.
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_LENGTH = 16
QR_PREFIX = "MPV1:"


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


async def issue(tx: Tx, *, order_id: int, member_id: int, product_id: int, kind: str, merchant_id: int | None,
                face_value_fen: int | None, validity_days: int, quantity: int, now: datetime) -> list[str]:
    """Issues one voucher per unit of an order, in the order's transaction. Returns the codes."""
    codes = [new_code() for _ in range(quantity)]
    valid_until = now + timedelta(days=validity_days)
    for code in codes:
        await tx.execute(
            "INSERT INTO voucher (code, order_id, member_id, product_id, merchant_id, kind, face_value_fen, status,"
            " valid_from, valid_until, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'ISSUED', $8, $9, $8)",
            code, order_id, member_id, product_id, merchant_id, kind, face_value_fen, now, valid_until,
        )
    return codes


async def void_for_order(tx: Tx, order_id: int) -> int:
    """Voids the unused vouchers of a refunded order; returns how many were used (then the caller refuses).
    The vouchers are locked first: a write-off in flight is waited for, and then seen."""
    rows = await tx.fetch("SELECT status FROM voucher WHERE order_id = $1" + (" FOR UPDATE" if tx.postgres else ""),
                          order_id)
    used = sum(1 for r in rows if r["status"] == "USED")
    if used:
        return used
    await tx.execute("UPDATE voucher SET status = 'VOID' WHERE order_id = $1 AND status = 'ISSUED'", order_id)
    return 0


def status_at(status: str, valid_until: datetime, now: datetime | None = None) -> str:
    """The status a person sees: an ISSUED voucher past its validity is EXPIRED."""
    if status == "ISSUED" and valid_until <= (now or clock.now()):
        return "EXPIRED"
    return status


# --- reading and writing off (merchant staff), and the member's own list --------------------------

_SELECT = (
    "SELECT v.id, v.code, v.order_id, v.member_id, v.product_id, p.name AS product_name, v.merchant_id, v.kind,"
    " v.face_value_fen, v.status, v.valid_from, v.valid_until, v.used_at, v.used_merchant_id,"
    " m.code AS merchant_code"
    " FROM voucher v JOIN product p ON p.id = v.product_id LEFT JOIN merchant m ON m.id = v.merchant_id"
)
STAFF_KINDS_EXCLUDED = ("PARKING_COUPON",)  # the car park's system uses these, never a till


@dataclass(frozen=True)
class VoucherView:
    """A voucher as shown: its record and the code of the merchant where it can be used (None: anywhere)."""
    info: VoucherInfo
    merchant_code: str | None


def _view(row) -> VoucherView:
    t = clock.parse_db_time
    info = VoucherInfo(
        id=int(row["id"]), code=row["code"], order_id=int(row["order_id"]), member_id=int(row["member_id"]),
        product_id=int(row["product_id"]), product_name=row["product_name"], merchant_id=row["merchant_id"],
        kind=row["kind"], face_value_fen=None if row["face_value_fen"] is None else int(row["face_value_fen"]),
        status=row["status"], valid_from=t(row["valid_from"]), valid_until=t(row["valid_until"]),
        used_at=t(row["used_at"]), used_merchant_id=row["used_merchant_id"],
    )
    return VoucherView(info, row["merchant_code"])


def usable_at(info: VoucherInfo, merchant_id: int) -> bool:
    """Whether staff of this merchant may see and write off the voucher (whatever its status)."""
    return info.kind not in STAFF_KINDS_EXCLUDED and info.merchant_id in (None, merchant_id)


async def by_id(voucher_id: int) -> VoucherView | None:
    rows = await fetch(_SELECT + " WHERE v.id = $1", voucher_id)
    return _view(rows[0]) if rows else None


async def lookup_for_staff(merchant_id: int, text: str) -> VoucherView | None:
    """A typed code or a scanned QR payload, if staff of this merchant may write it off (in any status,
    so that they see why not); None otherwise: other merchants' vouchers are never shown."""
    code = code_from_scan(text)
    if not code or len(code) > 24:
        return None
    rows = await fetch(_SELECT + " WHERE v.code = $1", code)
    view = _view(rows[0]) if rows else None
    return view if view is not None and usable_at(view.info, merchant_id) else None


async def write_off(staff_id: int, merchant_id: int, text: str, idempotency_key: str) -> VoucherView:
    """Writes off (核销) a voucher at the staff's merchant: one conditional UPDATE decides, so that a
    code is used once however many tills try it at the same moment. When it changes nothing, a read
    says exactly why (NOT_FOUND, VOUCHER_OTHER_MERCHANT, VOUCHER_VOID, VOUCHER_ALREADY_USED,
    VOUCHER_EXPIRED) and nothing is recorded. A repeat of the key returns the first result."""
    key = idempotency.check_key(idempotency_key, ["idempotencyKey"])
    code = code_from_scan(text)
    if not code or len(code) > 24:
        raise DomainError(ErrorCode.NOT_FOUND, "no voucher has this code", ["code"])
    digest = idempotency.request_hash("voucherWriteOff", {"code": code})
    now = clock.now()
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, f"staff:{staff_id}", key, digest, ["idempotencyKey"])
        if stored is not None:
            voucher_id = int(stored["voucher_id"])
        else:
            voucher_id = await tx.fetchval(
                "UPDATE voucher SET status = 'USED', used_at = $1, used_by_id = $2, used_merchant_id = $3"
                " WHERE code = $4 AND status = 'ISSUED' AND valid_until > $1"
                " AND (merchant_id = $3 OR merchant_id IS NULL) AND kind <> 'PARKING_COUPON' RETURNING id",
                now, staff_id, merchant_id, code,
            )
            if voucher_id is None:
                raise await _why_not(tx, code, merchant_id, now)
            await audit(tx, ("staff", str(staff_id)), "voucher.write_off", "voucher", str(voucher_id),
                        {"code": code, "merchant_id": merchant_id})
            await idempotency.remember(tx, record_id, {"voucher_id": voucher_id})
    view = await by_id(voucher_id)
    assert view is not None, "a written-off voucher is never deleted"
    return view


async def _why_not(tx, code: str, merchant_id: int, now: datetime) -> DomainError:
    row = await tx.fetchrow("SELECT merchant_id, kind, status, valid_until, used_at FROM voucher WHERE code = $1", code)
    if row is None:
        return DomainError(ErrorCode.NOT_FOUND, "no voucher has this code", ["code"])
    if row["merchant_id"] not in (None, merchant_id):
        return DomainError(ErrorCode.VOUCHER_OTHER_MERCHANT, "this voucher is for another merchant", ["code"])
    if row["kind"] in STAFF_KINDS_EXCLUDED:
        return DomainError(ErrorCode.VOUCHER_OTHER_MERCHANT, "a parking coupon is used at the car park exit", ["code"])
    if row["status"] == "VOID":
        return DomainError(ErrorCode.VOUCHER_VOID, "this voucher was voided (its order was refunded)", ["code"])
    if row["status"] == "USED":
        used_at = clock.parse_db_time(row["used_at"])
        return DomainError(ErrorCode.VOUCHER_ALREADY_USED,
                           f"this voucher was written off at {used_at.astimezone(clock.SHANGHAI):%Y-%m-%d %H:%M}",
                           ["code"])
    if clock.parse_db_time(row["valid_until"]) <= now:
        return DomainError(ErrorCode.VOUCHER_EXPIRED, "this voucher has expired", ["code"])
    raise AssertionError(f"voucher {code} is usable yet the write-off changed nothing")


async def written_off_page(merchant_id: int, limit: int, after_id: int | None) -> list[VoucherView]:
    """Vouchers written off at a merchant, newest write-off first; the cursor is a voucher id."""
    where = "v.used_merchant_id = $1"
    args: list = [merchant_id]
    if after_id is not None:
        where += (" AND EXISTS (SELECT 1 FROM voucher a WHERE a.id = $2 AND a.used_merchant_id = $1"
                  " AND (v.used_at < a.used_at OR (v.used_at = a.used_at AND v.id < a.id)))")
        args.append(after_id)
    rows = await fetch(_SELECT + f" WHERE {where} ORDER BY v.used_at DESC, v.id DESC LIMIT ${len(args) + 1}",
                       *args, limit)
    return [_view(r) for r in rows]


@dataclass(frozen=True)
class WriteOffSummary:
    day: date
    count: int
    face_value_fen: int


async def write_off_summary(merchant_id: int, day: date | None) -> WriteOffSummary:
    """How many vouchers a merchant wrote off on an Asia/Shanghai day (default today), and their face value."""
    day = day or clock.business_day(clock.now())
    start, end = clock.day_bounds(day)
    rows = await fetch(
        "SELECT COUNT(*) AS n, COALESCE(SUM(face_value_fen), 0) AS total FROM voucher"
        " WHERE used_merchant_id = $1 AND used_at >= $2 AND used_at < $3", merchant_id, start, end,
    )
    return WriteOffSummary(day, int(rows[0]["n"]), int(rows[0]["total"]))


async def member_page(member_id: int, limit: int, after_id: int | None, status: str | None = None) -> list[VoucherView]:
    """A member's vouchers, newest first, optionally in one shown status (EXPIRED: ISSUED past validity)."""
    where, args = "v.member_id = $1 AND v.id < $2", [member_id, after_id if after_id is not None else 2**62]
    if status == "ISSUED":
        where += " AND v.status = 'ISSUED' AND v.valid_until > $3"
        args.append(clock.now())
    elif status == "EXPIRED":
        where += " AND v.status = 'ISSUED' AND v.valid_until <= $3"
        args.append(clock.now())
    elif status is not None:
        where += " AND v.status = $3"
        args.append(status)
    rows = await fetch(_SELECT + f" WHERE {where} ORDER BY v.id DESC LIMIT ${len(args) + 1}", *args, limit)
    return [_view(r) for r in rows]


async def for_orders(order_ids: list[int]) -> list[list[VoucherView]]:
    """The vouchers of each order (a DataLoader's batch function: one query for a page of orders)."""
    if not order_ids:
        return []
    rows = await fetch(_SELECT + f" WHERE v.order_id IN ({', '.join(str(int(i)) for i in order_ids)}) ORDER BY v.id")
    found: dict[int, list[VoucherView]] = {}
    for row in rows:
        found.setdefault(int(row["order_id"]), []).append(_view(row))
    return [found.get(i, []) for i in order_ids]
