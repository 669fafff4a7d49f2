"""The audit trail: one row for every operator action, written in the action's own transaction."""
from __future__ import annotations

import json

from api.db import Tx
from api.models import AuditLog
from api.services import clock

Actor = tuple[str, str | None]  # ("operator", "3"), ("cli", None), ("system", None)


async def audit(tx: Tx, actor: Actor, action: str, target_type: str | None,
                target_id: str | None, detail: dict | None) -> None:
    """Appends the row on the caller's transaction (`tx` says there is one: Tortoise runs on its connection)."""
    await AuditLog.create(actor_type=actor[0], actor_id=actor[1], action=action, target_type=target_type,
                          target_id=target_id, created_at=clock.now(),
                          detail=None if detail is None else json.dumps(detail, ensure_ascii=False, default=str))
