"""Notification settings from the environment (secrets too: never logged, never shown).

MALLPOINTS_NOTIFY_PUSH            topic=CHANNEL pairs, comma-separated, for the events' pushes (default none:
                                  the inbox only), e.g. "POINTS_EXPIRING=SMS,TIER_CHANGED=WECHAT"
MALLPOINTS_NOTIFY_SMS_PROVIDER    console (default, dev-only), aliyun or tencent
MALLPOINTS_NOTIFY_QUIET_HOURS     "22-8" (default): no push between these Asia/Shanghai hours; "" for none
MALLPOINTS_NOTIFY_MAX_ATTEMPTS    attempts before FAILED (default 5); backoff 1, 2, 4 … minutes
MALLPOINTS_NOTIFY_RATE_<CHANNEL>  pushes per second per process (SMS 20, WECHAT 50 by default)
Aliyun:  MALLPOINTS_ALIYUN_ACCESS_KEY_ID, MALLPOINTS_ALIYUN_ACCESS_KEY_SECRET, MALLPOINTS_ALIYUN_SIGN_NAME,
         MALLPOINTS_ALIYUN_TEMPLATE_CODE (a template with ${title} and ${body})
Tencent: MALLPOINTS_TENCENT_SECRET_ID, MALLPOINTS_TENCENT_SECRET_KEY, MALLPOINTS_TENCENT_SDK_APP_ID,
         MALLPOINTS_TENCENT_SIGN_NAME, MALLPOINTS_TENCENT_TEMPLATE_ID (two parameters: title, body),
         MALLPOINTS_TENCENT_REGION (ap-guangzhou)
WeChat:  MALLPOINTS_WECHAT_APP_ID, MALLPOINTS_WECHAT_APP_SECRET, MALLPOINTS_WECHAT_TEMPLATE_ID,
         MALLPOINTS_WECHAT_PAGE (pages/notifications/index)
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache

from api.config import ConfigError


def _pairs(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        topic, _, channel = item.partition("=")
        topic, channel = topic.strip().upper(), channel.strip().upper()
        if channel not in ("INBOX", "SMS", "WECHAT"):
            raise ConfigError(f"MALLPOINTS_NOTIFY_PUSH: unknown channel {channel!r}")
        out[topic] = channel
    return out


def _hours(raw: str) -> tuple[int, int] | None:
    if not raw.strip():
        return None
    start, _, end = raw.partition("-")
    try:
        first, last = int(start), int(end)
    except ValueError as exc:
        raise ConfigError("MALLPOINTS_NOTIFY_QUIET_HOURS must look like 22-8") from exc
    if not (0 <= first <= 23 and 0 <= last <= 23):
        raise ConfigError("MALLPOINTS_NOTIFY_QUIET_HOURS hours are 0 to 23")
    return first, last


@dataclass(frozen=True)
class NotifySettings:
    push: dict[str, str] = field(default_factory=dict)
    sms_provider: str = "console"
    quiet_hours: tuple[int, int] | None = (22, 8)
    max_attempts: int = 5
    rates: dict[str, int] = field(default_factory=lambda: {"SMS": 20, "WECHAT": 50})
    secrets: dict[str, str] = field(default_factory=dict, repr=False)  # repr=False: never in a log line

    def push_channel(self, topic: str) -> str:
        return self.push.get(topic, "INBOX")

    def get(self, name: str, default: str = "") -> str:
        return self.secrets.get(name, default)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "NotifySettings":
        env = dict(os.environ if env is None else env)
        provider = (env.get("MALLPOINTS_NOTIFY_SMS_PROVIDER") or "console").lower()
        if provider not in ("console", "aliyun", "tencent"):
            raise ConfigError("MALLPOINTS_NOTIFY_SMS_PROVIDER must be console, aliyun or tencent")
        if provider == "console" and env.get("MALLPOINTS_ENV") == "production":
            raise ConfigError("MALLPOINTS_NOTIFY_SMS_PROVIDER=console is dev-only")
        rates = {}
        for channel, default in (("SMS", 20), ("WECHAT", 50)):
            raw = env.get(f"MALLPOINTS_NOTIFY_RATE_{channel}") or str(default)
            if not raw.isdigit() or int(raw) < 1:
                raise ConfigError(f"MALLPOINTS_NOTIFY_RATE_{channel} must be a positive integer")
            rates[channel] = int(raw)
        attempts = env.get("MALLPOINTS_NOTIFY_MAX_ATTEMPTS") or "5"
        if not attempts.isdigit() or not 1 <= int(attempts) <= 20:
            raise ConfigError("MALLPOINTS_NOTIFY_MAX_ATTEMPTS must be 1 to 20")
        secrets = {k: v for k, v in env.items()
                   if k.startswith(("MALLPOINTS_ALIYUN_", "MALLPOINTS_TENCENT_", "MALLPOINTS_WECHAT_"))}
        return cls(push=_pairs(env.get("MALLPOINTS_NOTIFY_PUSH") or ""), sms_provider=provider,
                   quiet_hours=_hours(env.get("MALLPOINTS_NOTIFY_QUIET_HOURS", "22-8")), max_attempts=int(attempts),
                   rates=rates, secrets=secrets)


@lru_cache(maxsize=1)
def notify_settings() -> NotifySettings:
    return NotifySettings.from_env()


def reset() -> None:
    """Tests: read the environment again."""
    notify_settings.cache_clear()
