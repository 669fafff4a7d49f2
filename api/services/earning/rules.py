"""Rule evaluation as pure functions: no I/O, integers only (see docs/earning.md).

A rule matches a set of facts (trigger, time, merchant, tier, birthday, amount, streak…) when every
condition it has holds. Matching rules are applied in order of priority (highest first, then id):

1. POINTS_PER_YUAN rules give floor(amountFen × value × tier multiplier / 10,000) (the multiplier only
   when `apply_tier_multiplier`), FIXED_POINTS rules give their value;
2. MULTIPLIER_PERCENT rules add floor(base × (value − 100) / 100), where base is what the
   POINTS_PER_YUAN rules gave (a double-points day is value 200);
3. stacking: ADD rules all count; of the BEST_OF rules of one group only the largest counts (ties:
   higher priority, then lower id); the others are kept in the breakdown as `superseded`;
4. caps cut each rule's points on their own: per member per day, per month, a number of times per
   day, and the rule's remaining budget. The breakdown records which cap cut how much.
Each rule's points are floored on their own; the total is their sum.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from api.services import clock

TRIGGERS = ("PURCHASE", "REGISTER", "CHECK_IN", "PROFILE_COMPLETED", "REVIEW", "SHARE", "INVITE_ACCEPTED",
            "EVENT_ATTENDED", "TASK_COMPLETED")
ACTIONS = ("POINTS_PER_YUAN", "MULTIPLIER_PERCENT", "FIXED_POINTS", "NONE")
GROWTH_ACTIONS = ("GROWTH_PER_YUAN", "FIXED_GROWTH", "NONE")
STACKING = ("ADD", "BEST_OF")
STATUSES = ("ACTIVE", "PAUSED", "ARCHIVED")


@dataclass(frozen=True)
class Conditions:
    merchant_codes: tuple[str, ...] = ()
    merchant_categories: tuple[str, ...] = ()
    tier_codes: tuple[str, ...] = ()
    weekdays: tuple[int, ...] = ()  # ISO: 1 = Monday … 7 = Sunday, in Asia/Shanghai
    birthday: str | None = None  # "DAY" or "MONTH"
    member_day: int | None = None  # day of the month, e.g. 18
    min_amount_fen: int | None = None
    first_purchase: bool = False
    streak_days: tuple[int, ...] = ()  # check-in: only on these days of a streak
    invite_role: str | None = None  # INVITER or INVITEE
    event_codes: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Conditions":
        return cls(
            merchant_codes=tuple(data.get("merchantCodes") or ()),
            merchant_categories=tuple(data.get("merchantCategories") or ()),
            tier_codes=tuple(data.get("tierCodes") or ()),
            weekdays=tuple(int(d) for d in data.get("weekdays") or ()),
            birthday=data.get("birthday"),
            member_day=data.get("memberDay"),
            min_amount_fen=data.get("minAmountFen"),
            first_purchase=bool(data.get("firstPurchase")),
            streak_days=tuple(int(d) for d in data.get("streakDays") or ()),
            invite_role=data.get("inviteRole"),
            event_codes=tuple(data.get("eventCodes") or ()),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in (
            ("merchantCodes", list(self.merchant_codes)), ("merchantCategories", list(self.merchant_categories)),
            ("tierCodes", list(self.tier_codes)), ("weekdays", list(self.weekdays)), ("birthday", self.birthday),
            ("memberDay", self.member_day), ("minAmountFen", self.min_amount_fen),
            ("firstPurchase", self.first_purchase or None), ("streakDays", list(self.streak_days)),
            ("inviteRole", self.invite_role), ("eventCodes", list(self.event_codes)),
        ):
            if value:
                out[key] = value
        return out


@dataclass(frozen=True)
class Rule:
    id: int
    code: str
    name: str
    trigger: str
    priority: int = 0
    stacking: str = "ADD"
    stack_group: str | None = None
    conditions: Conditions = field(default_factory=Conditions)
    action: str = "FIXED_POINTS"
    action_value: int = 0
    apply_tier_multiplier: bool = False
    growth_action: str = "NONE"
    growth_value: int = 0
    cap_daily_points: int | None = None
    cap_monthly_points: int | None = None
    cap_daily_times: int | None = None
    budget_points: int | None = None
    return_days: int = 0
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    status: str = "ACTIVE"
    segment_id: int | None = None  # only members of this segment (issue 13 item 3)

    @property
    def counted(self) -> bool:
        """Needs counters (caps or a budget): evaluated under the member's account lock."""
        return bool(self.cap_daily_points or self.cap_monthly_points or self.cap_daily_times or self.budget_points)

    @property
    def stateful(self) -> bool:
        """Depends on more than the facts of one receipt (counters, first purchase, a return window)."""
        return self.counted or self.conditions.first_purchase or self.return_days > 0


