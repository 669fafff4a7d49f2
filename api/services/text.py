"""Input hygiene shared by every service that takes an identifier, a name or a time from outside.

- Identifiers (receipt numbers, idempotency keys, merchant codes, key ids, usernames) and names
  (nicknames, display names, key names) are refused when they hold a control character: C0 controls
  (NUL included), DEL, C1 controls (Unicode category Cc), and the bidirectional controls
  U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069 (they reorder what an operator reads).
  Refused, not cleaned: what the caller sent is either stored as sent or not at all, and PostgreSQL
  cannot store NUL in text anyway. Zero-width joiners (emoji sequences) are allowed.
- Times from outside must carry a UTC offset and fall inside a window that fits their meaning;
  `check_time` is the one check (INVALID_INPUT naming the field). `clock.to_utc` additionally refuses
  anything outside the years 1900–2199 for every time, so arithmetic on an input never overflows.

docs/ledger.md ("Input hygiene") lists the window of each field.
"""
from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta

from api.services import clock
from api.services.errors import DomainError, ErrorCode

BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

# Windows of the times taken from outside (see docs/ledger.md, "Input hygiene").
CLOCK_SKEW = timedelta(minutes=5)          # a till's or a provider's clock may run this far ahead
PARKING_ENTRY_MAX_AGE = timedelta(days=30)  # an open stay older than this is abandoned anyway
PAID_AT_MAX_AGE = timedelta(days=30)        # a payment notification this late is not a live payment


def control_char(value: str) -> str | None:
    """The first control or bidi-override character in `value`, or None."""
    for ch in value:
        if ch in BIDI_CONTROLS or unicodedata.category(ch) == "Cc":
            return ch
    return None


def _path(field: str | list[str]) -> list[str]:
    return [field] if isinstance(field, str) else list(field)


def clean(value: str | None, field: str | list[str], *, max_length: int, min_length: int = 1,
          what: str | None = None) -> str:
    """`value` stripped of surrounding blanks, 1..max_length characters, no control characters;
    INVALID_INPUT naming `field` otherwise."""
    path = _path(field)
    label = what or path[-1]
    text = (value or "").strip()
    if not min_length <= len(text) <= max_length:
        raise DomainError(ErrorCode.INVALID_INPUT, f"{label} must be {min_length} to {max_length} characters", path)
    bad = control_char(text)
    if bad is not None:
        raise DomainError(ErrorCode.INVALID_INPUT,
                          f"{label} must not contain control characters (found U+{ord(bad):04X})", path)
    return text


def identifier(value: str | None, field: str | list[str], max_length: int = 64) -> str:
    """An identifier from outside (receipt number, key, code)."""
    return clean(value, field, max_length=max_length)


def name(value: str | None, field: str | list[str], max_length: int) -> str:
    """A name people read (nickname, display name)."""
    return clean(value, field, max_length=max_length)


def has_control(value: str | None) -> bool:
    """For values that are refused another way (headers, sign-in names): True when unusable."""
    return value is not None and control_char(value) is not None


def strip_controls(value: str) -> str:
    """For search terms only: control characters dropped (a search changes nothing)."""
    return "".join(ch for ch in value if ch not in BIDI_CONTROLS and unicodedata.category(ch) != "Cc")


def check_time(value: datetime, field: str | list[str], *, not_before: datetime | None = None,
               not_after: datetime | None = None, what: str | None = None) -> datetime:
    """`value` in UTC when it carries an offset and lies in [not_before, not_after]; INVALID_INPUT
    naming `field` otherwise."""
    path = _path(field)
    label = what or path[-1]
    try:
        utc = clock.to_utc(value)
    except DomainError as exc:
        raise DomainError(ErrorCode.INVALID_INPUT, f"{label}: {exc.message}", path) from None
    if not_before is not None and utc < not_before:
        raise DomainError(ErrorCode.INVALID_INPUT, f"{label} is too far in the past", path)
    if not_after is not None and utc > not_after:
        raise DomainError(ErrorCode.INVALID_INPUT, f"{label} is in the future", path)
    return utc


def check_parking_entry(entered_at: datetime, field: str | list[str], now: datetime) -> datetime:
    """A car park's entry time: within PARKING_ENTRY_MAX_AGE before now, at most CLOCK_SKEW ahead."""
    return check_time(entered_at, field, not_before=now - PARKING_ENTRY_MAX_AGE, not_after=now + CLOCK_SKEW)


def check_paid_at(paid_at: datetime, field: str | list[str], now: datetime) -> datetime:
    """A payment provider's `paidAt`: with an offset, within PAID_AT_MAX_AGE before now, at most
    CLOCK_SKEW ahead."""
    return check_time(paid_at, field, not_before=now - PAID_AT_MAX_AGE, not_after=now + CLOCK_SKEW)
