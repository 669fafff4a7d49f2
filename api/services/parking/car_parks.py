"""Car parks and their fee rules: operators create and change them; everything else looks them up."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from tortoise.exceptions import IntegrityError

from api import locks
from api.db import transaction
from api.locks import Rank
from api.models import CarPark
from api.services import clock, tiers
from api.services import text as hygiene
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode
from api.services.parking.common import MAX_FEN, invalid, is_unique_violation
from api.services.parking.fees import FeeRules


@dataclass(frozen=True)
class CarParkInfo:
    id: int
    code: str
    name: str
    free_minutes: int
    hourly_fen: int
    daily_cap_fen: int | None
    tier_free_minutes: dict[str, int]
    purchase_min_fen: int | None
    purchase_free_minutes: int
    offset_points_per_yuan: int
    offset_max_points: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, m: CarPark) -> CarParkInfo:
        values = {f.name: getattr(m, f.name) for f in fields(cls)}
        values["tier_free_minutes"] = {k: int(v) for k, v in json.loads(m.tier_free_minutes or "{}").items()}
        return cls(**values)

    @property
    def rules(self) -> FeeRules:
        return FeeRules(self.free_minutes, self.hourly_fen, self.daily_cap_fen, self.offset_points_per_yuan,
                        self.offset_max_points)


@dataclass(frozen=True)
class CarParkData:
    """What an operator sets on a car park; on update, None leaves a field as it is."""

    name: str | None = None
    free_minutes: int | None = None
    hourly_fen: int | None = None
    daily_cap_fen: int | None = None
    tier_free_minutes: dict[str, int] | None = None
    purchase_min_fen: int | None = None
    purchase_free_minutes: int | None = None
    offset_points_per_yuan: int | None = None
    offset_max_points: int | None = None


_WRITABLE = tuple(f.name for f in fields(CarParkData))


async def _validate(c: dict[str, Any]) -> None:
    hygiene.name(c["name"], ["input", "name"], 128)  # 1 to 128 characters, no control characters
    for name, field, hi in (("free_minutes", "freeMinutes", 1440), ("purchase_free_minutes", "purchaseFreeMinutes", 1440),
                            ("hourly_fen", "hourlyFen", MAX_FEN), ("offset_max_points", "offsetMaxPoints", 10_000_000)):
        if c[name] is None or not 0 <= c[name] <= hi:
            raise invalid(f"{field} must be 0 to {hi}", field)
    if c["daily_cap_fen"] is not None and not 0 <= c["daily_cap_fen"] <= MAX_FEN:
        raise invalid(f"dailyCapFen must be 0 to {MAX_FEN} (or null: no cap)", "dailyCapFen")
    if c["purchase_min_fen"] is not None and not 1 <= c["purchase_min_fen"] <= MAX_FEN:
        raise invalid(f"purchaseMinFen must be 1 to {MAX_FEN} (or null: no purchase benefit)", "purchaseMinFen")
    if c["offset_points_per_yuan"] is None or not 1 <= c["offset_points_per_yuan"] <= 100_000:
        raise invalid("offsetPointsPerYuan must be 1 to 100000", "offsetPointsPerYuan")
    codes = {t.code for t in await tiers.all_tiers()}
    for code, minutes in (c["tier_free_minutes"] or {}).items():
        if code not in codes:
            raise invalid(f"no tier {code!r}", "tierFreeMinutes")
        if not 0 <= minutes <= 1440:
            raise invalid("tier free minutes must be 0 to 1440", "tierFreeMinutes")


def _stored(values: dict[str, Any]) -> dict[str, Any]:
    """Field values as the model stores them (the tier minutes as JSON text)."""
    return {n: json.dumps(v) if n == "tier_free_minutes" else v for n, v in values.items()}


async def create_car_park(actor: Actor, code: str, data: CarParkData) -> CarParkInfo:
    code = (code or "").strip().upper()
    if not re.fullmatch(r"[A-Z0-9_-]{1,32}", code):
        raise invalid("code must be 1 to 32 of A-Z 0-9 _ -", "code")
    values = {n: getattr(data, n) for n in _WRITABLE}
    values["tier_free_minutes"] = values["tier_free_minutes"] or {}
    values["purchase_free_minutes"] = values["purchase_free_minutes"] or 0
    values["offset_points_per_yuan"] = values["offset_points_per_yuan"] or 100
    values["offset_max_points"] = values["offset_max_points"] or 0
    await _validate(values)
    now = clock.now()
    try:
        async with transaction() as tx:
            created = await CarPark.create(code=code, **_stored({**values, "name": values["name"].strip()}),
                                           created_at=now, updated_at=now)
            await audit(tx, actor, "car_park.create", "car_park", str(created.id), {"code": code, **values})
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        raise invalid("a car park with this code exists", "code") from None
    return CarParkInfo.of(created)


async def update_car_park(actor: Actor, car_park_id: int, data: CarParkData,
                          clear: frozenset[str] = frozenset()) -> CarParkInfo:
    """Changes the given fields (`clear`: daily_cap_fen or purchase_min_fen to null). New rules apply to
    every quote and exit from now on, open stays included. The row is locked while it is read and
    written, so two operators' changes apply one after the other."""
    async with transaction() as tx:
        found = await locks.row(Rank.CONFIG, CarPark, car_park_id)
        if found is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such car park", ["input", "carParkId"])
        current = CarParkInfo.of(found)
        changes = {n: getattr(data, n) for n in _WRITABLE if getattr(data, n) is not None}
        changes.update({n: None for n in clear})
        await _validate({**{n: getattr(current, n) for n in _WRITABLE}, **changes})
        if not changes:
            return current
        found.update_from_dict({**_stored(changes), "updated_at": clock.now()})
        await found.save(update_fields=[*changes, "updated_at"])
        await audit(tx, actor, "car_park.update", "car_park", str(car_park_id), changes)
    return CarParkInfo.of(found)


async def car_parks() -> list[CarParkInfo]:
    return [CarParkInfo.of(c) for c in await CarPark.all().order_by("code")]


async def car_parks_by_id(ids: list[int]) -> dict[int, CarParkInfo]:
    """Car parks by id (a DataLoader's batch)."""
    if not ids:
        return {}
    return {c.id: CarParkInfo.of(c) for c in await CarPark.filter(id__in=list(ids))}


async def car_park_by_id(car_park_id: int) -> CarParkInfo:
    found = await CarPark.get_or_none(id=car_park_id)
    if found is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such car park", ["input", "carParkId"])
    return CarParkInfo.of(found)


async def car_park_by_code(code: str, field: list[str] | None = None) -> CarParkInfo:
    # A code with a control character names no car park (codes are A-Z 0-9 _ -); PostgreSQL refuses
    # NUL in a query.
    found = None if hygiene.has_control(code) else await CarPark.get_or_none(code=(code or "").strip().upper())
    if found is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such car park", field or ["input", "carParkCode"])
    return CarParkInfo.of(found)
