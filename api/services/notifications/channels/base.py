"""What the dispatcher hands a channel and what it gets back."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Message:
    notification_id: int
    topic: str
    title: str
    body: str
    phone: str | None = None  # E.164, for SMS
    openid: str | None = None  # for WeChat subscribe messages


@dataclass(frozen=True)
class Outcome:
    ok: bool
    retry: bool = False  # a passing fault (throttled, 5xx, network): try again later
    code: str = ""  # the vendor's result code, safe to store and log (never a phone number or secret)
    reference: str | None = None  # the vendor's id of the message


class Channel(Protocol):
    name: str

    async def send(self, message: Message) -> Outcome: ...


def mask_phone(phone: str | None) -> str:
    """A phone number as logs may show it: the last four digits."""
    return f"****{phone[-4:]}" if phone and len(phone) >= 4 else "****"
