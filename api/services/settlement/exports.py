"""A statement as files for finance: XLSX (a summary sheet and a lines sheet, Chinese headers, amounts in
yuan with a yuan number format) made with openpyxl, and CSV (UTF-8 with a byte-order mark, for Excel)."""
from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.styles import Font

from api.db import transaction
from api.services import clock, merchants
from api.services.audit import audit
from api.services.settlement import reads

KIND_NAMES = {
    "POINTS_ISSUED": "积分发放（商户承担）", "POINTS_PAID": "积分抵现", "VOUCHER_WRITTEN_OFF": "卡券核销",
    "CASH_SALE": "积分+现金销售（扣佣金）", "REFUND": "退款冲正", "ADJUSTMENT": "调整",
}
STATUS_NAMES = {"DRAFT": "草稿", "CONFIRMED": "商户已确认", "APPROVED": "财务已审核", "PAID": "已付款"}
YUAN = '"¥"#,##0.00;[Red]-"¥"#,##0.00'
LINE_HEADERS = ["序号", "记账时间", "类型", "业务单号", "积分", "金额（元）"]
PAGE = 1000  # lines read per query while writing a file


def yuan(fen: int) -> Decimal:
    """Fen as an exact yuan amount (no float on the way)."""
    return Decimal(fen).scaleb(-2)


def _local(at: datetime) -> str:
    return at.astimezone(clock.SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


async def _all_lines(statement_id: int) -> list[reads.Line]:
    out: list[reads.Line] = []
    after = None
    while True:
        page = await reads.lines(statement_id, PAGE, after)
        out.extend(page)
        if len(page) < PAGE:
            return out
        after = page[-1].id


async def _summary_rows(s: reads.StatementInfo) -> list[tuple[str, object]]:
    m = await merchants.by_id(s.merchant_id)
    return [("商户", m.name if m else ""), ("商户编码", m.code if m else ""),
            ("结算周期", f"{s.period_start.isoformat()} 至 {s.period_end.isoformat()}"),
            ("状态", STATUS_NAMES[s.status]), ("应付商户净额（元）", yuan(s.net_fen)),
            ("付款参考号", s.payment_reference or "")]


async def xlsx(s: reads.StatementInfo) -> bytes:
    book = Workbook()
    summary = book.active
    summary.title = "汇总"
    for label, value in await _summary_rows(s):
        summary.append([label, value])
    summary["B5"].number_format = YUAN
    summary.append([])
    summary.append(["类型", "笔数", "金额（元）"])
    for t in s.totals:
        summary.append([KIND_NAMES[t.kind], t.count, yuan(t.amount_fen)])
        summary.cell(row=summary.max_row, column=3).number_format = YUAN
    for cell in summary[8]:
        cell.font = Font(bold=True)
    sheet = book.create_sheet("明细")
    sheet.append(LINE_HEADERS)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for n, line in enumerate(await _all_lines(s.id), start=1):
        sheet.append([n, _local(line.booked_at), KIND_NAMES[line.kind], line.posting, line.points,
                      yuan(line.amount_fen)])
        sheet.cell(row=sheet.max_row, column=6).number_format = YUAN
    summary.column_dimensions["A"].width = 24
    sheet.column_dimensions["B"].width = 20
    sheet.column_dimensions["D"].width = 24
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def csv_text(s: reads.StatementInfo) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    for label, value in await _summary_rows(s):
        writer.writerow([label, f"{value:.2f}" if isinstance(value, Decimal) else value])
    writer.writerow([])
    writer.writerow(LINE_HEADERS)
    for n, line in enumerate(await _all_lines(s.id), start=1):
        writer.writerow([n, _local(line.booked_at), KIND_NAMES[line.kind], line.posting, line.points,
                         f"{yuan(line.amount_fen):.2f}"])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


async def record_download(operator_id: int, s: reads.StatementInfo, fmt: str) -> None:
    """A statement's file leaves the system: who took which one, in the audit trail (finance's files are
    money records; the trail shows who held a copy)."""
    async with transaction() as tx:
        await audit(tx, ("operator", str(operator_id)), "settlement.statement_download", "SettlementStatement",
                    str(s.id), {"format": fmt, "status": s.status, "merchantId": s.merchant_id})
