"""Error shapes: typed userErrors in payloads, and top-level errors with extensions.code."""
from __future__ import annotations

from typing import Optional

import strawberry
from graphql import GraphQLError

from api.services.errors import AuthError, DomainError, ErrorCode

# strawberry.enum registers the GraphQL enum on ErrorCode itself and returns it: fields annotate ErrorCode.
UserErrorCode = strawberry.enum(ErrorCode, name="UserErrorCode", description="Why a mutation said no.")


@strawberry.type(description="A problem with the input or a business rule; nothing was changed.")
class UserError:
    field: Optional[list[str]]
    message: str
    code: ErrorCode  # the GraphQL enum UserErrorCode

    @classmethod
    def of(cls, err: DomainError) -> "UserError":
        return cls(field=err.field, message=err.message, code=err.code)


class ApiError(GraphQLError):
    """A top-level error with a code (UNAUTHENTICATED, FORBIDDEN, RATE_LIMITED, INVALID_INPUT)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, extensions={"code": code})


def should_mask(error: GraphQLError) -> bool:
    """Mask internal faults only: syntax, validation, variable values and our own coded errors pass through."""
    original = error.original_error
    if original is None or is_variable_error(error):
        return False
    return not isinstance(original, (ApiError, AuthError))


def is_variable_error(error: GraphQLError) -> bool:
    """A variable's value the client sent does not fit its type (graphql-core's coercion, before anything
    runs): "Variable '$x' has invalid value …". A client's mistake, named, never an internal fault
    (issue 11: an Int of 2^63 or the DateTime "yesterday" was answered "Unexpected error.")."""
    return error.path is None and error.message.startswith("Variable '$")