@dataclass(frozen=True)
class Facts:
    trigger: str
    at: datetime  # when it happened (UTC)
    tier_code: str = ""
    tier_multiplier_percent: int = 100
    amount_fen: int = 0
    merchant_code: str | None = None
    merchant_category: str | None = None
    birthday: date | None = None
    first_purchase: bool = False
    streak: int = 0
    invite_role: str | None = None
    event_code: str | None = None
    # The segments (of the matching rules' segments) the member is in at the earn; a rule restricted to a
    # segment matches only when its segment is here. None: not asked yet (`engine.with_segments`).
    segments: frozenset[int] | None = None


@dataclass(frozen=True)
class Usage:
    """What a member has had from one rule so far: today, this month, and the budget left."""
    day_points: int = 0
    month_points: int = 0
    day_times: int = 0
    budget_left: int | None = None


@dataclass(frozen=True)
class Item:
    rule_id: int
    rule_code: str
    rule_name: str
    points: int  # after caps; 0 when superseded
    growth: int
    uncapped: int
    cap: str | None = None  # DAILY_POINTS, MONTHLY_POINTS, DAILY_TIMES, BUDGET
    superseded: bool = False
    pending_days: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"ruleId": self.rule_id, "rule": self.rule_code, "name": self.rule_name, "points": self.points,
                "growth": self.growth, "uncapped": self.uncapped, "cap": self.cap, "superseded": self.superseded,
                "pendingDays": self.pending_days}


@dataclass(frozen=True)
class Outcome:
    items: tuple[Item, ...]

    @property
    def points(self) -> int:
        return sum(i.points for i in self.items)

    @property
    def growth(self) -> int:
        return sum(i.growth for i in self.items)

    @property
    def pending_points(self) -> int:
        return sum(i.points for i in self.items if i.pending_days)

    @property
    def immediate_points(self) -> int:
        return self.points - self.pending_points

    @property
    def pending_days(self) -> int:
        return max((i.pending_days for i in self.items if i.points and i.pending_days), default=0)

    def to_json(self) -> list[dict[str, Any]]:
        return [i.to_json() for i in self.items]

    def to_json_text(self) -> str:
        """`json.dumps(self.to_json())`, compact, built from cached pieces (the till's hot path)."""
        return "[" + ",".join(
            f'{{"ruleId":{i.rule_id},"rule":{_quoted(i.rule_code)},"name":{_quoted(i.rule_name)},'
            f'"points":{i.points},"growth":{i.growth},"uncapped":{i.uncapped},'
            f'"cap":{_quoted(i.cap) if i.cap else "null"},"superseded":{"true" if i.superseded else "false"},'
            f'"pendingDays":{i.pending_days}}}'
            for i in self.items) + "]"


@lru_cache(maxsize=4096)
def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _day_ok(d: date, c: Conditions, birthday: date | None) -> bool:
    if c.weekdays and d.isoweekday() not in c.weekdays:
        return False
    if c.member_day is not None and d.day != c.member_day:
        return False
    if c.birthday:
        if birthday is None or birthday.month != d.month:
            return False
        if c.birthday == "DAY" and birthday.day != d.day:
            return False
    return True


