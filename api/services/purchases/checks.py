"""What a receipt, a refund or a till payment is checked for before any transaction."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from api.config import settings
from api.services import clock, earning, idempotency, merchants, signing, text
from api.services.errors import DomainError, ErrorCode
from api.services.integrations import IntegrationIdentity, require_merchant

MAX_BATCH = 100
RECEIPT_MAX_AGE = timedelta(days=30)
CLOCK_SKEW = text.CLOCK_SKEW  # a till's clock may run 5 minutes ahead
MAX_PAY_POINTS = 10_000_000


def yuan(fen: int) -> str:
    return f"¥{fen // 100}.{fen % 100:02d}"


def scope_of(identity: IntegrationIdentity) -> str:
    return f"integration:{identity.key_id}"


@dataclass(frozen=True)
class PurchaseInput:
    member_code: str
    merchant_code: str
    receipt_no: str
    amount_fen: int
    occurred_at: datetime
    idempotency_key: str


@dataclass(frozen=True)
class PurchaseResult:
    purchase_id: int
    receipt_no: str
    amount_fen: int
    points_earned: int
    points_balance: int


def check_receipt_no(receipt_no: str) -> str:
    """1 to 64 characters, no control characters (PostgreSQL cannot store NUL; SQLite would)."""
    return text.identifier(receipt_no, "receiptNo", 64)


def check_key(idempotency_key: str) -> str:
    """The idempotency key of a till call: the common length rule, and no control characters."""
    key = idempotency.check_key(idempotency_key, ["idempotencyKey"])
    return text.identifier(key, "idempotencyKey", len(key))


def check_amount(amount_fen: int, field: str) -> None:
    ceiling = settings().max_receipt_fen
    if amount_fen <= 0:
        raise DomainError(ErrorCode.INVALID_INPUT, f"{field} must be positive (in fen)", [field])
    if amount_fen > ceiling:
        raise DomainError(ErrorCode.INVALID_INPUT, f"{field} is above the ceiling of {ceiling} fen", [field])


@dataclass(frozen=True)
class Checked:
    """A purchase whose input passed every check that needs no transaction."""

    scope: str
    key: str
    digest: str
    member_id: int
    merchant: merchants.MerchantInfo
    receipt_no: str
    amount_fen: int
    occurred_at: datetime
    plan: earning.PurchasePlan | None = None  # every tier's outcome; None: evaluate under the lock


async def check_purchase(identity: IntegrationIdentity, data: PurchaseInput, now: datetime) -> Checked:
    key = check_key(data.idempotency_key)
    receipt_no = check_receipt_no(data.receipt_no)
    check_amount(data.amount_fen, "amountFen")
    occurred_at = clock.to_utc(data.occurred_at, ["occurredAt"])
    if occurred_at > now + CLOCK_SKEW:
        raise DomainError(ErrorCode.INVALID_INPUT, "occurredAt is in the future", ["occurredAt"])
    if occurred_at < now - RECEIPT_MAX_AGE:
        raise DomainError(ErrorCode.INVALID_INPUT, "occurredAt is more than 30 days ago", ["occurredAt"])
    merchant = await merchants.active_by_code(data.merchant_code, ["merchantCode"])
    require_merchant(identity, merchant.id, ["merchantCode"])
    # An offline till uploads later: the purchase must lie within the code's lifetime (from its
    # issue, less signing.MEMBER_CODE_CLOCK_SKEW, to its expiry).
    member_id = signing.read_member_code(data.member_code, as_of=occurred_at)
    digest = idempotency.request_hash("purchaseRecord", {
        "memberCode": data.member_code, "merchantCode": data.merchant_code, "receiptNo": receipt_no,
        "amountFen": data.amount_fen, "occurredAt": occurred_at.isoformat(),
    })
    plan = await earning.purchase_plan(member_id, merchant.code, merchant.category, data.amount_fen, occurred_at)
    return Checked(scope_of(identity), key, digest, member_id, merchant, receipt_no, data.amount_fen, occurred_at,
                   plan)
