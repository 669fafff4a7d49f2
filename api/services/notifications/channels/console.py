"""The development SMS channel: no vendor, the message kept in the console SMS outbox (smsMessages)."""
from __future__ import annotations

import logging

from api.models import SmsMessage
from api.services import clock
from api.services.notifications.channels.base import Message, Outcome, mask_phone

log = logging.getLogger("mallpoints.notify")


class ConsoleSms:
    name = "SMS"

    async def send(self, message: Message) -> Outcome:
        if not message.phone:
            return Outcome(False, code="NO_PHONE")
        await SmsMessage.create(phone=message.phone, body=f"{message.title}: {message.body}"[:500], created_at=clock.now())
        log.info("notification %s to %s written to the SMS outbox", message.notification_id, mask_phone(message.phone))
        return Outcome(True, code="CONSOLE")
