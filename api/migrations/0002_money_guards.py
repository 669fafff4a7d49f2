"""Constraints that protect money, and the append-only rule for the ledger.

Tortoise's CreateModel records CHECK constraints in the migration state but does not emit them, so
they are created here: ALTER TABLE … ADD CONSTRAINT on PostgreSQL; on SQLite (which cannot add a
CHECK to an existing table) BEFORE INSERT/UPDATE triggers that abort with the same names.
Ledger rows (points_entry, points_lot_move, growth_entry, audit_log) refuse UPDATE and DELETE on both.
"""
import re

from tortoise import migrations
from tortoise.migrations import operations as ops

CHECKS = [
    ("tier", "tier_threshold_nonneg", "growth_threshold >= 0"),
    ("tier", "tier_multiplier_pos", "earn_multiplier_percent > 0"),
    ("member", "member_growth_nonneg", "growth_value >= 0"),
    ("points_entry", "points_entry_sign",
     "(kind = 'EARN' AND points > 0) OR (kind IN ('SPEND', 'EXPIRE', 'REVERSE') AND points < 0)"
     " OR (kind = 'ADJUST' AND points <> 0)"),
    ("points_lot", "points_lot_bounds",
     "(kind = 'EARN' AND points > 0 AND remaining >= 0 AND remaining <= points)"
     " OR (kind = 'DEBT' AND points = 0 AND remaining <= 0)"),
    ("points_lot_move", "points_lot_move_nonzero", "delta <> 0"),
    ("purchase", "purchase_amount_pos", "amount_fen > 0"),
    ("purchase", "purchase_refund_bounds", "refunded_fen >= 0 AND refunded_fen <= amount_fen"),
    ("purchase", "purchase_points_bounds",
     "points_earned >= 0 AND points_reversed >= 0 AND points_reversed <= points_earned"
     " AND points_forgiven >= 0 AND points_forgiven <= points_reversed"),
    ("purchase_refund", "refund_amounts", "amount_fen > 0 AND points_reversed >= 0 AND points_forgiven >= 0"),
    ("till_payment", "till_payment_pos", "points > 0 AND cash_value_fen > 0"),
]
APPEND_ONLY = ["points_entry", "points_lot_move", "growth_entry", "audit_log", "tier_change"]
INDEXES = [
    # At most one DEBT lot per account.
    'CREATE UNIQUE INDEX IF NOT EXISTS "points_lot_one_debt" ON "points_lot" ("account_id") WHERE kind = \'DEBT\'',
    # Lots due for expiry, found without scanning spent ones.
    'CREATE INDEX IF NOT EXISTS "points_lot_due" ON "points_lot" ("expires_at") WHERE remaining > 0',
]


def sqlite_checks(checks: list[tuple[str, str, str]]) -> list[str]:
    """CHECK constraints as SQLite triggers (also used by later migrations)."""
    sql = []
    for table, name, check in checks:
        for event in ("INSERT", "UPDATE"):
            # Column names are lower case and SQL words upper case: qualify the columns with NEW.
            new_check = re.sub(r"\b([a-z_][a-z_0-9]*)\b", r"NEW.\1", check)
            sql.append(
                f'CREATE TRIGGER IF NOT EXISTS "{name}_{event.lower()}" BEFORE {event} ON "{table}" '
                f"FOR EACH ROW WHEN NOT ({new_check}) "
                f"BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: {name}'); END"
            )
    return sql


def postgres_checks(checks: list[tuple[str, str, str]]) -> list[str]:
    return [f'ALTER TABLE "{t}" ADD CONSTRAINT "{n}" CHECK ({c})' for t, n, c in checks]


def _sqlite_sql() -> list[str]:
    sql = sqlite_checks(CHECKS)
    for table in APPEND_ONLY:
        for event in ("UPDATE", "DELETE"):
            sql.append(
                f'CREATE TRIGGER IF NOT EXISTS "{table}_append_only_{event.lower()}" BEFORE {event} ON "{table}" '
                f"BEGIN SELECT RAISE(ABORT, 'append-only table: {table}'); END"
            )
    return sql


def _postgres_sql() -> list[str]:
    sql = postgres_checks(CHECKS)
    sql.append(
        "CREATE OR REPLACE FUNCTION mallpoints_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION 'append-only table: %', TG_TABLE_NAME; END $$"
    )
    for table in APPEND_ONLY:
        sql.append(
            f'CREATE TRIGGER "{table}_append_only" BEFORE UPDATE OR DELETE ON "{table}" '
            f"FOR EACH ROW EXECUTE FUNCTION mallpoints_append_only()"
        )
    return sql


async def forward(apps, schema_editor) -> None:
    client = schema_editor.client
    statements = _postgres_sql() if client.capabilities.dialect == "postgres" else _sqlite_sql()
    for statement in statements + INDEXES:
        await client.execute_script(statement)


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]
    operations = [ops.RunPython(forward)]
