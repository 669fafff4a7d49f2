"""Row locks: one helper, one global order, inside a transaction.

Every lock a points, stock or money move takes goes through this module:

- `rows(rank, Model, ids)` locks rows by primary key (`SELECT … FOR UPDATE`, in id order) and returns
  them as model instances; `row(...)` is the same for one row; `skip_locked(...)` takes the free rows of
  a batch job and passes by the ones another transaction holds;
- `advisory(rank, key)` takes a transaction-scoped advisory lock for something that has no row yet
  (a licence plate);
- `statement(rank, sql, …)` runs a named SQL statement that finds the rows it locks itself (a join, a
  subquery), adding `FOR UPDATE [OF …]` on PostgreSQL;
- `enter(rank, ids)` records a lock that a named SQL statement takes itself (the one-statement earn,
  a chunk of the expiry run), so that statement is held to the same order.

The order is `Rank`: a transaction takes its locks in ascending rank, and within a rank in ascending
id. Asking for a lock below one already held raises `LockOrderError` at once, in every environment: two
moves that could take the same two locks in opposite orders can deadlock, and such a move is a bug to
fix, not a case to retry. A move that locks a row many members share (a rule's budget) can still lose a
deadlock to a group of receipts holding that row; such calls are wrapped in `retry_on_deadlock`, which
recognises the victim by SQLSTATE 40P01 and runs the whole transaction again.

Every pooled PostgreSQL connection has `lock_timeout` set (`api.db.LOCK_TIMEOUT`): a wait longer than
that fails the statement (SQLSTATE 55P03) instead of hanging. On SQLite, Tortoise runs a process's
transactions one at a time, so `FOR UPDATE` is not needed and not sent; the order is still checked.

Idempotency keys are claimed by a unique insert (`api.services.idempotency`), before any row lock: a
second caller with the same key waits there for the first one's transaction to end.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import Any, TypeVar

from tortoise import connections
from tortoise.models import Model

from api import sql as raw_sql
from api.db import LOCK_NOT_AVAILABLE, HeldLocks, Tx, held_locks, is_deadlock, retry_on_deadlock, sqlstate

__all__ = ["Rank", "LockOrderError", "rows", "row", "skip_locked", "advisory", "statement", "enter", "held", "step",
           "retry_on_deadlock", "is_deadlock", "is_lock_timeout"]

M = TypeVar("M", bound=Model)


class Rank(IntEnum):
    """The global lock order, lowest first. Every move in every domain takes its locks in this order."""

    PLATE = 10        # advisory: a licence plate's entry, binding and unbinding (parking)
    PHONE = 11        # advisory: a phone's SMS send slot (sms.reserve_send)
    SMS_CODE = 12     # a phone's latest sign-in code, consumed by one login (members)
    IDEMPOTENCY = 15  # the idempotency claim (a unique insert; see the module's notes)
    OPERATOR = 16     # operators' rows: role and active changes, one operator's adjustments of the day
    APPROVAL = 17     # a held points adjustment being approved or rejected (booked once)
    CAMPAIGN = 18     # advisory: one sender of a campaign's chunk at a time (its offers, then each member's account)
    MEMBER = 20       # a member's row and points account (ledger.lock_account; the expiry run's chunks)
    PURCHASE = 30     # a purchase being refunded, or its pending points released
    PENDING = 35      # a purchase's pending points (cancelled by a refund, released by the scheduled run)
    ORDER = 40        # a mall order (payment notification, refund, lapse)
    STAY = 50         # a parking stay
    VOUCHER = 60      # the vouchers of an order or a stay
    RULE_USAGE = 70   # a member's earn-rule counters
    PRODUCT = 80      # a catalogue product's stock
    FLASH_SALE = 90   # a flash sale's stock
    DRAW_GAME = 100   # a lucky-draw game's terms
    PRIZE = 110       # a draw prize's stock
    SHARED = 120      # rows every member shares: an earn rule's total budget, a car park's settings
    CONFIG = 130      # an operator's edit of one configuration row (tier, rule, game, car park)
    SETTLEMENT = 140  # advisory: one merchant's statement generation (settlement, issue 12)
    STATEMENT = 150   # a settlement statement's row: confirm, dispute, approve, mark paid, regenerate


class LockOrderError(AssertionError):
    """A lock was asked for below one the transaction already holds: a deadlock waiting to happen."""


def held() -> HeldLocks:
    """The (rank, id) pairs the current transaction has locked, in the order taken."""
    state = held_locks.get()
    if state is None:
        raise RuntimeError("locks are taken inside api.db.transaction() only")
    return state


def enter(rank: Rank, ids: Iterable[int] = ()) -> list[int]:
    """Checks that `ids` of `rank` may be locked now and records them; returns the ids, sorted and
    without repeats, in the order to lock them. Rows already held may be asked for again. With no ids
    (an advisory lock, a statement that locks rows it finds itself) only the rank is checked."""
    state = held()
    wanted = sorted(set(ids))
    top = state.top
    if not wanted:
        if top is not None and int(rank) < top[0]:
            raise LockOrderError(f"a {rank.name} lock asked for after {Rank(top[0]).name} #{top[1]}")
        if (int(rank), 0) not in state:
            state.append((int(rank), 0))
        return wanted
    for key in ((int(rank), i) for i in wanted):
        if key in state:
            continue
        if top is not None and key < top:
            raise LockOrderError(f"lock {rank.name} #{key[1]} asked for after {Rank(top[0]).name} #{top[1]}")
        state.append(key)
        top = key
    return wanted


@contextmanager
def step() -> Iterator[None]:
    """One move of several that share a transaction (the receipts of a batch, each with its own key
    and result): its locks are checked in the global order from the step's start. The locks of the
    earlier steps stay held until commit without constraining this one, so two such transactions can
    wait on each other (a receipt's rule-budget row, then the next receipt's member): the caller runs
    the steps in member order and retries a deadlock victim (SQLSTATE 40P01) whole."""
    outer = held()
    token = held_locks.set(HeldLocks())
    try:
        yield
    finally:
        inner = held()
        held_locks.reset(token)
        outer.extend(inner)  # a set's membership test per key: linear in the batch, not quadratic


def _postgres() -> bool:
    return connections.get("default").capabilities.dialect == "postgres"


async def rows(rank: Rank, model: type[M], ids: Iterable[int]) -> list[M]:
    """Locks the rows of `model` with these primary keys, in id order, and returns the ones that exist."""
    wanted = enter(rank, ids)
    if not wanted:
        return []
    query = model.filter(pk__in=wanted).order_by(model._meta.pk_attr)
    return list(await (query.select_for_update() if _postgres() else query))


async def row(rank: Rank, model: type[M], pk: int) -> M | None:
    """Locks one row of `model` and returns it (None when there is no such row)."""
    found = await rows(rank, model, (pk,))
    return found[0] if found else None


async def skip_locked(rank: Rank, model: type[M], limit: int, order_by: str = "id", **filters: object) -> list[M]:
    """A batch job's next `limit` rows matching `filters` that no other transaction holds (PostgreSQL's
    SKIP LOCKED), locked. Two runs at once share the work instead of queueing."""
    enter(rank)
    query = model.filter(**filters).order_by(order_by).limit(limit)
    return list(await (query.select_for_update(skip_locked=True) if _postgres() else query))


async def statement(rank: Rank, sql: str, *args: Any, ids: Iterable[int] = (), of: str | None = None) -> list[Any]:
    """Runs a named SQL statement that finds the rows it locks itself (a join, a subquery), with
    `FOR UPDATE` (`OF` the given tables) added on PostgreSQL. `ids` are the rows of `rank` it locks when
    they are known beforehand (checked and recorded as by `rows`); otherwise only the rank is checked,
    and the caller records what was locked with `enter`."""
    enter(rank, ids)
    suffix = (" FOR UPDATE" + (f" OF {of}" if of else "")) if _postgres() else ""
    return await Tx(connections.get("default")).fetch(sql + suffix, *args)


async def advisory(rank: Rank, space: int, key: str) -> None:
    """A transaction-scoped advisory lock on (space, key), for a thing that has no row to lock."""
    enter(rank)
    if _postgres():
        conn = connections.get("default")
        await conn.execute_query(raw_sql.ADVISORY_XACT_LOCK, [space, key])


def is_lock_timeout(exc: BaseException) -> bool:
    """A statement waited longer than lock_timeout for a lock."""
    return sqlstate(exc) == LOCK_NOT_AVAILABLE
