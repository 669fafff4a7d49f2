"""Campaigns to a segment: created by MARKETING, sent by the scheduled run when due.

Sending: the segment's members as they are when sending begins become the audience (campaign_member),
a deterministic holdout share of it marked (they receive nothing); then the target members' notifications
are written in chunks (one set-based INSERT per chunk, the template filled with each member's fields) and
pushed by the dispatcher, which throttles per channel. A run that stops half-way is resumed by the next.

An offer (points, a voucher of a COUPON product, or both) goes with the message: each chunk's points
entries, vouchers, notifications and `notified` marks are one transaction, taken under the campaign's
advisory lock, so a member gets the offer exactly once even with two runs at once or a crash mid-chunk.
Chunks with an offer are smaller (they lock each member's account, in member order).
Counts: sent (notifications written), delivered, failed, opened (read in the inbox). Effect: purchases and
redemptions of the target group and of the holdout in the N days from the start, per member.
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.expressions import Subquery
from tortoise.functions import Count, Sum

from api import locks
from api.db import Tx, transaction
from api.locks import Rank
from api.models import Campaign, CampaignMember, MallOrder, Member, Notification, PointsAccount, Purchase
from api.services import clock, idempotency, ledger, text, tiers
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode
from api.services.mall import catalogue, orders
from api.services.notifications import outbox
from api.services.segments import segments

FIELDS = ("nickname", "tier", "points")
CHUNK = 500
OFFER_CHUNK = 50  # members per transaction when each one's account is locked for an offer
CHANNELS = ("INBOX", "SMS", "WECHAT")
MAX_GRANT_POINTS = 10_000  # per member (a CHECK on PostgreSQL holds the column to it)
COUPON_KINDS = ("COUPON", "MERCHANT_VOUCHER", "PARKING_COUPON")
CAMPAIGN_LOCK_SPACE = 4715  # pg_advisory_xact_lock(space, hashtext(campaign id)): one sender of a campaign


@dataclass(frozen=True)
class CampaignInfo:
    id: int
    name: str
    segment_id: int
    channel: str
    title: str
    body: str
    send_at: datetime
    holdout_percent: int
    status: str
    created_at: datetime
    started_at: datetime | None
    grant_points: int = 0
    coupon_product_id: int | None = None

    @classmethod
    def of(cls, c: Campaign) -> "CampaignInfo":
        return cls(c.id, c.name, c.segment_id, c.channel, c.title, c.body, c.send_at, c.holdout_percent, c.status,
                   c.created_at, c.started_at, c.grant_points, c.coupon_product_id)

    @property
    def has_offer(self) -> bool:
        return self.grant_points > 0 or self.coupon_product_id is not None


@dataclass(frozen=True)
class CampaignCounts:
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    opened: int = 0


@dataclass(frozen=True)
class GroupEffect:
    members: int
    purchasers: int
    purchases: int
    sales_fen: int
    redemptions: int


def _template(value: str, field: list[str], max_length: int) -> str:
    clean = text.name(value, field, max_length)
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(clean) if name is not None]
    except ValueError:
        raise DomainError(ErrorCode.INVALID_INPUT, "unbalanced { or } in the template", field) from None
    unknown = [n for n in names if n not in FIELDS]
    if unknown:
        raise DomainError(ErrorCode.INVALID_INPUT,
                          f"unknown field {{{unknown[0]}}}; fields: {', '.join('{' + f + '}' for f in FIELDS)}", field)
    return clean


def holdout(campaign_id: int, member_id: int, percent: int) -> bool:
    """Deterministic: the same member is in or out of one campaign's holdout whoever asks."""
    return (member_id * 2654435761 + campaign_id * 40503) % 100 < percent


