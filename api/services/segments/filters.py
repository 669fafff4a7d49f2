"""A segment's filter: validated from the operator's input, stored as JSON, turned into ONE members'
query (every condition a set-based subquery or column test, ANDed), so that counting and paging a
segment is one query each, whatever its size.

Conditions (all optional; none given means every member):
  tierCodes              the member's tier is one of these
  tagsAll / tagsAny      has every one / at least one of these tags;  tagsNone: none of these
  lastPurchaseWithinDays bought something in the last N days
  noPurchaseForDays      bought nothing in the last N days (members who never bought included)
  pointsBalanceMin/Max   points balance (booked balance, holds not deducted) within the bounds
  birthdayMonths         birthday in one of these months (1-12)
  merchantCategories     bought from a merchant of one of these categories in the last
                         merchantCategoryWithinDays days (default 365)
  lifecycleStages        the member's lifecycle stage (insight's member_insight) is one of these
  rMin … mMax            RFM quintile scores (1-5) within the bounds (member_insight)
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from tortoise.expressions import RawSQL, Subquery
from tortoise.queryset import QuerySet

from api.models import Member, MemberTag, PointsAccount, Purchase
from api.services import clock, text
from api.services.errors import DomainError, ErrorCode
from api.services.segments import sql

MAX_ITEMS = 50
STAGES = ("NEW", "GROWING", "STABLE", "DECLINING", "LOST")
MAX_DAYS = 3660


@dataclass(frozen=True)
class SegmentFilter:
    tier_codes: tuple[str, ...] = ()
    tags_all: tuple[str, ...] = ()
    tags_any: tuple[str, ...] = ()
    tags_none: tuple[str, ...] = ()
    last_purchase_within_days: int | None = None
    no_purchase_for_days: int | None = None
    points_balance_min: int | None = None
    points_balance_max: int | None = None
    birthday_months: tuple[int, ...] = ()
    merchant_categories: tuple[str, ...] = ()
    merchant_category_within_days: int = 365
    lifecycle_stages: tuple[str, ...] = ()
    r_min: int | None = None
    r_max: int | None = None
    f_min: int | None = None
    f_max: int | None = None
    m_min: int | None = None
    m_max: int | None = None

    @property
    def uses_insight(self) -> bool:
        return bool(self.lifecycle_stages) or any(
            v is not None for v in (self.r_min, self.r_max, self.f_min, self.f_max, self.m_min, self.m_max))

    def to_json(self) -> str:
        return json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()},
                          ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> "SegmentFilter":
        data: dict[str, Any] = json.loads(raw)
        known: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
                                 if k in cls.__dataclass_fields__}
        return cls(**known)


def tag_name(value: str | None, field: list[str]) -> str:
    """A tag: 1 to 32 characters, no control characters, trimmed."""
    return text.name(value, field, 32)


def _texts(values: list[str] | None, field: list[str], check: Any) -> tuple[str, ...]:
    if values is None:
        return ()
    if len(values) > MAX_ITEMS:
        raise DomainError(ErrorCode.INVALID_INPUT, f"at most {MAX_ITEMS} values", field)
    return tuple(dict.fromkeys(check(v, [*field, str(i)]) for i, v in enumerate(values)))


def _days(value: int | None, field: list[str]) -> int | None:
    if value is not None and not 1 <= value <= MAX_DAYS:
        raise DomainError(ErrorCode.INVALID_INPUT, f"days must be 1 to {MAX_DAYS}", field)
    return value


def _points(value: int | None, field: list[str]) -> int | None:
    if value is not None and not -10**12 <= value <= 10**12:
        raise DomainError(ErrorCode.INVALID_INPUT, "points out of range", field)
    return value


def build(*, tier_codes: list[str] | None = None, tags_all: list[str] | None = None,
          tags_any: list[str] | None = None, tags_none: list[str] | None = None,
          last_purchase_within_days: int | None = None, no_purchase_for_days: int | None = None,
          points_balance_min: int | None = None, points_balance_max: int | None = None,
          birthday_months: list[int] | None = None, merchant_categories: list[str] | None = None,
          merchant_category_within_days: int | None = None, lifecycle_stages: list[str] | None = None,
          scores: dict[str, int | None] | None = None) -> SegmentFilter:
    """Validates the operator's conditions (INVALID_INPUT on the field at fault)."""
    base = ["input", "filter"]
    months = tuple(dict.fromkeys(birthday_months or ()))
    if any(not 1 <= m <= 12 for m in months):
        raise DomainError(ErrorCode.INVALID_INPUT, "months are 1 to 12", [*base, "birthdayMonths"])
    lo = _points(points_balance_min, [*base, "pointsBalanceMin"])
    hi = _points(points_balance_max, [*base, "pointsBalanceMax"])
    if lo is not None and hi is not None and lo > hi:
        raise DomainError(ErrorCode.INVALID_INPUT, "pointsBalanceMin is above pointsBalanceMax",
                          [*base, "pointsBalanceMin"])
    stages = tuple(dict.fromkeys(lifecycle_stages or ()))
    if any(s not in STAGES for s in stages):
        raise DomainError(ErrorCode.INVALID_INPUT, f"stages: {', '.join(STAGES)}", [*base, "lifecycleStages"])
    bounds = dict(scores or {})
    for name, value in bounds.items():
        if value is not None and not 1 <= value <= 5:
            raise DomainError(ErrorCode.INVALID_INPUT, "scores are 1 to 5", [*base, name[0] + name[2:].title()])
    for letter in "rfm":
        low, high = bounds.get(f"{letter}_min"), bounds.get(f"{letter}_max")
        if low is not None and high is not None and low > high:
            raise DomainError(ErrorCode.INVALID_INPUT, f"{letter}Min is above {letter}Max", [*base, f"{letter}Min"])
    return SegmentFilter(
        lifecycle_stages=stages, r_min=bounds.get("r_min"), r_max=bounds.get("r_max"), f_min=bounds.get("f_min"),
        f_max=bounds.get("f_max"), m_min=bounds.get("m_min"), m_max=bounds.get("m_max"),
        tier_codes=_texts(tier_codes, [*base, "tierCodes"], text.identifier),
        tags_all=_texts(tags_all, [*base, "tagsAll"], tag_name),
        tags_any=_texts(tags_any, [*base, "tagsAny"], tag_name),
        tags_none=_texts(tags_none, [*base, "tagsNone"], tag_name),
        last_purchase_within_days=_days(last_purchase_within_days, [*base, "lastPurchaseWithinDays"]),
        no_purchase_for_days=_days(no_purchase_for_days, [*base, "noPurchaseForDays"]),
        points_balance_min=lo, points_balance_max=hi, birthday_months=months,
        merchant_categories=_texts(merchant_categories, [*base, "merchantCategories"],
                                   lambda v, f: text.name(v, f, 64)),
        merchant_category_within_days=_days(merchant_category_within_days,
                                            [*base, "merchantCategoryWithinDays"]) or 365,
    )


