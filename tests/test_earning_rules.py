"""Rule evaluation as pure functions: conditions, stacking, caps, rounding (no I/O)."""
from __future__ import annotations

from datetime import date, datetime, timezone

from hypothesis import given
from hypothesis import strategies as st

from api.services import clock
from api.services.earning.rules import (
    Conditions,
    Facts,
    Rule,
    Usage,
    cap,
    evaluate,
    evaluate_tiers,
    matches,
    order,
    overlaps,
)

DEFAULT = Rule(1, "DEFAULT_PURCHASE", "消费积分", "PURCHASE", action="POINTS_PER_YUAN", action_value=1,
               apply_tier_multiplier=True, growth_action="GROWTH_PER_YUAN", growth_value=1)
# 2026-11-18 is a Wednesday; 10:00 in Shanghai is 02:00 UTC.
WED_18 = datetime(2026, 11, 18, 2, 0, tzinfo=timezone.utc)


def purchase(amount_fen: int, *, at: datetime = WED_18, tier: str = "NORMAL", multiplier: int = 100,
             merchant: str = "M001", category: str = "餐饮", birthday: date | None = None, first: bool = False) -> Facts:
    return Facts("PURCHASE", at, tier, multiplier, amount_fen, merchant, category, birthday, first)


def test_default_rule_is_floor_of_yuan_times_tier_multiplier():
    assert evaluate([DEFAULT], purchase(12345)).points == 123
    assert evaluate([DEFAULT], purchase(10001, multiplier=200)).points == 200
    assert evaluate([DEFAULT], purchase(99)).points == 0
    assert evaluate([DEFAULT], purchase(12345)).growth == 123


def test_conditions_each_narrow_the_match():
    c = Rule(2, "C", "c", "PURCHASE", action="FIXED_POINTS", action_value=5)
    assert matches(c, purchase(100))
    assert not matches(Rule(**{**c.__dict__, "conditions": Conditions(merchant_codes=("M002",))}), purchase(100))
    assert matches(Rule(**{**c.__dict__, "conditions": Conditions(merchant_categories=("餐饮",))}), purchase(100))
    assert not matches(Rule(**{**c.__dict__, "conditions": Conditions(tier_codes=("GOLD",))}), purchase(100))
    assert matches(Rule(**{**c.__dict__, "conditions": Conditions(weekdays=(3,))}), purchase(100))
    assert not matches(Rule(**{**c.__dict__, "conditions": Conditions(weekdays=(6, 7))}), purchase(100))
    assert matches(Rule(**{**c.__dict__, "conditions": Conditions(member_day=18)}), purchase(100))
    assert not matches(Rule(**{**c.__dict__, "conditions": Conditions(min_amount_fen=101)}), purchase(100))
    assert not matches(Rule(**{**c.__dict__, "conditions": Conditions(first_purchase=True)}), purchase(100))
    assert matches(Rule(**{**c.__dict__, "conditions": Conditions(first_purchase=True)}), purchase(100, first=True))
    month = Rule(**{**c.__dict__, "conditions": Conditions(birthday="MONTH")})
    day = Rule(**{**c.__dict__, "conditions": Conditions(birthday="DAY")})
    assert matches(month, purchase(100, birthday=date(1990, 11, 2)))
    assert not matches(day, purchase(100, birthday=date(1990, 11, 2)))
    assert matches(day, purchase(100, birthday=date(1990, 11, 18)))
    assert not matches(month, purchase(100))  # no birthday on file


def test_days_cut_in_shanghai_not_utc():
    # 2026-11-17 23:30 UTC is already Wednesday the 18th, 07:30, in Shanghai.
    late = datetime(2026, 11, 17, 23, 30, tzinfo=timezone.utc)
    member_day = Rule(2, "MD", "会员日", "PURCHASE", conditions=Conditions(member_day=18), action="FIXED_POINTS",
                      action_value=1)
    assert matches(member_day, purchase(100, at=late))


def test_date_window_is_half_open():
    start = datetime(2026, 11, 18, 0, 0, tzinfo=clock.SHANGHAI)
    end = datetime(2026, 11, 19, 0, 0, tzinfo=clock.SHANGHAI)
    rule = Rule(2, "W", "w", "PURCHASE", action="FIXED_POINTS", action_value=1, starts_at=start, ends_at=end)
    assert matches(rule, purchase(100, at=start))
    assert not matches(rule, purchase(100, at=end))
    assert not matches(Rule(**{**rule.__dict__, "status": "PAUSED"}), purchase(100, at=start))


def test_multiplier_applies_to_the_per_yuan_base_and_stacks_by_adding():
    double = Rule(2, "DOUBLE", "双倍积分日", "PURCHASE", action="MULTIPLIER_PERCENT", action_value=200)
    bonus = Rule(3, "BONUS", "满额奖励", "PURCHASE", action="FIXED_POINTS", action_value=7,
                 conditions=Conditions(min_amount_fen=10000))
    outcome = evaluate(order([DEFAULT, double, bonus]), purchase(15050, multiplier=120))
    by_rule = {i.rule_code: i.points for i in outcome.items}
    assert by_rule == {"DEFAULT_PURCHASE": 180, "DOUBLE": 180, "BONUS": 7}  # floor(150.5 × 1.2) = 180
    assert outcome.points == 367


