"""The installation id (issue 11 finding 13): a random key stored in the database, made the first time a
server (or any process) needs it, and read once per process.

Redis keys that describe rows of this database carry it (`key()`): the flash-sale and draw gates. A
database re-created beside the same Redis gets a new key, so its new sale 1 or prize 1 never reads
counters left by the old database's sale 1 or prize 1; they simply age out (they all have a TTL)."""
from __future__ import annotations

import secrets

from api import db
from api.models import Installation
from api.services import clock
from api.services import sql as core_sql

_current: list[str] = []


async def current() -> str:
    """This database's installation key (made on first use; cached for the process)."""
    if not _current:
        found = await Installation.get_or_none(id=1)
        if found is None:
            async with db.transaction() as tx:
                await tx.execute(core_sql.INSTALLATION_CLAIM, secrets.token_hex(8), clock.now())
            found = await Installation.get(id=1)
        _current[:] = [found.key]
    return _current[0]


def assume(key: str) -> None:
    """Use `key` as the installation key without reading the database (a process that has none, such as
    bench/floor.py, told the key by whoever has)."""
    _current[:] = [key]


def forget() -> None:
    """Drops the cached key (a process that connects to another database reads it again)."""
    _current.clear()


async def key(logical: str) -> str:
    """The Redis key of a logical gate key `mallpoints:<rest>`: `mallpoints:<installation>:<rest>`. The
    hash tag inside `<rest>` (`{fs:<id>}`, `{draw:<id>}`) still puts each sale's or game's keys in one
    slot of a Redis Cluster."""
    rest = logical.removeprefix("mallpoints:")
    return f"mallpoints:{await current()}:{rest}"
