"""The one source of 'now' for the domain, in UTC. Tests move it; nothing else does."""
from __future__ import annotations

import calendar
from datetime import MAXYEAR, MINYEAR, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from api.services.errors import DomainError, ErrorCode

SHANGHAI = ZoneInfo("Asia/Shanghai")
_offset: list[datetime | None] = [None]  # a fixed datetime that replaces now(), set only by tests


def now() -> datetime:
    fixed = _offset[0]
    return fixed if fixed is not None else datetime.now(timezone.utc)


def freeze(at: datetime | None) -> None:
    _offset[0] = None if at is None else to_utc(at)


class NaiveTimeError(DomainError, ValueError):
    """A time without a UTC offset: INVALID_INPUT for the caller (and still a ValueError)."""


class ImplausibleTimeError(DomainError, ValueError):
    """A time outside EARLIEST..LATEST: INVALID_INPUT for the caller (and still a ValueError)."""


# Every time this service takes lies in these years: arithmetic on it (a grace period, a year of
# history, months of validity) then never leaves the range of datetime. Narrower windows per field:
# api/services/text.py and docs/ledger.md ("Input hygiene").
EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)
RUN_FUTURE_SLACK = timedelta(minutes=1)  # a run as of the future would expire or close early
RUN_MAX_AGE = timedelta(days=3660)  # a run as of more than ten years ago is a typo, not a replay


def to_utc(value: datetime, field: list[str] | None = None) -> datetime:
    if value.tzinfo is None:
        raise NaiveTimeError(ErrorCode.INVALID_INPUT,
                             "times must carry a UTC offset, e.g. 2026-11-23T10:00:00+08:00", field)
    try:
        utc = value.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01T00:00+08:00 has no UTC form
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise ImplausibleTimeError(ErrorCode.INVALID_INPUT,
                                   f"times must lie between {EARLIEST.year} and {LATEST.year - 1}", field)
    return utc


def check_as_of(as_of: datetime | None, field: list[str] | None = None) -> datetime:
    """The moment a scheduled run (expiry, tier evaluation, order lapse, the earning schedule) works
    as of: now when absent; with an offset, at most RUN_MAX_AGE (ten years) ago, and not in the
    future (beyond a minute), so that nothing expires or closes early. INVALID_INPUT naming `field`
    otherwise."""
    field = field if field is not None else ["asOf"]
    current = now()
    if as_of is None:
        return current
    value = to_utc(as_of, field)
    if value > current + RUN_FUTURE_SLACK:
        raise DomainError(ErrorCode.INVALID_INPUT, "asOf may not be in the future", field)
    if value < current - RUN_MAX_AGE:
        raise DomainError(ErrorCode.INVALID_INPUT, "asOf may be at most ten years ago", field)
    return value


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


def parse_db_time(value: datetime | str | None) -> datetime | None:
    """Rows read with raw SQL: asyncpg gives datetimes, SQLite gives ISO strings."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def add_months(value: datetime, months: int) -> datetime:
    """`value` moved by whole months, the day clamped to the month's last day (Jan 31 + 1 month =
    Feb 28/29). Total: a result before year 1 or after year 9999 is clamped to datetime's range
    (in `value`'s zone), never an exception."""
    month_index = value.month - 1 + months
    year, month = value.year + month_index // 12, month_index % 12 + 1
    if year < MINYEAR:
        return datetime.min.replace(tzinfo=value.tzinfo)
    if year > MAXYEAR:
        return datetime.max.replace(tzinfo=value.tzinfo)
    day = min(value.day, calendar.monthrange(year, month)[1])
    return value.replace(year=year, month=month, day=day)