def test_best_of_group_keeps_only_the_largest():
    a = Rule(2, "A", "a", "PURCHASE", stacking="BEST_OF", stack_group="promo", action="FIXED_POINTS", action_value=30)
    b = Rule(3, "B", "b", "PURCHASE", stacking="BEST_OF", stack_group="promo", action="MULTIPLIER_PERCENT",
             action_value=150, priority=5)
    outcome = evaluate(order([DEFAULT, a, b]), purchase(10000))  # base 100: B gives 50 > 30
    items = {i.rule_code: i for i in outcome.items}
    assert items["B"].points == 50 and not items["B"].superseded
    assert items["A"].points == 0 and items["A"].superseded and items["A"].uncapped == 30
    assert outcome.points == 150


def test_caps_cut_and_say_which():
    share = Rule(4, "SHARE", "分享", "SHARE", action="FIXED_POINTS", action_value=10, cap_daily_points=25,
                 cap_monthly_points=100, cap_daily_times=3, budget_points=1000)
    assert cap(share, 10, Usage(0, 0, 0, 1000)) == (10, None)
    assert cap(share, 10, Usage(20, 20, 2, 1000)) == (5, "DAILY_POINTS")
    assert cap(share, 10, Usage(0, 95, 0, 1000)) == (5, "MONTHLY_POINTS")
    assert cap(share, 10, Usage(0, 0, 3, 1000)) == (0, "DAILY_TIMES")
    assert cap(share, 10, Usage(0, 0, 0, 4)) == (4, "BUDGET")
    facts = Facts("SHARE", WED_18)
    item = evaluate([share], facts, {4: Usage(20, 20, 2, 1000)}).items[0]
    assert (item.points, item.uncapped, item.cap) == (5, 10, "DAILY_POINTS")


def test_overlap_is_same_add_rule_twice_in_one_window():
    a = Rule(2, "A", "a", "PURCHASE", action="FIXED_POINTS", action_value=5)
    assert overlaps(a, Rule(**{**a.__dict__, "id": 3, "code": "B"}))
    assert not overlaps(a, Rule(**{**a.__dict__, "id": 3, "code": "B", "conditions": Conditions(member_day=18)}))
    assert not overlaps(a, Rule(**{**a.__dict__, "id": 3, "code": "B", "stacking": "BEST_OF"}))
    day = datetime(2026, 11, 18, tzinfo=clock.SHANGHAI)
    early = Rule(**{**a.__dict__, "ends_at": day})
    assert not overlaps(early, Rule(**{**a.__dict__, "id": 3, "code": "B", "starts_at": day}))


rule_strategy = st.builds(
    lambda i, action, value, group, best, cap_d: Rule(
        i, f"R{i}", "r", "PURCHASE", stacking="BEST_OF" if best else "ADD", stack_group=group if best else None,
        action=action, action_value=value if action != "MULTIPLIER_PERCENT" else 100 + value,
        apply_tier_multiplier=True, cap_daily_points=cap_d),
    st.integers(1, 10_000), st.sampled_from(["POINTS_PER_YUAN", "MULTIPLIER_PERCENT", "FIXED_POINTS"]),
    st.integers(0, 20), st.sampled_from(["g1", "g2"]), st.booleans(), st.one_of(st.none(), st.integers(1, 500)),
)


@given(st.lists(rule_strategy, max_size=8, unique_by=lambda r: r.id), st.integers(1, 10_000_000),
       st.sampled_from([100, 120, 150, 200]), st.integers(0, 1000))
def test_any_rule_set_gives_whole_non_negative_points_within_caps(rules, amount, multiplier, used):
    facts = purchase(amount, multiplier=multiplier)
    outcome = evaluate(order(rules), facts, {r.id: Usage(used, used, 0, None) for r in rules})
    assert all(isinstance(i.points, int) and 0 <= i.points <= i.uncapped for i in outcome.items)
    assert outcome.points == sum(i.points for i in outcome.items)
    for rule in rules:
        item = next(i for i in outcome.items if i.rule_id == rule.id)
        if rule.cap_daily_points is not None:
            assert item.points <= max(0, rule.cap_daily_points - used)
    for group in ("g1", "g2"):  # at most one rule of a BEST_OF group counts
        counted = [i for i in outcome.items if not i.superseded and any(
            r.id == i.rule_id and r.stacking == "BEST_OF" and r.stack_group == group for r in rules)]
        assert len(counted) <= 1
    # Rounding: each rule is floored on its own, never more than the exact amount.
    for rule in rules:
        if rule.action == "POINTS_PER_YUAN":
            item = next(i for i in outcome.items if i.rule_id == rule.id)
            assert item.uncapped * 10_000 <= amount * rule.action_value * multiplier


