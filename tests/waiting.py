"""Race tests on PostgreSQL: wait until the other side is really waiting for a lock.

A race test holds a lock on one connection, starts the contender, and must release the lock only once
the contender is blocked on it; otherwise the test may pass without ever racing. Instead of sleeping,
`wait_for_lock_waiters` polls `pg_stat_activity` on a connection of its own (a transaction would
freeze its view of that table) until the wanted number of backends of the test's database wait for a
lock (`wait_event_type = 'Lock'`), optionally only those blocked by a given connection
(`pg_blocking_pids`), and fails the test with what each backend was doing if that does not happen in
time.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest

from api.config import settings

_WAITERS_SQL = """
SELECT pid, state, wait_event_type, wait_event, pg_blocking_pids(pid) AS blocked_by, left(query, 120) AS query
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


def postgres_dsn() -> str:
    """The test database of the running session, for a connection outside Tortoise's pool."""
    return settings().database_url.split("?")[0].replace("postgres://", "postgresql://", 1)


async def wait_for_lock_waiters(count: int = 1, *, blocked_by: asyncpg.Connection | None = None,
                                timeout: float = 10.0) -> list[dict[str, Any]]:
    """Returns once at least `count` backends wait for a lock (held by `blocked_by`'s backend when
    given); fails the test after `timeout` seconds, listing every backend's state."""
    holder = blocked_by.get_server_pid() if blocked_by is not None else None
    observer = await asyncpg.connect(postgres_dsn())
    try:
        deadline = time.monotonic() + timeout
        while True:
            rows = [dict(r) for r in await observer.fetch(_WAITERS_SQL)]
            waiting = [r for r in rows if r["wait_event_type"] == "Lock"
                       and (holder is None or holder in r["blocked_by"])]
            if len(waiting) >= count:
                return waiting
            if time.monotonic() > deadline:
                where = f" on a lock held by backend {holder}" if holder is not None else ""
                pytest.fail(f"after {timeout:.0f} s, {len(waiting)} backend(s) wait{where}, {count} expected;"
                            f" the race did not happen. Backends: {rows}", pytrace=False)
            await asyncio.sleep(0.02)
    finally:
        await observer.close()
