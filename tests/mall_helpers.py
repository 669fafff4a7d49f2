"""Helpers of the points-mall tests: operators' calls, funded members, payment keys."""
from __future__ import annotations

from datetime import timedelta

from api import db
from api.schema.ids import to_global_id
from api.services import clock, integrations, ledger
from tests.conftest import make_member, unique

PAYMENT_SECRET = "test-payment-secret"

PRODUCT_CREATE = """mutation($i: ProductCreateInput!) { productCreate(input: $i) {
  product { id name stock pointsPrice cashPrice { amountFen } status onSale zone minTier { code } }
  userErrors { code field message } } }"""
PRODUCT_UPDATE = """mutation($i: ProductUpdateInput!) { productUpdate(input: $i) {
  product { id stock status pointsPrice saleEndsAt } userErrors { code field message } } }"""
ORDER_FIELDS = """order { id orderNo status channel quantity points cash { amountFen }
  vouchers { code qrPayload kind status merchantCode faceValue { amountFen } }
  payment { outTradeNo status amount { amountFen } refundRequested { amountFen } payParams } }"""
REDEEM = f"""mutation($i: PointsMallRedeemInput!) {{ pointsMallRedeem(input: $i) {{
  {ORDER_FIELDS} pointsBalance userErrors {{ code field message }} }} }}"""
CHECKOUT = f"""mutation($i: CheckoutCreateInput!) {{ checkoutCreate(input: $i) {{
  {ORDER_FIELDS} paymentRequest {{ outTradeNo amount {{ amountFen }} expiresAt payParams }} pointsBalance
  userErrors {{ code field message }} }} }}"""
CANCEL = """mutation($i: CheckoutCancelInput!) { checkoutCancel(input: $i) { order { status } userErrors { code } } }"""
NOTIFY = f"""mutation($i: PaymentNotifyInput!) {{ paymentNotify(input: $i) {{
  {ORDER_FIELDS} paymentStatus refundRequested {{ amountFen }} userErrors {{ code field message }} }} }}"""
FLASH = f"""mutation($i: FlashSaleRedeemInput!) {{ flashSaleRedeem(input: $i) {{
  {ORDER_FIELDS} pointsBalance userErrors {{ code field message }} }} }}"""
REFUND = """mutation($i: MallOrderRefundInput!) { mallOrderRefund(input: $i) {
  order { status } pointsReturned cashRefund { amountFen } userErrors { code field message } } }"""
ME = """{ viewer { member { pointsBalance pointsHeld orders(first: 10) { edges { node { status orderNo } } } } } }"""


async def operator_token(api) -> str:
    result = await api.post('mutation { operatorLogin(input: {username: "admin", password: "admin-demo-password"})'
                            " { token } }", admin=True)
    return result["data"]["operatorLogin"]["token"]


async def create_product(api, token: str, **fields) -> dict:
    data = {"kind": "COUPON", "name": unique("商品"), "pointsPrice": 100, "stock": 10, **fields}
    result = await api.post(PRODUCT_CREATE, {"i": data}, token=token, admin=True)
    payload = result["data"]["productCreate"]
    assert not payload["userErrors"], payload
    return payload["product"]


async def funded_member(points: int, tier_code: str | None = None) -> tuple[int, str]:
    """A member with `points` spendable (an operator's credit), optionally at a tier."""
    member_id, token = await make_member()
    async with db.transaction() as tx:
        if tier_code is not None:
            await tx.execute("UPDATE member SET tier_id = (SELECT id FROM tier WHERE code = $1) WHERE id = $2",
                             tier_code, member_id)
        if points:
            acct = await ledger.lock_account(tx, member_id)
            await ledger.credit(tx, acct, points=points, kind="ADJUST", reason="测试充值", source_type="test",
                                source_ref=None, occurred_at=clock.now())
    return member_id, token


async def payment_key() -> tuple[str, str]:
    key_id = unique("pay")
    await integrations.create_key("测试支付", [], ("cli", None), key_id=key_id, secret=PAYMENT_SECRET,
                                  scopes=["payment"])
    return key_id, PAYMENT_SECRET


async def state(member_id: int, product_gid: str | None = None) -> dict:
    """Everything a refused call must leave as it was."""
    from api.schema.ids import from_global_id

    rows = await db.fetch(
        "SELECT a.balance, (SELECT COUNT(*) FROM points_entry e WHERE e.account_id = a.id) AS entries,"
        " (SELECT COUNT(*) FROM points_hold h WHERE h.account_id = a.id) AS holds,"
        " (SELECT COUNT(*) FROM mall_order o WHERE o.member_id = a.member_id) AS orders,"
        " (SELECT COUNT(*) FROM voucher v WHERE v.member_id = a.member_id) AS vouchers"
        " FROM points_account a WHERE a.member_id = $1", member_id)
    out = {k: int(v) for k, v in dict(rows[0]).items()}
    if product_gid is not None:
        pk = from_global_id(product_gid)[1]
        out["stock"] = int((await db.fetch("SELECT stock FROM product WHERE id = $1", pk))[0]["stock"])
    return out


def gid(type_name: str, pk: int) -> str:
    return to_global_id(type_name, pk)


def later(**kwargs) -> str:
    return (clock.now() + timedelta(**kwargs)).isoformat()
