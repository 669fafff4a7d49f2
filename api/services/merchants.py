"""Merchants of the mall (the tenants whose tills report purchases), managed by operators (audited).
An inactive merchant records no new receipts or till payments (MERCHANT_INACTIVE); refunds of its
earlier receipts still go through."""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass

from tortoise.exceptions import IntegrityError

from api.db import transaction
from api.locks import Rank, row
from api.models import Merchant
from api.services import clock, text
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode

CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class MerchantInfo:
    id: int
    code: str
    name: str
    category: str | None
    active: bool = True


_by_code: dict[str, MerchantInfo] = {}
_loaded_at = [0.0]
CACHE_SECONDS = 30.0


async def _load() -> None:
    rows = await Merchant.all()
    _by_code.clear()
    _by_code.update({r.code: _info(r) for r in rows})
    _loaded_at[0] = time.monotonic()


def _info(m: Merchant) -> MerchantInfo:
    return MerchantInfo(m.id, m.code, m.name, m.category, bool(m.active))


def invalidate_cache() -> None:
    _loaded_at[0] = 0.0


async def by_code(code: str, field: list[str]) -> MerchantInfo:
    if time.monotonic() - _loaded_at[0] > CACHE_SECONDS or code not in _by_code:
        await _load()
    merchant = _by_code.get((code or "").strip())
    if merchant is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"unknown merchant {code!r}", field)
    return merchant


async def active_by_code(code: str, field: list[str]) -> MerchantInfo:
    """A merchant that may record new business now (within CACHE_SECONDS of a change made in
    another process)."""
    merchant = await by_code(code, field)
    if not merchant.active:
        raise DomainError(ErrorCode.MERCHANT_INACTIVE, f"merchant {merchant.code} is inactive", field)
    return merchant


async def by_id(merchant_id: int) -> MerchantInfo | None:
    found = next((m for m in _by_code.values() if m.id == merchant_id), None)
    if found is None or time.monotonic() - _loaded_at[0] > CACHE_SECONDS:
        await _load()
        found = next((m for m in _by_code.values() if m.id == merchant_id), None)
    return found


async def page(limit: int, after_id: int | None) -> list[MerchantInfo]:
    return [_info(m) for m in await Merchant.filter(id__gt=after_id or 0).order_by("id").limit(limit)]


def _fields(code: str | None, name: str | None, category: str | None) -> dict:
    changes: dict = {}
    if code is not None:
        code = code.strip()
        if not CODE.match(code):
            raise DomainError(ErrorCode.INVALID_INPUT, "code: 1 to 32 of A-Z, a-z, 0-9, '_', '-'", ["input", "code"])
        changes["code"] = code
    if name is not None:
        changes["name"] = text.name(name, ["input", "name"], 128)
    if category is not None:
        category = text.clean(category, ["input", "category"], max_length=64, min_length=0)
        changes["category"] = category or None
    return changes


async def _code_free(code: str, merchant_id: int | None) -> None:
    if await Merchant.filter(code=code).exclude(id=merchant_id or 0).exists():
        raise DomainError(ErrorCode.CODE_TAKEN, f"merchant code {code} is taken", ["input", "code"])


async def create(actor: Actor, code: str, name: str, category: str | None) -> MerchantInfo:
    """A new active merchant; audited."""
    changes = _fields(code, name, category)
    if "code" not in changes or "name" not in changes:
        raise DomainError(ErrorCode.INVALID_INPUT, "code and name are required", ["input"])
    try:
        async with transaction() as tx:
            await _code_free(changes["code"], None)
            merchant = await Merchant.create(**changes, active=True, created_at=clock.now())
            info = _info(merchant)
            await audit(tx, actor, "merchant.create", "merchant", str(merchant.id), None, after=asdict(info))
    except IntegrityError:  # the same code created at the same moment
        raise DomainError(ErrorCode.CODE_TAKEN, f"merchant code {changes['code']} is taken", ["input", "code"]) from None
    invalidate_cache()
    return info


async def update(actor: Actor, merchant_id: int, *, code: str | None = None, name: str | None = None,
                 category: str | None = None, active: bool | None = None) -> MerchantInfo:
    """Renames, recodes, recategorises, deactivates or reactivates a merchant; audited. Its receipts,
    points and keys stay as they are."""
    changes = _fields(code, name, category)
    if active is not None:
        changes["active"] = active
    async with transaction() as tx:
        merchant = await row(Rank.CONFIG, Merchant, merchant_id)
        if merchant is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such merchant", ["input", "merchantId"])
        before = _info(merchant)
        if "code" in changes:
            await _code_free(changes["code"], merchant_id)
        if changes:
            await Merchant.filter(id=merchant_id).update(**changes)
        after = _info(await Merchant.get(id=merchant_id))
        await audit(tx, actor, "merchant.update", "merchant", str(merchant_id), None, before=asdict(before),
                    after=asdict(after))
    invalidate_cache()
    return after
