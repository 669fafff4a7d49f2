"""Integration keys (POS, parking, payment) and the request signature of the contract:

  X-Mallpoints-Signature = hex(HMAC-SHA256(secret, timestamp + "\\n" + nonce + "\\n" + raw body))

Secrets are stored encrypted (Fernet, key derived from MALLPOINTS_SECRET_KEY) because verifying an
HMAC needs the secret itself. A nonce is remembered for 10 minutes; a timestamp may be 300 s off.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from api.config import settings
from api.db import fetchval, transaction
from api.models import IntegrationKey, IntegrationKeyMerchant, IntegrationNonce, Merchant
from api.services import clock, installation, text
from api.services import sql as core_sql
from api.services.audit import audit
from api.services.errors import DomainError, ErrorCode, forbidden, unauthenticated

MAX_NONCE = 64
log = logging.getLogger("mallpoints.integrations")


@dataclass(frozen=True)
class IntegrationIdentity:
    key_id: str
    name: str
    merchant_ids: frozenset[int]
    scopes: frozenset[str] = frozenset({"pos"})


@dataclass(frozen=True)
class _CachedKey:
    identity: IntegrationIdentity
    secret: bytes
    loaded_at: float


_keys: dict[str, _CachedKey | None] = {}
CACHE_SECONDS = 5.0  # a revoked key stops working within this time in every process


def _fernet() -> Fernet:
    raw = hashlib.sha256(f"{settings().secret_key}\x00integration-keys".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(raw))


def encrypt_secret(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def sign(secret: str | bytes, timestamp: str, nonce: str, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body, hashlib.sha256).hexdigest()


async def _load_key(key_id: str) -> _CachedKey | None:
    cached = _keys.get(key_id)
    if cached is not None and time.monotonic() - cached.loaded_at < CACHE_SECONDS:
        return cached
    key = await IntegrationKey.filter(key_id=key_id).prefetch_related("merchant_links").first()
    if key is None or key.revoked_at is not None:
        _keys.pop(key_id, None)
        return None
    try:
        secret = _fernet().decrypt(key.secret_encrypted.encode())
    except InvalidToken:
        return None  # encrypted under another MALLPOINTS_SECRET_KEY
    merchant_ids = frozenset(link.merchant_id for link in key.merchant_links)
    identity = IntegrationIdentity(key_id, key.name, merchant_ids, _scopes(key.scopes))
    entry = _CachedKey(identity, secret, time.monotonic())
    _keys[key_id] = entry
    return entry


async def authenticate(
    key_id: str | None, timestamp: str | None, nonce: str | None, signature: str | None, body: bytes,
    redis: Any = None,
) -> IntegrationIdentity:
    """Checks a signed request; raises UNAUTHENTICATED and records nothing when anything is off."""
    cfg = settings()
    if not (key_id and timestamp and nonce and signature):
        raise unauthenticated("signed request headers missing")
    if len(nonce) > MAX_NONCE or len(key_id) > 64 or text.has_control(nonce) or text.has_control(key_id):
        raise unauthenticated("malformed signature headers")
    try:
        ts = int(timestamp)
    except ValueError:
        raise unauthenticated("malformed timestamp") from None
    if abs(clock.now().timestamp() - ts) > cfg.signature_window_seconds:
        raise unauthenticated("timestamp outside the allowed window")
    key = await _load_key(key_id)
    if key is None:
        raise unauthenticated("unknown or revoked key")
    expected = sign(key.secret, timestamp, nonce, body)
    if not hmac.compare_digest(expected, signature.strip().lower()):
        raise unauthenticated("bad signature")
    if not await _remember_nonce(key_id, nonce, redis):
        raise unauthenticated("nonce already used")
    return key.identity


_nonce_inserts = [0]


async def _remember_nonce(key_id: str, nonce: str, redis: Any = None) -> bool:
    """True when the nonce is new (then it is remembered for the window). With Redis: one SET NX,
    no disk write. If Redis loses its data, a captured request could be replayed within the window,
    and its idempotency key makes a replayed mutation book nothing new. Without Redis (or when it does
    not answer): one autocommit statement in the database."""
    ttl = settings().nonce_ttl_seconds
    if redis is not None:
        try:
            # Named by the installation: a staging copy beside production on one Redis has the same key ids.
            name = await installation.key(f"mallpoints:nonce:{key_id}:{nonce}")
            return bool(await redis.set(name, 1, nx=True, ex=ttl))
        except Exception:  # a gate, never a dependency: fall back to the database
            log.warning("nonce check: Redis unavailable, using the database", exc_info=True)
    now = clock.now()
    inserted = await fetchval(core_sql.NONCE_INSERT, key_id, nonce, now)
    if inserted is None:
        # Seen before. Only a nonce older than the window (not pruned yet) may be used again.
        renewed = await fetchval(core_sql.NONCE_RENEW, now, key_id, nonce, now - timedelta(seconds=ttl))
        if renewed is None:
            return False
    _nonce_inserts[0] += 1
    if _nonce_inserts[0] % 1000 == 0:
        await prune_nonces()
    return True


async def prune_nonces() -> int:
    cutoff = clock.now() - timedelta(seconds=2 * settings().nonce_ttl_seconds)
    async with transaction():
        return await IntegrationNonce.filter(seen_at__lt=cutoff).delete()


SCOPES = ("pos", "payment", "parking")  # what a key may do: till calls; payment notifications; the car park


def _scopes(stored: str | None) -> frozenset[str]:
    return frozenset((stored or "pos").split(","))


def require_scope(identity: IntegrationIdentity, scope: str) -> None:
    if scope not in identity.scopes:
        raise forbidden(f"this integration key lacks the {scope!r} scope")


def require_merchant(identity: IntegrationIdentity, merchant_id: int, field: list[str]) -> None:
    if merchant_id not in identity.merchant_ids:
        raise DomainError(ErrorCode.MERCHANT_NOT_ALLOWED, "this key may not act for that merchant", field)


# --- key management (operators and the command line) ----------------------------------------

@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    name: str
    merchant_codes: list[str]
    created_at: datetime
    revoked_at: datetime | None
    scopes: list[str]


async def create_key(
    name: str, merchant_codes: list[str], actor: tuple[str, str | None], *, key_id: str | None = None,
    secret: str | None = None, scopes: list[str] | None = None,
) -> tuple[KeyInfo, str]:
    """Creates a key bound to merchants; returns it with its secret (shown once, stored encrypted).
    A till key (scope pos) needs at least one merchant; a payment notifier's key needs none."""
    name = text.name(name, "name", 128)
    scopes = sorted(set(scopes or ["pos"]))
    if key_id is not None:
        key_id = text.identifier(key_id, "keyId", 64)
    if any(text.has_control(code) for code in merchant_codes):
        raise DomainError(ErrorCode.INVALID_INPUT, "merchantCodes must not contain control characters",
                          ["merchantCodes"])
    if any(s not in SCOPES for s in scopes):
        raise DomainError(ErrorCode.INVALID_INPUT, f"scopes are some of {', '.join(SCOPES)}", ["scopes"])
    if "pos" in scopes and not merchant_codes:
        raise DomainError(ErrorCode.INVALID_INPUT, "bind the key to at least one merchant", ["merchantCodes"])
    key_id = key_id or "key_" + secrets.token_hex(8)
    secret = secret or secrets.token_urlsafe(32)
    now = clock.now()
    async with transaction() as tx:
        merchants = await Merchant.filter(code__in=merchant_codes) if merchant_codes else []
        missing = sorted(set(merchant_codes) - {m.code for m in merchants})
        if missing:
            raise DomainError(ErrorCode.NOT_FOUND, f"unknown merchants: {', '.join(missing)}", ["merchantCodes"])
        pk = await tx.fetchval(core_sql.INSERT_KEY, key_id, name, encrypt_secret(secret), now, ",".join(scopes))
        if pk is None:
            raise DomainError(ErrorCode.INVALID_INPUT, "a key with that id exists", ["keyId"])
        for m in merchants:
            await IntegrationKeyMerchant.create(key_id=pk, merchant_id=m.id)
        await audit(tx, actor, "integration_key.create", "integration_key", key_id,
                    {"name": name, "merchants": sorted(merchant_codes), "scopes": scopes})
    return KeyInfo(key_id, name, sorted(merchant_codes), now, None, scopes), secret


async def revoke_key(key_id: str, actor: tuple[str, str | None]) -> KeyInfo:
    if text.has_control(key_id):  # no key id has one; PostgreSQL refuses NUL in a query
        raise DomainError(ErrorCode.NOT_FOUND, "no active key with that id", ["keyId"])
    now = clock.now()
    async with transaction() as tx:
        count = await IntegrationKey.filter(key_id=key_id, revoked_at__isnull=True).update(revoked_at=now)
        if not count:
            raise DomainError(ErrorCode.NOT_FOUND, "no active key with that id", ["keyId"])
        await audit(tx, actor, "integration_key.revoke", "integration_key", key_id, None)
    _keys.pop(key_id, None)
    return (await list_keys(key_id))[0]


async def list_keys(key_id: str | None = None) -> list[KeyInfo]:
    query = IntegrationKey.filter(key_id=key_id) if key_id else IntegrationKey.all()
    keys = await query.order_by("id").prefetch_related("merchant_links__merchant")
    return [KeyInfo(k.key_id, k.name, sorted(link.merchant.code for link in k.merchant_links),
                    k.created_at, k.revoked_at, sorted(_scopes(k.scopes))) for k in keys]
