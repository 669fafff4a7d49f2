"""Merchant settlement (issue 12): postings from every event, statements and their state machine, bad
input refused with nothing changed, merchant staff kept to their own merchant, the files finance
downloads (read back), the liability report, and the reconciliation."""
from __future__ import annotations

import csv
import io
import json
from datetime import date

import pytest
from asyncpg.exceptions import RaiseError
from openpyxl import load_workbook
from tortoise.exceptions import IntegrityError, OperationalError

from api import db
from api.schema.ids import to_global_id
from api.services import clock, operators, signing
from tests.conftest import make_member, make_merchant, unique
from tests.mall_helpers import funded_member
from tests.settlement_helpers import (
    at,
    cash_sale,
    earn,
    identity_for,
    make_staff,
    merchant_product,
    pay,
    refund,
    voucher_for,
    write_off,
)

STATEMENT_FIELDS = """statement { id status periodKind periodStart periodEnd net { amountFen } paymentReference
  disputeNote merchant { code } totals { kind count amount { amountFen } } xlsxUrl csvUrl
  lines(first: 50) { edges { node { kind reference points amount { amountFen } } } } }"""
GENERATE = f"""mutation($i: SettlementStatementGenerateInput!) {{ settlementStatementGenerate(input: $i) {{
  {STATEMENT_FIELDS} userErrors {{ code field message }} }} }}"""
APPROVE = f"""mutation($i: SettlementStatementApproveInput!) {{ settlementStatementApprove(input: $i) {{
  {STATEMENT_FIELDS} userErrors {{ code field message }} }} }}"""
MARK_PAID = f"""mutation($i: SettlementStatementMarkPaidInput!) {{ settlementStatementMarkPaid(input: $i) {{
  {STATEMENT_FIELDS} userErrors {{ code field message }} }} }}"""
CONFIRM = """mutation($i: SettlementStatementConfirmInput!) { settlementStatementConfirm(input: $i) {
  statement { id status } userErrors { code field message } } }"""
DISPUTE = """mutation($i: SettlementStatementDisputeInput!) { settlementStatementDispute(input: $i) {
  statement { id status disputeNote } userErrors { code field message } } }"""
TERMS = """mutation($i: MerchantTermsUpdateInput!) { merchantTermsUpdate(input: $i) {
  merchant { code } terms { pointCostSharePercent commissionPercent } userErrors { code field message } } }"""
PRICE = """mutation($i: ProductSettlementPriceUpdateInput!) { productSettlementPriceUpdate(input: $i) {
  productId settlementPriceFen userErrors { code field message } } }"""
LIST = """query($m: String, $s: SettlementStatus) { settlementStatements(first: 20, merchantCode: $m, status: $s) {
  edges { node { id status periodStart net { amountFen } } } } }"""
STAFF_LIST = """{ viewer { staff { settlementStatements(first: 20) { edges { node { id status merchant { code }
  net { amountFen } } } } } } }"""
RECONCILE = """{ settlementReconciliation { balanced total { amountFen } statementsChecked mismatchedStatementIds
  accounts { account merchant { code } balance { amountFen } } } }"""
REFUSED = (OperationalError, IntegrityError, RaiseError)  # the triggers' refusals, as each driver reports them
LIABILITY = """query($a: DateTime) { liabilityReport(asOf: $a) { asOf pointsOutstanding value { amountFen }
  expiredByMonth { month points value { amountFen } } merchants { merchant { code } pointsIssued pointsRedeemed } } }"""


async def finance(*roles: str) -> tuple[int, str]:
    op = await operators.create_operator(unique("fin"), "财务", "a-long-password", list(roles or ("FINANCE",)))
    return op.id, signing.issue_token("operator", op.id, 3600)


def payload(result: dict, name: str) -> dict:
    assert "errors" not in result, result
    return result["data"][name]


def totals(statement: dict) -> dict[str, tuple[int, int]]:
    return {t["kind"]: (t["count"], t["amount"]["amountFen"]) for t in statement["totals"] if t["count"]}


