"""Settlement periods: a day, an ISO week (Monday to Sunday) or a calendar month, in Asia/Shanghai."""
from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta, timezone

from api.services import clock
from api.services.errors import DomainError, ErrorCode

FIELD = ["input", "periodStart"]


def kind_of(start: date, end: date) -> str:
    """DAY, WEEK or MONTH; INVALID_INPUT for any other span."""
    if start == end:
        return "DAY"
    if start.weekday() == 0 and end == start + timedelta(days=6):
        return "WEEK"
    if start.day == 1 and end == start.replace(day=calendar.monthrange(start.year, start.month)[1]):
        return "MONTH"
    raise DomainError(ErrorCode.INVALID_INPUT, "a period is one day, a Monday-to-Sunday week or a calendar month",
                      FIELD)


def today() -> date:
    return clock.now().astimezone(clock.SHANGHAI).date()


def check_closed(end: date) -> None:
    """Only a period that has ended (in Asia/Shanghai) is settled."""
    if end >= today():
        raise DomainError(ErrorCode.INVALID_INPUT, "the period has not ended yet (Asia/Shanghai)",
                          ["input", "periodEnd"])


def end_instant(end: date) -> datetime:
    """The first moment after the period (midnight after `end`, Asia/Shanghai), in UTC."""
    return datetime.combine(end + timedelta(days=1), time(0), clock.SHANGHAI).astimezone(timezone.utc)


def start_instant(start: date) -> datetime:
    return datetime.combine(start, time(0), clock.SHANGHAI).astimezone(timezone.utc)
