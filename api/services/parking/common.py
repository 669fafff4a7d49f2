"""What every part of parking shares: its limits, and the errors several of its moves raise."""
from __future__ import annotations

from datetime import timedelta

from api.services.errors import DomainError, ErrorCode

CONSENT_VERSION = "plate-v1"  # the text members agree to when binding a plate (processing plate records)
MAX_VEHICLES = 3
MAX_COUPONS = 5
HOLD_HOURS = 24  # a points hold outlives its apply by this much; the exit re-holds if it lapsed
FUTURE_SLACK = timedelta(minutes=5)  # a car park's clock may run this far ahead of ours
MAX_EVENT_ID = 64
HOLD_SOURCE = "parking_session"
MAX_FEN = 100_000_000
PARKING_COUPON = "PARKING_COUPON"


def is_unique_violation(exc: Exception) -> bool:
    text = str(exc).lower()
    return "unique" in text or "duplicate" in text


def invalid(message: str, field: str) -> DomainError:
    return DomainError(ErrorCode.INVALID_INPUT, message, ["input", field])


def no_member() -> DomainError:
    return DomainError(ErrorCode.NOT_FOUND, "no such member", None)
