"""The settlement journal's invariant (checked after every database test, beside the points ledger's),
and helpers of the settlement tests."""
from __future__ import annotations

from api import db
from api.services.settlement import reads

LINES = ("SELECT posting, debit_account AS account, merchant_id, amount_fen AS debit, 0 AS credit FROM journal_entry"
         " UNION ALL SELECT posting, credit_account, merchant_id, 0, amount_fen FROM journal_entry")


async def assert_journal_invariant() -> None:
    """Every posting balances (Σ debits = Σ credits over its lines); all accounts sum to zero; every
    statement's stored net and totals equal its rows'; a reversal never takes back more than its
    original posted (per pair of accounts); every till payment has its posting at its cash value."""
    unbalanced = await db.fetch(f"SELECT posting, SUM(debit) AS d, SUM(credit) AS c FROM ({LINES}) x"
                                " GROUP BY posting HAVING SUM(debit) <> SUM(credit)")
    assert not unbalanced, f"postings that do not balance: {[dict(r) for r in unbalanced[:5]]}"
    rec = await reads.reconcile()
    assert rec.total_fen == 0, f"the accounts sum to {rec.total_fen}"
    assert not rec.mismatched_statement_ids, f"statements whose net is not their rows': {rec.mismatched_statement_ids}"
    for row in await db.fetch("SELECT id FROM settlement_statement"):
        stored = await reads.get(int(row["id"]))
        assert stored is not None and stored.totals == await reads.computed_totals(stored.id), stored
    over = await db.fetch(
        "SELECT r.reverses, r.debit_account, r.credit_account, SUM(r.amount_fen) AS back, MAX(o.amount_fen) AS posted"
        " FROM journal_entry r LEFT JOIN journal_entry o ON o.posting = r.reverses"
        " AND o.debit_account = r.credit_account AND o.credit_account = r.debit_account"
        " WHERE r.reverses IS NOT NULL GROUP BY r.reverses, r.debit_account, r.credit_account"
        " HAVING MAX(o.amount_fen) IS NULL OR SUM(r.amount_fen) > MAX(o.amount_fen)")
    assert not over, f"reversals beyond their original: {[dict(r) for r in over[:5]]}"
    unposted = await db.fetch(
        "SELECT t.id FROM till_payment t LEFT JOIN journal_entry e ON e.posting = 'till_payment:' || CAST(t.id AS TEXT)"
        " WHERE e.id IS NULL OR e.amount_fen <> t.cash_value_fen OR e.kind <> 'POINTS_PAID'")
    assert not unposted, f"till payments without their posting: {[dict(r) for r in unposted[:5]]}"


# --- events, made through the services the API calls -------------------------------------------

import itertools  # noqa: E402
from datetime import datetime  # noqa: E402

from api.services import clock, purchases, signing, staff  # noqa: E402
from api.services.integrations import IntegrationIdentity  # noqa: E402
from api.services.mall import checkout, payments, refunds, vouchers  # noqa: E402

_seq = itertools.count(1)
PASSWORD = "staff-password-123"


def key(prefix: str = "S") -> str:
    import os

    return f"{prefix}{os.getpid() % 1000:03d}{next(_seq):06d}"


async def identity_for(*merchant_codes: str) -> IntegrationIdentity:
    ids = [await merchant_id(c) for c in merchant_codes]
    return IntegrationIdentity("settle-test", "settlement test", frozenset(ids))


async def merchant_id(code: str) -> int:
    return int(await db.fetchval("SELECT id FROM merchant WHERE code = $1", code))


async def earn(identity: IntegrationIdentity, member_id: int, merchant: str, amount_fen: int) -> tuple[str, int]:
    """A receipt: (receipt no, points earned)."""
    receipt = key("R")
    code = signing.issue_member_code(member_id, 120)[0]
    result = await purchases.record_purchase(identity, purchases.PurchaseInput(
        code, merchant, receipt, amount_fen, clock.now(), key("K")))
    return receipt, result.points_earned


async def pay(identity: IntegrationIdentity, member_id: int, merchant: str, points: int) -> int:
    code = signing.issue_member_code(member_id, 120)[0]
    result = await purchases.pay_with_points(identity, code, merchant, key("P"), points, key("K"))
    return result.cash_value_fen


async def refund(identity: IntegrationIdentity, merchant: str, receipt: str, amount_fen: int) -> None:
    await purchases.refund_purchase(identity, merchant, receipt, amount_fen, key("K"))


async def make_staff(merchant: str, role: str = "MANAGER") -> tuple[int, str]:
    """(staff id, token) of a merchant's staff account with this role."""
    account = await staff.create(("cli", None), merchant, key("st").lower(), "店长" if role == "MANAGER" else "店员",
                                 PASSWORD)
    async with db.transaction() as tx:
        await tx.execute("UPDATE merchant_staff SET role = $1 WHERE id = $2", role, account.id)
    return account.id, signing.issue_token("staff", account.id, 3600)


async def merchant_product(merchant: str, *, kind: str = "MERCHANT_VOUCHER", points_price: int = 1000,
                           cash_price_fen: int = 0, face_value_fen: int | None = 5000) -> int:
    now = clock.now()
    async with db.transaction() as tx:
        return int(await tx.fetchval(
            "INSERT INTO product (kind, name, image_urls, merchant_id, face_value_fen, validity_days, points_price,"
            " cash_price_fen, stock, status, created_at, updated_at)"
            " VALUES ($1, $2, '[]', $3, $4, 30, $5, $6, 1000, 'ACTIVE', $7, $7) RETURNING id",
            kind, f"结算测试{key()}", await merchant_id(merchant), face_value_fen, points_price, cash_price_fen, now))


async def voucher_for(member_id: int, merchant: str, product_id: int, points: int) -> str:
    """A voucher of the product, redeemed by the member for its points price (`points`) in the points mall."""
    from api.services.mall import redemption

    result = await redemption.redeem(member_id, product_id, 1, key("K"))
    assert await db.fetchval("SELECT points FROM mall_order WHERE id = $1", result.order_id) == points
    return str(await db.fetchval("SELECT code FROM voucher WHERE order_id = $1", result.order_id))


async def write_off(staff_id: int, merchant: str, code: str) -> None:
    await vouchers.write_off(staff_id, await merchant_id(merchant), code, key("W"))


async def cash_sale(member_id: int, product_id: int) -> int:
    """A points-plus-cash order paid through the development provider: the order id."""
    result = await checkout.checkout_create(member_id, product_id, 1, key("K"))
    no = await db.fetchval("SELECT out_trade_no FROM payment WHERE order_id = $1", result.order_id)
    await payments.dev_pay(no)
    return result.order_id


async def refund_order(operator_id: int, order_id: int) -> None:
    await refunds.refund_order(operator_id, order_id, "顾客退货", key("K"))


def at(*args: int) -> datetime:
    """A moment in Asia/Shanghai."""
    return datetime(*args, tzinfo=clock.SHANGHAI)
