"""Aliyun SMS (dysmsapi SendSms, API version 2017-05-25), signed with the POP RPC signature v1: HMAC-SHA1
with key `AccessKeySecret + "&"` over `"POST&%2F&" + percentEncode(canonicalised query)`, where the query is
every parameter but Signature, sorted by name, each name and value percent-encoded (RFC 3986: space %20,
`*` %2A, `~` kept) and joined with `&`. Documented example (Aliyun SMS, "HTTP protocol and signature"):
tests/test_reach_channels.py checks it gives the published signature."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from api.services.notifications.channels.base import Message, Outcome

ENDPOINT = "https://dysmsapi.aliyuncs.com/"
# Vendor codes worth another try later (throttling, the vendor's own faults).
RETRY_CODES = frozenset({"isv.BUSINESS_LIMIT_CONTROL", "isp.SYSTEM_ERROR", "SignatureNonceUsed", "Throttling",
                         "ServiceUnavailable"})


def percent_encode(value: str) -> str:
    return quote(value, safe="-_.~")


def canonical_query(params: dict[str, str]) -> str:
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()) if k != "Signature")


def string_to_sign(method: str, params: dict[str, str]) -> str:
    return f"{method}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"


def signature(method: str, params: dict[str, str], secret: str) -> str:
    digest = hmac.new(f"{secret}&".encode(), string_to_sign(method, params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _phone(e164: str) -> str:
    # Mainland numbers without the country code, others with it (Aliyun's PhoneNumbers format).
    return e164[3:] if e164.startswith("+86") else e164.lstrip("+")


class AliyunSms:
    name = "SMS"

    def __init__(self, access_key_id: str, access_key_secret: str, sign_name: str, template_code: str, *,
                 client: httpx.AsyncClient | None = None, endpoint: str = ENDPOINT,
                 nonce: Callable[[], str] = lambda: uuid.uuid4().hex,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._key_id = access_key_id
        self._secret = access_key_secret
        self._sign_name = sign_name
        self._template = template_code
        self._client = client or httpx.AsyncClient(timeout=10)
        self._endpoint = endpoint
        self._nonce = nonce
        self._clock = clock

    def __repr__(self) -> str:  # never the secret
        return f"AliyunSms(key_id={self._key_id[:4]}…)"

    def params(self, message: Message) -> dict[str, str]:
        assert message.phone is not None
        params = {
            "AccessKeyId": self._key_id, "Action": "SendSms", "Format": "JSON",
            "OutId": str(message.notification_id), "PhoneNumbers": _phone(message.phone), "RegionId": "cn-hangzhou",
            "SignName": self._sign_name, "SignatureMethod": "HMAC-SHA1", "SignatureNonce": self._nonce(),
            "SignatureVersion": "1.0", "TemplateCode": self._template,
            "TemplateParam": json.dumps({"title": message.title, "body": message.body}, ensure_ascii=False,
                                        separators=(",", ":")),
            "Timestamp": self._clock().strftime("%Y-%m-%dT%H:%M:%SZ"), "Version": "2017-05-25",
        }
        params["Signature"] = signature("POST", params, self._secret)
        return params

    async def send(self, message: Message) -> Outcome:
        if not message.phone:
            return Outcome(False, code="NO_PHONE")
        form = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in self.params(message).items())
        try:
            response = await self._client.post(self._endpoint, content=form.encode(),
                                               headers={"Content-Type": "application/x-www-form-urlencoded"})
        except httpx.HTTPError as exc:
            return Outcome(False, retry=True, code=f"NETWORK:{type(exc).__name__}")
        if response.status_code >= 500:
            return Outcome(False, retry=True, code=f"HTTP_{response.status_code}")
        try:
            data = response.json()
        except ValueError:
            return Outcome(False, retry=True, code=f"HTTP_{response.status_code}")
        code = str(data.get("Code", ""))[:60]
        if code == "OK":
            return Outcome(True, code="OK", reference=str(data.get("BizId") or "")[:64] or None)
        return Outcome(False, retry=code in RETRY_CODES, code=code or f"HTTP_{response.status_code}")
