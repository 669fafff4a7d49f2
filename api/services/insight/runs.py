"""The on-demand run of the insight jobs (`insightRecompute`), audited like the scheduled run."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from api.db import transaction
from api.services import clock
from api.services.audit import Actor, audit
from api.services.insight import rfm, rollup


@dataclass(frozen=True)
class RunNow:
    kpi_days_rolled: int
    members: int
    stage_changes: int


async def run_now(actor: Actor, as_of: datetime | None = None) -> RunNow:
    """Rolls the KPI days due, then recomputes every member's scores and stage, as of a moment (default
    now; INVALID_INPUT on asOf in the future or too old)."""
    at = clock.check_as_of(as_of)
    rolled = await rollup.run(at)
    done = await rfm.recompute(at)
    result = RunNow(rolled.days_rolled, done.members, done.stage_changes)
    async with transaction() as tx:
        await audit(tx, actor, "insight.recompute", None, None,
                    {"as_of": at.isoformat(), "kpi_days_rolled": result.kpi_days_rolled, "members": result.members,
                     "stage_changes": result.stage_changes})
    return result
