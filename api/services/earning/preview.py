"""pointsEarnPreview: what a receipt would earn now, with the member's current counters; books nothing."""
from __future__ import annotations

from datetime import datetime

from api.config import settings
from api.models import Member, Purchase, Tier
from api.services import clock, merchants
from api.services.earning import counters
from api.services.earning import rules as R
from api.services.earning.cache import active_rules
from api.services.earning.engine import with_segments
from api.services.errors import DomainError, ErrorCode
from api.services.integrations import IntegrationIdentity, require_merchant


async def preview_receipt(member_id: int, merchant_code: str, amount_fen: int, at: datetime | None,
                          identity: IntegrationIdentity | None = None) -> R.Outcome:
    """Checks the input (and, for an integration, that it may act for the merchant), then evaluates
    the receipt without booking anything."""
    if not 0 < amount_fen <= settings().max_receipt_fen:
        raise DomainError(ErrorCode.INVALID_INPUT, "amountFen must be positive and below the ceiling", ["amountFen"])
    merchant = await merchants.by_code(merchant_code, ["merchantCode"])
    if identity is not None:
        require_merchant(identity, merchant.id, ["merchantCode"])
    outcome = await preview_purchase(member_id, merchant.code, merchant.category, amount_fen,
                                     clock.to_utc(at) if at else clock.now())
    if outcome is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such member", ["memberId"])
    return outcome


async def preview_purchase(member_id: int, merchant_code: str, category: str | None, amount_fen: int,
                           at: datetime) -> R.Outcome | None:
    """What a receipt would earn at `at` (None when there is no such member)."""
    member = await Member.filter(id=member_id).only("id", "birthday").first()
    if member is None:
        return None
    tier = await Tier.get(members__id=member_id)
    facts = R.Facts("PURCHASE", at, tier.code, tier.earn_multiplier_percent, amount_fen, merchant_code, category,
                    member.birthday, first_purchase=not await Purchase.exists(member_id=member_id))
    rules = await active_rules("PURCHASE")
    facts = await with_segments(member_id, rules, facts)
    candidates = [r for r in rules if R.matches(r, facts)]
    return R.evaluate(candidates, facts, await counters.usage(member_id, candidates, at))
