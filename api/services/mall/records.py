"""The records the schema layer reads (frozen dataclasses), built from the models by field name.

A record's fields are named as the model's attributes (`merchant_id` is the foreign key's column),
so a record needs no column list and no row mapper: `load` selects exactly the record's fields
through the ORM (which converts types and times on both databases) and `record` copies them from a
model instance or a `values()` row.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from tortoise.models import Model
from tortoise.queryset import QuerySet

T = TypeVar("T")


_names: dict[type, tuple[str, ...]] = {}


def names(cls: type) -> tuple[str, ...]:
    """The field names of a record class, in order."""
    found = _names.get(cls)
    if found is None:
        found = _names[cls] = tuple(f.name for f in fields(cls))
    return found


def record(cls: type[T], source: Model | dict[str, Any], **overrides: Any) -> T:
    """A record from a model instance or a `values()` row; `overrides` replace fields (conversions)."""
    if isinstance(source, dict):
        data = {name: source[name] for name in names(cls) if name not in overrides}
    else:
        data = {name: getattr(source, name) for name in names(cls) if name not in overrides}
    return cls(**data, **overrides)


async def column(query: QuerySet[Any], field: str) -> list[Any]:
    """One field of every row of `query`."""
    return list(await query.values_list(field, flat=True))


async def scalar(query: QuerySet[Any], field: str) -> Any:
    """One field of the first row of `query`; None when there is no row."""
    return await query.first().values_list(field, flat=True)


async def load(cls: type[T], query: QuerySet[Any]) -> list[T]:
    """The rows of `query` as records, selecting only the record's fields."""
    return [cls(**row) for row in await query.values(*names(cls))]
