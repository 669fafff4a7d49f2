"""Which integration keys may report for a car park: operators bind a key (scope parking) to a car
park, and a car park's system may report only for the car parks its key is bound to."""
from __future__ import annotations

from typing import cast

from api.db import transaction
from api.models import CarParkKey, IntegrationKey
from api.services import clock
from api.services import text as hygiene
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode
from api.services.parking.car_parks import car_park_by_code


async def require_key(key_id: str, car_park_code: str) -> None:
    """A car park's system signs with a key bound to that car park (operators bind it); another car
    park's key is refused, even with the parking scope."""
    # A code with a control character names no car park (and PostgreSQL refuses NUL in a query).
    if hygiene.has_control(car_park_code) or not await CarParkKey.exists(
            car_park__code=(car_park_code or "").strip().upper(), key__key_id=key_id):
        await car_park_by_code(car_park_code)  # NOT_FOUND first, for an unknown car park
        raise DomainError(ErrorCode.CAR_PARK_NOT_ALLOWED, "this key may not report for that car park",
                          ["input", "carParkCode"])


async def bind_key(actor: Actor, car_park_code: str, key_id: str, bound: bool) -> list[str]:
    """Binds (or unbinds) an integration key with the parking scope to a car park; audited. Returns the
    car park's keys."""
    cp = await car_park_by_code(car_park_code)
    async with transaction() as tx:
        key = await IntegrationKey.get_or_none(key_id=key_id)
        if key is None or key.revoked_at is not None:
            raise DomainError(ErrorCode.NOT_FOUND, "no active key with that id", ["input", "keyId"])
        if "parking" not in (key.scopes or "pos").split(","):
            raise DomainError(ErrorCode.INVALID_INPUT, "the key needs the parking scope", ["input", "keyId"])
        if bound:
            await CarParkKey.get_or_create(car_park_id=cp.id, key_id=key.id, defaults={"created_at": clock.now()})
        else:
            await CarParkKey.filter(car_park_id=cp.id, key_id=key.id).delete()
        await audit(tx, actor, "car_park.key_bind" if bound else "car_park.key_unbind", "car_park", str(cp.id),
                    {"keyId": key_id})
    return await keys_of(cp.id)


async def keys_of(car_park_id: int) -> list[str]:
    return cast(list[str], await CarParkKey.filter(car_park_id=car_park_id).order_by("key__key_id")
                .values_list("key__key_id", flat=True))
