"""The lifecycle stages a segment may filter on.

MERGE NOTE (issue 13): insight defines the same GraphQL enum `LifecycleStage` (api/schema/insight_types.py).
When both are in one tree, this module should become `from api.schema.insight_types import LifecycleStage`
(one GraphQL type may have one class)."""
from __future__ import annotations

from enum import Enum

import strawberry


@strawberry.enum
class LifecycleStage(Enum):
    NEW = "NEW"
    GROWING = "GROWING"
    STABLE = "STABLE"
    DECLINING = "DECLINING"
    LOST = "LOST"
