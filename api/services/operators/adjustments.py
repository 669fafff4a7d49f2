"""Operators' point adjustments, with a second pair of eyes on large ones (maker-checker).

A SERVICE operator's adjustment above `adjust_approval_threshold` points either way, or one that would
take the operator's adjustments of the business day (Asia/Shanghai) above `adjust_daily_limit`, is not
booked: it becomes a PENDING approval. Another operator with FINANCE or ADMIN (never the requester)
approves it, which books it exactly once, or rejects it. ADMIN's adjustments are booked at once.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from api.config import settings
from api.db import Tx, transaction
from api.locks import Rank, row
from api.models import Member, Operator, PointsAdjustApproval, PointsEntry
from api.services import clock, idempotency, ledger
from api.services.audit import audit
from api.services.errors import DomainError, ErrorCode
from api.services.operators import roles as R


@dataclass(frozen=True)
class AdjustResult:
    entry_id: int | None
    member_id: int
    points: int
    balance_after: int | None
    approval_id: int | None = None  # set when the adjustment waits for approval (nothing booked yet)


@dataclass(frozen=True)
class ApprovalInfo:
    id: int
    requester_id: int
    member_id: int
    points: int
    reason: str
    status: str  # PENDING APPROVED REJECTED
    decided_by_id: int | None
    decided_at: datetime | None
    note: str | None
    entry_id: int | None
    created_at: datetime

    def public(self) -> dict:
        return {"status": self.status, "points": self.points, "member_id": self.member_id,
                "requester_id": self.requester_id, "decided_by_id": self.decided_by_id, "entry_id": self.entry_id,
                "note": self.note}


def _approval(a: PointsAdjustApproval) -> ApprovalInfo:
    return ApprovalInfo(a.id, a.requester_id, a.member_id, int(a.points), a.reason, a.status, a.decided_by_id,
                        a.decided_at, a.note, a.entry_id, a.created_at)


async def _book(tx: Tx, operator_id: int, member_id: int, points: int, reason: str, now: datetime) -> ledger.Entry:
    """Positive adds a lot (expiring under the policy); negative takes points like a spend and may not
    exceed what is spendable."""
    acct = await ledger.lock_account(tx, member_id)
    if acct is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such member", ["memberId"])
    await ledger.expire_account(tx, acct, now)
    text = f"人工调整：{reason}"
    if points > 0:
        return await ledger.credit(tx, acct, points=points, kind="ADJUST", reason=text, source_type="operator",
                                   source_ref=str(operator_id), occurred_at=now, operator_id=operator_id)
    if acct.spendable < -points:
        raise DomainError(ErrorCode.INSUFFICIENT_POINTS, f"cannot take {-points} points: {ledger.shortfall(acct)}",
                          ["points"])
    return await ledger.debit(tx, acct, points=-points, kind="ADJUST", reason=text, source_type="operator",
                              source_ref=str(operator_id), occurred_at=now, operator_id=operator_id)


async def _adjusted_today(operator_id: int, now: datetime) -> int:
    """Points this operator has adjusted (either way) in the business day of `now`."""
    start = clock.day_start(now)
    rows = await PointsEntry.filter(operator_id=operator_id, kind="ADJUST", occurred_at__gte=start) \
        .values_list("points", flat=True)
    return sum(abs(int(str(p))) for p in rows)


async def adjust_points(operator_id: int, member_id: int, points: int, reason: str, idempotency_key: str,
                        roles: tuple[str, ...] = (R.ADMIN,)) -> AdjustResult:
    """An operator's correction, audited with the reason. For a SERVICE operator (not ADMIN), a large one
    becomes an approval request instead (result.approval_id); a repeat returns the first result."""
    key = idempotency.check_key(idempotency_key, ["idempotencyKey"])
    reason = (reason or "").strip()
    if not 2 <= len(reason) <= 200:
        raise DomainError(ErrorCode.INVALID_INPUT, "a reason of 2 to 200 characters is required", ["reason"])
    cfg = settings()
    if points == 0 or abs(points) > cfg.max_adjust_points:
        raise DomainError(ErrorCode.INVALID_INPUT,
                          f"points must be non-zero and at most {cfg.max_adjust_points} either way", ["points"])
    digest = idempotency.request_hash("pointsAdjust", {"memberId": member_id, "points": points, "reason": reason})
    now = clock.now()
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, f"operator:{operator_id}", key, digest, ["idempotencyKey"])
        if stored is not None:
            return AdjustResult(**stored)
        assert record_id is not None  # this call owns the key
        if R.needs_approval(roles):
            # The operator's row is locked so that two adjustments of one operator at once cannot both
            # fit under the daily limit.
            await row(Rank.OPERATOR, Operator, operator_id)
            today = await _adjusted_today(operator_id, now)
            if abs(points) > cfg.adjust_approval_threshold or today + abs(points) > cfg.adjust_daily_limit:
                result = await _request(tx, operator_id, member_id, points, reason, now)
                await idempotency.remember(tx, record_id, asdict(result))
                return result
        entry = await _book(tx, operator_id, member_id, points, reason, now)
        result = AdjustResult(entry.id, member_id, points, entry.balance_after)
        await audit(tx, ("operator", str(operator_id)), "points.adjust", "member", str(member_id),
                    {"points": points, "reason": reason, "entry_id": entry.id})
        await idempotency.remember(tx, record_id, asdict(result))
    return result


async def _request(tx: Tx, operator_id: int, member_id: int, points: int, reason: str, now: datetime) -> AdjustResult:
    """Records the adjustment as a PENDING approval (the member must exist); audited."""
    if not await Member.filter(id=member_id).exists():
        raise DomainError(ErrorCode.NOT_FOUND, "no such member", ["memberId"])
    approval = await PointsAdjustApproval.create(requester_id=operator_id, member_id=member_id, points=points,
                                                 reason=reason, status="PENDING", created_at=now)
    info = _approval(approval)
    await audit(tx, ("operator", str(operator_id)), "points.adjust_request", "points_adjust_approval",
                str(approval.id), {"reason": reason}, after=info.public())
    return AdjustResult(None, member_id, points, None, approval.id)


async def decide(approver_id: int, approver_roles: tuple[str, ...], approval_id: int, approve: bool,
                 note: str | None) -> tuple[ApprovalInfo, int | None]:
    """Approves (books the adjustment, once) or rejects a PENDING request: (approval, entry id).
    Never the requester's own (APPROVAL_OWN_REQUEST); a decided one stays as it is
    (APPROVAL_ALREADY_DECIDED). The approval's row is locked, so racing approvers book it once."""
    if not R.approves(approver_roles):
        raise DomainError(ErrorCode.ROLE_NOT_GRANTABLE, "approving needs FINANCE or ADMIN", ["input", "approvalId"])
    note = (note or "").strip() or None
    if note is not None and len(note) > 200:
        raise DomainError(ErrorCode.INVALID_INPUT, "a note is at most 200 characters", ["input", "note"])
    now = clock.now()
    async with transaction() as tx:
        approval = await row(Rank.APPROVAL, PointsAdjustApproval, approval_id)
        if approval is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such approval request", ["input", "approvalId"])
        before = _approval(approval)
        if approval.requester_id == approver_id:
            raise DomainError(ErrorCode.APPROVAL_OWN_REQUEST, "another operator must decide your own request",
                              ["input", "approvalId"])
        if approval.status != "PENDING":
            raise DomainError(ErrorCode.APPROVAL_ALREADY_DECIDED, f"this request is already {approval.status}",
                              ["input", "approvalId"])
        entry_id = None
        if approve:
            try:
                entry = await _book(tx, approval.requester_id, approval.member_id, int(approval.points),
                                    approval.reason, now)
            except DomainError as err:
                raise DomainError(err.code, err.message, ["input", "approvalId"]) from None
            entry_id = entry.id
            await audit(tx, ("operator", str(approver_id)), "points.adjust", "member", str(approval.member_id),
                        {"points": int(approval.points), "reason": approval.reason, "entry_id": entry_id,
                         "approval_id": approval.id, "requested_by": approval.requester_id})
        status = "APPROVED" if approve else "REJECTED"
        await PointsAdjustApproval.filter(id=approval.id, status="PENDING").update(
            status=status, decided_by_id=approver_id, decided_at=now, note=note, entry_id=entry_id)
        after = _approval(await PointsAdjustApproval.get(id=approval.id))
        await audit(tx, ("operator", str(approver_id)), f"points.adjust_{status.lower()}", "points_adjust_approval",
                    str(approval.id), None, before=before.public(), after=after.public())
    return after, entry_id


async def get_approval(approval_id: int) -> ApprovalInfo | None:
    found = await PointsAdjustApproval.get_or_none(id=approval_id)
    return _approval(found) if found is not None else None


async def approvals_page(limit: int, after_id: int | None, status: str | None = None) -> list[ApprovalInfo]:
    """Requests oldest first (the queue), optionally of one status."""
    query = PointsAdjustApproval.filter(id__gt=after_id or 0)
    if status:
        query = query.filter(status=status)
    return [_approval(a) for a in await query.order_by("id").limit(limit)]
