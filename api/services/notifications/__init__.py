"""Notifications (issue 13 item 4): the outbox written with each event, the member's inbox and
preferences, expiry reminders, and the dispatcher that pushes through SMS and WeChat after commit."""
from api.services.notifications import dispatcher, inbox, outbox, reminders

__all__ = ["dispatcher", "inbox", "outbox", "reminders"]
