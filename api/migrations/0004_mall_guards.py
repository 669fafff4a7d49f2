"""Constraints that protect stock, points holds and money in the points mall (see 0002 for why they
are created here and not by CreateModel), and the indexes the mall's hot statements use."""
import importlib

from tortoise import migrations
from tortoise.migrations import operations as ops

_guards = importlib.import_module("api.migrations.0002_money_guards")

CHECKS = [
    ("product", "product_stock_nonneg", "stock >= 0"),
    ("product", "product_price", "points_price >= 0 AND cash_price_fen >= 0 AND points_price + cash_price_fen > 0"),
    ("flash_sale", "flash_sale_stock", "stock >= 0 AND stock <= stock_total"),
    ("flash_sale", "flash_sale_terms", "points_price > 0 AND per_member_limit > 0"),
    ("mall_order", "mall_order_amounts", "quantity > 0 AND points >= 0 AND cash_fen >= 0"),
    ("points_hold", "points_hold_pos", "points > 0"),
    ("payment", "payment_amount_pos", "amount_fen > 0"),
    ("payment_refund", "payment_refund_pos", "amount_fen > 0"),
]
INDEXES = [
    # Points held now, read with every spend.
    'CREATE INDEX IF NOT EXISTS "points_hold_active" ON "points_hold" ("account_id") WHERE status = \'HELD\'',
    # Unpaid checkouts, found by the expiry run.
    'CREATE INDEX IF NOT EXISTS "mall_order_pending" ON "mall_order" ("expires_at") WHERE status = \'PENDING_PAYMENT\'',
    "UPDATE integration_key SET scopes = 'pos' WHERE scopes IS NULL",
]


async def forward(apps, schema_editor) -> None:
    client = schema_editor.client
    postgres = client.capabilities.dialect == "postgres"
    statements = _guards.postgres_checks(CHECKS) if postgres else _guards.sqlite_checks(CHECKS)
    for statement in statements + INDEXES:
        await client.execute_script(statement)


class Migration(migrations.Migration):
    dependencies = [("models", "0003_mall")]
    operations = [ops.RunPython(forward)]
