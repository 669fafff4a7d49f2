"""Validation of operators' earning configuration: rules and tasks (pure functions, no I/O)."""
from __future__ import annotations

from api.services import text
from api.services.earning import rules as R
from api.services.earning.tasks import METRICS, PERIODS, TaskInfo
from api.services.errors import DomainError, ErrorCode

MAX_POINTS = 1_000_000


def bad(message: str, field: str, code: ErrorCode = ErrorCode.INVALID_INPUT) -> DomainError:
    return DomainError(code, message, ["input", field])


def no_controls(value: str, field: str) -> None:
    """Codes and names operators and members read: no control characters (text.control_char)."""
    found = text.control_char(value)
    if found is not None:
        raise bad(f"{field} must not contain control characters (found U+{ord(found):04X})", field)


def validate_rule(rule: R.Rule) -> None:
    if not rule.code or len(rule.code) > 64 or not rule.code.replace("_", "").replace("-", "").isalnum():
        raise bad("code must be 1 to 64 letters, digits, - or _", "code")
    if not rule.name or len(rule.name) > 128:
        raise bad("name must be 1 to 128 characters", "name")
    no_controls(rule.name, "name")
    if rule.stack_group:
        no_controls(rule.stack_group, "stackGroup")
    if rule.trigger not in R.TRIGGERS:
        raise bad(f"trigger must be one of {', '.join(R.TRIGGERS)}", "trigger")
    if rule.stacking not in R.STACKING:
        raise bad("stacking must be ADD or BEST_OF", "stacking")
    if rule.action not in R.ACTIONS or rule.growth_action not in R.GROWTH_ACTIONS:
        raise bad("unknown action", "action")
    per_yuan = rule.action in ("POINTS_PER_YUAN", "MULTIPLIER_PERCENT") or rule.growth_action == "GROWTH_PER_YUAN"
    if per_yuan and rule.trigger != "PURCHASE":
        raise bad("per-yuan actions and multipliers apply to PURCHASE rules only", "action")
    if not 0 <= rule.action_value <= MAX_POINTS or not 0 <= rule.growth_value <= MAX_POINTS:
        raise bad(f"values must be 0 to {MAX_POINTS}", "actionValue")
    if rule.action == "MULTIPLIER_PERCENT" and not 100 < rule.action_value <= 1000:
        raise bad("a multiplier is a percentage above 100 and at most 1000 (200 = double points)", "actionValue")
    if rule.action == "NONE" and rule.growth_action == "NONE":
        raise bad("a rule must give points or growth value", "action")
    for name in ("cap_daily_points", "cap_monthly_points", "cap_daily_times", "budget_points"):
        value = getattr(rule, name)
        if value is not None and value <= 0:
            raise DomainError(ErrorCode.CAP_INVALID, f"{name} must be positive (leave it unset for no cap)",
                              ["input", camel(name)])
    if rule.return_days < 0 or rule.return_days > 90:
        raise bad("returnDays must be 0 to 90", "returnDays")
    if rule.return_days and rule.trigger != "PURCHASE":
        raise bad("a return window applies to PURCHASE rules only", "returnDays")
    if rule.starts_at and rule.ends_at and rule.ends_at <= rule.starts_at:
        raise bad("endsAt must be after startsAt", "endsAt")
    c = rule.conditions
    if any(not 1 <= d <= 7 for d in c.weekdays):
        raise bad("weekdays are 1 (Monday) to 7 (Sunday)", "conditions")
    if c.birthday not in (None, "DAY", "MONTH") or c.invite_role not in (None, "INVITER", "INVITEE"):
        raise bad("birthday is DAY or MONTH; inviteRole is INVITER or INVITEE", "conditions")
    if c.member_day is not None and not 1 <= c.member_day <= 31:
        raise bad("memberDay is a day of the month, 1 to 31", "conditions")
    if c.min_amount_fen is not None and c.min_amount_fen < 0:
        raise bad("minAmountFen may not be negative", "conditions")
    if c.invite_role and rule.trigger != "INVITE_ACCEPTED":
        raise bad("inviteRole applies to INVITE_ACCEPTED rules only", "conditions")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def validate_task(t: TaskInfo, tier_codes: set[str]) -> None:
    if not t.code or len(t.code) > 64 or not t.name or len(t.name) > 128:
        raise bad("code (1 to 64) and name (1 to 128 characters) are required", "code")
    no_controls(t.code, "code")
    no_controls(t.name, "name")
    if t.period not in PERIODS:
        raise bad(f"period must be one of {', '.join(PERIODS)}", "period")
    if t.metric not in METRICS:
        raise bad(f"metric must be one of {', '.join(METRICS)}", "metric")
    if not 0 < t.target <= 10**10:
        raise bad("target must be positive", "target")
    if not (0 <= t.reward_points <= MAX_POINTS and 0 <= t.reward_growth <= MAX_POINTS) or not (
            t.reward_points or t.reward_growth):
        raise bad("a task rewards points and/or growth value (0 to 1,000,000)", "rewardPoints")
    if unknown := set(t.tier_codes) - tier_codes:
        raise bad(f"unknown tiers: {', '.join(sorted(unknown))}", "tierCodes")
    if t.starts_at and t.ends_at and t.ends_at <= t.starts_at:
        raise bad("endsAt must be after startsAt", "endsAt")
