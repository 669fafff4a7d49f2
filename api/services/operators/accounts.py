"""Operator accounts: password sign-in (argon2id), creation, updates, deactivation; all audited."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from tortoise.exceptions import IntegrityError

from api.config import settings
from api.db import Tx, transaction
from api.locks import Rank, rows
from api.models import Operator
from api.services import clock, passwords, signing, staff, text
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode
from api.services.operators import roles as R

hash_password = passwords.hash_password


@dataclass(frozen=True)
class OperatorInfo:
    id: int
    username: str
    display_name: str | None
    roles: tuple[str, ...] = ()
    active: bool = True
    last_login_at: datetime | None = None

    def public(self) -> dict:
        """What the audit trail keeps of an account (never the password hash)."""
        return {"username": self.username, "display_name": self.display_name, "roles": list(self.roles),
                "active": self.active}


def _info(op: Operator) -> OperatorInfo:
    return OperatorInfo(op.id, op.username, op.display_name, R.decode(op.roles), bool(op.is_active),
                        op.last_login_at)


async def login(username: str, password: str, *, client: str | None = None, redis=None) -> tuple[OperatorInfo, str]:
    """Password login (api/services/passwords.py: argon2id, a failure limit per username and address)."""
    name = (username or "").strip()

    async def find():
        if text.has_control(name):  # no account has one (staff.USERNAME); PostgreSQL refuses NUL in a query
            return None
        found = await Operator.filter(username=name).values("id", "username", "display_name", "password_hash",
                                                              "is_active")
        return found[0] if found else None

    # A name with a control character matches no account and is throttled without them (PostgreSQL
    # refuses NUL in a query or a throttle row): INVALID_CREDENTIALS, like any unknown name.
    found = await passwords.check("operator", text.strip_controls(name), password, find, "is_active", client=client,
                                  redis=redis)
    async with transaction() as tx:
        await passwords.rehash_if_needed(tx, "operator", found, password)
        await Operator.filter(id=found["id"]).update(last_login_at=clock.now())
        await audit(tx, ("operator", str(found["id"])), "operator.login", "operator", str(found["id"]), None)
    token = signing.issue_token("operator", found["id"], settings().operator_token_ttl_seconds)
    return _info(await Operator.get(id=found["id"])), token


async def get_operator(operator_id: int) -> OperatorInfo | None:
    """The active operator behind a token, read at every request: a deactivated operator's tokens, and
    a removed role, stop working at once."""
    op = await Operator.get_or_none(id=operator_id)
    return _info(op) if op is not None and op.is_active else None


async def get_any(operator_id: int) -> OperatorInfo | None:
    op = await Operator.get_or_none(id=operator_id)
    return _info(op) if op is not None else None


async def page(limit: int, after_id: int | None) -> list[OperatorInfo]:
    return [_info(op) for op in await Operator.filter(id__gt=after_id or 0).order_by("id").limit(limit)]


async def ensure_operator(tx: Tx, username: str, password: str, display_name: str | None = None,
                          roles: Iterable[str] = (R.ADMIN,)) -> int:
    """The seeded operator (once): every role it is given is kept as it is on a second run."""
    existing = await Operator.get_or_none(username=username)
    if existing is not None:
        return existing.id
    op = await Operator.create(username=username, password_hash=hash_password(password), display_name=display_name,
                               is_active=True, roles=R.encode(roles), created_at=clock.now())
    return op.id


def _display_name(value: str | None, field: list[str]) -> str:
    """1 to 64 characters, no control characters (text.name)."""
    return text.name(value, field, 64)


async def _password_hash(password: str | None, field: list[str]) -> str:
    if not staff.MIN_PASSWORD_LENGTH <= len(password or "") <= staff.MAX_PASSWORD_LENGTH:
        raise DomainError(ErrorCode.INVALID_INPUT, f"password must be {staff.MIN_PASSWORD_LENGTH} to"
                          f" {staff.MAX_PASSWORD_LENGTH} characters", field)
    return await passwords.hash_password_off_loop(password or "")


def _check_grant(grantor: Iterable[str] | None, wanted: Iterable[str], field: list[str]) -> None:
    above = set(wanted) - R.grantable(grantor)
    if above:
        raise DomainError(ErrorCode.ROLE_NOT_GRANTABLE,
                          f"you may not give or take the role(s) {', '.join(sorted(above))}", field)


async def create_operator(username: str, display_name: str | None, password: str, roles: Iterable[str], *,
                          actor: Actor = ("cli", None), grantor: Iterable[str] | None = None) -> OperatorInfo:
    """A new account with these roles. `grantor` is the creating operator's roles (None: the command
    line): only roles the grantor may give (ROLE_NOT_GRANTABLE otherwise). Audited without the password."""
    valid = staff.USERNAME.match((username or "").strip().lower())
    if valid is None:
        raise DomainError(ErrorCode.INVALID_INPUT, "username: 3 to 64 of a-z, 0-9, '.', '_', '-'", ["username"])
    name = valid.group(0)
    display = _display_name(display_name if display_name is not None else name, ["displayName"])
    wanted = R.parse(roles, ["roles"])
    _check_grant(grantor, wanted, ["roles"])
    password_hash = await _password_hash(password, ["password"])
    taken = DomainError(ErrorCode.USERNAME_TAKEN, "this username is taken", ["username"])
    try:
        async with transaction() as tx:
            if await Operator.filter(username=name).exists():
                raise taken
            op = await Operator.create(username=name, display_name=display, password_hash=password_hash,
                                       roles=R.encode(wanted), is_active=True, created_at=clock.now())
            info = _info(op)
            await audit(tx, actor, "operator.create", "operator", str(op.id), None, after=info.public())
    except IntegrityError:  # the same username created at the same moment
        raise taken from None
    return info


async def update_operator(actor_id: int, grantor: Iterable[str], operator_id: int, *, display_name: str | None = None,
                          roles: Iterable[str] | None = None, active: bool | None = None,
                          password: str | None = None) -> OperatorInfo:
    """Changes what is given. A non-ADMIN may change only operators whose roles they could give, and
    give only those; the last active ADMIN cannot be deactivated or lose ADMIN (LAST_ADMIN)."""
    grantor = tuple(grantor)
    display = _display_name(display_name, ["input", "displayName"]) if display_name is not None else None
    wanted = R.parse(roles, ["input", "roles"]) if roles is not None else None
    password_hash = await _password_hash(password, ["input", "password"]) if password is not None else None
    async with transaction() as tx:
        # The target and every active ADMIN, locked together in id order: two ADMINs removing each other
        # at once cannot both pass the last-ADMIN check.
        admins = [op.id for op in await Operator.filter(is_active=True).only("id", "roles")
                  if R.ADMIN in R.decode(op.roles)]
        locked = {op.id: op for op in await rows(Rank.OPERATOR, Operator, {operator_id, *admins})}
        op = locked.get(operator_id)
        if op is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such operator", ["input", "operatorId"])
        before = _info(op)
        _check_grant(grantor, before.roles, ["input", "operatorId"])
        if wanted is not None:
            _check_grant(grantor, set(wanted) ^ set(before.roles), ["input", "roles"])
        stays_admin = (active if active is not None else before.active) and R.ADMIN in (wanted or before.roles)
        others = [o for pk, o in locked.items() if pk != operator_id and o.is_active and R.ADMIN in R.decode(o.roles)]
        if before.active and R.ADMIN in before.roles and not stays_admin and not others:
            raise DomainError(ErrorCode.LAST_ADMIN, "the last active ADMIN cannot be deactivated or lose ADMIN",
                              ["input", "active" if active is False else "roles"])
        changes: dict = {}
        if display is not None:
            changes["display_name"] = display
        if wanted is not None:
            changes["roles"] = R.encode(wanted)
        if active is not None:
            changes["is_active"] = active
        if password_hash is not None:
            changes["password_hash"] = password_hash
        if changes:
            await Operator.filter(id=operator_id).update(**changes)
        after = _info(await Operator.get(id=operator_id))
        await audit(tx, ("operator", str(actor_id)), "operator.update", "operator", str(operator_id),
                    {"password_changed": password_hash is not None}, before=before.public(), after=after.public())
    return after


async def get_many(ids: list[int]) -> dict[int, OperatorInfo]:
    """Accounts by id, active or not (DataLoaders)."""
    return {op.id: _info(op) for op in await Operator.filter(id__in=list(ids))}
