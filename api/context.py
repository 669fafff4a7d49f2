"""Per-request context: who is calling, DataLoaders, the Redis handle."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strawberry.dataloader import DataLoader

from api.services import ledger, members
from api.services.errors import unauthenticated
from api.services.integrations import IntegrationIdentity


@dataclass(frozen=True)
class Caller:
    member_id: int | None = None
    operator_id: int | None = None
    integration: IntegrationIdentity | None = None


ANONYMOUS = Caller()


async def _load_balances(ids: list[int]) -> list[int]:
    found = await ledger.balances(list(ids))
    return [found.get(i, 0) for i in ids]


async def _load_members(ids: list[int]) -> list[members.MemberRecord | None]:
    found = await members.get_members(list(ids))
    return [found.get(i) for i in ids]


async def _load_breakdowns(ids: list[int]) -> list[Any]:
    from api.services import earning

    found = await earning.breakdowns(list(ids))
    return [found.get(i) for i in ids]


async def _load_pending(ids: list[int]) -> list[int]:
    from api.services import earning

    found = await earning.pending_totals(list(ids))
    return [found.get(i, 0) for i in ids]


@dataclass
class Loaders:
    balance: DataLoader[int, int] = field(default_factory=lambda: DataLoader(load_fn=_load_balances))
    member: DataLoader[int, Any] = field(default_factory=lambda: DataLoader(load_fn=_load_members))
    # earning (issue 3)
    breakdown: DataLoader[int, Any] = field(default_factory=lambda: DataLoader(load_fn=_load_breakdowns))
    pending: DataLoader[int, int] = field(default_factory=lambda: DataLoader(load_fn=_load_pending))


@dataclass
class Context:
    caller: Caller
    endpoint: str  # "public" or "admin"
    request: Any = None
    response: Any = None
    redis: Any = None
    loaders: Loaders = field(default_factory=Loaders)

    def member_id(self) -> int:
        if self.caller.member_id is None:
            raise unauthenticated("sign in as a member first")
        return self.caller.member_id

    def integration(self) -> IntegrationIdentity:
        if self.caller.integration is None:
            raise unauthenticated("this mutation needs a signed integration request")
        return self.caller.integration

    def operator_id(self) -> int:
        if self.caller.operator_id is None:
            raise unauthenticated("sign in as an operator first")
        return self.caller.operator_id

    def may_read_member(self, member_id: int) -> bool:
        """Operators read every member; a member reads only themself."""
        is_operator = self.endpoint == "admin" and self.caller.operator_id is not None
        return is_operator or self.caller.member_id == member_id
