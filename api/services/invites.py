"""Invites: every member has an invite code; a new member may sign up with one. Both are rewarded
(INVITE_ACCEPTED rules, with `inviteRole` INVITER or INVITEE) when the invitee makes a first purchase,
once per invitee; a per-inviter monthly cap is the INVITER rule's monthly points cap."""
from __future__ import annotations

import logging
import secrets

from api.db import Tx, fetch, transaction
from api.services import clock, earning, ledger
from api.services.errors import DomainError, ErrorCode

log = logging.getLogger(__name__)
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
CODE_LENGTH = 8


def _new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(code: str | None) -> str:
    return (code or "").strip().upper()


async def code_of(member_id: int) -> str:
    """The member's invite code, created the first time it is asked for."""
    rows = await fetch("SELECT code FROM member_invite WHERE member_id = $1", member_id)
    if rows:
        return rows[0]["code"]
    for _ in range(5):
        async with transaction() as tx:
            await tx.execute(
                "INSERT INTO member_invite (member_id, code, created_at) VALUES ($1, $2, $3)"
                " ON CONFLICT DO NOTHING", member_id, _new_code(), clock.now())
        rows = await fetch("SELECT code FROM member_invite WHERE member_id = $1", member_id)
        if rows:
            return rows[0]["code"]
    raise RuntimeError("could not allocate an invite code")


async def resolve(code: str | None, phone: str, tx: Tx | None = None) -> int | None:
    """The inviter of a sign-up with `code` (None without a code). Refuses an unknown code and a
    member's own code (the same phone); in the login's transaction, so a refusal rolls it back."""
    code = normalize_code(code)
    if not code:
        return None
    sql = "SELECT i.member_id, m.phone FROM member_invite i JOIN member m ON m.id = i.member_id WHERE i.code = $1"
    rows = await (tx.fetch(sql, code) if tx is not None else fetch(sql, code))
    if not rows:
        raise DomainError(ErrorCode.INVITE_CODE_INVALID, "unknown invite code", ["inviteCode"])
    if rows[0]["phone"] == phone:
        raise DomainError(ErrorCode.INVITE_CODE_OWN, "you cannot use your own invite code", ["inviteCode"])
    return rows[0]["member_id"]


async def attach(tx: Tx, member_id: int, inviter_id: int) -> None:
    """Records who invited a member who has just registered (in the registration's transaction)."""
    for _ in range(5):
        done = await tx.fetchval(
            "INSERT INTO member_invite (member_id, code, inviter_id, created_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING RETURNING id", member_id, _new_code(), inviter_id, clock.now())
        if done is not None:
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
    rows = await fetch(
        "SELECT id FROM member_invite WHERE purchase_id IS NOT NULL AND rewarded_at IS NULL ORDER BY id LIMIT 1000")
    return await reward_qualified([r["id"] for r in rows])


async def _reward(tx: Tx, invite_id: int) -> int:
    row = await tx.fetchrow(
        "SELECT member_id, inviter_id, purchase_id FROM member_invite WHERE id = $1 AND rewarded_at IS NULL"
        " AND purchase_id IS NOT NULL", invite_id)
    if row is None:
        return 0
    now = clock.now()
    invitee, inviter = row["member_id"], row["inviter_id"]
    accounts = {}
    for member_id in sorted((invitee, inviter)):  # lock order: member id
        accounts[member_id] = await ledger.lock_account(tx, member_id, now)
    claimed = await tx.execute(
        "UPDATE member_invite SET rewarded_at = $1 WHERE id = $2 AND rewarded_at IS NULL", now, invite_id)
    if not claimed:
        return 0
    for member_id, role, reason in ((invitee, "INVITEE", "受邀首购奖励"), (inviter, "INVITER", "邀请好友奖励")):
        acct = accounts[member_id]
        await ledger.expire_account(tx, acct, now)
        facts = await earning.facts_for(acct, "INVITE_ACCEPTED", now, invite_role=role)
        await earning.apply(tx, acct, facts, reason=reason, source_type="invite", source_ref=str(invite_id),
                            occurred_at=now, now=now)
    return 1


async def invited_count(member_id: int) -> int:
    rows = await fetch("SELECT COUNT(*) AS n FROM member_invite WHERE inviter_id = $1", member_id)
    return int(rows[0]["n"])
