"""Thin resolvers: read the context, call one service function, map the result or error."""
from __future__ import annotations

import functools
from typing import Any, Awaitable, Callable, TypeVar

from api.config import settings
from api.schema.errors import UserError
from api.schema.ids import from_global_id
from api.services.errors import DomainError, ErrorCode

P = TypeVar("P")


def user_errors(payload: Callable[..., P]) -> Callable[[Callable[..., Awaitable[P]]], Callable[..., Awaitable[P]]]:
    """A DomainError raised by the service becomes `payload(user_errors=[…])`."""

    def wrap(fn: Callable[..., Awaitable[P]]) -> Callable[..., Awaitable[P]]:
        @functools.wraps(fn)
        async def run(*args: Any, **kwargs: Any) -> P:
            try:
                return await fn(*args, **kwargs)
            except DomainError as err:
                return payload(user_errors=[UserError.of(err)])

        return run

    return wrap


def input_pk(global_id: str, type_name: str, field: str | list[str]) -> int:
    """The primary key in a global ID of the named type given in input `field` (a name under `input`, or a
    full path); NOT_FOUND otherwise."""
    parsed = from_global_id(global_id, type_name)
    if parsed is None:
        path = ["input", field] if isinstance(field, str) else field
        raise DomainError(ErrorCode.NOT_FOUND, f"no such {type_name}", path)
    return parsed[1]


def client_address(info: Any) -> str | None:
    """The caller's address: the connecting peer, or what a proxy listed in MALLPOINTS_TRUSTED_PROXIES
    says in `X-Forwarded-For` (never the header of anyone else)."""
    request = info.context.request
    if request is None:
        return None
    peer = request.client.host if request.client else None
    return settings().client_address(peer, request.headers.getlist("x-forwarded-for"))
