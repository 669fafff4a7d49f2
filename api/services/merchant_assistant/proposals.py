"""Vouchers a merchant proposes for the points mall (商户提报券). A merchant's MANAGER proposes one
(face value, quantity, validity, points price, settlement price); an operator with MARKETING (or ADMIN)
approves it, which creates the MERCHANT_VOUCHER product for that merchant, on sale at once with the
proposed quantity as its stock, or rejects it. A decided proposal never changes again: the conditional
UPDATE from PENDING decides, so two approvers at once create one product. Audited."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from api.db import transaction
from api.models import Merchant, MerchantVoucherProposal
from api.services import clock, idempotency, text
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode
from api.services.mall import catalogue
from api.services.merchant_assistant import team

STATUSES = ("PENDING", "APPROVED", "REJECTED")
MAX_FACE_VALUE_FEN = 10_000_000  # ¥100,000 a voucher
MAX_QUANTITY = 100_000
MAX_VALIDITY_DAYS = 366
MAX_POINTS_PRICE = catalogue.MAX_PRICE
MAX_NOTE = 200
MAX_ID = 2**31 - 1  # the tables' ids are 32-bit: a larger id from outside names nothing


def known_id(value: int | None) -> bool:
    """Whether an id from outside (a global ID's key, a cursor) can name a row at all."""
    return value is not None and 0 < value <= MAX_ID


@dataclass(frozen=True)
class ProposalTerms:
    name: str
    face_value_fen: int
    quantity: int
    validity_days: int
    points_price: int
    settlement_price_fen: int  # what the mall pays the merchant per voucher written off


@dataclass(frozen=True)
class ProposalInfo:
    id: int
    merchant_id: int
    proposed_by_id: int
    name: str
    face_value_fen: int
    quantity: int
    validity_days: int
    points_price: int
    settlement_price_fen: int
    status: str
    decided_by_id: int | None
    decided_at: datetime | None
    note: str | None
    product_id: int | None
    created_at: datetime

    def public(self) -> dict:
        """What the audit trail keeps of a proposal."""
        return {k: v for k, v in asdict(self).items() if k not in ("created_at", "decided_at")}


def info_of(p: MerchantVoucherProposal) -> ProposalInfo:
    return ProposalInfo(p.id, p.merchant_id, p.proposed_by_id, p.name, int(p.face_value_fen), p.quantity,
                        p.validity_days, int(p.points_price), int(p.settlement_price_fen), p.status, p.decided_by_id,
                        p.decided_at, p.note, p.product_id, p.created_at)


def _bounded(value: int, low: int, high: int, field: str) -> int:
    if not isinstance(value, int) or not low <= value <= high:
        raise DomainError(ErrorCode.INVALID_INPUT, f"{field} must be {low} to {high}", ["input", field])
    return value


def check_terms(t: ProposalTerms) -> ProposalTerms:
    """The terms, bounded and clean; INVALID_INPUT naming the first field that is not."""
    name = text.name(t.name, ["input", "name"], 128)
    face = _bounded(t.face_value_fen, 1, MAX_FACE_VALUE_FEN, "faceValueFen")
    return ProposalTerms(
        name=name, face_value_fen=face, quantity=_bounded(t.quantity, 1, MAX_QUANTITY, "quantity"),
        validity_days=_bounded(t.validity_days, 1, MAX_VALIDITY_DAYS, "validityDays"),
        points_price=_bounded(t.points_price, 1, MAX_POINTS_PRICE, "pointsPrice"),
        settlement_price_fen=_bounded(t.settlement_price_fen, 0, face, "settlementPriceFen"),
    )


async def propose(staff_id: int, terms: ProposalTerms, idempotency_key: str | None = None) -> ProposalInfo:
    """A PENDING proposal of the manager's own merchant (managers only: STAFF_ROLE_REQUIRED for a
    clerk); audited. With an idempotency key, a repeat returns the first proposal."""
    manager = await team.require_manager(staff_id)
    terms = check_terms(terms)
    key = idempotency.check_key(idempotency_key, ["input", "idempotencyKey"]) if idempotency_key is not None else None
    async with transaction() as tx:
        record_id = None
        if key is not None:
            digest = idempotency.request_hash("merchantVoucherPropose", asdict(terms))
            record_id, stored = await idempotency.claim(tx, f"staff:{staff_id}", key, digest, ["input", "idempotencyKey"])
            if stored is not None:
                return await _get_or_fail(int(stored["proposal_id"]))
        if not await Merchant.filter(id=manager.merchant.id, active=True).exists():
            raise DomainError(ErrorCode.MERCHANT_INACTIVE, "this merchant is not active in the mall", None)
        created = await MerchantVoucherProposal.create(merchant_id=manager.merchant.id, proposed_by_id=staff_id,
                                                       status="PENDING", created_at=clock.now(), **asdict(terms))
        proposal = info_of(created)
        await audit(tx, team.actor(staff_id), "voucher_proposal.create", "merchant_voucher_proposal",
                    str(proposal.id), None, after=proposal.public())
        if record_id is not None:
            await idempotency.remember(tx, record_id, {"proposal_id": proposal.id})
    return proposal


async def _get_or_fail(proposal_id: int) -> ProposalInfo:
    found = await get(proposal_id)
    assert found is not None, "proposals are never deleted"
    return found


async def decide(actor: Actor, operator_id: int, proposal_id: int, approve: bool, note: str | None = None) -> ProposalInfo:
    """Approves (creates the product, once) or rejects a PENDING proposal. NOT_FOUND for an unknown id;
    APPROVAL_ALREADY_DECIDED for one decided before (approved or rejected); MERCHANT_INACTIVE when
    approving for a merchant that left the mall. Audited with before and after."""
    field = ["input", "proposalId"]
    note = text.clean(note, ["input", "note"], max_length=MAX_NOTE) if note is not None and note.strip() else None
    now = clock.now()
    async with transaction() as tx:
        found = await MerchantVoucherProposal.get_or_none(id=proposal_id) if known_id(proposal_id) else None
        if found is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such voucher proposal", field)
        before = info_of(found)
        if before.status != "PENDING":
            raise DomainError(ErrorCode.APPROVAL_ALREADY_DECIDED, f"this proposal is already {before.status}", field)
        product_id = None
        if approve:
            if not await Merchant.filter(id=before.merchant_id, active=True).exists():
                raise DomainError(ErrorCode.MERCHANT_INACTIVE, "this merchant is not active in the mall", field)
            product = await catalogue.create_product(actor, catalogue.ProductData(
                kind="MERCHANT_VOUCHER", name=before.name, merchant_id=before.merchant_id,
                face_value_fen=before.face_value_fen, validity_days=before.validity_days,
                points_price=before.points_price, cash_price_fen=0, status="ACTIVE"), before.quantity)
            product_id = product.id
        status = "APPROVED" if approve else "REJECTED"
        changed = await MerchantVoucherProposal.filter(id=proposal_id, status="PENDING").update(
            status=status, decided_by_id=operator_id, decided_at=now, note=note, product_id=product_id)
        if not changed:  # another operator decided it in the meantime: this transaction (and product) goes
            raise DomainError(ErrorCode.APPROVAL_ALREADY_DECIDED, "this proposal was decided just now", field)
        after = await _get_or_fail(proposal_id)
        await audit(tx, actor, f"voucher_proposal.{status.lower()}", "merchant_voucher_proposal", str(proposal_id),
                    None, before=before.public(), after=after.public())
    return after


async def get(proposal_id: int) -> ProposalInfo | None:
    if not known_id(proposal_id):
        return None
    found = await MerchantVoucherProposal.get_or_none(id=proposal_id)
    return info_of(found) if found is not None else None


async def page(limit: int, after_id: int | None, *, merchant_id: int | None = None,
               status: str | None = None) -> list[ProposalInfo]:
    """Proposals oldest first (the operators' queue), optionally of one merchant and one status."""
    if after_id is not None and not 0 <= after_id < MAX_ID:
        return []  # past the last possible id
    query = MerchantVoucherProposal.filter(id__gt=after_id or 0)
    if merchant_id is not None:
        query = query.filter(merchant_id=merchant_id)
    if status is not None:
        query = query.filter(status=status)
    return [info_of(p) for p in await query.order_by("id").limit(limit)]


async def operator_page(limit: int, after_id: int | None, status: str | None,
                        merchant_code: str | None) -> list[ProposalInfo]:
    """The operators' list: an unknown merchant code has no proposals."""
    merchant_id = None
    if merchant_code is not None:
        found = await Merchant.filter(code=merchant_code.strip()).first().values("id") \
            if not text.has_control(merchant_code) else None
        if found is None:
            return []
        merchant_id = int(found["id"])
    return await page(limit, after_id, merchant_id=merchant_id, status=status)
