"""The execution context of the public schema: like Strawberry's, but request errors (a variable of
the wrong enum value or input field) carry no "Did you mean …?" — the public endpoint does not teach
its names (`StrawberryConfig(disable_field_suggestions=True)` only cleans "Cannot query field"). Both
Strawberry's view and the prepared path (`api/prepared.py`) execute with it."""
from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class NoSuggestionsExecutionContext(StrawberryGraphQLCoreExecutionContext):
    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        kwargs["hide_suggestions"] = True
        return super().build(*args, **kwargs)


class NoSuggestionsSchema(strawberry.Schema):
    """The public schema: no "Did you mean …?" in any error. Strawberry's `disable_field_suggestions`
    removes the hint from unknown fields only; graphql-core's rules also suggest arguments, types named
    in fragments and variables, enum values and input fields (issue 11, finding 8). Strawberry's
    pipeline and the prepared path both call this on every error before it is answered or logged."""

    @staticmethod
    def remove_field_suggestion(error: GraphQLError) -> None:
        hint = error.message.find(" Did you mean ")
        if hint >= 0:
            error.message = error.message[:hint]
