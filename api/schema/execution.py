"""The execution context of the public schema: like Strawberry's, but request errors (a variable of
the wrong enum value or input field) carry no "Did you mean …?" — the public endpoint does not teach
its names (`StrawberryConfig(disable_field_suggestions=True)` only cleans "Cannot query field"). Both
Strawberry's view and the prepared path (`api/prepared.py`) execute with it."""
from __future__ import annotations

import weakref
from typing import Any

import strawberry
from graphql import GraphQLError
from graphql.type.definition import GraphQLResolveInfoHelpers
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class AcyclicExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context without the reference cycle graphql-core 3.3 builds into every
    one (`async_helpers` holds two bound methods of the context): with it, each request's whole object
    graph (context, request, connection state, collected fields) was freed only by the cyclic garbage
    collector, which then took ~18% of a worker's CPU under load. The helpers reach the context through a
    weak reference; the context lives as long as its execution runs. (graphql-core's sub-executors for
    `@defer`/`@stream` and subscriptions are shallow copies whose helpers would still point at the parent:
    neither is enabled here, and `api/prepared.py` refuses incremental delivery; re-point the helpers
    in the copy before enabling them.)"""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        me = weakref.ref(self)

        def gather(*work: Any, **options: Any) -> Any:
            return me().gather_async_work(*work, **options)  # type: ignore[union-attr]

        def track(*work: Any, **options: Any) -> Any:
            return me().track_async_work(*work, **options)  # type: ignore[union-attr]

        self.async_helpers = GraphQLResolveInfoHelpers(gather=gather, track=track)


class NoSuggestionsExecutionContext(AcyclicExecutionContext):
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
