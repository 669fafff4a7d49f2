"""Settings from the environment, validated once at start.

Every knob has a development default so that `mallpoints serve --demo` runs with nothing set.
`MALLPOINTS_ENV=production` refuses the dev-only items and any default secret.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

DEFAULT_SECRET_KEY = "dev-secret-key-change-me"
DEFAULT_ADMIN_PASSWORD = "admin-demo-password"
DEFAULT_DEMO_POS_SECRET = "demo-pos-secret"


class ConfigError(RuntimeError):
    pass


def _int(env: dict[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


ProxyNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(env: dict[str, str], name: str) -> tuple[ProxyNetwork, ...]:
    """Comma-separated addresses or CIDRs; empty or unset is none."""
    networks = []
    for item in (env.get(name) or "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ConfigError(f"{name} must list IP addresses or CIDRs separated by commas, got {item!r}") from exc
    return tuple(networks)


def _flag(env: dict[str, str], name: str, default: bool = False) -> bool:
    raw = (env.get(name) or ("on" if default else "off")).strip().lower()
    if raw not in ("on", "off", "true", "false", "1", "0"):
        raise ConfigError(f"{name} must be on or off, got {raw!r}")
    return raw in ("on", "true", "1")


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    database_url: str = "sqlite://var/mallpoints.sqlite3"
    redis_url: str | None = None
    # `single` (one Redis) or `cluster` (a Redis Cluster; redis_url names any node) (issue 15)
    redis_mode: str = "single"
    # Every server reconciles the live flash sales' and draws' Redis gates with the database this often
    # (and once at start), so a unit a crashed process left taken comes back without an operator
    # (issue 11 finding 12); 0 turns it off.
    gate_refresh_seconds: int = 5
    secret_key: str = DEFAULT_SECRET_KEY
    admin_password: str = DEFAULT_ADMIN_PASSWORD
    test_sms_code: str | None = None
    demo_pos_secret: str | None = DEFAULT_DEMO_POS_SECRET
    # Earning: floor(amountFen / 100 × pointsPerYuan × tier multiplier); growth value per yuan.
    points_per_yuan: int = 1
    growth_per_yuan: int = 1
    # Paying with points at the till: this many points are worth one yuan.
    pay_points_per_yuan: int = 100
    # Expiry policy: "rolling" (N months after the earn) or "year_end" (end of the year after the earn).
    expiry_policy: str = "rolling"
    expiry_months: int = 12
    # Tier qualification period in months (growth earned in it keeps or loses the tier).
    tier_period_months: int = 12
    # One receipt may not exceed this amount (fen); anything above is treated as a typing error.
    max_receipt_fen: int = 10_000_000
    # One operator adjustment may not exceed this many points either way.
    max_adjust_points: int = 1_000_000
    # Maker-checker (issue 10): a SERVICE operator's adjustment above this many points either way, or one
    # that takes their adjustments of the day above the daily limit, waits for a FINANCE or ADMIN approval.
    adjust_approval_threshold: int = 1_000
    adjust_daily_limit: int = 5_000
    member_code_ttl_seconds: int = 120
    member_token_ttl_seconds: int = 30 * 24 * 3600
    operator_token_ttl_seconds: int = 12 * 3600
    sms_code_ttl_seconds: int = 300
    sms_code_max_attempts: int = 5
    sms_resend_seconds: int = 60
    signature_window_seconds: int = 300
    nonce_ttl_seconds: int = 600
    # Points mall: minutes an unpaid points-plus-cash order holds its stock and points; the payment
    # provider ("dev": the development stand-in for WeChat Pay, dev-only; "none": no cash checkout).
    checkout_minutes: int = 15
    payment_provider: str = "dev"
    extra: dict[str, str] = field(default_factory=dict)
    # earning (issue 3): scheduled runs in the server (pending release, invites, expiry, tiers)
    scheduler_enabled: bool = False
    scheduler_interval_seconds: int = 300
    # Transport (issue 11): the proxies whose X-Forwarded-For is believed (none by default: the client
    # address is the connecting peer), and the largest request body each endpoint reads (413 above it).
    trusted_proxies: tuple[ProxyNetwork, ...] = ()
    max_body_bytes: int = 128 * 1024
    admin_max_body_bytes: int = 1024 * 1024
    # Trusted documents (issue 14): the public endpoint accepts only the documents of clients/ (by hash or
    # by their exact text); on by default in production, off in development (full texts accepted).
    trusted_documents_only: bool = False

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def dialect(self) -> str:
        return "postgres" if self.database_url.startswith(("postgres://", "postgresql://", "asyncpg://")) else "sqlite"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        mode = env.get("MALLPOINTS_ENV", "development")
        if mode not in ("development", "production"):
            raise ConfigError("MALLPOINTS_ENV must be 'development' or 'production'")
        policy = env.get("MALLPOINTS_EXPIRY_POLICY", "rolling")
        if policy not in ("rolling", "year_end"):
            raise ConfigError("MALLPOINTS_EXPIRY_POLICY must be 'rolling' or 'year_end'")
        redis_mode = (env.get("MALLPOINTS_REDIS_MODE") or "single").strip().lower()
        if redis_mode not in ("single", "cluster"):
            raise ConfigError("MALLPOINTS_REDIS_MODE must be 'single' or 'cluster'")
        settings = cls(
            env=mode,
            redis_mode=redis_mode,
            gate_refresh_seconds=_int(env, "MALLPOINTS_GATE_REFRESH_SECONDS", 5),
            database_url=env.get("MALLPOINTS_DATABASE_URL") or "sqlite://var/mallpoints.sqlite3",
            redis_url=env.get("MALLPOINTS_REDIS_URL") or None,
            secret_key=env.get("MALLPOINTS_SECRET_KEY") or DEFAULT_SECRET_KEY,
            admin_password=env.get("MALLPOINTS_ADMIN_PASSWORD") or DEFAULT_ADMIN_PASSWORD,
            test_sms_code=env.get("MALLPOINTS_TEST_SMS_CODE") or None,
            demo_pos_secret=env.get("MALLPOINTS_DEMO_POS_SECRET") or DEFAULT_DEMO_POS_SECRET,
            points_per_yuan=_int(env, "MALLPOINTS_POINTS_PER_YUAN", 1),
            growth_per_yuan=_int(env, "MALLPOINTS_GROWTH_PER_YUAN", 1),
            pay_points_per_yuan=_int(env, "MALLPOINTS_PAY_POINTS_PER_YUAN", 100, minimum=1),
            expiry_policy=policy,
            expiry_months=_int(env, "MALLPOINTS_EXPIRY_MONTHS", 12, minimum=1),
            tier_period_months=_int(env, "MALLPOINTS_TIER_PERIOD_MONTHS", 12, minimum=1),
            max_receipt_fen=_int(env, "MALLPOINTS_MAX_RECEIPT_FEN", 10_000_000, minimum=1),
            adjust_approval_threshold=_int(env, "MALLPOINTS_ADJUST_APPROVAL_THRESHOLD", 1_000),
            adjust_daily_limit=_int(env, "MALLPOINTS_ADJUST_DAILY_LIMIT", 5_000),
            checkout_minutes=_int(env, "MALLPOINTS_CHECKOUT_MINUTES", 15, minimum=1),
            payment_provider=env.get("MALLPOINTS_PAYMENT_PROVIDER") or ("none" if mode == "production" else "dev"),
            scheduler_enabled=_flag(env, "MALLPOINTS_SCHEDULER"),
            scheduler_interval_seconds=_int(env, "MALLPOINTS_SCHEDULER_INTERVAL_SECONDS", 300, minimum=10),
            trusted_proxies=_networks(env, "MALLPOINTS_TRUSTED_PROXIES"),
            max_body_bytes=_int(env, "MALLPOINTS_MAX_BODY_BYTES", 128 * 1024, minimum=1024),
            admin_max_body_bytes=_int(env, "MALLPOINTS_ADMIN_MAX_BODY_BYTES", 1024 * 1024, minimum=1024),
            trusted_documents_only=_flag(env, "MALLPOINTS_TRUSTED_DOCUMENTS_ONLY", default=mode == "production"),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if not self.is_production:
            return
        problems = []
        if self.secret_key == DEFAULT_SECRET_KEY or len(self.secret_key) < 32:
            problems.append("MALLPOINTS_SECRET_KEY must be set to a random value of at least 32 characters")
        if self.admin_password == DEFAULT_ADMIN_PASSWORD:
            problems.append("MALLPOINTS_ADMIN_PASSWORD must be set (the default is refused)")
        if self.test_sms_code:
            problems.append("MALLPOINTS_TEST_SMS_CODE is dev-only")
        if self.payment_provider == "dev":
            problems.append("MALLPOINTS_PAYMENT_PROVIDER=dev is dev-only")
        if self.payment_provider not in ("dev", "none"):
            problems.append("MALLPOINTS_PAYMENT_PROVIDER must be 'dev' or 'none'")
        if os.environ.get("MALLPOINTS_DEMO_POS_SECRET"):
            problems.append("MALLPOINTS_DEMO_POS_SECRET is dev-only")
        if problems:
            raise ConfigError("production settings refused: " + "; ".join(problems))

    def is_trusted_proxy(self, host: str | None) -> bool:
        if not host or not self.trusted_proxies:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.trusted_proxies)

    def client_address(self, peer: str | None, forwarded_for: list[str]) -> str | None:
        """The client's address: the connecting peer, unless the peer is a trusted proxy; then the
        nearest address in `X-Forwarded-For` (read right to left) that is not itself a trusted proxy.
        Applying this again to its own answer changes nothing, so it agrees with uvicorn's
        `forwarded_allow_ips` (given the same list by `mallpoints serve`) when that ran first."""
        if not self.is_trusted_proxy(peer):
            return peer
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self.is_trusted_proxy(hop):
                return hop
        return hops[0] if hops else peer

    @property
    def forwarded_allow_ips(self) -> list[str]:
        """`MALLPOINTS_TRUSTED_PROXIES` in uvicorn's form (an empty list trusts nobody)."""
        return [str(network) for network in self.trusted_proxies]

    @property
    def sqlite_path(self) -> Path | None:
        if self.dialect != "sqlite":
            return None
        path = self.database_url.split("://", 1)[1].split("?", 1)[0]
        return None if path == ":memory:" else Path(path)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()


def set_settings(settings: Settings) -> None:
    """Replace the process settings (tests and the CLI)."""
    get_settings.cache_clear()
    _override.clear()
    _override.append(settings)


_override: list[Settings] = []


def settings() -> Settings:
    return _override[-1] if _override else get_settings()
