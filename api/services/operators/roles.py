"""Operator roles and what each may do: the one table, checked on every root field of the operators'
endpoint (api/schema/operators/permissions.py) and described in docs/operators.md.

ADMIN may do everything. A root field missing from the table is refused to everyone but ADMIN (and a
test fails), so a new field is closed until someone decides who may call it.
"""
from __future__ import annotations

from collections.abc import Iterable

from api.services.errors import DomainError, ErrorCode

ADMIN, MARKETING, SERVICE, FINANCE, AUDITOR = "ADMIN", "MARKETING", "SERVICE", "FINANCE", "AUDITOR"
ROLE_NAMES: tuple[str, ...] = (ADMIN, MARKETING, SERVICE, FINANCE, AUDITOR)
EVERYONE = frozenset(ROLE_NAMES)
# Roles whose holders may create and update operators, granting only roles they hold themselves
# (ADMIN grants every role). SERVICE may not: more SERVICE accounts would mean more daily adjustment room.
MANAGERS = frozenset({ADMIN, MARKETING, FINANCE})


def _only(*roles: str) -> frozenset[str]:
    return frozenset({ADMIN, *roles})


READ = EVERYONE  # every role reads the mall's data; AUDITOR reads and changes nothing
RUNS = _only()  # scheduled jobs run by hand
CAMPAIGNS = _only(MARKETING)  # rules, tasks, events, products, sales, games, tiers

# Root field → the roles that may call it. None: no sign-in needed.
PERMISSIONS: dict[str, frozenset[str] | None] = {
    # signing in and operators
    "operatorLogin": None,
    "operatorMe": EVERYONE,
    "operators": _only(MARKETING, FINANCE, AUDITOR),
    "operatorCreate": MANAGERS,
    "operatorUpdate": MANAGERS,
    "auditLog": _only(FINANCE, AUDITOR),
    # members and points
    "members": READ, "member": READ, "node": READ,
    "pointsAdjust": _only(SERVICE),
    "pointsAdjustApprovals": _only(SERVICE, FINANCE, AUDITOR),
    "pointsAdjustApprove": _only(FINANCE),
    "pointsEarnPreview": _only(MARKETING, SERVICE),
    "eventCheckIn": _only(MARKETING, SERVICE),
    "smsMessages": _only(SERVICE),  # dev-only outbox, full phone numbers
    # merchants, tiers, keys
    "merchants": READ, "tiers": READ, "merchantStaff": READ,
    "merchantCreate": _only(), "merchantUpdate": _only(),
    "tierCreate": CAMPAIGNS, "tierUpdate": CAMPAIGNS,
    "merchantStaffCreate": _only(), "merchantStaffDeactivate": _only(),
    "integrationKeys": _only(AUDITOR),
    "integrationKeyCreate": _only(), "integrationKeyRevoke": _only(),
    # points mall, flash sales, lucky draws
    "products": READ, "flashSales": READ, "drawGames": READ, "drawPlays": READ, "mallOrders": READ,
    "productCreate": CAMPAIGNS, "productUpdate": CAMPAIGNS,
    "flashSaleCreate": CAMPAIGNS, "flashSaleUpdate": CAMPAIGNS, "flashSaleGateRebuild": CAMPAIGNS,
    "drawGameCreate": CAMPAIGNS, "drawGameUpdate": CAMPAIGNS, "drawPrizeUpdate": CAMPAIGNS,
    "mallOrderRefund": _only(SERVICE, FINANCE),
    # parking
    "carParks": READ, "parkingSessions": READ, "parkingOccupancy": READ, "parkingOffsetTotals": READ,
    "carParkCreate": _only(), "carParkUpdate": CAMPAIGNS, "carParkKeyBind": _only(),
    # earning
    "earnRules": READ, "earnTasks": READ, "mallEvents": READ,
    "earnRuleCreate": CAMPAIGNS, "earnRuleUpdate": CAMPAIGNS, "earnRulePause": CAMPAIGNS,
    "earnRuleActivate": CAMPAIGNS, "earnRuleArchive": CAMPAIGNS,
    "taskCreate": CAMPAIGNS, "taskUpdate": CAMPAIGNS, "taskPause": CAMPAIGNS, "taskActivate": CAMPAIGNS,
    "taskArchive": CAMPAIGNS,
    "mallEventCreate": CAMPAIGNS, "mallEventUpdate": CAMPAIGNS, "mallEventArchive": CAMPAIGNS,
    # insight (issue 13)
    "kpis": READ, "lifecycleDistribution": READ, "topMerchants": READ,
    "insightRecompute": _only(MARKETING),
    # tags, segments, campaigns (issue 13)
    "segments": READ, "campaigns": READ,
    "segmentCreate": CAMPAIGNS, "memberTagAdd": CAMPAIGNS, "memberTagRemove": CAMPAIGNS,
    "memberTagAddFromSegment": CAMPAIGNS, "memberTagImport": CAMPAIGNS, "campaignCreate": CAMPAIGNS,
    # runs
    "pointsExpireRun": RUNS, "tierEvaluationRun": RUNS, "earningScheduleRun": RUNS,
    "parkingAbandonRun": RUNS, "mallOrdersExpireRun": RUNS,
    # merchant assistant (issue 12): merchants' voucher proposals
    "merchantVoucherProposals": READ, "merchantVoucherApprove": CAMPAIGNS,
    # settlement (issue 12); the statements' XLSX/CSV downloads follow settlementStatements
    "settlementStatements": _only(FINANCE, AUDITOR), "settlementStatement": _only(FINANCE, AUDITOR),
    "liabilityReport": _only(FINANCE, AUDITOR),
    "settlementReconciliation": _only(FINANCE, AUDITOR), "merchantTerms": _only(FINANCE, AUDITOR),
    "settlementStatementGenerate": _only(FINANCE), "settlementPeriodClose": _only(FINANCE),
    "settlementStatementApprove": _only(FINANCE),
    "settlementStatementMarkPaid": _only(FINANCE), "merchantTermsUpdate": _only(FINANCE),
    "settlementAdjustmentPost": _only(FINANCE),
    "productSettlementPriceUpdate": _only(FINANCE),
}


