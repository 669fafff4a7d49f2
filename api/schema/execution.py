"""The execution context of the public schema: like Strawberry's, but request errors (a variable of
the wrong enum value or input field) carry no "Did you mean …?" — the public endpoint does not teach
its names (`StrawberryConfig(disable_field_suggestions=True)` only cleans "Cannot query field"). Both
Strawberry's view and the prepared path (`api/prepared.py`) execute with it."""
from __future__ import annotations

from typing import Any

from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class NoSuggestionsExecutionContext(StrawberryGraphQLCoreExecutionContext):
    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        kwargs["hide_suggestions"] = True
        return super().build(*args, **kwargs)
