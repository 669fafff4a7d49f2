from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    INVALID_INPUT = "INVALID_INPUT"
    NOT_FOUND = "NOT_FOUND"
    INSUFFICIENT_POINTS = "INSUFFICIENT_POINTS"
    DUPLICATE_RECEIPT = "DUPLICATE_RECEIPT"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    MEMBER_CODE_EXPIRED = "MEMBER_CODE_EXPIRED"
    SMS_CODE_INVALID = "SMS_CODE_INVALID"
    RATE_LIMITED = "RATE_LIMITED"
    MERCHANT_NOT_ALLOWED = "MERCHANT_NOT_ALLOWED"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    # points mall (issue 4)
    OUT_OF_STOCK = "OUT_OF_STOCK"
    PURCHASE_LIMIT_REACHED = "PURCHASE_LIMIT_REACHED"
    TIER_NOT_ELIGIBLE = "TIER_NOT_ELIGIBLE"
    NOT_ON_SALE = "NOT_ON_SALE"
    ORDER_EXPIRED = "ORDER_EXPIRED"
    ORDER_STATE_INVALID = "ORDER_STATE_INVALID"
    PAYMENT_AMOUNT_MISMATCH = "PAYMENT_AMOUNT_MISMATCH"
    VOUCHER_ALREADY_USED = "VOUCHER_ALREADY_USED"
    VOUCHER_EXPIRED = "VOUCHER_EXPIRED"
    VOUCHER_OTHER_MERCHANT = "VOUCHER_OTHER_MERCHANT"
    VOUCHER_VOID = "VOUCHER_VOID"
    # parking and lucky draws (issue 5)
    PLATE_INVALID = "PLATE_INVALID"
    CONSENT_REQUIRED = "CONSENT_REQUIRED"
    VEHICLE_LIMIT_REACHED = "VEHICLE_LIMIT_REACHED"
    PLATE_BOUND_ELSEWHERE = "PLATE_BOUND_ELSEWHERE"
    VEHICLE_NOT_BOUND = "VEHICLE_NOT_BOUND"
    NO_OPEN_STAY = "NO_OPEN_STAY"
    STAY_ENDED = "STAY_ENDED"
    OFFSET_CAP_EXCEEDED = "OFFSET_CAP_EXCEEDED"
    GAME_NOT_OPEN = "GAME_NOT_OPEN"
    PLAY_LIMIT_REACHED = "PLAY_LIMIT_REACHED"
    STAY_ALREADY_OPEN = "STAY_ALREADY_OPEN"
    CAR_PARK_NOT_ALLOWED = "CAR_PARK_NOT_ALLOWED"
    # earning (issue 3)
    RULE_CONFLICT = "RULE_CONFLICT"
    CAP_INVALID = "CAP_INVALID"
    ALREADY_CHECKED_IN = "ALREADY_CHECKED_IN"
    ALREADY_RECORDED = "ALREADY_RECORDED"
    TASK_ALREADY_CLAIMED = "TASK_ALREADY_CLAIMED"
    TASK_NOT_COMPLETED = "TASK_NOT_COMPLETED"
    INVITE_CODE_INVALID = "INVITE_CODE_INVALID"
    INVITE_CODE_OWN = "INVITE_CODE_OWN"
    NOT_ACTIVE = "NOT_ACTIVE"
    # operators (issue 10)
    ROLE_INVALID = "ROLE_INVALID"
    ROLE_NOT_GRANTABLE = "ROLE_NOT_GRANTABLE"
    LAST_ADMIN = "LAST_ADMIN"
    USERNAME_TAKEN = "USERNAME_TAKEN"
    APPROVAL_OWN_REQUEST = "APPROVAL_OWN_REQUEST"
    APPROVAL_ALREADY_DECIDED = "APPROVAL_ALREADY_DECIDED"
    TIER_THRESHOLD_TAKEN = "TIER_THRESHOLD_TAKEN"
    CODE_TAKEN = "CODE_TAKEN"
    MERCHANT_INACTIVE = "MERCHANT_INACTIVE"
    # merchant assistant (issue 12)
    STAFF_ROLE_REQUIRED = "STAFF_ROLE_REQUIRED"
    # settlement (issue 12)
    STATEMENT_PERIOD_CLOSED = "STATEMENT_PERIOD_CLOSED"
    STATEMENT_STATE_INVALID = "STATEMENT_STATE_INVALID"
    # segment restrictions (issue 13 item 3): the member is not in the segment a task, game or product is for
    SEGMENT_NOT_ELIGIBLE = "SEGMENT_NOT_ELIGIBLE"
    # retryable (issue 14): a lock wait ran out; nothing was written, the same request may be sent again
    TRY_AGAIN = "TRY_AGAIN"


class DomainError(Exception):
    """A business rule said no. Carries a typed code, a message for people and the input path."""

    def __init__(self, code: ErrorCode, message: str, field: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def __repr__(self) -> str:
        return f"DomainError({self.code.value}, {self.message!r}, {self.field!r})"


class AuthError(Exception):
    """The caller is not who they must be: becomes a top-level error with extensions.code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extensions = {"code": code}  # copied by graphql-core onto the located error


def unauthenticated(message: str = "authentication required") -> AuthError:
    return AuthError("UNAUTHENTICATED", message)


def forbidden(message: str = "not allowed for this caller") -> AuthError:
    return AuthError("FORBIDDEN", message)
