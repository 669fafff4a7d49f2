"""Merchants of the mall (the tenants whose tills report purchases)."""
from __future__ import annotations

import time
from dataclasses import dataclass

from api.db import fetch
from api.services.errors import DomainError, ErrorCode


@dataclass(frozen=True)
class MerchantInfo:
    id: int
    code: str
    name: str
    category: str | None


_by_code: dict[str, MerchantInfo] = {}
_loaded_at = [0.0]
CACHE_SECONDS = 30.0


async def _load() -> None:
    rows = await fetch("SELECT id, code, name, category FROM merchant")
    _by_code.clear()
    _by_code.update({r["code"]: MerchantInfo(r["id"], r["code"], r["name"], r["category"]) for r in rows})
    _loaded_at[0] = time.monotonic()


def invalidate_cache() -> None:
    _loaded_at[0] = 0.0


async def by_code(code: str, field: list[str]) -> MerchantInfo:
    if time.monotonic() - _loaded_at[0] > CACHE_SECONDS or code not in _by_code:
        await _load()
    merchant = _by_code.get((code or "").strip())
    if merchant is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"unknown merchant {code!r}", field)
    return merchant


async def by_id(merchant_id: int) -> MerchantInfo | None:
    found = next((m for m in _by_code.values() if m.id == merchant_id), None)
    if found is None or time.monotonic() - _loaded_at[0] > CACHE_SECONDS:
        await _load()
        found = next((m for m in _by_code.values() if m.id == merchant_id), None)
    return found


async def page(limit: int, after_id: int | None) -> list[MerchantInfo]:
    rows = await fetch(
        "SELECT id, code, name, category FROM merchant WHERE id > $1 ORDER BY id LIMIT $2", after_id or 0, limit
    )
    return [MerchantInfo(r["id"], r["code"], r["name"], r["category"]) for r in rows]
