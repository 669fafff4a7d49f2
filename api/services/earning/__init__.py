"""Earning: rules as data, their caps and budgets, breakdowns, pending points, behaviours (check-in,
share, review, event, profile), invites, tasks and events. One idea a file:

- `rules`: rule evaluation, pure functions (no I/O);
- `cache`: the per-process rule cache and member facts (birth month, has purchased);
- `counters`: caps and budgets (read, counted, given back by refunds);
- `engine`: earning inside a points move, and the purchase fast path's per-tier plan;
- `preview`: what a receipt would earn, booking nothing;
- `pending`: pending points (cancelled by refunds, released by the scheduled run);
- `reads`: breakdowns and pending totals for the schema's DataLoaders;
- `behaviours`, `invites`, `tasks`: what members do that earns;
- `validation`, `admin`: operators' configuration of rules, tasks and events;
- `sql`: the domain's raw SQL, each statement with the reason it is SQL.

Callers use `from api.services import earning` (`earning.apply`, …) and the submodules by name
(`from api.services.earning import behaviours`).
"""
from api.services.earning import admin, behaviours, invites, rules, sql, tasks, validation
from api.services.earning.cache import (
    RULES_CACHE_SECONDS,
    active_rules,
    birthday_of,
    forget_birthday,
    has_purchased,
    invalidate_cache,
    reset_caches,
    rule_of,
)
from api.services.earning.counters import give_back_counters, local_day, periods
from api.services.earning.engine import Applied, PurchasePlan, apply, facts_for, purchase_plan, with_segments
from api.services.earning.pending import ReleaseResult, cancel_pending, release_pending
from api.services.earning.preview import preview_purchase, preview_receipt
from api.services.earning.reads import breakdowns, pending_totals

__all__ = [
    "rules", "sql", "behaviours", "tasks", "invites", "validation", "admin",
    "RULES_CACHE_SECONDS", "active_rules", "birthday_of", "forget_birthday", "has_purchased", "invalidate_cache",
    "reset_caches", "rule_of", "give_back_counters", "local_day", "periods", "Applied", "PurchasePlan", "apply",
    "facts_for", "purchase_plan", "ReleaseResult", "cancel_pending", "release_pending", "preview_purchase",
    "preview_receipt", "breakdowns", "pending_totals", "with_segments",
]
