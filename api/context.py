"""Per-request context: who is calling, the access checks, DataLoaders, the Redis handle.

Every access check of the GraphQL layer is a method here, so that a rule is written once: resolvers and
field resolvers call `require_member()`, `require_staff()`, `require_integration(scope)`,
`require_operator()` or `require_member_access(member_id, what)` (each raises UNAUTHENTICATED or
FORBIDDEN), and `node(id:)` fetchers ask `may_read_member()`, `may_read_staff()` or `is_operator` (an
answer of null, never a hint why)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from api.resolvers.loaders import Loaders
from api.services import integrations
from api.services.errors import forbidden, unauthenticated
from api.services.integrations import IntegrationIdentity

__all__ = ["ANONYMOUS", "Caller", "Context", "Loaders"]


@dataclass(frozen=True)
class Caller:
    member_id: int | None = None
    operator_id: int | None = None
    integration: IntegrationIdentity | None = None
    staff_id: int | None = None  # merchant staff (商户助手), with the merchant they work for
    staff_merchant_id: int | None = None
    operator_roles: tuple[str, ...] = ()  # read from the database at every request (issue 10)


ANONYMOUS = Caller()


@dataclass
class Context:
    caller: Caller
    endpoint: str  # "public" or "admin"
    request: Any = None
    response: Any = None
    redis: Any = None
    loaders: Loaders = field(default_factory=Loaders)
    gate_pass: Any = None  # a flash sale's checks taken before the executor (api/soldout.py), used once

    # --- who is calling ---------------------------------------------------------------------------

    @property
    def is_operator(self) -> bool:
        """A signed-in operator on the operators' endpoint."""
        return self.endpoint == "admin" and self.caller.operator_id is not None

    def require_member(self) -> int:
        """The signed-in member's id."""
        if self.caller.member_id is None:
            if self.caller.staff_id is not None:
                raise forbidden("merchant staff cannot act as a member")
            raise unauthenticated("sign in as a member first")
        return self.caller.member_id

    def require_staff(self) -> tuple[int, int]:
        """(staff id, merchant id) of a signed-in merchant staff account."""
        if self.caller.staff_id is None or self.caller.staff_merchant_id is None:
            if self.caller.member_id is not None:
                raise forbidden("only merchant staff can do this")
            raise unauthenticated("sign in as merchant staff first")
        return self.caller.staff_id, self.caller.staff_merchant_id

    def require_integration(self, scope: str | None = None) -> IntegrationIdentity:
        """The signed integration key; with `scope`, one that holds it."""
        if self.caller.integration is None:
            raise unauthenticated("this mutation needs a signed integration request")
        if scope is not None:
            integrations.require_scope(self.caller.integration, scope)
        return self.caller.integration

    def require_operator(self) -> int:
        if self.caller.operator_id is None:
            raise unauthenticated("sign in as an operator first")
        return self.caller.operator_id

    def operator_roles(self) -> tuple[str, ...]:
        """The signed-in operator's roles (api/schema/operators/permissions.py checks them per root field)."""
        self.require_operator()
        return self.caller.operator_roles

    def operator_actor(self) -> tuple[str, str]:
        """The audit actor of an operator's change."""
        return ("operator", str(self.require_operator()))

    # --- whose data -------------------------------------------------------------------------------

    def may_read_member(self, member_id: int) -> bool:
        """Operators read every member; a member reads only themself."""
        return self.is_operator or self.caller.member_id == member_id

    def require_member_access(self, member_id: int, what: str) -> None:
        """A member's own data (their `what`): only for the member and operators."""
        if not self.may_read_member(member_id):
            raise forbidden(f"only the member can see their {what}")

    def may_read_staff(self, staff_id: int) -> bool:
        """A merchant staff account is seen by itself and by operators."""
        return self.caller.staff_id == staff_id or self.is_operator

    def require_self(self, member_id: int, action: str) -> None:
        """Something only the member themself may do (show their till code): not even operators."""
        if not self.is_self(member_id):
            raise forbidden(f"only the member can {action}")

    def is_self(self, member_id: int) -> bool:
        """Data only the member themself sees (the full phone, the invite code): not even operators."""
        return self.caller.member_id == member_id

    # Older names of the checks above, kept for callers written before them.
    member_id = require_member
    staff = require_staff
    operator_id = require_operator

    def integration(self) -> IntegrationIdentity:
        return self.require_integration()
