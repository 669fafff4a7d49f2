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
from api.models import SmsCode, SmsMessage
from api.services import clock

log = logging.getLogger("mallpoints.sms")


class SmsSender(Protocol):
    async def send(self, tx: Tx, phone: str, body: str) -> None: ...


class ConsoleSender:
    """Writes to the log and the outbox table, inside the caller's transaction."""

    async def send(self, tx: Tx, phone: str, body: str) -> None:
        await SmsMessage.create(phone=phone, body=body, created_at=clock.now())
        # Neither the phone nor the text (it holds the code) goes to the log: the outbox is where to read them.
        log.info("SMS to ****%s written to the outbox", phone[-4:])


PHONE_LOCK_SPACE = 4712  # the first key of pg_advisory_xact_lock(int, int) for a phone's send slot



async def reserve_send(tx: Tx, phone: str, now: datetime, resend_seconds: int) -> int:
    """Takes the phone's send slot for this transaction: 0 when a code may go out now, else the seconds
    to wait because one went out less than `resend_seconds` ago. The slot is a transaction-scoped lock
    on the phone (PostgreSQL advisory lock; SQLite runs a process's transactions one at a time), so
    concurrent requests for one phone queue and each sees the code the one before it recorded: at most
    one code per phone per `resend_seconds`. The caller records its code in the same transaction."""
    await locks.advisory(locks.Rank.PHONE, PHONE_LOCK_SPACE, phone)
    # The newest code sent to the phone, read after its lock is held: it sees a send that committed while
    # this caller waited.
    newest = await SmsCode.filter(phone=phone).order_by("-created_at").first().values("created_at")
    last = clock.to_utc(newest["created_at"]) if newest else None
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
