"""The outbox: a notification row written in the transaction of the event that causes it (one INSERT),
pushed after commit by the dispatcher (api/services/notifications/dispatcher.py).

Event sites call ONE function here with the transaction they run in: `emit(tx, note)`. Inside a group of
receipts (group commit, purchaseRecordBatch) `collect()` gathers the group's notes and `flush(tx)` writes
them with one set-based INSERT before the group commits (the set-based batch sends that INSERT, `many`, inside
its own write statement). `statement(note)` is the same INSERT as a
(sql, args) pair for callers that send several writes in one round trip (`Tx.execute_many`).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

from api.db import Tx
from api.services import clock
from api.services.notifications import sql
from api.services.notifications.settings import notify_settings

TOPICS = ("POINTS_EARNED", "POINTS_EXPIRING", "TIER_CHANGED", "VOUCHER_EXPIRING", "PARKING", "PRIZE", "CAMPAIGN")
CHANNELS = ("INBOX", "SMS", "WECHAT")


@dataclass(frozen=True)
class Note:
    member_id: int
    topic: str
    title: str
    body: str
    source_ref: str | None = None  # with the topic: at most one notification per source
    channel: str | None = None  # None: the topic's push channel from the settings
    campaign_id: int | None = None


def _channel(note: Note) -> str:
    return note.channel or notify_settings().push_channel(note.topic)


def _status(channel: str) -> str:
    # An inbox notification is delivered once written; a pushed one waits for the dispatcher.
    return "DELIVERED" if channel == "INBOX" else "PENDING"


def _args(note: Note, now: datetime) -> tuple:
    assert note.topic in TOPICS, note.topic
    channel = _channel(note)
    return (note.member_id, note.topic, channel, note.title[:64], note.body[:500], note.source_ref, note.campaign_id,
            _status(channel), now)


def statement(note: Note, now: datetime | None = None) -> tuple[str, tuple]:
    """The INSERT of one notification as (sql, args), for `Tx.execute_many`."""
    return sql.INSERT_ONE, _args(note, now or clock.now())


_collector: ContextVar[list[Note] | None] = ContextVar("notification_collector", default=None)


async def emit(tx: Tx, note: Note) -> None:
    """Writes the notification in the caller's transaction (one INSERT), or hands it to the running
    group's collector (written by `flush` in the same transaction)."""
    pending = _collector.get()
    if pending is not None:
        pending.append(note)
        return
    query, args = statement(note)
    await tx.execute(query, *args)


@contextmanager
def collect() -> Iterator[list[Note]]:
    """Gathers the notes emitted inside (one group of receipts) for one set-based INSERT."""
    notes: list[Note] = []
    token = _collector.set(notes)
    try:
        yield notes
    finally:
        _collector.reset(token)


def many(notes: list[Note], now: datetime) -> tuple[str, tuple]:
    """The set-based INSERT of the notes as (sql, args) (PostgreSQL), for `flush` and for a caller that
    sends it inside a statement of its own (the set-based batch's write)."""
    rows = [_args(n, now) for n in notes]
    return sql.INSERT_MANY_PG, (*[list(col) for col in zip(*(r[:8] for r in rows), strict=True)], now)


async def flush(tx: Tx, notes: list[Note], now: datetime | None = None) -> int:
    """Writes the gathered notes: one set-based INSERT on PostgreSQL, one INSERT each on SQLite."""
    if not notes:
        return 0
    now = now or clock.now()
    count = len(notes)
    if tx.postgres:
        query, args = many(notes, now)
        await tx.execute(query, *args)
    else:
        await tx.execute_many([(sql.INSERT_ONE, _args(n, now)) for n in notes])
    notes.clear()
    return count


async def emit_all(tx: Tx, notes: list[Note]) -> None:
    """Several notes of one event: handed to the collector, or written in one round trip."""
    pending = _collector.get()
    if pending is not None:
        pending.extend(notes)
    elif notes:
        now = clock.now()
        await tx.execute_many([statement(n, now) for n in notes])


# --- the events: one call at each event site -------------------------------------------------------


async def on_receipt(tx: Tx, member_id: int, purchase_id: int, points: int, balance: int,
                     upgraded_to: tuple[int, str] | None) -> None:
    """Points earned on a receipt, and the upgrade it caused ((tier id, tier name)), with the source the
    general path's growth step gives it (`tiers.add_growth`: purchase:<id>:<tier id>)."""
    notes = []
    if points > 0:
        notes.append(Note(member_id, "POINTS_EARNED", "积分到账", f"消费获得 {points} 积分，当前可用 {balance} 积分",
                          f"purchase:{purchase_id}"))
    if upgraded_to is not None:
        notes.append(tier_changed(member_id, upgraded_to[1], True, f"purchase:{purchase_id}:{upgraded_to[0]}"[:64]))
    await emit_all(tx, notes)


def tier_changed(member_id: int, tier_name: str, up: bool, source_ref: str) -> Note:
    body = f"恭喜升级为 {tier_name}" if up else f"会员等级调整为 {tier_name}"
    return Note(member_id, "TIER_CHANGED", "会员等级变更", body, source_ref)


async def on_parking(tx: Tx, member_id: int, stay_id: int, points: int, coupons: int, plate: str) -> None:
    """A parking offset used at the exit (points spent and/or coupons used)."""
    if points <= 0 and coupons <= 0:
        return
    parts = ([f"{points} 积分"] if points else []) + ([f"{coupons} 张停车券"] if coupons else [])
    await emit(tx, Note(member_id, "PARKING", "停车抵扣", f"车辆 {plate[:2]}***{plate[-2:]} 出场，使用 {'、'.join(parts)}",
                        f"stay:{stay_id}"))


async def on_prize(tx: Tx, member_id: int, play_id: int, prize_name: str) -> None:
    await emit(tx, Note(member_id, "PRIZE", "抽奖中奖", f"恭喜抽中 {prize_name}", f"play:{play_id}"))
