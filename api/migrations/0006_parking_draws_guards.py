"""Constraints of parking and lucky draws that CreateModel does not emit (see 0002), and the partial
unique index that binds a plate to one member at a time."""
import importlib

from tortoise import migrations
from tortoise.migrations import operations as ops

_guards = importlib.import_module("api.migrations.0002_money_guards")

CHECKS = [
    ("car_park", "car_park_fees",
     "free_minutes >= 0 AND hourly_fen >= 0 AND (daily_cap_fen IS NULL OR daily_cap_fen >= 0)"
     " AND purchase_free_minutes >= 0 AND offset_points_per_yuan > 0 AND offset_max_points >= 0"),
    ("parking_session", "parking_session_amounts",
     "offset_points >= 0 AND (fee_fen IS NULL OR fee_fen >= 0) AND (payable_fen IS NULL OR payable_fen >= 0)"
     " AND (points_spent IS NULL OR points_spent >= 0)"),
    ("draw_game", "draw_game_terms", "cost_points >= 0 AND ends_at > starts_at"),
    ("draw_prize", "draw_prize_stock",
     "weight > 0 AND (stock IS NULL OR (stock >= 0 AND stock <= stock_total)) AND (points IS NULL OR points > 0)"),
    ("draw_play", "draw_play_cost", "cost_points >= 0 AND roll >= 0 AND redraws >= 0"),
]
INDEXES = [
    'CREATE UNIQUE INDEX IF NOT EXISTS "vehicle_plate_active" ON "vehicle" ("plate") WHERE active',
    'CREATE UNIQUE INDEX IF NOT EXISTS "parking_session_open_plate" ON "parking_session" ("car_park_id", "plate")'
    " WHERE status = 'OPEN'",
]


async def forward(apps, schema_editor) -> None:
    client = schema_editor.client
    postgres = client.capabilities.dialect == "postgres"
    statements = _guards.postgres_checks(CHECKS) if postgres else _guards.sqlite_checks(CHECKS)
    for statement in statements + INDEXES:
        await client.execute_script(statement)


class Migration(migrations.Migration):
    dependencies = [("models", "0005_parking_draws")]
    operations = [ops.RunPython(forward)]
