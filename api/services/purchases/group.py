"""Receipts booked together: purchaseRecordBatch, and group commit for single receipts."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from api import locks
from api.db import is_deadlock, transaction
from api.services import clock, idempotency
from api.services.earning import invites
from api.services.errors import DomainError, ErrorCode
from api.services.integrations import IntegrationIdentity
from api.services.notifications import outbox
from api.services.purchases import earn
from api.services.purchases.checks import MAX_BATCH, Checked, PurchaseInput, PurchaseResult, check_purchase

ATTEMPTS = 3  # a group that loses a deadlock runs again whole


async def _book_group(items: list[tuple[Checked, datetime]], order: list[int]) -> list[PurchaseResult | DomainError]:
    """One attempt: every receipt in one transaction, each one a step of its own (its locks in the
    global order from its start: see `api.locks.step`)."""
    outcome: dict[int, PurchaseResult | DomainError] = {}
    async with transaction() as tx:
        with outbox.collect() as notes:  # the group's notifications: one set-based INSERT before commit
            for i in order:
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
    for attempt in range(1, ATTEMPTS + 1):
        qualified: list[int] = []
        earn.qualified_invites.set(qualified)
        try:
            outcome = await _book_group(items, order)
        except Exception as exc:
            if attempt == ATTEMPTS or not is_deadlock(exc):
                raise
            continue
        if qualified:  # after commit: rewards on other accounts are a move of their own
            await invites.reward_qualified(qualified)
        return outcome
    raise AssertionError("unreachable")


class _GroupCommit:
    """Group commit for single receipts. A call goes into a transaction at once when fewer than
    IN_FLIGHT of them are running; calls that arrive meanwhile wait and go together into the next
    one (up to MAX_BATCH). No latency is added when idle; under load, many earns share one commit.
    Each call still gets its own result or its own userError; if a group fails for any other
    reason, its receipts are booked again one by one so that one cannot spoil the others."""

    IN_FLIGHT = 3

    def __init__(self) -> None:
        self.queue: list[tuple[Checked, datetime, asyncio.Future]] = []
        self.running = 0
        self.tasks: set[asyncio.Task] = set()

    async def submit(self, item: Checked, now: datetime) -> PurchaseResult:
        future = asyncio.get_running_loop().create_future()
        self.queue.append((item, now, future))
        if self.running < self.IN_FLIGHT:
            self.running += 1
            task = asyncio.create_task(self._drain())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self.queue:
                group, self.queue = self.queue[:MAX_BATCH], self.queue[MAX_BATCH:]
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
        finally:
            self.running -= 1


group_commit = _GroupCommit()


async def record_purchase(identity: IntegrationIdentity, data: PurchaseInput) -> PurchaseResult:
    now = clock.now()
    item = await check_purchase(identity, data, now)
    return await group_commit.submit(item, now)


@dataclass(frozen=True)
class BatchItem:
    result: PurchaseResult | None
    error: DomainError | None


async def record_batch(identity: IntegrationIdentity, items: list[PurchaseInput]) -> list[BatchItem]:
    """Each receipt on its own (its own idempotency key, its own result), all in one transaction: one
    commit for the batch instead of one per receipt."""
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
    booked = await book_together([(c, now) for c in valid.values()])
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
