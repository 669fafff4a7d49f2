"""Tasks (成长任务): operators define them (one-off, daily, weekly; a target count of a behaviour or
of purchases, or a purchase amount; a reward in points and/or growth value; optionally only for some
tiers). Members see their progress and claim the reward once per period: the unique (task, member,
period) claim row decides, after the member's account is locked."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from tortoise.exceptions import IntegrityError

from api.db import fetch, retry_on_deadlock, transaction
from api.models import EarnTask, TaskClaim, Tier
from api.services import clock, idempotency, ledger, tiers
from api.services.earning import rules as R
from api.services.earning import sql
from api.services.earning.behaviours import member_scope
from api.services.earning.counters import local_day
from api.services.earning.engine import apply, facts_for
from api.services.errors import DomainError, ErrorCode
from api.services.segments import membership

PERIODS = ("ONCE", "DAILY", "WEEKLY")
METRICS = ("CHECK_IN", "SHARE", "REVIEW", "EVENT", "PURCHASE_COUNT", "PURCHASE_AMOUNT")
BEHAVIOUR_OF = {"CHECK_IN": "CHECK_IN", "SHARE": "SHARE", "REVIEW": "REVIEW", "EVENT": "EVENT"}


@dataclass(frozen=True)
class TaskInfo:
    id: int
    code: str
    name: str
    description: str | None
    period: str
    metric: str
    target: int
    reward_points: int
    reward_growth: int
    tier_codes: tuple[str, ...]
    status: str
    starts_at: datetime | None
    ends_at: datetime | None
    segment_id: int | None = None  # only members of this segment see and claim it (issue 13 item 3)

    @classmethod
    def of(cls, row: EarnTask) -> "TaskInfo":
        """The service's view of a stored task (tier codes as a tuple)."""
        return cls(row.id, row.code, row.name, row.description, row.period, row.metric, int(row.target),
                   int(row.reward_points), int(row.reward_growth),
                   tuple(c for c in (row.tier_codes or "").split(",") if c), row.status, row.starts_at, row.ends_at,
                   row.segment_id)


async def get_task(task_id: int, field: list[str]) -> TaskInfo:
    row = await EarnTask.get_or_none(id=task_id)
    if row is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such task", field)
    return TaskInfo.of(row)


def window(task: TaskInfo, now: datetime) -> tuple[str, datetime, datetime]:
    """(period key, start, end) of the task's current period, in UTC; days and weeks in Asia/Shanghai."""
    today = local_day(now)
    if task.period == "DAILY":
        start_day, days, key = today, 1, f"D{today.isoformat()}"
    elif task.period == "WEEKLY":
        start_day = today - timedelta(days=today.weekday())
        days, key = 7, f"W{start_day.isoformat()}"
    else:
        return "ONCE", task.starts_at or datetime(2000, 1, 1, tzinfo=clock.SHANGHAI), task.ends_at or datetime(
            2100, 1, 1, tzinfo=clock.SHANGHAI)
    start = datetime(start_day.year, start_day.month, start_day.day, tzinfo=clock.SHANGHAI)
    return key, clock.to_utc(start), clock.to_utc(start + timedelta(days=days))


def _open(task: TaskInfo, now: datetime, tier_code: str) -> bool:
    return (task.status == "ACTIVE" and (task.starts_at is None or task.starts_at <= now)
            and (task.ends_at is None or now < task.ends_at) and (not task.tier_codes or tier_code in task.tier_codes))


@dataclass(frozen=True)
class TaskProgress:
    task: TaskInfo
    period: str
    progress: int
    completed: bool
    claimed: bool
    period_ends_at: datetime


async def _progress(member_id: int, tasks: list[TaskInfo], now: datetime) -> dict[int, int]:
    """Each task's progress in its current period: one aggregate query for the behaviour tasks and
    one for the purchase tasks, whatever their number (`sql.task_progress`). Inside a transaction it
    reads on the transaction's connection."""
    out: dict[int, int] = {}
    for table, group in (("member_behaviour", [t for t in tasks if t.metric in BEHAVIOUR_OF]),
                         ("purchase", [t for t in tasks if t.metric not in BEHAVIOUR_OF])):
        if not group:
            continue
        columns = []
        for task in group:
            _, start, end = window(task, now)
            measure = "COUNT" if task.metric in BEHAVIOUR_OF else task.metric
            columns.append((f"t{task.id}", measure, start, end, BEHAVIOUR_OF.get(task.metric)))
        statement, args = sql.task_progress(table, member_id, columns)
        rows = await fetch(statement, *args)
        for task in group:
            out[task.id] = int(rows[0][f"t{task.id}"]) if rows else 0
    return out


