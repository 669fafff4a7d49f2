"""Shared GraphQL types and helpers: a leaf of the schema layer (it imports no other schema module but
the global-ID codec and the error shapes). `Node`, Relay connections and `Money` live here so that every
domain's types can use them without importing one another."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Optional, TypeVar

import strawberry

from api.schema.errors import ApiError
from api.schema.ids import cursor_for, from_cursor, from_global_id, to_global_id

MAX_PAGE = 100
T = TypeVar("T")

__all__ = [
    "MAX_PAGE", "Connection", "Edge", "Money", "Node", "PageInfo", "check_first", "cursor_for", "from_cursor",
    "from_global_id", "global_id", "money", "to_global_id",
]


def check_first(first: int) -> None:
    """`first` of every connection is 1…100: the page size is what bounds a query's cost."""
    if not 1 <= first <= MAX_PAGE:
        raise ApiError(f"first must be between 1 and {MAX_PAGE}", "INVALID_INPUT")


def global_id(type_name: str, pk: int | str) -> strawberry.ID:
    return strawberry.ID(to_global_id(type_name, pk))


@strawberry.interface(description="An object with an opaque global ID, fetchable with node(id:).")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool = strawberry.field(
        description="True when `after` was given: edges come before this page.")
    start_cursor: Optional[str]
    end_cursor: Optional[str]


@strawberry.type
class Edge(Generic[T]):
    node: T
    cursor: str


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo

    @classmethod
    def of(cls, items: list, limit: int, after: str | None = None,
           key: Callable[[Any], int] = lambda item: item.pk) -> "Connection":
        """`items` holds up to limit + 1 rows; the extra one only says that there is a next page."""
        edges = [Edge(node=item, cursor=cursor_for(key(item))) for item in items[:limit]]
        return cls(edges=edges, page_info=PageInfo(
            has_next_page=len(items) > limit, has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None, end_cursor=edges[-1].cursor if edges else None))


@strawberry.type(description="An amount of cash. amountFen is in fen (分); currency is always CNY.")
class Money:
    amount_fen: int
    currency: str = "CNY"


def money(fen: int | None) -> Optional[Money]:
    return None if fen is None else Money(amount_fen=fen)
