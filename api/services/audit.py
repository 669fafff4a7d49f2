"""The audit trail: one row for every operator action, written in the action's own transaction."""
from __future__ import annotations

import json

from api.db import Tx
from api.services import clock

Actor = tuple[str, str | None]  # ("operator", "3"), ("cli", None), ("system", None)


async def audit(tx: Tx, actor: Actor, action: str, target_type: str | None,
                target_id: str | None, detail: dict | None) -> None:
    await tx.execute(
        "INSERT INTO audit_log (actor_type, actor_id, action, target_type, target_id, detail, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        actor[0], actor[1], action, target_type, target_id,
        None if detail is None else json.dumps(detail, ensure_ascii=False, default=str), clock.now(),
    )