async def create(actor: Actor, name: str, segment_id: int, channel: str, title: str, body: str,
                 send_at: datetime | None, holdout_percent: int, *, grant_points: int = 0,
                 coupon_product_id: int | None = None, idempotency_key: str | None = None) -> CampaignInfo:
    """A campaign, SCHEDULED. One with an offer moves points and vouchers when sent, so it takes an
    idempotency key: a repeat returns the first campaign, the same key with other input is refused."""
    clean_name = text.name(name, ["input", "name"], 64)
    if channel not in CHANNELS:
        raise DomainError(ErrorCode.INVALID_INPUT, "unknown channel", ["input", "channel"])
    clean_title = _template(title, ["input", "title"], 64)
    clean_body = _template(body, ["input", "body"], 500)
    if not 0 <= holdout_percent <= 90:
        raise DomainError(ErrorCode.INVALID_INPUT, "holdoutPercent must be 0 to 90", ["input", "holdoutPercent"])
    now = clock.now()
    when = now if send_at is None else text.check_time(send_at, ["input", "sendAt"], not_before=now - timedelta(minutes=5))
    if when > now + timedelta(days=366):
        raise DomainError(ErrorCode.INVALID_INPUT, "sendAt must be within a year", ["input", "sendAt"])
    if not 0 <= grant_points <= MAX_GRANT_POINTS:
        raise DomainError(ErrorCode.INVALID_INPUT, f"grantPoints must be 0 to {MAX_GRANT_POINTS}", ["input", "grantPoints"])
    key = None
    if grant_points or coupon_product_id is not None or idempotency_key is not None:
        if idempotency_key is None:
            raise DomainError(ErrorCode.INVALID_INPUT, "a campaign with an offer needs an idempotencyKey",
                              ["input", "idempotencyKey"])
        key = idempotency.check_key(idempotency_key, ["input", "idempotencyKey"])
    segment = await segments.get(segment_id)
    if coupon_product_id is not None:
        product = await catalogue.product(coupon_product_id, ["input", "couponProductId"])
        if product.kind not in COUPON_KINDS or product.status != "ACTIVE":
            raise DomainError(ErrorCode.INVALID_INPUT, f"the voucher must be an active product of kind "
                              f"{' or '.join(COUPON_KINDS)}", ["input", "couponProductId"])
    operator_id = int(actor[1]) if actor[0] == "operator" and actor[1] else None
    terms = {"name": clean_name, "segment": segment.id, "channel": channel, "title": clean_title, "body": clean_body,
             "sendAt": None if send_at is None else when.isoformat(), "holdoutPercent": holdout_percent,
             "grantPoints": grant_points, "couponProductId": coupon_product_id}
    async with transaction() as tx:
        record_id = None
        if key is not None:
            record_id, stored = await idempotency.claim(tx, f"{actor[0]}:{actor[1]}", key,
                                                        idempotency.request_hash("campaignCreate", terms),
                                                        ["input", "idempotencyKey"])
            if stored is not None:
                return CampaignInfo.of(await Campaign.get(id=int(stored["campaignId"])))
        created = await Campaign.create(name=clean_name, segment_id=segment.id, channel=channel, title=clean_title,
                                        body=clean_body, send_at=when, holdout_percent=holdout_percent,
                                        grant_points=grant_points, coupon_product_id=coupon_product_id,
                                        status="SCHEDULED", created_by_id=operator_id, created_at=now)
        await audit(tx, actor, "campaign.create", "Campaign", str(created.id), None,
                    after={"name": clean_name, "segment": segment.id, "channel": channel, "sendAt": when.isoformat(),
                           "holdoutPercent": holdout_percent, "grantPoints": grant_points,
                           "couponProductId": coupon_product_id})
        if record_id is not None:
            await idempotency.remember(tx, record_id, {"campaignId": created.id})
    return CampaignInfo.of(created)


async def page(limit: int, before_id: int | None) -> list[CampaignInfo]:
    q = Campaign.all().order_by("-id")
    if before_id is not None:
        q = q.filter(id__lt=before_id)
    return [CampaignInfo.of(c) for c in await q.limit(limit)]


async def get(campaign_id: int) -> CampaignInfo | None:
    found = await Campaign.get_or_none(id=campaign_id)
    return CampaignInfo.of(found) if found else None


async def counts(campaign_ids: list[int]) -> dict[int, CampaignCounts]:
    """Two grouped queries for any number of campaigns."""
    by_status = await (Notification.filter(campaign_id__in=campaign_ids).group_by("campaign_id", "status")
                       .annotate(n=Count("id")).values("campaign_id", "status", "n"))
    opened = await (Notification.filter(campaign_id__in=campaign_ids, read_at__not_isnull=True).group_by("campaign_id")
                    .annotate(n=Count("id")).values("campaign_id", "n"))
    acc: dict[int, dict[str, int]] = {c: {"sent": 0, "delivered": 0, "failed": 0, "opened": 0} for c in campaign_ids}
    for row in by_status:
        cell = acc[int(row["campaign_id"])]
        cell["sent"] += int(row["n"])
        if row["status"] == "DELIVERED":
            cell["delivered"] += int(row["n"])
        elif row["status"] == "FAILED":
            cell["failed"] += int(row["n"])
    for row in opened:
        acc[int(row["campaign_id"])]["opened"] = int(row["n"])
    return {c: CampaignCounts(**v) for c, v in acc.items()}


async def effect(campaign: CampaignInfo, days: int) -> tuple[GroupEffect, GroupEffect] | None:
    """(target, holdout) in [start, start + days): None before sending began."""
    if campaign.started_at is None:
        return None
    start = clock.to_utc(campaign.started_at)
    end = start + timedelta(days=days)
    out = []
    for held in (False, True):
        group = CampaignMember.filter(campaign_id=campaign.id, holdout=held)
        size = await group.count()
        audience = Subquery(CampaignMember.filter(campaign_id=campaign.id, holdout=held).values("member_id"))
        bought = Purchase.filter(member_id__in=audience, occurred_at__gte=start, occurred_at__lt=end)
        totals = (await bought.annotate(n=Count("id"), fen=Sum("amount_fen"), buyers=Count("member_id", distinct=True))
                  .values("n", "fen", "buyers"))[0]
        # Redemptions in the points mall (paid orders; prizes of draws and campaigns' vouchers are not).
        redemptions = await MallOrder.filter(member_id__in=audience, status="PAID", created_at__gte=start,
                                             created_at__lt=end).exclude(channel__in=["DRAW", "CAMPAIGN"]).count()
        out.append(GroupEffect(size, int(totals["buyers"] or 0), int(totals["n"] or 0), int(totals["fen"] or 0),
                               redemptions))
    return out[0], out[1]