async def statement_state(statement_gid: str | None = None) -> dict:
    """Everything a refused settlement call must leave untouched."""
    rows = await db.fetch(
        "SELECT (SELECT COUNT(*) FROM settlement_statement) AS statements,"
        " (SELECT COUNT(*) FROM settlement_statement_entry) AS held,"
        " (SELECT COUNT(*) FROM journal_entry) AS journal,"
        " (SELECT COUNT(*) FROM audit_log) AS audits,"
        " (SELECT COUNT(*) FROM merchant_terms) AS terms,"
        " (SELECT COUNT(*) FROM product_settlement) AS prices")
    state = {k: int(v) for k, v in dict(rows[0]).items()}
    if statement_gid is not None:
        from api.schema.ids import from_global_id

        parsed = from_global_id(statement_gid, "SettlementStatement")
        assert parsed is not None
        row = await db.fetch("SELECT status, net_fen, totals, payment_reference, dispute_note FROM"
                             " settlement_statement WHERE id = $1", parsed[1])
        state["statement"] = dict(row[0])
    return state


async def day_of_events(api, fin_token: str, merchant: str) -> tuple[dict[str, tuple[int, int]], int]:
    """One day of every kind of event at `merchant` (2026-11-02, Asia/Shanghai), with terms 10 % / 5 %;
    returns the totals a statement must show, computed here from the terms, and the staff manager's id."""
    terms = payload(await api.post(TERMS, {"i": {"merchantCode": merchant, "pointCostSharePercent": 10,
                                                 "commissionPercent": 5}}, token=fin_token, admin=True),
                    "merchantTermsUpdate")
    assert terms["userErrors"] == [] and terms["terms"] == {"pointCostSharePercent": 10, "commissionPercent": 5}
    clock.freeze(at(2026, 11, 2, 10, 0))
    identity = await identity_for(merchant)
    member_id, _ = await funded_member(50_000)
    receipt, points = await earn(identity, member_id, merchant, 20_000)
    share = points * 100 // 100 * 10 // 100  # 100 points = 1 yuan; the merchant funds 10 %
    cash_value = await pay(identity, member_id, merchant, 500)
    manager_id, _ = await make_staff(merchant)
    by_points = await merchant_product(merchant, points_price=1000)
    fixed = await merchant_product(merchant, points_price=3000)
    price = payload(await api.post(PRICE, {"i": {"productId": to_global_id("Product", fixed), "settlementPriceFen": 800}},
                                   token=fin_token, admin=True), "productSettlementPriceUpdate")
    assert price["userErrors"] == [] and price["settlementPriceFen"] == 800
    await write_off(manager_id, merchant, await voucher_for(member_id, merchant, by_points, 1000))
    await write_off(manager_id, merchant, await voucher_for(member_id, merchant, fixed, 3000))
    goods = await merchant_product(merchant, kind="GOODS", points_price=200, cash_price_fen=10_000, face_value_fen=None)
    await cash_sale(member_id, goods)
    clock.freeze(at(2026, 11, 2, 15, 0))
    await refund(identity, merchant, receipt, 10_000)
    expected = {"POINTS_ISSUED": (1, -share), "POINTS_PAID": (1, cash_value),
                "VOUCHER_WRITTEN_OFF": (2, 1000 + 800), "CASH_SALE": (1, 10_000 - 500),
                "REFUND": (1, share * 10_000 // 20_000)}
    assert cash_value == 500 and share > 0
    return expected, manager_id


async def test_a_day_settles_from_draft_to_paid(api):
    fin_id, fin = await finance()
    merchant = await make_merchant()
    expected, manager_id = await day_of_events(api, fin, merchant)
    clock.freeze(at(2026, 11, 2, 23, 30))
    early = payload(await api.post(GENERATE, {"i": {"merchantCode": merchant, "periodStart": "2026-11-02",
                                                    "periodEnd": "2026-11-02"}}, token=fin, admin=True),
                    "settlementStatementGenerate")
    assert early == {"statement": None, "userErrors": [
        {"code": "INVALID_INPUT", "field": ["input", "periodEnd"], "message": early["userErrors"][0]["message"]}]}
    clock.freeze(at(2026, 11, 3, 9, 0))
    made = payload(await api.post(GENERATE, {"i": {"merchantCode": merchant, "periodStart": "2026-11-02",
                                                   "periodEnd": "2026-11-02"}}, token=fin, admin=True),
                   "settlementStatementGenerate")
    assert made["userErrors"] == []
    s = made["statement"]
    assert (s["status"], s["periodKind"], s["merchant"]["code"]) == ("DRAFT", "DAY", merchant)
    assert totals(s) == expected
    assert s["net"]["amountFen"] == sum(amount for _, amount in expected.values())
    kinds = sorted(e["node"]["kind"] for e in s["lines"]["edges"])
    assert kinds == sorted(["POINTS_ISSUED", "POINTS_PAID", "VOUCHER_WRITTEN_OFF", "VOUCHER_WRITTEN_OFF",
                            "CASH_SALE", "REFUND"])
    # regenerating a DRAFT gives the same statement again (a new one in its place)
    again = payload(await api.post(GENERATE, {"i": {"merchantCode": merchant, "periodStart": "2026-11-02",
                                                    "periodEnd": "2026-11-02"}}, token=fin, admin=True),
                    "settlementStatementGenerate")["statement"]
    assert totals(again) == expected and again["id"] != s["id"]
    gid = again["id"]
    dispute_id, dispute_token = await make_staff(merchant)
    disputed = payload(await api.post(DISPUTE, {"i": {"statementId": gid, "note": "核销笔数不对"}},
                                      token=dispute_token), "settlementStatementDispute")
    assert disputed["statement"] == {"id": gid, "status": "DRAFT", "disputeNote": "核销笔数不对"}
    _, manager_token = await make_staff(merchant)
    confirmed = payload(await api.post(CONFIRM, {"i": {"statementId": gid}}, token=manager_token),
                        "settlementStatementConfirm")
    assert confirmed == {"statement": {"id": gid, "status": "CONFIRMED"}, "userErrors": []}
    approved = payload(await api.post(APPROVE, {"i": {"statementId": gid}}, token=fin, admin=True),
                       "settlementStatementApprove")["statement"]
    assert approved["status"] == "APPROVED" and totals(approved) == expected
    paid = payload(await api.post(MARK_PAID, {"i": {"statementId": gid, "paymentReference": "BANK-20261105-01"}},
                                  token=fin, admin=True), "settlementStatementMarkPaid")["statement"]
    assert (paid["status"], paid["paymentReference"]) == ("PAID", "BANK-20261105-01")
    listed = payload(await api.post(LIST, {"m": merchant, "s": "PAID"}, token=fin, admin=True),
                     "settlementStatements")["edges"]
    assert [e["node"]["id"] for e in listed] == [gid]
    actions = await db.fetch("SELECT action FROM audit_log WHERE target_type = 'settlement_statement'"
                             " AND target_id = $1 ORDER BY id", str(int(gid and await _pk(gid))))
    assert [r["action"] for r in actions] == ["settlement.generate", "settlement.dispute", "settlement.confirm",
                                              "settlement.approve", "settlement.mark_paid"]
    reconciled = payload(await api.post(RECONCILE, token=fin, admin=True), "settlementReconciliation")
    assert reconciled["balanced"] and reconciled["total"] == {"amountFen": 0}
    assert reconciled["mismatchedStatementIds"] == [] and reconciled["statementsChecked"] >= 1
    mine = {r["account"]: r["balance"]["amountFen"] for r in reconciled["accounts"]
            if r["merchant"] and r["merchant"]["code"] == merchant}
    # payable is credit-normal (negative: owed to the merchant), receivable debit-normal
    assert -mine.get("MERCHANT_PAYABLE", 0) - mine.get("MERCHANT_RECEIVABLE", 0) == paid["net"]["amountFen"]
    assert dispute_id and fin_id


async def _pk(gid: str) -> int:
    from api.schema.ids import from_global_id

    parsed = from_global_id(gid, "SettlementStatement")
    assert parsed is not None
    return parsed[1]


async def test_late_events_fall_into_the_next_period_and_closed_statements_never_change(api):
    _, fin = await finance()
    merchant = await make_merchant()
    identity = await identity_for(merchant)
    clock.freeze(at(2026, 10, 5, 12, 0))
    member_id, _ = await funded_member(20_000)
    await pay(identity, member_id, merchant, 300)
    clock.freeze(at(2026, 10, 6, 9, 0))
    gen = {"merchantCode": merchant, "periodStart": "2026-10-05", "periodEnd": "2026-10-05"}
    first = payload(await api.post(GENERATE, {"i": gen}, token=fin, admin=True), "settlementStatementGenerate")
    gid = first["statement"]["id"]
    _, manager = await make_staff(merchant)
    await api.post(CONFIRM, {"i": {"statementId": gid}}, token=manager)
    await api.post(APPROVE, {"i": {"statementId": gid}}, token=fin, admin=True)
    # an event booked in the closed day that reached the journal after its statement (a slow commit)
    clock.freeze(at(2026, 10, 5, 23, 59))
    await pay(identity, member_id, merchant, 700)
    clock.freeze(at(2026, 10, 6, 10, 0))
    await pay(identity, member_id, merchant, 100)
    clock.freeze(at(2026, 10, 13, 9, 0))
    before = await statement_state(gid)
    for period in (gen, {**gen, "periodStart": "2026-10-05", "periodEnd": "2026-10-11"}):
        refused = payload(await api.post(GENERATE, {"i": period}, token=fin, admin=True), "settlementStatementGenerate")
        assert [e["code"] for e in refused["userErrors"]] == ["STATEMENT_PERIOD_CLOSED"] and refused["statement"] is None
    assert await statement_state(gid) == before
    nxt = payload(await api.post(GENERATE, {"i": {**gen, "periodStart": "2026-10-06", "periodEnd": "2026-10-06"}},
                                 token=fin, admin=True), "settlementStatementGenerate")["statement"]
    assert totals(nxt) == {"POINTS_PAID": (2, 800)}
    assert totals(await _statement(api, fin, gid)) == {"POINTS_PAID": (1, 300)}
    # a generation of an earlier period after a later one is refused
    refused = payload(await api.post(GENERATE, {"i": {**gen, "periodStart": "2026-10-01", "periodEnd": "2026-10-01"}},
                                     token=fin, admin=True), "settlementStatementGenerate")
    assert [e["code"] for e in refused["userErrors"]] == ["STATEMENT_PERIOD_CLOSED"]
    # the database itself refuses to change an approved statement or release its rows
    pk = await _pk(gid)
    with pytest.raises(REFUSED):
        async with db.transaction() as tx:
            await tx.execute("UPDATE settlement_statement SET net_fen = net_fen + 1 WHERE id = $1", pk)
    with pytest.raises(REFUSED):
        async with db.transaction() as tx:
            await tx.execute("DELETE FROM settlement_statement_entry WHERE statement_id = $1", pk)
    with pytest.raises(REFUSED):
        async with db.transaction() as tx:
            await tx.execute("UPDATE journal_entry SET amount_fen = amount_fen + 1 WHERE merchant_id ="
                             " (SELECT id FROM merchant WHERE code = $1)", merchant)
    assert await statement_state(gid) == before | {"statements": before["statements"] + 1,
                                                   "held": before["held"] + 2, "audits": before["audits"] + 1}


async def _statement(api, token: str, gid: str) -> dict:
    query = "query($id: ID!) { settlementStatement(id: $id) { id totals { kind count amount { amountFen } } } }"
    return payload(await api.post(query, {"id": gid}, token=token, admin=True), "settlementStatement")


async def test_bad_input_is_refused_with_nothing_changed(api):
    _, fin = await finance()
    merchant, other = await make_merchant(), await make_merchant()
    identity = await identity_for(merchant)
    clock.freeze(at(2026, 9, 1, 12, 0))
    member_id, _ = await funded_member(10_000)
    await pay(identity, member_id, merchant, 100)
    product = await merchant_product(merchant)
    clock.freeze(at(2026, 9, 2, 12, 0))
    gid = payload(await api.post(GENERATE, {"i": {"merchantCode": merchant, "periodStart": "2026-09-01",
                                                  "periodEnd": "2026-09-01"}}, token=fin, admin=True),
                  "settlementStatementGenerate")["statement"]["id"]
    _, clerk = await make_staff(merchant, "CLERK")
    _, stranger = await make_staff(other)
    cases = [
        (APPROVE, {"statementId": gid}, fin, True, "settlementStatementApprove", "STATEMENT_STATE_INVALID"),
        (MARK_PAID, {"statementId": gid, "paymentReference": "X-1"}, fin, True, "settlementStatementMarkPaid",
         "STATEMENT_STATE_INVALID"),
        (MARK_PAID, {"statementId": gid, "paymentReference": "bad\u0000ref"}, fin, True,
         "settlementStatementMarkPaid", "INVALID_INPUT"),
        (CONFIRM, {"statementId": gid}, stranger, False, "settlementStatementConfirm", "NOT_FOUND"),
        (DISPUTE, {"statementId": gid, "note": "不对"}, stranger, False, "settlementStatementDispute", "NOT_FOUND"),
        (CONFIRM, {"statementId": gid}, clerk, False, "settlementStatementConfirm", "STAFF_ROLE_REQUIRED"),
        (CONFIRM, {"statementId": to_global_id("Member", 1)}, clerk, False, "settlementStatementConfirm", "NOT_FOUND"),
        (TERMS, {"merchantCode": merchant, "commissionPercent": 101}, fin, True, "merchantTermsUpdate", "INVALID_INPUT"),
        (TERMS, {"merchantCode": merchant, "pointCostSharePercent": -1}, fin, True, "merchantTermsUpdate",
         "INVALID_INPUT"),
        (TERMS, {"merchantCode": "NOPE", "commissionPercent": 1}, fin, True, "merchantTermsUpdate", "NOT_FOUND"),
        (PRICE, {"productId": to_global_id("Product", product), "settlementPriceFen": -1}, fin, True,
         "productSettlementPriceUpdate", "INVALID_INPUT"),
        (GENERATE, {"merchantCode": merchant, "periodStart": "2026-09-01", "periodEnd": "2026-09-03"}, fin, True,
         "settlementStatementGenerate", "INVALID_INPUT"),
        (GENERATE, {"merchantCode": "NOPE", "periodStart": "2026-09-01", "periodEnd": "2026-09-01"}, fin, True,
         "settlementStatementGenerate", "NOT_FOUND"),
    ]
    for query, data, token, admin, name, code in cases:
        before = await statement_state(gid)
        result = payload(await api.post(query, {"i": data}, token=token, admin=admin), name)
        assert [e["code"] for e in result["userErrors"]] == [code], (name, data, result)
        assert await statement_state(gid) == before, (name, data)
    _, manager = await make_staff(merchant)
    assert payload(await api.post(CONFIRM, {"i": {"statementId": gid}}, token=manager),
                   "settlementStatementConfirm")["userErrors"] == []
    before = await statement_state(gid)
    again = payload(await api.post(CONFIRM, {"i": {"statementId": gid}}, token=manager), "settlementStatementConfirm")
    assert [e["code"] for e in again["userErrors"]] == ["STATEMENT_STATE_INVALID"]
    clock.freeze(at(2026, 10, 2, 12, 0))
    overlap = payload(await api.post(GENERATE, {"i": {"merchantCode": merchant, "periodStart": "2026-09-01",
                                                      "periodEnd": "2026-09-30"}}, token=fin, admin=True),
                      "settlementStatementGenerate")
    assert [e["code"] for e in overlap["userErrors"]] == ["STATEMENT_PERIOD_CLOSED"]
    assert await statement_state(gid) == before


async def test_merchant_staff_see_only_their_own_statements(api):
    _, fin = await finance()
    mine, theirs = await make_merchant(), await make_merchant()
    clock.freeze(at(2026, 8, 3, 12, 0))
    member_id, _ = await funded_member(10_000)
    for code, points in ((mine, 100), (theirs, 200)):
        await pay(await identity_for(code), member_id, code, points)
    clock.freeze(at(2026, 8, 10, 12, 0))
    made = {}
    for code in (mine, theirs):
        week = {"merchantCode": code, "periodStart": "2026-08-03", "periodEnd": "2026-08-09"}
        made[code] = payload(await api.post(GENERATE, {"i": week}, token=fin, admin=True),
                             "settlementStatementGenerate")["statement"]
        assert made[code]["periodKind"] == "WEEK"
    _, clerk = await make_staff(mine, "CLERK")
    seen = payload(await api.post(STAFF_LIST, token=clerk), "viewer")["staff"]["settlementStatements"]["edges"]
    assert [(e["node"]["id"], e["node"]["merchant"]["code"], e["node"]["net"]["amountFen"]) for e in seen] == [
        (made[mine]["id"], mine, 100)]
    node = "query($id: ID!) { node(id: $id) { ... on SettlementStatement { id } } }"
    assert payload(await api.post(node, {"id": made[mine]["id"]}, token=clerk), "node") == {"id": made[mine]["id"]}
    assert payload(await api.post(node, {"id": made[theirs]["id"]}, token=clerk), "node") is None
    assert payload(await api.post(node, {"id": made[theirs]["id"]}, token=fin, admin=True), "node") is not None
    _, marketing = await finance("MARKETING")
    assert payload(await api.post(node, {"id": made[theirs]["id"]}, token=marketing, admin=True), "node") is None
    # a member, or no token: no staff viewer; operators' lists need an operator
    _, member_token = await make_member()
    assert payload(await api.post(STAFF_LIST, token=member_token), "viewer")["staff"] is None
    refused = await api.post(CONFIRM, {"i": {"statementId": made[mine]["id"]}}, token=member_token)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_roles_and_downloads(api):
    fin_id, fin = await finance()
    _, marketing = await finance("MARKETING")
    merchant = await make_merchant()
    clock.freeze(at(2026, 7, 1, 12, 0))
    member_id, _ = await funded_member(10_000)
    await pay(await identity_for(merchant), member_id, merchant, 1234)
    clock.freeze(at(2026, 8, 1, 12, 0))
    month = {"merchantCode": merchant, "periodStart": "2026-07-01", "periodEnd": "2026-07-31"}
    before = await statement_state()
    refused = await api.post(GENERATE, {"i": month}, token=marketing, admin=True)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN" and await statement_state() == before
    s = payload(await api.post(GENERATE, {"i": month}, token=fin, admin=True), "settlementStatementGenerate")["statement"]
    assert s["periodKind"] == "MONTH" and s["net"]["amountFen"] == 1234
    for url in (s["xlsxUrl"], s["csvUrl"]):
        assert (await api.client.get(url)).status_code == 401
        assert (await api.client.get(url, headers={"authorization": f"Bearer {marketing}"})).status_code == 403
    missing = s["xlsxUrl"].replace(str(await _pk(s["id"])), "999999999")
    assert (await api.client.get(missing, headers={"authorization": f"Bearer {fin}"})).status_code == 404
    got = await api.client.get(s["xlsxUrl"], headers={"authorization": f"Bearer {fin}"})
    assert got.status_code == 200 and got.headers["content-type"].startswith("application/vnd.openxmlformats")
    book = load_workbook(io.BytesIO(got.content))
    assert book.sheetnames == ["汇总", "明细"]
    summary = {row[0]: row[1] for row in book["汇总"].iter_rows(values_only=True) if row and row[0]}
    assert summary["商户编码"] == merchant and summary["状态"] == "草稿"
    assert float(summary["应付商户净额（元）"]) == 12.34
    assert book["汇总"]["B5"].number_format.startswith('"¥"#,##0.00')
    lines = list(book["明细"].iter_rows(values_only=True))
    assert lines[0] == ("序号", "记账时间", "类型", "业务单号", "积分", "金额（元）")
    assert [(r[2], r[4], float(r[5])) for r in lines[1:]] == [("积分抵现", 1234, 12.34)]
    assert lines[1][1] == "2026-07-01 12:00:00"
    text = (await api.client.get(s["csvUrl"], headers={"authorization": f"Bearer {fin}"})).content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert ["应付商户净额（元）", "12.34"] in rows and rows[-1][2:] == ["积分抵现", rows[-1][3], "1234", "12.34"]
    # Each file that left is in the audit trail, with who took it; refusals (401, 403, 404) wrote nothing.
    taken = await db.fetch("SELECT actor_id, detail FROM audit_log WHERE action = 'settlement.statement_download'"
                           " AND target_id = $1 ORDER BY id", str(await _pk(s["id"])))
    assert [(r["actor_id"], json.loads(r["detail"])["format"]) for r in taken] == [(str(fin_id), "xlsx"), (str(fin_id), "csv")]


async def test_liability_report(api):
    _, fin = await finance()
    merchant = await make_merchant()
    clock.freeze(at(2026, 6, 15, 12, 0))
    identity = await identity_for(merchant)
    member_id, _ = await funded_member(1_000)
    _, earned = await earn(identity, member_id, merchant, 50_000)
    await pay(identity, member_id, merchant, 400)
    future = await api.post(LIABILITY, {"a": at(2026, 6, 15, 13, 0).isoformat()}, token=fin, admin=True)
    assert future["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    clock.freeze(at(2026, 6, 15, 14, 0))
    report = payload(await api.post(LIABILITY, {"a": at(2026, 6, 15, 13, 0).isoformat()}, token=fin, admin=True),
                     "liabilityReport")
    flows = {m["merchant"]["code"]: (m["pointsIssued"], m["pointsRedeemed"]) for m in report["merchants"]}
    assert flows[merchant] == (earned, 400)
    outstanding = int(await db.fetchval("SELECT COALESCE(SUM(points), 0) FROM points_entry WHERE occurred_at <= $1",
                                        at(2026, 6, 15, 13, 0)))
    assert report["pointsOutstanding"] == outstanding
    assert report["value"]["amountFen"] == max(outstanding, 0) * 100 // 100
    assert len(report["expiredByMonth"]) == 12 and report["expiredByMonth"][-1]["month"] == date(2026, 6, 1).isoformat()
    _, auditor = await finance("AUDITOR")
    assert "errors" not in await api.post(LIABILITY, token=auditor, admin=True)
    _, service = await finance("SERVICE")
    forbidden = await api.post(LIABILITY, token=service, admin=True)
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"


CLOSE = """mutation($i: SettlementPeriodCloseInput!) { settlementPeriodClose(input: $i) {
  statements { id status merchant { code } totals { kind count amount { amountFen } } }
  skipped { merchantCode code message } userErrors { code field message } } }"""


async def test_a_period_closes_for_every_merchant(api):
    _, fin = await finance()
    a, b = await make_merchant(), await make_merchant()
    ident_a, ident_b = await identity_for(a), await identity_for(b)
    clock.freeze(at(2026, 9, 10, 12, 0))
    member_id, _ = await funded_member(20_000)
    await pay(ident_a, member_id, a, 300)
    await pay(ident_b, member_id, b, 500)
    clock.freeze(at(2026, 10, 2, 9, 0))
    month = {"periodStart": "2026-09-01", "periodEnd": "2026-09-30"}
    # b's September is confirmed already: the close leaves it alone and says so
    b_gid = payload(await api.post(GENERATE, {"i": {"merchantCode": b, **month}}, token=fin, admin=True),
                    "settlementStatementGenerate")["statement"]["id"]
    _, manager = await make_staff(b)
    await api.post(CONFIRM, {"i": {"statementId": b_gid}}, token=manager)
    b_before = await statement_state(b_gid)
    for _ in range(2):  # a second close makes a's DRAFT again; it never doubles it
        closed = payload(await api.post(CLOSE, {"i": month}, token=fin, admin=True), "settlementPeriodClose")
        assert closed["userErrors"] == []
        made = {s["merchant"]["code"]: s for s in closed["statements"]}
        assert made[a]["status"] == "DRAFT" and totals(made[a]) == {"POINTS_PAID": (1, 300)}
        assert b not in made
        assert [k["code"] for k in closed["skipped"] if k["merchantCode"] == b] == ["STATEMENT_PERIOD_CLOSED"]
    mine = payload(await api.post(LIST, {"m": a}, token=fin, admin=True), "settlementStatements")["edges"]
    assert len(mine) == 1
    assert (await statement_state(b_gid))["statement"] == b_before["statement"]
    # a month that has not ended: refused as a whole, nothing written
    before = await statement_state()
    refused = payload(await api.post(CLOSE, {"i": {"periodStart": "2026-10-01", "periodEnd": "2026-10-31"}},
                                     token=fin, admin=True), "settlementPeriodClose")
    assert [e["code"] for e in refused["userErrors"]] == ["INVALID_INPUT"] and refused["statements"] is None
    assert await statement_state() == before
    # finance only
    _, marketing = await finance("MARKETING")  # (making the operator is audited: count after it)
    before = await statement_state()
    forbidden = await api.post(CLOSE, {"i": month}, token=marketing, admin=True)
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN" and await statement_state() == before


ADJUST = """mutation($i: SettlementAdjustmentPostInput!) { settlementAdjustmentPost(input: $i) {
  adjustment { posting amount { amountFen } reason bookedAt merchant { code } } userErrors { code field message } } }"""


async def test_finance_adjustments_land_in_the_next_statement_once(api):
    fin_id, fin = await finance()
    merchant = await make_merchant()
    clock.freeze(at(2026, 5, 3, 12, 0))
    member_id, _ = await funded_member(10_000)
    await pay(await identity_for(merchant), member_id, merchant, 700)
    owed = {"merchantCode": merchant, "amountFen": 250, "reason": "补记一张未扫码的券", "idempotencyKey": unique("K")}
    first = payload(await api.post(ADJUST, {"i": owed}, token=fin, admin=True), "settlementAdjustmentPost")
    assert first["userErrors"] == [] and first["adjustment"]["amount"] == {"amountFen": 250}
    assert first["adjustment"]["merchant"] == {"code": merchant} and first["adjustment"]["posting"].startswith("adjustment:")
    journal_before = (await statement_state())["journal"]
    again = payload(await api.post(ADJUST, {"i": owed}, token=fin, admin=True), "settlementAdjustmentPost")
    assert again == first and (await statement_state())["journal"] == journal_before  # a repeat books nothing
    other = payload(await api.post(ADJUST, {"i": {**owed, "amountFen": 251}}, token=fin, admin=True),
                    "settlementAdjustmentPost")
    assert [e["code"] for e in other["userErrors"]] == ["IDEMPOTENCY_KEY_REUSED"] and other["adjustment"] is None
    clawed = payload(await api.post(ADJUST, {"i": {**owed, "amountFen": -1000, "reason": "重复核销",
                                                   "idempotencyKey": unique("K")}}, token=fin, admin=True),
                     "settlementAdjustmentPost")
    assert clawed["userErrors"] == []
    rows = await db.fetch("SELECT debit_account, credit_account, amount_fen FROM journal_entry WHERE posting IN ($1, $2)"
                          " ORDER BY amount_fen", first["adjustment"]["posting"], clawed["adjustment"]["posting"])
    assert [tuple(r.values()) for r in rows] == [("MALL", "MERCHANT_PAYABLE", 250), ("MERCHANT_RECEIVABLE", "MALL", 1000)]
    clock.freeze(at(2026, 5, 4, 9, 0))
    day = {"merchantCode": merchant, "periodStart": "2026-05-03", "periodEnd": "2026-05-03"}
    s = payload(await api.post(GENERATE, {"i": day}, token=fin, admin=True), "settlementStatementGenerate")["statement"]
    assert totals(s) == {"POINTS_PAID": (1, 700), "ADJUSTMENT": (2, 250 - 1000)} and s["net"]["amountFen"] == -50
    audited = await db.fetch("SELECT actor_id, detail FROM audit_log WHERE action = 'settlement.adjustment_post'"
                             " AND target_type = 'merchant' ORDER BY id DESC LIMIT 2")
    assert {json.loads(r["detail"])["reason"] for r in audited} == {"补记一张未扫码的券", "重复核销"}
    assert {r["actor_id"] for r in audited} == {str(fin_id)}
    # bad input and other roles: refused, nothing written
    before = await statement_state()
    for change, code, field in (({"amountFen": 0}, "INVALID_INPUT", "amountFen"),
                                ({"amountFen": 100_000_001}, "INVALID_INPUT", "amountFen"),
                                ({"reason": " "}, "INVALID_INPUT", "reason"),
                                ({"merchantCode": "NO-SUCH"}, "NOT_FOUND", "merchantCode"),
                                ({"idempotencyKey": ""}, "INVALID_INPUT", "idempotencyKey")):
        bad = payload(await api.post(ADJUST, {"i": {**owed, "idempotencyKey": unique("K"), **change}}, token=fin,
                                     admin=True), "settlementAdjustmentPost")
        assert [(e["code"], e["field"]) for e in bad["userErrors"]] == [(code, ["input", field])], change
    assert await statement_state() == before
    _, marketing = await finance("MARKETING")
    before = await statement_state()
    refused = await api.post(ADJUST, {"i": {**owed, "idempotencyKey": unique("K")}}, token=marketing, admin=True)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN" and await statement_state() == before
