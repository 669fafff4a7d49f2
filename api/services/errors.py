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
