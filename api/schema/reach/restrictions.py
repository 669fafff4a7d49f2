"""Segment restrictions on the operators' endpoint (issue 13 item 3): a `segment` field on the four kinds of
thing an operator may restrict to a segment (EarnRule, Task, DrawGame, Product).

The four types are shared with the public endpoint, where a member must not learn the segments' names (nor
that the type Segment exists), so the field is not declared on them: `OperatorsSchema` adds it when the
operators' schema is built. Each object carries its segment's id as a private `segment_pk`."""
from __future__ import annotations

from typing import Any, Optional

import strawberry
from strawberry.types import Info
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField

from api.schema.reach.types import Segment

RESTRICTABLE = ("EarnRule", "Task", "DrawGame", "Product")


async def _segment(root: Any, info: Info) -> Optional[Segment]:
    segment_id = root.segment_pk
    if segment_id is None:
        return None
    found = await info.context.loaders.segment.load(segment_id)
    return Segment.of(found) if found is not None else None


SEGMENT_FIELD: StrawberryField = strawberry.field(
    resolver=_segment, description="Only members of this segment get it (earn by it, see and claim it, play it, "
                                    "buy it); null: every member. Operators only.")
SEGMENT_FIELD.python_name = "segment"


class OperatorsSchema(strawberry.Schema):
    """The operators' schema: the shared types, plus `segment` on the types that may be restricted."""

    def get_fields(self, type_definition: StrawberryObjectDefinition) -> list[StrawberryField]:
        if type_definition.name in RESTRICTABLE:
            return [*type_definition.fields, SEGMENT_FIELD]
        return type_definition.fields