@given(st.lists(rule_strategy, max_size=8, unique_by=lambda r: r.id), st.integers(1, 1_000_000))
def test_planning_every_tier_at_once_equals_evaluating_each(rules, amount):
    import json
    from dataclasses import replace

    tiered = [replace(r, conditions=Conditions(tier_codes=("GOLD",))) if r.id % 3 == 0 else r for r in rules]
    tiers = [("NORMAL", 100), ("SILVER", 120), ("GOLD", 150), ("DIAMOND", 200)]
    planned = evaluate_tiers(order(tiered), purchase(amount), tiers)
    for (code, multiplier), outcome in zip(tiers, planned, strict=True):
        assert outcome == evaluate(order(tiered), purchase(amount, tier=code, multiplier=multiplier))
        assert json.loads(outcome.to_json_text()) == outcome.to_json()


def test_breakdown_text_escapes_names():
    import json

    rule = Rule(9, 'Q"uote', '双"倍\\积分\n', "PURCHASE", action="FIXED_POINTS", action_value=3)
    outcome = evaluate([rule], purchase(100))
    assert json.loads(outcome.to_json_text()) == outcome.to_json()


def test_the_schema_names_the_issue_asks_for():
    from api.cli import export_schema_texts

    public, admin = export_schema_texts().values()
    for name in ("memberCheckIn(input: MemberCheckInInput!): MemberCheckInPayload!",
                 "taskClaim(input: TaskClaimInput!): TaskClaimPayload!",
                 "pointsEarnPreview(input: PointsEarnPreviewInput!): PointsEarnPreviewPayload!",
                 "checkInCalendar(month: String!): CheckInCalendar!", "pointsPending: Int!", "inviteCode: String",
                 "breakdown: [EarnBreakdownItem!]", "tasks: [TaskProgress!]!", "checkInStreak: Int!"):
        assert name in public, name
    for name in ("earnRuleCreate(input: EarnRuleCreateInput!): EarnRuleCreatePayload!",
                 "earnRuleArchive(input: EarnRuleArchiveInput!): EarnRuleArchivePayload!",
                 "taskCreate(input: TaskCreateInput!): TaskCreatePayload!",
                 "pointsEarnPreview(input: PointsEarnPreviewInput!): PointsEarnPreviewPayload!",
                 "earningScheduleRun(input: EarningScheduleRunInput!): EarningScheduleRunPayload!"):
        assert name in admin, name


def test_cli_earning_run_and_the_scheduler_setting(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent

    def cli(*args, env=None):
        full = {**os.environ, "MALLPOINTS_DATABASE_URL": f"sqlite://{tmp_path}/cli.sqlite3", **(env or {})}
        return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=root, env=full, capture_output=True,
                              text=True, timeout=300)

    assert "no database" in cli("earning-run").stderr  # a command on a mall's data does not create one
    assert cli("migrate").returncode == 0
    run = cli("earning-run")
    assert run.returncode == 0, run.stderr
    assert "released 0 pending points" in run.stdout and "closed 0 tier periods" in run.stdout
    assert cli("earning-run", "--as-of", "2999-01-01T00:00:00+08:00").returncode != 0
    bad = cli("earning-run", env={"MALLPOINTS_SCHEDULER": "sometimes"})
    assert bad.returncode != 0 and "MALLPOINTS_SCHEDULER" in (bad.stderr + bad.stdout)


def test_scheduler_settings_from_the_environment():
    from api.config import Settings

    assert Settings.from_env({}).scheduler_enabled is False
    cfg = Settings.from_env({"MALLPOINTS_SCHEDULER": "on", "MALLPOINTS_SCHEDULER_INTERVAL_SECONDS": "60"})
    assert cfg.scheduler_enabled and cfg.scheduler_interval_seconds == 60


def test_a_multiplier_does_not_multiply_per_yuan_points_their_best_of_group_discarded():
    two = Rule(2, "TWO", "2/元", "PURCHASE", action="POINTS_PER_YUAN", action_value=2, stacking="BEST_OF",
               stack_group="promo")
    three = Rule(3, "THREE", "3/元", "PURCHASE", action="POINTS_PER_YUAN", action_value=3, stacking="BEST_OF",
                 stack_group="promo")
    double = Rule(4, "DOUBLE", "双倍", "PURCHASE", action="MULTIPLIER_PERCENT", action_value=200)
    outcome = evaluate([DEFAULT, two, three, double], purchase(10_000))
    # ¥100: 100 (default) + 300 (the group's best) = 400 per yuan; doubled: + 400.
    assert outcome.points == 800
    assert {i.rule_code: i.points for i in outcome.items} == {"DEFAULT_PURCHASE": 100, "TWO": 0, "THREE": 300,
                                                              "DOUBLE": 400}