def matches(rule: Rule, facts: Facts, local_day: date | None = None, check_tier: bool = True,
            check_segment: bool = True) -> bool:
    """Whether every condition of an active rule holds for these facts (without the tier condition
    when `check_tier` is false: see `evaluate_tiers`; without the segment when `check_segment` is false:
    which segments to ask about)."""
    if rule.status != "ACTIVE" or rule.trigger != facts.trigger:
        return False
    if check_segment and rule.segment_id is not None and rule.segment_id not in (facts.segments or ()):
        return False
    if rule.starts_at is not None and facts.at < rule.starts_at:
        return False
    if rule.ends_at is not None and facts.at >= rule.ends_at:
        return False
    c = rule.conditions
    if c.merchant_codes and facts.merchant_code not in c.merchant_codes:
        return False
    if c.merchant_categories and facts.merchant_category not in c.merchant_categories:
        return False
    if check_tier and c.tier_codes and facts.tier_code not in c.tier_codes:
        return False
    if c.min_amount_fen is not None and facts.amount_fen < c.min_amount_fen:
        return False
    if c.first_purchase and not facts.first_purchase:
        return False
    if c.streak_days and facts.streak not in c.streak_days:
        return False
    if c.invite_role and facts.invite_role != c.invite_role:
        return False
    if c.event_codes and facts.event_code not in c.event_codes:
        return False
    if c.weekdays or c.member_day is not None or c.birthday:
        d = local_day or facts.at.astimezone(clock.SHANGHAI).date()
        if not _day_ok(d, c, facts.birthday):
            return False
    return True