async def member_tasks(member_id: int) -> list[TaskProgress]:
    now = clock.now()
    tier = await Tier.filter(members__id=member_id).only("id", "code").first()
    if tier is None:
        return []
    tasks = [t for t in map(TaskInfo.of, await EarnTask.filter(status="ACTIVE").order_by("id"))
             if _open(t, now, tier.code)]
    if any(t.segment_id is not None for t in tasks):  # one membership query per distinct segment
        inside = await membership.member_segments(member_id, {t.segment_id for t in tasks})
        tasks = [t for t in tasks if t.segment_id is None or t.segment_id in inside]
    progress = await _progress(member_id, tasks, now)
    claimed = set(await TaskClaim.filter(member_id=member_id).values_list("task_id", "period"))
    out = []
    for task in tasks:
        key, _, end = window(task, now)
        value = progress[task.id]
        out.append(TaskProgress(task, key, value, value >= task.target, (task.id, key) in claimed, end))
    return out


@dataclass(frozen=True)
class ClaimResult:
    task_id: int
    period: str
    points: int
    growth: int
    points_balance: int


async def _check_claimable(task: TaskInfo, acct: ledger.LockedAccount, period: str, now: datetime) -> None:
    """Under the member's account lock: the task is open to them, unclaimed this period, and done."""
    tier = await tiers.tier_by_id(acct.tier_id)
    if not _open(task, now, tier.code):
        raise DomainError(ErrorCode.NOT_ACTIVE, "this task is not open to you now", ["taskId"])
    await membership.check_eligible(task.segment_id, acct.member_id, ["taskId"], "task")
    if await TaskClaim.exists(task_id=task.id, member_id=acct.member_id, period=period):
        raise DomainError(ErrorCode.TASK_ALREADY_CLAIMED, "the reward of this task was claimed already", ["taskId"])
    progress = (await _progress(acct.member_id, [task], now))[task.id]
    if progress < task.target:
        raise DomainError(ErrorCode.TASK_NOT_COMPLETED, f"progress {progress} of {task.target}", ["taskId"])


@retry_on_deadlock()
async def claim(member_id: int, task_id: int, idempotency_key: str) -> ClaimResult:
    key = idempotency.check_key(idempotency_key, ["idempotencyKey"])
    now = clock.now()
    task = await get_task(task_id, ["taskId"])
    period, _, _ = window(task, now)
    digest = idempotency.request_hash("taskClaim", {"taskId": task_id, "period": period})
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, member_scope(member_id), key, digest, ["idempotencyKey"])
        if stored is not None:
            return ClaimResult(**stored)
        acct = await ledger.lock_account(tx, member_id, now)
        if acct is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such member", ["memberId"])
        await _check_claimable(task, acct, period, now)
        await ledger.expire_account(tx, acct, now)
        own = R.Item(0, f"TASK:{task.code}", task.name, task.reward_points, task.reward_growth, task.reward_points)
        applied = await apply(tx, acct, await facts_for(acct, "TASK_COMPLETED", now), reason=f"任务奖励：{task.name}",
                              source_type="task", source_ref=f"{task.id}:{period}", occurred_at=now, now=now,
                              extra=(own,))
        try:  # the account lock makes a second claim wait and then find the first one; this is the backstop
            await TaskClaim.create(task_id=task_id, member_id=member_id, period=period, points=applied.points,
                                   growth=applied.growth, entry_id=applied.entry_id, claimed_at=now)
        except IntegrityError:
            raise DomainError(ErrorCode.TASK_ALREADY_CLAIMED, "the reward of this task was claimed already",
                              ["taskId"]) from None
        result = ClaimResult(task_id, period, applied.points, applied.growth, acct.spendable)
        await idempotency.remember(tx, record_id, asdict(result))
    return result
