"""Parking fees and discounts: pure functions, no I/O (docs/parking.md).

Everything is integer fen, minutes and points. Where a rounding choice exists it goes the member's way:
  - a stay lasts whole minutes, seconds dropped (59 s more never start another hour);
  - free minutes are taken off the start of every stay before any hour is counted;
  - the daily cap applies to every 24 hours of charged time;
  - points become fen rounded up (1 point is never worth less than the rate says), and the points spent
    for a number of fen are the fewest that give at least that many.

Discounts stack in this order, each on what the previous ones left:
  1. tier free minutes (per member per Asia/Shanghai day),
  2. the same-day purchase benefit (free minutes),
  3. parking coupons (fen; in the member's order, a coupon only when something is left to cover),
  4. points (at the car park's rate, at most offset_max_points per stay).
A minute benefit is worth the fee of the stay less the fee of the stay shortened by those minutes.
"""
from __future__ import annotations

from dataclasses import dataclass

DAY_MINUTES = 24 * 60


@dataclass(frozen=True)
class FeeRules:
    free_minutes: int
    hourly_fen: int
    daily_cap_fen: int | None = None
    offset_points_per_yuan: int = 100
    offset_max_points: int = 0


def minutes_between(start_ts: float, end_ts: float) -> int:
    """Whole minutes from start to end (seconds dropped; never negative)."""
    return max(0, int(end_ts - start_ts) // 60)


def fee(rules: FeeRules, minutes: int) -> int:
    """The fee of a stay of `minutes`: free minutes first, then hourly_fen per hour or part of one,
    at most daily_cap_fen for every 24 hours of charged time."""
    charged = max(0, minutes - rules.free_minutes)
    hours_fee = lambda m: -(-m // 60) * rules.hourly_fen  # noqa: E731 - per hour or part
    if rules.daily_cap_fen is None:
        return hours_fee(charged)
    day_fee = min(rules.daily_cap_fen, hours_fee(DAY_MINUTES))
    days, rest = divmod(charged, DAY_MINUTES)
    return days * day_fee + min(rules.daily_cap_fen, hours_fee(rest))


def fen_for_points(rules: FeeRules, points: int) -> int:
    """What `points` are worth in fen (rounded up: the member's way)."""
    return -(-points * 100 // rules.offset_points_per_yuan) if points > 0 else 0


def points_for_fen(rules: FeeRules, fen: int) -> int:
    """The fewest points worth at least `fen`."""
    if fen <= 0:
        return 0
    return (fen - 1) * rules.offset_points_per_yuan // 100 + 1


@dataclass(frozen=True)
class Coupon:
    code: str
    value_fen: int


@dataclass(frozen=True)
class Bill:
    minutes: int
    fee_fen: int
    tier_minutes: int  # tier free minutes this stay uses (of the day's allowance)
    tier_discount_fen: int
    purchase_minutes: int
    purchase_discount_fen: int
    coupon_discount_fen: int
    coupons_used: tuple[str, ...]
    points_discount_fen: int
    points: int  # points this stay spends
    payable_fen: int
    points_needed: int = 0  # points that would cover everything left after the coupons (within the cap)

    @property
    def discount_fen(self) -> int:
        return self.tier_discount_fen + self.purchase_discount_fen + self.coupon_discount_fen + self.points_discount_fen


def bill(rules: FeeRules, minutes: int, *, tier_minutes_left: int = 0, purchase_minutes: int = 0,
         coupons: list[Coupon] | tuple[Coupon, ...] = (), points: int = 0) -> Bill:
    """The fee of a stay and its discounts in the documented order. `points` are what the member chose
    (already within the cap); the bill uses no more of them than needed."""
    assert minutes >= 0 and tier_minutes_left >= 0 and purchase_minutes >= 0 and points >= 0
    total = fee(rules, minutes)
    charged = max(0, minutes - rules.free_minutes)
    tier_used = min(tier_minutes_left, charged)
    after_tier = fee(rules, minutes - tier_used)
    purchase_used = min(purchase_minutes, charged - tier_used)
    after_purchase = fee(rules, minutes - tier_used - purchase_used)
    left = after_purchase
    coupon_fen, used = 0, []
    for c in coupons:
        if left <= 0:
            break
        take = min(c.value_fen, left)
        if take <= 0:
            continue
        coupon_fen += take
        left -= take
        used.append(c.code)
    needed = min(points_for_fen(rules, left), rules.offset_max_points)
    points_fen = min(fen_for_points(rules, points), left)
    spent = min(points, points_for_fen(rules, points_fen))
    left -= points_fen
    return Bill(
        minutes=minutes, fee_fen=total, tier_minutes=tier_used, tier_discount_fen=total - after_tier,
        purchase_minutes=purchase_used, purchase_discount_fen=after_tier - after_purchase,
        coupon_discount_fen=coupon_fen, coupons_used=tuple(used), points_discount_fen=points_fen, points=spent,
        payable_fen=left, points_needed=needed,
    )