def _raw(rule: Rule, facts: Facts, base: int) -> int:
    if rule.action == "POINTS_PER_YUAN":
        multiplier = facts.tier_multiplier_percent if rule.apply_tier_multiplier else 100
        return facts.amount_fen * rule.action_value * multiplier // 10_000
    if rule.action == "MULTIPLIER_PERCENT":
        return max(0, base * (rule.action_value - 100) // 100)
    if rule.action == "FIXED_POINTS":
        return rule.action_value
    return 0


def _growth(rule: Rule, facts: Facts) -> int:
    if rule.growth_action == "GROWTH_PER_YUAN":
        return facts.amount_fen * rule.growth_value // 100
    if rule.growth_action == "FIXED_GROWTH":
        return rule.growth_value
    return 0


def cap(rule: Rule, points: int, usage: Usage | None) -> tuple[int, str | None]:
    """Cuts `points` by the rule's caps given what the member has had. Returns (points, cap that cut)."""
    usage = usage or Usage()
    cut_by = None
    if rule.cap_daily_times is not None and usage.day_times >= rule.cap_daily_times:
        return 0, "DAILY_TIMES"
    limits = (
        ("DAILY_POINTS", None if rule.cap_daily_points is None else rule.cap_daily_points - usage.day_points),
        ("MONTHLY_POINTS", None if rule.cap_monthly_points is None else rule.cap_monthly_points - usage.month_points),
        ("BUDGET", usage.budget_left if rule.budget_points is not None else None),
    )
    for name, left in limits:
        if left is not None and points > max(0, left):
            points, cut_by = max(0, left), name
    return points, cut_by


def evaluate(rules: list[Rule], facts: Facts, usage: dict[int, Usage] | None = None) -> Outcome:
    """The points and growth value these facts earn under these rules. `rules` should be sorted by
    (-priority, id) (see `order`); `usage` gives each counted rule's counters."""
    day = facts.at.astimezone(clock.SHANGHAI).date()
    return _apply([r for r in rules if matches(r, facts, day)], facts, usage)


def evaluate_tiers(rules: list[Rule], facts: Facts, tiers: list[tuple[str, int]]) -> list[Outcome]:
    """`evaluate` for each (tier code, multiplier percent), matching the conditions that do not depend
    on the tier only once (the purchase fast path plans every tier; no counters)."""
    day = facts.at.astimezone(clock.SHANGHAI).date()
    common = [r for r in rules if matches(r, facts, day, check_tier=False)]
    out = []
    for code, multiplier in tiers:
        tier_facts = replace(facts, tier_code=code, tier_multiplier_percent=multiplier)
        out.append(_apply([r for r in common if not r.conditions.tier_codes or code in r.conditions.tier_codes],
                          tier_facts, None))
    return out


def _group(rule: Rule) -> str:
    return rule.stack_group or rule.code


def _best_of(rules: list[Rule], raw: dict[int, int]) -> dict[str, Rule]:
    """Of each BEST_OF group, the largest (ties: earlier in priority order)."""
    best: dict[str, Rule] = {}
    for rule in rules:
        if rule.stacking == "BEST_OF":
            group = _group(rule)
            if group not in best or raw[rule.id] > raw[best[group].id]:
                best[group] = rule
    return best


def _apply(matching: list[Rule], facts: Facts, usage: dict[int, Usage] | None) -> Outcome:
    if not matching:
        return Outcome(())
    raw: dict[int, int] = {}
    for rule in matching:  # per-yuan and fixed first: multipliers apply to the per-yuan base
        if rule.action != "MULTIPLIER_PERCENT":
            raw[rule.id] = _raw(rule, facts, 0)
    # The base is the per-yuan points actually given: of a BEST_OF group without multipliers, only the
    # winner's (a multiplier must not multiply points that its group discarded).
    with_multiplier = {_group(r) for r in matching if r.stacking == "BEST_OF" and r.action == "MULTIPLIER_PERCENT"}
    early = _best_of([r for r in matching if r.action != "MULTIPLIER_PERCENT" and _group(r) not in with_multiplier],
                     raw)
    base = sum(raw[r.id] for r in matching if r.action == "POINTS_PER_YUAN"
               and (r.stacking != "BEST_OF" or _group(r) in with_multiplier or early[_group(r)].id == r.id))
    for rule in matching:
        if rule.action == "MULTIPLIER_PERCENT":
            raw[rule.id] = _raw(rule, facts, base)
    best = _best_of(matching, raw)
    usage = usage or {}
    items = []
    for rule in matching:
        superseded = rule.stacking == "BEST_OF" and best[_group(rule)].id != rule.id
        growth = 0 if superseded else _growth(rule, facts)
        if superseded:
            items.append(Item(rule.id, rule.code, rule.name, 0, 0, raw[rule.id], None, True, rule.return_days))
            continue
        points, cut_by = cap(rule, raw[rule.id], usage.get(rule.id)) if rule.counted else (raw[rule.id], None)
        if cut_by == "DAILY_TIMES":
            growth = 0
        items.append(Item(rule.id, rule.code, rule.name, points, growth, raw[rule.id], cut_by, False,
                          rule.return_days))
    return Outcome(tuple(items))


def order(rules: list[Rule]) -> list[Rule]:
    return sorted(rules, key=lambda r: (-r.priority, r.id))


def overlaps(a: Rule, b: Rule) -> bool:
    """Two rules that would double-count: same trigger, both added, same action and conditions, and
    time windows that meet. (Competing offers belong in a BEST_OF group.)"""
    if a.id == b.id or a.trigger != b.trigger or a.status != "ACTIVE" or b.status != "ACTIVE":
        return False
    if a.stacking != "ADD" or b.stacking != "ADD" or a.action != b.action or a.conditions != b.conditions:
        return False
    if a.segment_id != b.segment_id:  # like a tier condition: a segment's extra on top of everyone's
        return False
    a_start, b_start = a.starts_at or datetime.min.replace(tzinfo=clock.SHANGHAI), b.starts_at or datetime.min.replace(
        tzinfo=clock.SHANGHAI)
    a_end, b_end = a.ends_at or datetime.max.replace(tzinfo=clock.SHANGHAI), b.ends_at or datetime.max.replace(
        tzinfo=clock.SHANGHAI)
    return a_start < b_end and b_start < a_end
