"""The audit trail: one row for every operator action, written in the action's own transaction, with
the object as it was before and after the change. Rows are append-only: the database refuses UPDATE
and DELETE (migrations 0002 and 0011)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from api.db import Tx
from api.models import AuditLog, Operator
from api.services import clock

Actor = tuple[str, str | None]  # ("operator", "3"), ("cli", None), ("system", None)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


async def audit(tx: Tx, actor: Actor, action: str, target_type: str | None,
                target_id: str | None, detail: dict | None, *, before: dict | None = None,
                after: dict | None = None) -> None:
    """Appends the row on the caller's transaction (`tx` says there is one: Tortoise runs on its connection)."""
    await AuditLog.create(actor_type=actor[0], actor_id=actor[1], action=action, target_type=target_type,
                          target_id=target_id, created_at=clock.now(), detail=_json(detail), before=_json(before),
                          after=_json(after))


@dataclass(frozen=True)
class AuditRow:
    id: int
    actor_kind: str
    actor_id: str | None
    actor_name: str | None  # the operator's username
    action: str
    object_type: str | None
    object_id: str | None
    before: Any
    after: Any  # for rows written before before/after existed: the row's detail
    created_at: datetime


def _operator_id(r: AuditLog) -> int | None:
    return int(r.actor_id) if r.actor_type == "operator" and r.actor_id and r.actor_id.isdigit() else None


async def page(limit: int, before_id: int | None, *, action: str | None = None, actor: Actor | None = None,
               object_type: str | None = None, object_id: str | None = None, since: datetime | None = None,
               until: datetime | None = None) -> list[AuditRow]:
    """Rows newest first, below the cursor `before_id`, filtered; `until` is exclusive."""
    query = AuditLog.all()
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    if action:
        query = query.filter(action=action)
    if actor is not None:
        query = query.filter(actor_type=actor[0], actor_id=actor[1])
    if object_type:
        query = query.filter(target_type=object_type)
    if object_id:
        query = query.filter(target_id=object_id)
    if since is not None:
        query = query.filter(created_at__gte=clock.to_utc(since))
    if until is not None:
        query = query.filter(created_at__lt=clock.to_utc(until))
    rows = await query.order_by("-id").limit(limit)
    ids = {_operator_id(r) for r in rows} - {None}
    names = dict(await Operator.filter(id__in=ids).values_list("id", "username")) if ids else {}
    return [AuditRow(
        r.id, r.actor_type, r.actor_id, names.get(_operator_id(r)),
        r.action, r.target_type, r.target_id, json.loads(r.before) if r.before else None,
        json.loads(r.after) if r.after else (json.loads(r.detail) if r.detail else None), r.created_at,
    ) for r in rows]
