"""The server's background loops (gate reconciliation, scheduled runs, pushes): started with the
lifespan; at its end told to stop by a flag and waited for, cancelled only when one overstays its grace.

Why a flag and not a cancel: on Python 3.11 `asyncio.wait_for` (inside redis-py and asyncpg) can turn a
cancel that arrives as its call fails into that call's error (CPython gh-86296, fixed in 3.12), and a
loop that catches errors to keep going then goes on past its server's end, with a closed database and
Redis (one such loop won the gate-refresh election for a whole test and held off the live server's
reconciliation). A loop checks the flag between rounds and its pause ends as soon as the flag is set,
so a stop lets the round in hand finish (its transaction commits or rolls back on its own) and ends it
even when a cancel was needed and swallowed."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


async def pause(seconds: float, stopping: asyncio.Event) -> None:
    """Waits `seconds`, or until `stopping` is set, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stopping.wait()


class Loops:
    """The loops of one server."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, loop: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        self._tasks.append(asyncio.create_task(loop(self.stopping)))

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Sets the flag and waits up to `grace_seconds` for every loop to finish its round and end; a loop
        still running then (a long scheduled run) is cancelled and waited for as long again."""
        self.stopping.set()
        pending = {task for task in self._tasks if not task.done()}
        for attempt in ("finish", "cancel"):
            if not pending:
                break
            if attempt == "cancel":
                for task in pending:
                    task.cancel()
            _, pending = await asyncio.wait(pending, timeout=grace_seconds)
        if pending:
            log.warning("%s background loops still running after the stop", len(pending))
        self._tasks.clear()
