"""`node(id:)`: any object by global ID, if the caller may see it; otherwise null (never a hint why).

Each domain's resolver module fills a `NODES` dict (type name → fetcher) next to its other resolvers;
this module merges them (plus the core types') into one registry. A fetcher takes the request info and
the primary key and answers the object, or None when it does not exist or the caller may not see it.
`tests/test_nodes.py` checks that every type implementing `Node` in either schema has a fetcher, or is
named in `NOT_FETCHABLE`."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Optional

import strawberry
from strawberry.types import Info

from api.resolvers import draws, earning, mall, merchant_assistant, operators, parking, reach, staff
from api.schema.base import Node
from api.schema.core import PointsEntry, Tier
from api.schema.ids import from_global_id
from api.schema.member import Member
from api.services import ledger, tiers

Fetch = Callable[[Info, int], Awaitable[Any]]

# Types that implement Node but are not fetched by node(id:) (null for every caller), as before the registry.
NOT_FETCHABLE = frozenset({"DrawPrize", "Merchant", "Purchase"})


def _typed(fetch: Callable[[Info, str, int], Awaitable[Any]], type_name: str) -> Fetch:
    """A fetcher of a module that serves several types with one function (type name, pk)."""

    async def run(info: Info, pk: int) -> Any:
        return await fetch(info, type_name, pk)

    return run


async def _tier(info: Info, pk: int) -> Optional[Tier]:
    return next((Tier.of(t) for t in await tiers.all_tiers() if t.id == pk), None)


async def _member(info: Info, pk: int) -> Optional[Member]:
    if not info.context.may_read_member(pk):
        return None
    record = await info.context.loaders.member.load(pk)
    return Member.of(record) if record else None


async def _points_entry(info: Info, pk: int) -> Optional[PointsEntry]:
    found = await ledger.entry_with_owner(pk)
    return PointsEntry.of(found[0]) if found and info.context.may_read_member(found[1]) else None


CORE: dict[str, Fetch] = {"Tier": _tier, "Member": _member, "PointsEntry": _points_entry}


def _merge(*registries: Mapping[str, Fetch]) -> dict[str, Fetch]:
    merged: dict[str, Fetch] = {}
    for registry in registries:
        twice = merged.keys() & registry.keys()
        assert not twice, f"node types registered twice: {sorted(twice)}"
        merged.update(registry)
    return merged


OPERATORS: dict[str, Fetch] = {t: _typed(operators.node, t) for t in operators.NODE_TYPES}  # issue 10
REGISTRY: dict[str, Fetch] = _merge(CORE, mall.NODES, draws.NODES, parking.NODES, staff.NODES, earning.NODES,
                                    OPERATORS, merchant_assistant.NODES, reach.NODES)


async def node(info: Info, id: strawberry.ID) -> Optional[Node]:
    """Any object by global ID, if the caller may see it; otherwise null (never a hint why)."""
    parsed = from_global_id(id)
    fetch = REGISTRY.get(parsed[0]) if parsed else None
    return await fetch(info, parsed[1]) if fetch and parsed else None
