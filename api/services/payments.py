"""Payment providers: what a checkout hands to the member's client, and the development stand-in.

A real provider (WeChat Pay) plugs in here: it turns a payment into the parameters its client SDK
needs, and it notifies the server through the signed `paymentNotify` mutation (an integration key
with the `payment` scope), carrying the provider's transaction id.

The development provider ("dev", dev-only) has a cashier page of its own: `POST /dev/pay/{outTradeNo}`
on this server plays the member paying and the provider notifying, so the whole flow can be driven
from a browser, a test or curl without WeChat.
"""
from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING

from api.config import settings
from api.db import fetch
from api.services import clock
from api.services.errors import DomainError, ErrorCode

if TYPE_CHECKING:
    from api.services.mall import NotifyResult, PaymentInfo


def pay_params(payment: "PaymentInfo") -> str:
    """JSON for the client: the dev provider's cashier URL, or (for a real provider) its SDK parameters."""
    if payment.provider == "dev":
        return json.dumps({"payUrl": f"/dev/pay/{payment.out_trade_no}", "method": "POST",
                           "amountFen": payment.amount_fen}, separators=(",", ":"))
    return json.dumps({"outTradeNo": payment.out_trade_no, "amountFen": payment.amount_fen}, separators=(",", ":"))


def dev_provider_enabled() -> bool:
    cfg = settings()
    return cfg.payment_provider == "dev" and not cfg.is_production


async def dev_pay(out_trade_no: str) -> "NotifyResult":
    """The development provider: the member paid the whole amount just now; the provider notifies."""
    from api.services import mall

    if not dev_provider_enabled():
        raise DomainError(ErrorCode.NOT_FOUND, "the development payment provider is off", ["outTradeNo"])
    rows = await fetch("SELECT amount_fen FROM payment WHERE out_trade_no = $1 AND provider = 'dev'", out_trade_no)
    if not rows:
        raise DomainError(ErrorCode.NOT_FOUND, "no such payment", ["outTradeNo"])
    return await mall.payment_notify("dev", out_trade_no, "dev-" + secrets.token_hex(12), int(rows[0]["amount_fen"]),
                                     clock.now())
