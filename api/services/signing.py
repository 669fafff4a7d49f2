"""Tokens and member codes, signed with the server's secret key (HMAC-SHA256, stateless)."""
from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from api.config import settings
from api.services import clock, text
from api.services.errors import DomainError, ErrorCode, unauthenticated


@lru_cache(maxsize=32)
def _key(secret_key: str, purpose: str) -> bytes:
    """One key per purpose, derived from the server's secret (tokens, member codes, SMS codes)."""
    return hashlib.sha256(f"{secret_key}\x00{purpose}".encode()).digest()


def _mac(purpose: str, message: str) -> bytes:
    return hmac.new(_key(settings().secret_key, purpose), message.encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class TokenClaims:
    kind: str  # "member", "operator" or "staff" (merchant staff)
    subject_id: int
    expires_at: int


def issue_token(kind: str, subject_id: int, ttl_seconds: int) -> str:
    exp = int(clock.now().timestamp()) + ttl_seconds
    body = f"{kind}.{subject_id}.{exp}"
    return f"{body}.{_b64(_mac('token', body))}"


def read_token(token: str) -> TokenClaims:
    """Verifies signature and expiry; raises UNAUTHENTICATED otherwise."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] not in ("member", "operator", "staff"):
        raise unauthenticated("invalid token")
    body = ".".join(parts[:3])
    if not hmac.compare_digest(parts[3], _b64(_mac("token", body))):
        raise unauthenticated("invalid token")
    try:
        subject_id, exp = int(parts[1]), int(parts[2])
    except ValueError:
        raise unauthenticated("invalid token") from None
    if exp < clock.now().timestamp():
        raise unauthenticated("token expired")
    return TokenClaims(parts[0], subject_id, exp)


# Member code shown at the till: 32 digits = member id (10) + expiry unix time (10) + MAC (12).
# Digits only, so it fits a Code 128 barcode and a QR code alike; the MAC makes it unguessable.
MEMBER_CODE_LENGTH = 32


def _code_mac(member_id: int, exp: int) -> str:
    digest = _mac("member-code", f"{member_id}:{exp}")
    return f"{int.from_bytes(digest[:8], 'big') % 10**12:012d}"


# A code's lifetime runs from its issue (its expiry less the configured TTL; the code carries only
# its expiry) to its expiry. A purchase uploaded later by an offline till must have happened inside
# it; the till's clock may run up to this much behind the server's when it stamps `occurredAt`.
MEMBER_CODE_CLOCK_SKEW = text.CLOCK_SKEW  # 5 minutes


def issue_member_code(member_id: int, ttl_seconds: int, issued_at: datetime | None = None) -> tuple[str, int]:
    """A code valid from `issued_at` (default now) for `ttl_seconds`; returns it and its expiry."""
    exp = int((issued_at or clock.now()).timestamp()) + ttl_seconds
    return f"{member_id:010d}{exp:010d}{_code_mac(member_id, exp)}", exp


def read_member_code(code: str, as_of: datetime | None = None) -> int:
    """Returns the member id of a code valid at `as_of` (default now); NOT_FOUND if forged,
    MEMBER_CODE_EXPIRED if stale. With `as_of` given (an offline upload's `occurredAt`), also
    MEMBER_CODE_EXPIRED when `as_of` lies before the code was issued (less MEMBER_CODE_CLOCK_SKEW):
    a code cannot back a purchase made before it existed."""
    code = (code or "").strip()
    if len(code) != MEMBER_CODE_LENGTH or not (code.isascii() and code.isdigit()):
        raise DomainError(ErrorCode.NOT_FOUND, "unknown member code", ["memberCode"])
    member_id, exp = int(code[:10]), int(code[10:20])
    if not hmac.compare_digest(code[20:], _code_mac(member_id, exp)):
        raise DomainError(ErrorCode.NOT_FOUND, "unknown member code", ["memberCode"])
    if exp < (as_of or clock.now()).timestamp():
        raise DomainError(ErrorCode.MEMBER_CODE_EXPIRED, "member code expired: ask the member to refresh it", ["memberCode"])
    if as_of is not None:
        issued = exp - settings().member_code_ttl_seconds
        if as_of.timestamp() < issued - MEMBER_CODE_CLOCK_SKEW.total_seconds():
            raise DomainError(ErrorCode.MEMBER_CODE_EXPIRED,
                              "member code was issued after occurredAt: it cannot back an earlier purchase",
                              ["memberCode"])
    return member_id


def hash_secret(purpose: str, value: str) -> str:
    return _mac(purpose, value).hex()
