"""Receipts booked together: purchaseRecordBatch, and group commit for single receipts."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import cast

from api import locks
from api.db import is_deadlock, transaction
from api.services import clock, idempotency
from api.services.earning import invites
from api.services.errors import DomainError, ErrorCode
from api.services.integrations import IntegrationIdentity
from api.services.notifications import outbox
from api.services.purchases import batch, earn
from api.services.purchases.checks import MAX_BATCH, Checked, PurchaseInput, PurchaseResult, check_purchase

ATTEMPTS = 3  # a group that loses a deadlock runs again whole


async def _book_group(items: list[tuple[Checked, datetime]], order: list[int], qualified: list[int],
                      set_based: bool) -> list[PurchaseResult | DomainError]:
    """One attempt: every receipt in one transaction. On PostgreSQL the receipts `batch.split` takes
    are booked set-based first (every member's lock taken there, in member order); the others each
    in a step of its own (its locks in the global order from its start: see `api.locks.step`)."""
    outcome: dict[int, PurchaseResult | DomainError] = {}
    async with transaction() as tx:
        with outbox.collect() as notes:  # the group's notifications: one set-based INSERT before commit
            rest = order
            fast = batch.split(items, order)[0] if set_based and tx.postgres else []
            if fast:
                booked, rest = await batch.book(tx, items, fast, order, qualified)
                outcome.update(booked)
            for i in rest:
                item, now = items[i]
                with locks.step():
                    try:
                        outcome[i] = await earn.book(tx, item, now)
                    except DomainError as err:
                        outcome[i] = err
                        await idempotency.release(tx, item.scope, item.key, item.digest)
        await outbox.flush(tx, notes)
    return [outcome[i] for i in range(len(items))]


async def book_together(items: list[tuple[Checked, datetime]]) -> list[PurchaseResult | DomainError]:
    """Books several receipts in one transaction, each on its own: its own key, its own result. A
    receipt that fails writes nothing but its key claim, which is released at once. Receipts go in
    member order, so that concurrent groups take account locks in the same order; a deadlock
    victim (a group whose later receipt waits for a row that an earlier receipt of another group's
    holds above it in rank) runs again."""
    order = sorted(range(len(items)), key=lambda i: items[i][0].member_id)
    set_based = True
    for attempt in range(1, ATTEMPTS + 1):
        qualified: list[int] = []
        earn.qualified_invites.set(qualified)
        try:
            outcome = await _book_group(items, order, qualified, set_based)
        except batch.Declined:
            set_based = False  # a receipt booked meanwhile by another transaction: receipt by receipt
            continue
        except Exception as exc:
            if locks.is_lock_timeout(exc):  # rolled back whole: nothing of the group was written
                raise DomainError(ErrorCode.TRY_AGAIN, "the accounts were busy; nothing was recorded, send the"
                                  " same request again", None) from exc
            if attempt == ATTEMPTS or not is_deadlock(exc):
                raise
            continue
        if qualified:  # after commit: rewards on other accounts are a move of their own
            await invites.reward_qualified(qualified)
        return outcome
    raise AssertionError("unreachable")


class _GroupCommit:
    """Group commit for single receipts. A call goes into a transaction at once when no group is
    running in the process; calls that arrive meanwhile wait and go together into the next one (up
    to MAX_BATCH). No latency is added when idle; under load, many earns share one commit, and
    groups of one process never wait for each other's account locks. A group that has run longer
    than STALL_SECONDS is taken to wait (for a lock that another transaction holds): then the next
    group starts beside it, up to MAX_IN_FLIGHT. Each call still gets its own result or its own
    userError; if a group fails for any other reason, its receipts are booked again one by one so
    that one cannot spoil the others. (bench.purchase_load: three groups in flight at all times gave
    0.27 of the raw earn, one gave 0.32, with lower latency; docs/architecture.md.)"""

    MAX_IN_FLIGHT = 3
    STALL_SECONDS = 0.2

    def __init__(self) -> None:
        self.queue: list[tuple[Checked, datetime, asyncio.Future]] = []
        self.running = 0
        self.tasks: set[asyncio.Task] = set()
        self.started: dict[asyncio.Task, float] = {}  # running group's start, by its draining task

    def _stalled(self, now: float) -> bool:
        """Every running group has run longer than STALL_SECONDS (a task between groups counts as moving)."""
        return len(self.started) == self.running and all(now - t > self.STALL_SECONDS for t in self.started.values())

    async def submit(self, item: Checked, now: datetime) -> PurchaseResult:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.queue.append((item, now, future))
        if self.running == 0 or (self.running < self.MAX_IN_FLIGHT and self._stalled(loop.time())):
            self.running += 1
            task = asyncio.create_task(self._drain())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return await future

    async def _drain(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        loop = asyncio.get_running_loop()
        try:
            while self.queue:
                group, self.queue = self.queue[:MAX_BATCH], self.queue[MAX_BATCH:]
                self.started[me] = loop.time()
                try:
                    outcomes: list = await book_together([(item, now) for item, now, _ in group])
                except Exception:  # not a business error: isolate the receipt that caused it
                    outcomes = []
                    for item, now, _ in group:
                        try:
                            outcomes.append((await book_together([(item, now)]))[0])
                        except Exception as exc:  # noqa: BLE001 - handed to that caller
                            outcomes.append(exc)
                for (_, _, future), outcome in zip(group, outcomes, strict=True):
                    if future.done():  # the caller went away; its receipt is booked all the same
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
                self.started.pop(me, None)
        finally:
            self.started.pop(me, None)
            self.running -= 1


group_commit = _GroupCommit()


async def record_purchase(identity: IntegrationIdentity, data: PurchaseInput) -> PurchaseResult:
    now = clock.now()
    item = await check_purchase(identity, data, now)
    return await group_commit.submit(item, now)


CHUNK = 25  # receipts per transaction of a purchaseRecordBatch


def chunks(items: list[tuple[Checked, datetime]]) -> list[list[int]]:
    """A batch's receipts in member order, cut into transactions of about CHUNK receipts without splitting
    a member's receipts: each transaction locks fewer accounts for less time, so tills' batches over the
    same members wait less for each other. One transaction when two members share a receipt number or an
    idempotency key (who is refused then depends on the order of both)."""
    order = sorted(range(len(items)), key=lambda i: items[i][0].member_id)
    receipt_owner: dict[tuple[int, str], int] = {}
    key_owner: dict[tuple[str, str], int] = {}
    for i in order:
        item = items[i][0]
        if (receipt_owner.setdefault((item.merchant.id, item.receipt_no), item.member_id) != item.member_id
                or key_owner.setdefault((item.scope, item.key), item.member_id) != item.member_id):
            return [order]
    out: list[list[int]] = []
    for _, group in groupby(order, key=lambda i: items[i][0].member_id):
        mine = list(group)
        if out and len(out[-1]) + len(mine) <= CHUNK:
            out[-1].extend(mine)
        else:
            out.append(mine)
    return out


async def book_batch(items: list[tuple[Checked, datetime]]) -> list[PurchaseResult | DomainError]:
    """A batch's receipts, chunk by chunk (`chunks`), each chunk one transaction. A lock timeout in the
    first chunk raises TRY_AGAIN (nothing recorded); in a later one, the receipts of that chunk and of
    the chunks after it answer TRY_AGAIN each (the earlier ones are recorded: sent again with the same
    keys, they answer their first result)."""
    outcome: list[PurchaseResult | DomainError | None] = [None] * len(items)
    parts = chunks(items)
    for n, part in enumerate(parts):
        try:
            booked = await book_together([items[i] for i in part])
        except DomainError as err:
            if err.code is not ErrorCode.TRY_AGAIN or n == 0:
                raise
            for i in (i for later in parts[n:] for i in later):
                outcome[i] = DomainError(ErrorCode.TRY_AGAIN, err.message, None)
            break
        for i, result in zip(part, booked, strict=True):
            outcome[i] = result
    assert all(o is not None for o in outcome)
    return cast(list[PurchaseResult | DomainError], outcome)


@dataclass(frozen=True)
class BatchItem:
    result: PurchaseResult | None
    error: DomainError | None


async def record_batch(identity: IntegrationIdentity, items: list[PurchaseInput]) -> list[BatchItem]:
    """Each receipt on its own (its own idempotency key, its own result), in transactions of up to
    about CHUNK receipts (`book_batch`): a few commits for the batch instead of one per receipt."""
    if len(items) > MAX_BATCH:
        raise DomainError(ErrorCode.INVALID_INPUT, f"at most {MAX_BATCH} purchases per batch", ["purchases"])
    now = clock.now()
    checked: list[Checked | DomainError] = []
    for item in items:
        try:
            checked.append(await check_purchase(identity, item, now))
        except DomainError as err:
            checked.append(err)
    valid = {i: c for i, c in enumerate(checked) if isinstance(c, Checked)}
    booked = await book_batch([(c, now) for c in valid.values()])
    outcome: dict[int, PurchaseResult | DomainError] = dict(zip(valid, booked, strict=True))
    results = []
    for i, c in enumerate(checked):
        value = outcome.get(i) or c
        if isinstance(value, PurchaseResult):
            results.append(BatchItem(value, None))
        else:
            assert isinstance(value, DomainError)
            field = ["purchases", str(i), *(value.field or [])]
            results.append(BatchItem(None, DomainError(value.code, value.message, field)))
    return results
