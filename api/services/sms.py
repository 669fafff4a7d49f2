"""Pluggable SMS senders. `console` (the default, development only) logs the message and keeps it
in the sms_message outbox that operators read through `smsMessages`."""
from __future__ import annotations

import importlib
import logging
import os
from datetime import datetime
from typing import Protocol

from api import locks
from api.db import Tx
from api.services import clock

log = logging.getLogger("mallpoints.sms")


class SmsSender(Protocol):
    async def send(self, tx: Tx, phone: str, body: str) -> None: ...


class ConsoleSender:
    """Writes to the log and the outbox table, inside the caller's transaction."""

    async def send(self, tx: Tx, phone: str, body: str) -> None:
        await tx.execute(
            "INSERT INTO sms_message (phone, body, created_at) VALUES ($1, $2, $3)", phone, body, clock.now()
        )
        log.info("SMS to %s: %s", phone, body)


PHONE_LOCK_SPACE = 4712  # the first key of pg_advisory_xact_lock(int, int) for a phone's send slot

# The newest code sent to a phone; read after the phone's lock is held, so it sees a send that
# committed while this caller waited.
_LAST_SEND_SQL = "SELECT MAX(created_at) FROM sms_code WHERE phone = $1"


async def reserve_send(tx: Tx, phone: str, now: datetime, resend_seconds: int) -> int:
    """Takes the phone's send slot for this transaction: 0 when a code may go out now, else the seconds
    to wait because one went out less than `resend_seconds` ago. The slot is a transaction-scoped lock
    on the phone (PostgreSQL advisory lock; SQLite runs a process's transactions one at a time), so
    concurrent requests for one phone queue and each sees the code the one before it recorded: at most
    one code per phone per `resend_seconds`. The caller records its code in the same transaction."""
    await locks.advisory(locks.Rank.PHONE, PHONE_LOCK_SPACE, phone)
    last = clock.parse_db_time(await tx.fetchval(_LAST_SEND_SQL, phone))
    if last is None or (now - last).total_seconds() >= resend_seconds:
        return 0
    return max(1, resend_seconds - int((now - last).total_seconds()))


_sender: list[SmsSender] = []


def get_sender() -> SmsSender:
    if not _sender:
        path = os.environ.get("MALLPOINTS_SMS_SENDER", "console")
        if path == "console":
            _sender.append(ConsoleSender())
        else:
            module, _, name = path.partition(":")
            _sender.append(getattr(importlib.import_module(module), name)())
    return _sender[0]
