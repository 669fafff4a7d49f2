"""Thin resolvers: read the context, call one service function, map the result or error."""
from __future__ import annotations

import functools
from typing import Any, Awaitable, Callable, TypeVar

from api.schema.errors import UserError
from api.services.errors import DomainError

P = TypeVar("P")


def user_errors(payload: type[P]) -> Callable[[Callable[..., Awaitable[P]]], Callable[..., Awaitable[P]]]:
    """A DomainError raised by the service becomes `payload(user_errors=[…])`."""

    def wrap(fn: Callable[..., Awaitable[P]]) -> Callable[..., Awaitable[P]]:
        @functools.wraps(fn)
        async def run(*args: Any, **kwargs: Any) -> P:
            try:
                return await fn(*args, **kwargs)
            except DomainError as err:
                return payload(user_errors=[UserError.of(err)])  # type: ignore[call-arg]

        return run

    return wrap
