"""The lifecycle stages a segment may filter on: the one GraphQL enum `LifecycleStage`, defined with the
insight types (api/schema/insight_types.py); one GraphQL type has one class."""
from __future__ import annotations

from api.schema.insight_types import LifecycleStage

__all__ = ["LifecycleStage"]
