"""Invites: every member has an invite code; a new member may sign up with one. Both are rewarded
(INVITE_ACCEPTED rules, with `inviteRole` INVITER or INVITEE) when the invitee makes a first purchase,
once per invitee; a per-inviter monthly cap is the INVITER rule's monthly points cap."""
from __future__ import annotations

import logging
import secrets

from api.db import Tx, transaction
from api.models import Member, MemberInvite
from api.services import clock, ledger
from api.services.earning import sql
from api.services.earning.engine import apply, facts_for
from api.services.errors import DomainError, ErrorCode

log = logging.getLogger(__name__)
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
CODE_LENGTH = 8
REWARD_BATCH = 1000


def _new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(code: str | None) -> str:
    return (code or "").strip().upper()


async def code_of(member_id: int) -> str:
    """The member's invite code, created the first time it is asked for."""
    for _ in range(6):
        invite = await MemberInvite.filter(member_id=member_id).only("id", "code").first()
        if invite is not None:
            return invite.code
        async with transaction() as tx:  # a taken code inserts nothing: read and try again
            await tx.execute(sql.INVITE_INSERT, member_id, _new_code(), None, clock.now())
    raise RuntimeError("could not allocate an invite code")


async def resolve(code: str | None, phone: str, tx: Tx | None = None) -> int | None:
    """The inviter of a sign-up with `code` (None without a code). Refuses an unknown code and a
    member's own code (the same phone); in the login's transaction, so a refusal rolls it back. (`tx`
    is not needed: the models read on the open transaction's connection; callers may still pass it.)"""
    code = normalize_code(code)
    if not code:
        return None
    invite = await MemberInvite.filter(code=code).only("id", "member_id").first()
    if invite is None:
        raise DomainError(ErrorCode.INVITE_CODE_INVALID, "unknown invite code", ["inviteCode"])
    if await Member.filter(id=invite.member_id, phone=phone).exists():
        raise DomainError(ErrorCode.INVITE_CODE_OWN, "you cannot use your own invite code", ["inviteCode"])
    return invite.member_id


async def attach(tx: Tx, member_id: int, inviter_id: int) -> None:
    """Records who invited a member who has just registered (in the registration's transaction)."""
    for _ in range(5):
        if await tx.fetchval(sql.INVITE_INSERT, member_id, _new_code(), inviter_id, clock.now()) is not None:
            return
    raise RuntimeError("could not allocate an invite code")


async def reward_qualified(invite_ids: list[int]) -> int:
    """Books the rewards of invites whose invitee made a first purchase. Each invite once (a
    conditional update decides); failures are logged and left for the scheduled run."""
    done = 0
    for invite_id in invite_ids:
        try:
            async with transaction() as tx:
                done += await _reward(tx, invite_id)
        except Exception:  # noqa: BLE001 - the purchase stands; the scheduled run retries
            log.exception("invite %s: reward failed; the scheduled run will retry", invite_id)
    return done


async def reward_due() -> int:
    due = await MemberInvite.filter(purchase_id__isnull=False, rewarded_at__isnull=True) \
        .order_by("id").limit(REWARD_BATCH).only("id")
    return await reward_qualified([invite.id for invite in due])


async def _reward(tx: Tx, invite_id: int) -> int:
    invite = await MemberInvite.get_or_none(id=invite_id, rewarded_at__isnull=True, purchase_id__isnull=False)
    if invite is None or invite.inviter_id is None:
        return 0
    now = clock.now()
    invitee, inviter = invite.member_id, invite.inviter_id
    accounts: dict[int, ledger.LockedAccount] = {}
    for member_id in sorted((invitee, inviter)):  # lock order: member id
        acct = await ledger.lock_account(tx, member_id, now)
        assert acct is not None, "an invite names existing members"
        accounts[member_id] = acct
    if not await MemberInvite.filter(id=invite_id, rewarded_at__isnull=True).update(rewarded_at=now):
        return 0
    for member_id, role, reason in ((invitee, "INVITEE", "受邀首购奖励"), (inviter, "INVITER", "邀请好友奖励")):
        acct = accounts[member_id]
        await ledger.expire_account(tx, acct, now)
        facts = await facts_for(acct, "INVITE_ACCEPTED", now, invite_role=role)
        await apply(tx, acct, facts, reason=reason, source_type="invite", source_ref=str(invite_id),
                    occurred_at=now, now=now)
    return 1


async def invited_count(member_id: int) -> int:
    return await MemberInvite.filter(inviter_id=member_id).count()
