"""Tencent Cloud SMS (SendSms, API version 2021-01-11), signed with TC3-HMAC-SHA256 as documented
("Signature v3"): a canonical request (method, URI "/", empty query, the signed headers content-type and
host, the hex SHA-256 of the payload), a string to sign ("TC3-HMAC-SHA256", the timestamp,
"<date>/<service>/tc3_request", the hex SHA-256 of the canonical request), and the key derived by
HMAC-SHA256 chaining "TC3" + SecretKey → date → service → "tc3_request". The documented example (CVM
DescribeInstances) is checked by tests/test_reach_channels.py."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from api.services.notifications.channels.base import Message, Outcome

HOST = "sms.tencentcloudapi.com"
CONTENT_TYPE = "application/json; charset=utf-8"
RETRY_CODES = frozenset({"LimitExceeded", "InternalError", "RequestLimitExceeded",
                         "InternalError.Timeout", "InternalError.RequestTimeException"})


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def canonical_request(host: str, payload: str, content_type: str = CONTENT_TYPE) -> str:
    hashed = hashlib.sha256(payload.encode()).hexdigest()
    return f"POST\n/\n\ncontent-type:{content_type}\nhost:{host}\n\ncontent-type;host\n{hashed}"


def string_to_sign(timestamp: int, service: str, canonical: str) -> str:
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    return (f"TC3-HMAC-SHA256\n{timestamp}\n{date}/{service}/tc3_request\n"
            f"{hashlib.sha256(canonical.encode()).hexdigest()}")


def signature(secret_key: str, timestamp: int, service: str, canonical: str) -> str:
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), date), service), "tc3_request")
    return hmac.new(key, string_to_sign(timestamp, service, canonical).encode(), hashlib.sha256).hexdigest()


def authorization(secret_id: str, secret_key: str, timestamp: int, service: str, host: str, payload: str) -> str:
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    sig = signature(secret_key, timestamp, service, canonical_request(host, payload))
    return (f"TC3-HMAC-SHA256 Credential={secret_id}/{date}/{service}/tc3_request, "
            f"SignedHeaders=content-type;host, Signature={sig}")


class TencentSms:
    name = "SMS"

    def __init__(self, secret_id: str, secret_key: str, sdk_app_id: str, sign_name: str, template_id: str, *,
                 region: str = "ap-guangzhou", client: httpx.AsyncClient | None = None, host: str = HOST,
                 clock: Callable[[], int] = lambda: int(time.time())) -> None:
        self._id = secret_id
        self._key = secret_key
        self._app = sdk_app_id
        self._sign_name = sign_name
        self._template = template_id
        self._region = region
        self._client = client or httpx.AsyncClient(timeout=10)
        self._host = host
        self._clock = clock

    def __repr__(self) -> str:  # never the secret
        return f"TencentSms(app={self._app})"

    def request(self, message: Message) -> tuple[dict[str, str], str]:
        assert message.phone is not None
        payload = json.dumps({
            "PhoneNumberSet": [message.phone], "SmsSdkAppId": self._app, "SignName": self._sign_name,
            "TemplateId": self._template, "TemplateParamSet": [message.title, message.body],
            "SessionContext": str(message.notification_id),
        }, ensure_ascii=False, separators=(",", ":"))
        timestamp = self._clock()
        headers = {
            "Authorization": authorization(self._id, self._key, timestamp, "sms", self._host, payload),
            "Content-Type": CONTENT_TYPE, "Host": self._host, "X-TC-Action": "SendSms",
            "X-TC-Timestamp": str(timestamp), "X-TC-Version": "2021-01-11", "X-TC-Region": self._region,
        }
        return headers, payload

    async def send(self, message: Message) -> Outcome:
        if not message.phone:
            return Outcome(False, code="NO_PHONE")
        headers, payload = self.request(message)
        try:
            response = await self._client.post(f"https://{self._host}/", content=payload.encode(), headers=headers)
        except httpx.HTTPError as exc:
            return Outcome(False, retry=True, code=f"NETWORK:{type(exc).__name__}")
        if response.status_code >= 500:
            return Outcome(False, retry=True, code=f"HTTP_{response.status_code}")
        try:
            data = response.json().get("Response", {})
        except (ValueError, AttributeError):
            return Outcome(False, retry=True, code=f"HTTP_{response.status_code}")
        if "Error" in data:
            code = str(data["Error"].get("Code", ""))[:60]
            return Outcome(False, retry=code in RETRY_CODES or code.startswith("InternalError"), code=code)
        status = (data.get("SendStatusSet") or [{}])[0]
        code = str(status.get("Code", ""))[:60]
        if code == "Ok":
            return Outcome(True, code="Ok", reference=str(status.get("SerialNo") or "")[:64] or None)
        return Outcome(False, retry=code in RETRY_CODES, code=code or "NO_STATUS")
