"""Operators: accounts and roles (argon2id sign-in), point adjustments with maker-checker approval,
and scheduled runs by hand; all audited. Public names as before the package split."""
from api.services.operators import roles
from api.services.operators.accounts import (
    OperatorInfo,
    create_operator,
    ensure_operator,
    get_any,
    get_many,
    get_operator,
    hash_password,
    login,
    page,
    update_operator,
)
from api.services.operators.adjustments import (
    AdjustResult,
    ApprovalInfo,
    adjust_points,
    approvals_page,
    decide,
    get_approval,
)
from api.services.operators.runs import run_expiry, run_order_expiry, run_tier_evaluation, sms_outbox

__all__ = [
    "AdjustResult", "ApprovalInfo", "OperatorInfo", "adjust_points", "approvals_page", "create_operator", "decide",
    "ensure_operator", "get_any", "get_approval", "get_many", "get_operator", "hash_password", "login", "page", "roles",
    "run_expiry", "run_order_expiry", "run_tier_evaluation", "sms_outbox", "update_operator",
]
