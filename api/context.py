"""Per-request context: who is calling, DataLoaders, the Redis handle."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from strawberry.dataloader import DataLoader

from api.services import ledger, members
from api.services.errors import forbidden, unauthenticated
from api.services.integrations import IntegrationIdentity


@dataclass(frozen=True)
class Caller:
    member_id: int | None = None
    operator_id: int | None = None
    integration: IntegrationIdentity | None = None
    staff_id: int | None = None  # merchant staff (商户助手), with the merchant they work for
    staff_merchant_id: int | None = None
    operator_roles: tuple[str, ...] = ()  # read from the database at every request (issue 10)


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
    _loaders: dict[str, DataLoader] = field(default_factory=dict)

    def loader(self, name: str, batch: Callable[[list[Any]], Awaitable[Any]]) -> DataLoader:
        """A DataLoader of this request, made on first use. `batch` returns either a list in key
        order or a dict by key (missing keys load None)."""
        if name not in self._loaders:
            async def load(keys: list[Any]) -> list[Any]:
                found = await batch(list(keys))
                return [found.get(k) for k in keys] if isinstance(found, dict) else list(found)

            self._loaders[name] = DataLoader(load_fn=load)
        return self._loaders[name]

    def member_id(self) -> int:
        if self.caller.member_id is None:
            if self.caller.staff_id is not None:
                raise forbidden("merchant staff cannot act as a member")
            raise unauthenticated("sign in as a member first")
        return self.caller.member_id

    def staff(self) -> tuple[int, int]:
        """(staff id, merchant id) of a signed-in merchant staff account."""
        if self.caller.staff_id is None or self.caller.staff_merchant_id is None:
            if self.caller.member_id is not None:
                raise forbidden("only merchant staff can do this")
            raise unauthenticated("sign in as merchant staff first")
        return self.caller.staff_id, self.caller.staff_merchant_id

    def integration(self) -> IntegrationIdentity:
        if self.caller.integration is None:
            raise unauthenticated("this mutation needs a signed integration request")
        return self.caller.integration

    def operator_id(self) -> int:
        if self.caller.operator_id is None:
            raise unauthenticated("sign in as an operator first")
        return self.caller.operator_id

    def operator_roles(self) -> tuple[str, ...]:
        self.operator_id()
        return self.caller.operator_roles

    def may_read_member(self, member_id: int) -> bool:
        """Operators read every member; a member reads only themself."""
        is_operator = self.endpoint == "admin" and self.caller.operator_id is not None
        return is_operator or self.caller.member_id == member_id