# --- sending (the scheduled run) ---------------------------------------------------------------------


@dataclass(frozen=True)
class SendResult:
    campaigns: int
    notifications: int


async def send_due(as_of: datetime | None = None) -> SendResult:
    now = as_of or clock.now()
    due = await Campaign.filter(status__in=["SCHEDULED", "SENDING"], send_at__lte=now).order_by("id").values("id")
    sent = 0
    for row in due:
        sent += await _send(int(row["id"]), now)
    return SendResult(len(due), sent)


async def _send(campaign_id: int, now: datetime) -> int:
    # Claim: SCHEDULED -> SENDING once (a conditional update); a SENDING one is resumed.
    await Campaign.filter(id=campaign_id, status="SCHEDULED").update(status="SENDING", started_at=now)
    found = await Campaign.get(id=campaign_id)
    if found.status != "SENDING":
        return 0
    campaign = CampaignInfo.of(found)
    segment = await segments.get(campaign.segment_id)
    last = 0
    while True:  # the audience, chunk by chunk
        ids = await segments.member_ids_after(segment.filter, last, CHUNK)
        if not ids:
            break
        rows = [CampaignMember(campaign_id=campaign_id, member_id=m, holdout=holdout(campaign_id, m, campaign.holdout_percent))
                for m in ids]
        async with transaction():
            await CampaignMember.bulk_create(rows, ignore_conflicts=True)
        last = ids[-1]
    written = 0
    size = OFFER_CHUNK if campaign.has_offer else CHUNK
    product = await catalogue.product(campaign.coupon_product_id) if campaign.coupon_product_id else None
    while True:  # the target's offers and notifications, chunk by chunk
        async with transaction() as tx:
            # One sender of this campaign at a time; the chunk is read under the lock, so a member
            # marked by another sender is not sent (or given) anything twice.
            await locks.advisory(Rank.CAMPAIGN, CAMPAIGN_LOCK_SPACE, str(campaign_id))
            chunk = [int(r["member_id"]) for r in await CampaignMember.filter(
                campaign_id=campaign_id, holdout=False, notified=False).order_by("member_id").limit(size)
                .values("member_id")]
            if not chunk:
                break
            if campaign.has_offer:
                await _offer(tx, campaign, product, chunk, now)
            written += await outbox.flush(tx, await _notes(campaign, chunk), now)
            await CampaignMember.filter(campaign_id=campaign_id, member_id__in=list(chunk)).update(notified=True)
    await Campaign.filter(id=campaign_id, status="SENDING").update(status="SENT", finished_at=clock.now())
    return written


async def _offer(tx: Tx, campaign: CampaignInfo, product: catalogue.ProductInfo | None, member_ids: list[int],
                 now: datetime) -> None:
    """Each member's points (an EARN lot under the expiry policy) and voucher (a CAMPAIGN order with no
    points and no cash, as a draw's prize is), under the member's account lock, in member order."""
    for member_id in sorted(member_ids):
        acct = await ledger.lock_account(tx, member_id, now)
        if acct is None:  # members are never deleted; a row missing here is a bug, not a case to skip
            raise AssertionError(f"campaign {campaign.id}: member {member_id} has no points account")
        await ledger.expire_account(tx, acct, now)  # points due expire before the grant, as on every move
        ref = f"campaign:{campaign.id}"
        if campaign.grant_points:
            await ledger.credit(tx, acct, points=campaign.grant_points, kind="EARN", reason=f"活动赠送 {campaign.name}",
                                source_type="campaign", source_ref=ref, occurred_at=now)
        if product is not None:
            order_id = await orders.insert_order(
                order_no=orders.new_order_no(now), member_id=member_id, product_id=product.id, flash_sale_id=None,
                channel="CAMPAIGN", status="PAID", quantity=1, points=0, cash_fen=0, key=ref, now=now,
                expires_at=None, spend_entry_id=None)
            await orders.issue_vouchers(order_id, member_id, product, 1, now)


async def _notes(campaign: CampaignInfo, member_ids: list[int]) -> list[outbox.Note]:
    people = await Member.filter(id__in=member_ids).values("id", "nickname", "tier_id")
    balances = dict(await PointsAccount.filter(member_id__in=member_ids).values_list("member_id", "balance"))
    notes = []
    for p in people:
        tier = await tiers.tier_by_id(int(p["tier_id"]))
        fields = {"nickname": p["nickname"] or "会员", "tier": tier.name, "points": balances.get(p["id"], 0)}
        notes.append(outbox.Note(int(p["id"]), "CAMPAIGN", campaign.title.format(**fields)[:64],
                                 campaign.body.format(**fields)[:500], f"campaign:{campaign.id}:{p['id']}",
                                 channel=campaign.channel, campaign_id=campaign.id))
    return notes
