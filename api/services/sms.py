"""Pluggable SMS senders. `console` (the default, development only) logs the message and keeps it
in the sms_message outbox that operators read through `smsMessages`."""
from __future__ import annotations

import importlib
import logging
import os
from typing import Protocol

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
