"""Finance's corrections (issue 12): a posting of kind ADJUSTMENT that moves money between the mall and a
merchant by hand — a disputed statement settled, a write-off the shop could not scan, a goodwill payment.
Like every posting it is never changed: a wrong adjustment is corrected by another one. It falls into the
merchant's next statement that is generated (or regenerated) after it, as any event does."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from api.db import transaction
from api.models import JournalEntry
from api.services import clock, idempotency, merchants, text
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode

MAX_AMOUNT_FEN = 100_000_000  # a million yuan either way is a typo


@dataclass(frozen=True)
class Adjustment:
    posting: str
    merchant_id: int
    amount_fen: int  # > 0: the mall owes the merchant more; < 0: the merchant owes the mall
    reason: str
    booked_at: datetime


async def post(actor: Actor, merchant_code: str, amount_fen: int, reason: str, idempotency_key: str) -> Adjustment:
    """One balanced posting: MALL → MERCHANT_PAYABLE for a positive amount, MERCHANT_RECEIVABLE → MALL for
    a negative one; audited with the reason. A repeat of the key returns the first adjustment; the same
    key with other input is IDEMPOTENCY_KEY_REUSED."""
    key = idempotency.check_key(idempotency_key, ["input", "idempotencyKey"])
    if amount_fen == 0 or abs(amount_fen) > MAX_AMOUNT_FEN:
        raise DomainError(ErrorCode.INVALID_INPUT, f"amountFen must be non-zero and at most {MAX_AMOUNT_FEN} either way",
                          ["input", "amountFen"])
    clean = text.name(reason, ["input", "reason"], 200)
    if len(clean) < 2:
        raise DomainError(ErrorCode.INVALID_INPUT, "a reason of 2 to 200 characters is required", ["input", "reason"])
    merchant = await merchants.by_code(merchant_code, ["input", "merchantCode"])
    digest = idempotency.request_hash("settlementAdjustmentPost",
                                      {"merchant": merchant.id, "amountFen": amount_fen, "reason": clean})
    now = clock.now()
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, f"{actor[0]}:{actor[1]}", key, digest, ["input", "idempotencyKey"])
        if stored is not None:
            return Adjustment(**{**stored, "booked_at": clock.to_utc(datetime.fromisoformat(stored["booked_at"]))})
        assert record_id is not None
        posting = f"adjustment:{record_id}"  # the claim's id: unique, and known before the row is written
        debit, credit = ("MALL", "MERCHANT_PAYABLE") if amount_fen > 0 else ("MERCHANT_RECEIVABLE", "MALL")
        await JournalEntry.create(posting=posting, kind="ADJUSTMENT", merchant_id=merchant.id, debit_account=debit,
                                  credit_account=credit, amount_fen=abs(amount_fen), points=0, booked_at=now)
        made = Adjustment(posting, merchant.id, amount_fen, clean, now)
        await audit(tx, actor, "settlement.adjustment_post", "merchant", str(merchant.id),
                    {"posting": posting, "amountFen": amount_fen, "reason": clean})
        await idempotency.remember(tx, record_id, asdict(made))
    return made
