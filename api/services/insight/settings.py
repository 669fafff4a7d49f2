"""Insight settings (docs/insight.md): the RFM window and the lifecycle thresholds, in days, from the
environment (MALLPOINTS_INSIGHT_*), validated when first read."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from api.config import ConfigError


@dataclass(frozen=True)
class InsightSettings:
    rfm_window_days: int = 365  # recency/frequency/monetary window
    new_days: int = 30  # joined within: NEW
    declining_days: int = 60  # no purchase (nor joining) for this long: DECLINING
    lost_days: int = 180  # ... for this long: LOST
    trend_days: int = 90  # purchases in the last N days above the N days before: GROWING
    chunk_members: int = 2000  # members per recompute transaction (row locks held at once)


def _days(env: dict[str, str], name: str, default: int, lo: int = 1, hi: int = 3660) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}")
    return value


def from_env(env: dict[str, str]) -> InsightSettings:
    s = InsightSettings(
        rfm_window_days=_days(env, "MALLPOINTS_INSIGHT_RFM_WINDOW_DAYS", 365),
        new_days=_days(env, "MALLPOINTS_INSIGHT_NEW_DAYS", 30),
        declining_days=_days(env, "MALLPOINTS_INSIGHT_DECLINING_DAYS", 60),
        lost_days=_days(env, "MALLPOINTS_INSIGHT_LOST_DAYS", 180),
        trend_days=_days(env, "MALLPOINTS_INSIGHT_TREND_DAYS", 90),
        chunk_members=_days(env, "MALLPOINTS_INSIGHT_CHUNK_MEMBERS", 2000, 100, 5000),
    )
    if not s.declining_days < s.lost_days:
        raise ConfigError("MALLPOINTS_INSIGHT_DECLINING_DAYS must be below MALLPOINTS_INSIGHT_LOST_DAYS")
    return s


@lru_cache(maxsize=1)
def insight_settings() -> InsightSettings:
    return from_env(dict(os.environ))