def members_query(f: SegmentFilter, postgres: bool) -> QuerySet[Member]:
    """The segment's members as one query (subqueries, no per-member work)."""
    now = clock.now()
    q = Member.all()
    if f.tier_codes:
        q = q.filter(tier__code__in=list(f.tier_codes))
    for tag in f.tags_all:
        q = q.filter(id__in=Subquery(MemberTag.filter(tag=tag).values("member_id")))
    if f.tags_any:
        q = q.filter(id__in=Subquery(MemberTag.filter(tag__in=list(f.tags_any)).values("member_id")))
    if f.tags_none:
        q = q.filter(id__not_in=Subquery(MemberTag.filter(tag__in=list(f.tags_none)).values("member_id")))
    if f.last_purchase_within_days is not None:
        since = now - timedelta(days=f.last_purchase_within_days)
        q = q.filter(id__in=Subquery(Purchase.filter(occurred_at__gte=since).values("member_id")))
    if f.no_purchase_for_days is not None:
        since = now - timedelta(days=f.no_purchase_for_days)
        q = q.filter(id__not_in=Subquery(Purchase.filter(occurred_at__gte=since).values("member_id")))
    if f.points_balance_min is not None or f.points_balance_max is not None:
        accounts = PointsAccount.all()
        if f.points_balance_min is not None:
            accounts = accounts.filter(balance__gte=f.points_balance_min)
        if f.points_balance_max is not None:
            accounts = accounts.filter(balance__lte=f.points_balance_max)
        q = q.filter(id__in=Subquery(accounts.values("member_id")))
    if f.birthday_months:
        month = RawSQL(sql.BIRTH_MONTH_PG if postgres else sql.BIRTH_MONTH_SQLITE)
        q = q.annotate(birth_month=month).filter(birth_month__in=list(f.birthday_months))
    if f.merchant_categories:
        since = now - timedelta(days=f.merchant_category_within_days)
        bought = Purchase.filter(occurred_at__gte=since, merchant__category__in=list(f.merchant_categories))
        q = q.filter(id__in=Subquery(bought.values("member_id")))
    if f.uses_insight:
        q = q.annotate(insight_match=RawSQL(sql.INSIGHT_MATCH.format(conditions=insight_conditions(f)))).filter(
            insight_match=1)
    return q


def insight_conditions(f: SegmentFilter) -> str:
    """The member_insight conditions, from validated values only (stage names of STAGES, ints 1-5)."""
    parts = []
    if f.lifecycle_stages:
        assert all(s in STAGES for s in f.lifecycle_stages)
        parts.append("i.lifecycle IN (" + ", ".join(f"'{s}'" for s in f.lifecycle_stages) + ")")
    for column, lo, hi in (("r", f.r_min, f.r_max), ("f", f.f_min, f.f_max), ("m", f.m_min, f.m_max)):
        if lo is not None:
            parts.append(f"i.{column} >= {int(lo)}")
        if hi is not None:
            parts.append(f"i.{column} <= {int(hi)}")
    return " AND ".join(parts)