def needs_sign_in(field: str) -> bool:
    return field not in PERMISSIONS or PERMISSIONS[field] is not None


def may(roles: Iterable[str], field: str) -> bool:
    """Whether an operator with these roles may call this root field."""
    held = set(roles)
    if ADMIN in held:
        return True
    allowed = PERMISSIONS.get(field, frozenset({ADMIN}))
    return allowed is None or bool(held & allowed)


def parse(names: Iterable[str], field: list[str]) -> tuple[str, ...]:
    """Role names as given (any case, repeats ignored) → the canonical tuple; ROLE_INVALID otherwise."""
    roles = []
    for raw in names:
        name = (raw or "").strip().upper()
        if name not in ROLE_NAMES:
            raise DomainError(ErrorCode.ROLE_INVALID, f"unknown role {raw!r}; roles: {', '.join(ROLE_NAMES)}", field)
        if name not in roles:
            roles.append(name)
    if not roles:
        raise DomainError(ErrorCode.ROLE_INVALID, "give at least one role", field)
    return tuple(r for r in ROLE_NAMES if r in roles)


def grantable(grantor: Iterable[str] | None) -> frozenset[str]:
    """The roles an operator may give (None: the command line, which may give every role)."""
    if grantor is None:
        return EVERYONE
    held = frozenset(grantor)
    if ADMIN in held:
        return EVERYONE
    return held & MANAGERS if held & MANAGERS else frozenset()


def needs_approval(roles: Iterable[str]) -> bool:
    """A SERVICE operator's large adjustments wait for a second operator; ADMIN's do not."""
    held = set(roles)
    return SERVICE in held and ADMIN not in held


def approves(roles: Iterable[str]) -> bool:
    return bool(set(roles) & {ADMIN, FINANCE})


def encode(roles: Iterable[str]) -> str:
    return ",".join(roles)


def decode(stored: str | None) -> tuple[str, ...]:
    return tuple(r for r in (stored or "").split(",") if r in ROLE_NAMES)
