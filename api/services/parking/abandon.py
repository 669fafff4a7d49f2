"""Abandoned stays (operators, the command line): stays with no exit long after their entry are
closed as ABANDONED and their holds released."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from api import locks
from api.db import transaction
from api.locks import Rank
from api.models import ParkingSession
from api.services import clock
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode
from api.services.parking.holds import release_hold


@dataclass(frozen=True)
class AbandonResult:
    stays_abandoned: int
    points_released: int


ABANDON_CHUNK = 500
ABANDON_AFTER_HOURS = 72  # the default: a stay with no exit after three days is abandoned


def _cutoff(older_than_hours: int, as_of: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    if not isinstance(older_than_hours, int) or not 1 <= older_than_hours <= 24 * 366:
        raise DomainError(ErrorCode.INVALID_INPUT, "olderThanHours must be 1 to 8784", ["input", "olderThanHours"])
    as_of = clock.to_utc(as_of) if as_of else now
    if as_of > now + timedelta(minutes=1):
        raise DomainError(ErrorCode.INVALID_INPUT, "asOf may not be in the future", ["input", "asOf"])
    return as_of, as_of - timedelta(hours=older_than_hours)


async def abandon_stays(actor: Actor, older_than_hours: int, as_of: datetime | None = None) -> AbandonResult:
    """Closes OPEN stays that entered more than `older_than_hours` before `as_of` (default now) as
    ABANDONED and releases their holds. Safe to repeat and to run twice at once: each chunk of stays is
    taken with SKIP LOCKED on PostgreSQL (an exit being recorded is passed by) and each stay closed by
    a conditional update."""
    now = clock.now()
    as_of, cutoff = _cutoff(older_than_hours, as_of, now)
    abandoned = released = 0
    while True:
        async with transaction() as tx:
            chunk = await locks.skip_locked(Rank.STAY, ParkingSession, ABANDON_CHUNK, status="OPEN",
                                            entered_at__lt=cutoff)
            for s in chunk:
                if await ParkingSession.filter(id=s.id, status="OPEN").update(status="ABANDONED"):
                    abandoned += 1
                    released += await release_hold(tx, None, s.hold_id, now)
        if len(chunk) < ABANDON_CHUNK:
            break
    result = AbandonResult(abandoned, released)
    async with transaction() as tx:
        await audit(tx, actor, "parking.abandon_run", None, None,
                    {"older_than_hours": older_than_hours, "as_of": as_of.isoformat(), **asdict(result)})
    return result
