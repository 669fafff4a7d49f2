"""Tasks (成长任务): operators define them (one-off, daily, weekly; a target count of a behaviour or
of purchases, or a purchase amount; a reward in points and/or growth value; optionally only for some
tiers). Members see their progress and claim the reward once per period: the unique (task, member,
period) claim row decides, after the member's account is locked."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from api.db import fetch, retry_on_deadlock, transaction
from api.services import clock, earning, idempotency, ledger, tiers
from api.services import rules as R
from api.services.behaviours import member_scope
from api.services.errors import DomainError, ErrorCode

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


TASK_COLUMNS = ("id, code, name, description, period, metric, target, reward_points, reward_growth, tier_codes,"
                " status, starts_at, ends_at")


def task_of(row) -> TaskInfo:
    return TaskInfo(row["id"], row["code"], row["name"], row["description"], row["period"], row["metric"],
                    int(row["target"]), int(row["reward_points"]), int(row["reward_growth"]),
                    tuple(c for c in (row["tier_codes"] or "").split(",") if c), row["status"],
                    clock.parse_db_time(row["starts_at"]), clock.parse_db_time(row["ends_at"]))


def window(task: TaskInfo, now: datetime) -> tuple[str, datetime, datetime]:
    """(period key, start, end) of the task's current period, in UTC; days and weeks in Asia/Shanghai."""
    today = earning.local_day(now)
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


async def _progress(member_id: int, tasks: list[TaskInfo], now: datetime, tx=None) -> dict[int, int]:
    """Each task's progress in its current period: the database counts (or sums) each task's window in
    one aggregate column, so two queries serve any number of tasks."""
    if not tasks:
        return {}
    windows = {t.id: window(t, now) for t in tasks}
    run = tx.fetch if tx is not None else fetch
    out: dict[int, int] = {}
    behaviour_tasks = [t for t in tasks if t.metric in BEHAVIOUR_OF]
    purchase_tasks = [t for t in tasks if t.metric not in BEHAVIOUR_OF]
    for group, table, value in (
        (behaviour_tasks, "member_behaviour", None),
        (purchase_tasks, "purchase", "amount_fen - refunded_fen"),
    ):
        if not group:
            continue
        args: list = [member_id]
        columns = []
        for task in group:
            _, start, end = windows[task.id]
            args += [start, end]
            inside = f"occurred_at >= ${len(args) - 1} AND occurred_at < ${len(args)}"
            if value is None:
                args.append(BEHAVIOUR_OF[task.metric])
                inside += f" AND kind = ${len(args)}"
                columns.append(f"COALESCE(SUM(CASE WHEN {inside} THEN 1 ELSE 0 END), 0) AS t{task.id}")
            elif task.metric == "PURCHASE_COUNT":
                columns.append(f"COALESCE(SUM(CASE WHEN {inside} AND {value} > 0 THEN 1 ELSE 0 END), 0) AS t{task.id}")
            else:
                columns.append(f"COALESCE(SUM(CASE WHEN {inside} AND {value} > 0 THEN {value} ELSE 0 END), 0)"
                               f" AS t{task.id}")
        since = min(windows[t.id][1] for t in group)
        args.append(since)
        rows = await run(f"SELECT {', '.join(columns)} FROM {table} WHERE member_id = $1 AND occurred_at >= ${len(args)}",
                         *args)
        for task in group:
            out[task.id] = int(rows[0][f"t{task.id}"]) if rows else 0
    return out


async def member_tasks(member_id: int) -> list[TaskProgress]:
    now = clock.now()
    rows = await fetch(f"SELECT {TASK_COLUMNS} FROM earn_task WHERE status = 'ACTIVE' ORDER BY id")
    member = await fetch("SELECT tier_id FROM member WHERE id = $1", member_id)
    if not member:
        return []
    tier = await tiers.tier_by_id(member[0]["tier_id"])
    tasks = [t for t in (task_of(r) for r in rows) if _open(t, now, tier.code)]
    progress = await _progress(member_id, tasks, now)
    claims = await fetch("SELECT task_id, period FROM task_claim WHERE member_id = $1", member_id)
    claimed = {(c["task_id"], c["period"]) for c in claims}
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


@retry_on_deadlock()
async def claim(member_id: int, task_id: int, idempotency_key: str) -> ClaimResult:
    key = idempotency.check_key(idempotency_key, ["idempotencyKey"])
    now = clock.now()
    rows = await fetch(f"SELECT {TASK_COLUMNS} FROM earn_task WHERE id = $1", task_id)
    if not rows:
        raise DomainError(ErrorCode.NOT_FOUND, "no such task", ["taskId"])
    task = task_of(rows[0])
    period, _, _ = window(task, now)
    digest = idempotency.request_hash("taskClaim", {"taskId": task_id, "period": period})
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, member_scope(member_id), key, digest, ["idempotencyKey"])
        if stored is not None:
            return ClaimResult(**stored)
        acct = await ledger.lock_account(tx, member_id, now)
        if acct is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such member", ["memberId"])
        tier = await tiers.tier_by_id(acct.tier_id)
        if not _open(task, now, tier.code):
            raise DomainError(ErrorCode.NOT_ACTIVE, "this task is not open to you now", ["taskId"])
        done = await tx.fetchval("SELECT id FROM task_claim WHERE task_id = $1 AND member_id = $2 AND period = $3",
                                 task_id, member_id, period)
        if done is not None:
            raise DomainError(ErrorCode.TASK_ALREADY_CLAIMED, "the reward of this task was claimed already", ["taskId"])
        progress = (await _progress(member_id, [task], now, tx))[task.id]
        if progress < task.target:
            raise DomainError(ErrorCode.TASK_NOT_COMPLETED, f"progress {progress} of {task.target}", ["taskId"])
        await ledger.expire_account(tx, acct, now)
        own = R.Item(0, f"TASK:{task.code}", task.name, task.reward_points, task.reward_growth, task.reward_points)
        facts = await earning.facts_for(acct, "TASK_COMPLETED", now)
        applied = await earning.apply(tx, acct, facts, reason=f"任务奖励：{task.name}", source_type="task",
                                      source_ref=f"{task.id}:{period}", occurred_at=now, now=now, extra=(own,))
        claim_id = await tx.fetchval(
            "INSERT INTO task_claim (task_id, member_id, period, points, growth, entry_id, claimed_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (task_id, member_id, period) DO NOTHING RETURNING id",
            task_id, member_id, period, applied.points, applied.growth, applied.entry_id, now)
        if claim_id is None:
            raise DomainError(ErrorCode.TASK_ALREADY_CLAIMED, "the reward of this task was claimed already", ["taskId"])
        result = ClaimResult(task_id, period, applied.points, applied.growth, acct.spendable)
        await idempotency.remember(tx, record_id, asdict(result))
    return result
