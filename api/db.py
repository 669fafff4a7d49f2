"""Tortoise set-up and the one transaction helper.

Nothing else in the code base opens a transaction: services call `transaction()` and run their
statements on the `Tx` it yields. SQL is written once with PostgreSQL's `$1, $2…` placeholders; on
SQLite they become `?1, ?2…`, which SQLite understands natively.
"""
from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, AsyncIterator, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tortoise import Tortoise, connections
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.transactions import in_transaction

from api import sql as raw_sql
from api.config import Settings, settings

T = TypeVar("T")
MODEL_MODULES = ["api.models"]
_PLACEHOLDER = re.compile(r"\$(\d+)")
LOCK_TIMEOUT = "10s"  # PostgreSQL's lock_timeout on every pooled connection
DEADLOCK = "40P01"  # SQLSTATE deadlock_detected: PostgreSQL rolled the victim back whole
LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE lock_not_available: lock_timeout ran out



class HeldLocks(list[tuple[int, int]]):
    """The (rank, id) pairs a transaction has locked, in the order taken, with constant-time membership
    and highest pair (a batch of 100 receipts records some hundreds of locks; a list scan per lock
    made that quadratic). Appending a pair already held does nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: set[tuple[int, int]] = set()
        self.top: tuple[int, int] | None = None

    def __contains__(self, key: object) -> bool:
        return key in self.keys

    def append(self, key: tuple[int, int]) -> None:
        if key in self.keys:
            return
        super().append(key)
        self.keys.add(key)
        if self.top is None or key > self.top:
            self.top = key

    def extend(self, keys: Iterable[tuple[int, int]]) -> None:
        for key in keys:
            self.append(key)


# The locks taken so far by the current transaction (api/locks.py keeps them in the global order);
# None outside a transaction.
held_locks: ContextVar[HeldLocks | None] = ContextVar("held_locks", default=None)


def db_url(cfg: Settings) -> str:
    url = cfg.database_url
    if cfg.dialect == "postgres":
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        # The default pool maximum (5) halves contended throughput; see PERFORMANCE.md.
        query.setdefault("minsize", "2")
        query.setdefault("maxsize", "20")
        scheme = "postgres" if parts.scheme in ("postgresql", "postgres") else parts.scheme
        return urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))
    path = cfg.sqlite_path
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return url


def _connection(cfg: Settings) -> Any:
    url = db_url(cfg)
    if cfg.dialect != "postgres":
        return url
    from asyncpg import Connection
    from tortoise.backends.base.config_generator import expand_db_url

    class LeanConnection(Connection):
        """No reset query when a connection goes back to the pool: the app keeps no session state
        (no SET, LISTEN, advisory locks or cursors), and the reset is a round trip per request."""

        def get_reset_query(self) -> str:
            return ""

    config = expand_db_url(url)
    config["credentials"]["connection_class"] = LeanConnection
    # Every statement waits at most this long for a row lock (api/locks.py): a stuck lock is an error,
    # not a request that hangs until the client gives up.
    config["credentials"]["server_settings"] = {"lock_timeout": LOCK_TIMEOUT}
    return config


def tortoise_config(cfg: Settings | None = None) -> dict[str, Any]:
    cfg = cfg or settings()
    return {
        "connections": {"default": _connection(cfg)},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "api.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def init_db(cfg: Settings | None = None) -> None:
    # Tortoise caches each model's compiled INSERT/DELETE per (connection name, table), not per dialect:
    # after a SQLite run, a PostgreSQL run in the same process would reuse "?" placeholders.
    EXECUTOR_CACHE.clear()
    from api.services import installation

    installation.forget()  # the installation key is the database's: read it again from this one
    # The global fallback lets request tasks see the context that the lifespan task created.
    await Tortoise.init(config=tortoise_config(cfg), _enable_global_fallback=True)


async def migrate_db(cfg: Settings | None = None) -> None:
    """Apply every committed migration (idempotent)."""
    from tortoise.migrations.api import migrate

    await migrate(config=tortoise_config(cfg))


async def close_db() -> None:
    await Tortoise.close_connections()


def is_postgres() -> bool:
    return connections.get("default").capabilities.dialect == "postgres"


def _sql(sql: str) -> str:
    return sql if is_postgres() else _PLACEHOLDER.sub(r"?\1", sql)


class Tx:
    """Statements inside one transaction. Rows come back as dicts (or asyncpg Records)."""

    __slots__ = ("conn", "postgres")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.postgres = conn.capabilities.dialect == "postgres"

    def _q(self, sql: str) -> str:
        return sql if self.postgres else _PLACEHOLDER.sub(r"?\1", sql)

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        return list(await self.conn.execute_query_dict(self._q(sql), list(args)))

    async def fetchrow(self, sql: str, *args: Any) -> Any | None:
        rows = await self.conn.execute_query_dict(self._q(sql), list(args))
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else next(iter(row.values()))

    async def execute(self, sql: str, *args: Any) -> int:
        count, _ = await self.conn.execute_query(self._q(sql), list(args))
        return count

    async def execute_many(self, statements: list[tuple[str, tuple]]) -> None:
        """Independent writes (no RETURNING, no two on the same row). On PostgreSQL they travel as
        one statement of data-modifying CTEs: one round trip instead of one each."""
        if not self.postgres or len(statements) == 1:
            for sql, args in statements:
                await self.execute(sql, *args)
            return
        parts: list[str] = []
        values: list[object] = []
        for index, (sql, args) in enumerate(statements):
            parts.append(f"w{index} AS ({_PLACEHOLDER.sub(_shifted(len(values)), sql)})")
            values.extend(args)
        await self.conn.execute_query(raw_sql.writes_in_one_round_trip(parts), values)


def _shifted(offset: int) -> Callable[[re.Match[str]], str]:
    """A substitution for _PLACEHOLDER that renumbers $N as $(N + offset)."""
    return lambda match: f"${int(match.group(1)) + offset}"


@asynccontextmanager
async def transaction() -> AsyncIterator[Tx]:
    """The one way to open a transaction. Commits on exit, rolls back on any exception. Inside it,
    Tortoise models and QuerySets run on the transaction's connection (Tortoise binds it in a context
    variable), and `api.locks` takes row locks."""
    outer = held_locks.get()
    token = held_locks.set(outer if outer is not None else HeldLocks())
    try:
        context = in_transaction("default")
        conn = await _open(context)
        try:
            yield Tx(conn)
        except BaseException as exc:
            await context.__aexit__(type(exc), exc, exc.__traceback__)  # rolls back; never suppresses
            raise
        await context.__aexit__(None, None, None)
    finally:
        held_locks.reset(token)


async def _open(context: Any) -> Any:
    """Enters Tortoise's transaction context, and gives back what it took when the entry fails part-way.

    Tortoise (1.1.9) takes the connection first (SQLite: the lock of its one connection; PostgreSQL: a
    pool connection), makes it the task's connection, then sends BEGIN; when BEGIN fails, or a cancel
    lands while it runs (a server's stop cancelling a scheduled run), it gives nothing back: every later
    statement on SQLite waits for that lock for ever, and PostgreSQL's pool is one connection short for
    good. The context's own exit gives both back (and rolls back what BEGIN may have started); it runs
    when the entry got as far as naming the task's connection (`token`), which comes right after the
    take. (A cancel while SQLite opens its very first connection, between the two, is not covered.)"""
    try:
        return await context.__aenter__()
    except BaseException as exc:
        if hasattr(context, "token"):
            with contextlib.suppress(Exception):  # the rollback of a BEGIN that never ran may fail
                await context.__aexit__(type(exc), exc, exc.__traceback__)
        raise


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error, looked for along the exception's causes (Tortoise wraps
    some of asyncpg's errors). Never the message text: it is translated with `lc_messages`."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        code = getattr(seen, "sqlstate", None)
        if isinstance(code, str):
            return code
        seen = seen.__cause__ or seen.__context__
    return None


def is_deadlock(exc: BaseException) -> bool:
    """PostgreSQL chose this transaction as a deadlock victim: safe to run again from the start."""
    return sqlstate(exc) == DEADLOCK


def retry_on_deadlock(attempts: int = 3) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
    """Runs a service call again when PostgreSQL chose its transaction as a deadlock victim (SQLSTATE
    40P01: it was rolled back whole, its idempotency claim with it). The call must open its own
    transaction: a retry inside someone else's would run on a transaction that is already aborted."""

    def wrap(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        @functools.wraps(fn)
        async def run(*args: Any, **kwargs: Any) -> T:
            if held_locks.get() is not None:
                raise RuntimeError(f"{fn.__qualname__} retries deadlocks, so it must not run inside a transaction")
            attempt = 1
            while True:
                try:
                    return await fn(*args, **kwargs)
                except Exception as exc:
                    if attempt >= attempts or not is_deadlock(exc):
                        raise
                attempt += 1

        return run

    return wrap


async def fetch(sql: str, *args: Any) -> list[Any]:
    """A read outside any transaction (autocommit)."""
    conn = connections.get("default")
    return list(await conn.execute_query_dict(_sql(sql), list(args)))


async def fetchval(sql: str, *args: Any) -> Any:
    rows = await fetch(sql, *args)
    return next(iter(rows[0].values())) if rows else None


def __getattr__(name: str) -> Any:
    """`tortoise -c api.db.TORTOISE_ORM makemigrations` reads the config from here."""
    if name == "TORTOISE_ORM":
        return tortoise_config()
    raise AttributeError(name)
