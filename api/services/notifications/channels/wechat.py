"""WeChat mini-program subscribe messages (订阅消息): POST /cgi-bin/message/subscribe/send with the member's
openid, the template id, the page opened on tap and the template's data, authorised by an access token
from GET /cgi-bin/token (grant_type=client_credential), cached until shortly before it expires and
fetched again at once when WeChat says it is invalid or expired (errcode 40001, 40014, 42001)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from api.services.notifications.channels.base import Message, Outcome

API = "https://api.weixin.qq.com"
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
RETRY_ERRORS = frozenset({-1, 45009, 45011})  # system busy, API frequency limits
SAFETY_SECONDS = 300  # refresh this long before the token's stated expiry


class WechatSubscribe:
    name = "WECHAT"

    def __init__(self, app_id: str, app_secret: str, template_id: str, page: str = "pages/notifications/index", *,
                 client: httpx.AsyncClient | None = None, api: str = API,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._app_id = app_id
        self._secret = app_secret
        self._template = template_id
        self._page = page
        self._client = client or httpx.AsyncClient(timeout=10)
        self._api = api
        self._clock = clock
        self._token: str | None = None
        self._token_until = 0.0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:  # never the secret or the token
        return f"WechatSubscribe(app={self._app_id})"

    async def access_token(self, force: bool = False) -> str | None:
        async with self._lock:
            if not force and self._token and self._clock() < self._token_until:
                return self._token
            response = await self._client.get(f"{self._api}/cgi-bin/token", params={
                "grant_type": "client_credential", "appid": self._app_id, "secret": self._secret})
            data = response.json()
            token = data.get("access_token")
            if not token:
                self._token = None
                return None
            self._token = str(token)
            self._token_until = self._clock() + max(0, int(data.get("expires_in", 7200)) - SAFETY_SECONDS)
            return self._token

    def payload(self, message: Message) -> dict:
        return {
            "touser": message.openid, "template_id": self._template, "page": self._page,
            # thing: at most 20 characters in a subscribe message's field
            "data": {"thing1": {"value": message.title[:20].rstrip()}, "thing2": {"value": message.body[:20].rstrip()}},
            "miniprogram_state": "formal", "lang": "zh_CN",
        }

    async def send(self, message: Message) -> Outcome:
        if not message.openid:
            return Outcome(False, code="NO_OPENID")
        try:
            for attempt in (1, 2):
                token = await self.access_token(force=attempt == 2)
                if token is None:
                    return Outcome(False, retry=True, code="TOKEN_UNAVAILABLE")
                response = await self._client.post(f"{self._api}/cgi-bin/message/subscribe/send",
                                                   params={"access_token": token}, json=self.payload(message))
                if response.status_code >= 500:
                    return Outcome(False, retry=True, code=f"HTTP_{response.status_code}")
                errcode = int(response.json().get("errcode", -1))
                if errcode == 0:
                    return Outcome(True, code="0", reference=str(response.json().get("msgid") or "") or None)
                if errcode not in TOKEN_ERRORS:
                    return Outcome(False, retry=errcode in RETRY_ERRORS, code=str(errcode))
        except (httpx.HTTPError, ValueError) as exc:
            return Outcome(False, retry=True, code=f"NETWORK:{type(exc).__name__}")
        return Outcome(False, retry=True, code="TOKEN_REJECTED")
