"""The one source of 'now' for the domain, in UTC. Tests move it; nothing else does."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from api.services.errors import DomainError, ErrorCode

SHANGHAI = ZoneInfo("Asia/Shanghai")
_offset = [None]  # a fixed datetime that replaces now(), set only by tests


def now() -> datetime:
    fixed = _offset[0]
    return fixed if fixed is not None else datetime.now(timezone.utc)


def freeze(at: datetime | None) -> None:
    _offset[0] = None if at is None else to_utc(at)


class NaiveTimeError(DomainError, ValueError):
    """A time without a UTC offset: INVALID_INPUT for the caller (and still a ValueError)."""


def to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise NaiveTimeError(ErrorCode.INVALID_INPUT,
                             "times must carry a UTC offset, e.g. 2026-11-23T10:00:00+08:00")
    return value.astimezone(timezone.utc)


def business_day(at: datetime) -> date:
    """The Asia/Shanghai day (business days cut there) that `at` falls on."""
    return at.astimezone(SHANGHAI).date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """Start and end (exclusive) of an Asia/Shanghai day, in UTC."""
    start = datetime.combine(day, time.min, tzinfo=SHANGHAI)
    return start.astimezone(timezone.utc), (start + timedelta(days=1)).astimezone(timezone.utc)


def day_start(at: datetime) -> datetime:
    """Midnight (Asia/Shanghai) of the day `at` falls on, in UTC."""
    return day_bounds(business_day(at))[0]


def parse_db_time(value) -> datetime | None:
    """Rows read with raw SQL: asyncpg gives datetimes, SQLite gives ISO strings."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def add_months(value: datetime, months: int) -> datetime:
    month_index = value.month - 1 + months
    year, month = value.year + month_index // 12, month_index % 12 + 1
    for day in (value.day, 30, 29, 28):
        try:
            return value.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")
