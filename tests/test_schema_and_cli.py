"""schema.graphql is committed and matches the code; the command line does what the contract says."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from api.cli import ADMIN_SCHEMA_FILE, SCHEMA_FILE, export_schema_texts
from tests.conftest import redis_keys, unique

ROOT = Path(__file__).resolve().parent.parent


def test_committed_schema_matches_the_code():
    for path, text in export_schema_texts().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} drifted from the code: run `mallpoints export-schema` and commit the change"
        )


CONTRACT_NAMES = [
    "viewer: Viewer!", "tiers: [Tier!]!", "node(id: ID!): Node", "phoneMasked: String!", "tier: Tier!",
    "growthValue: Int!", "nextTier: TierProgress", "pointsBalance: Int!",
    "pointsExpiringSoon(days: Int! = 30): PointsExpiry!",
    "pointsLedger(first: Int!, after: String = null): PointsEntryConnection!", "memberCode: MemberCode!",
    "growthThreshold: Int!", "earnMultiplierPercent: Int!", "growthValueNeeded: Int!", "earliestExpiresAt: DateTime",
    "balanceAfter: Int!", "occurredAt: DateTime!", "expiresAt: DateTime",
    "authSmsCodeRequest(input: AuthSmsCodeRequestInput!): AuthSmsCodeRequestPayload!",
    "authSmsLogin(input: AuthSmsLoginInput!): AuthSmsLoginPayload!",
    "memberProfileUpdate(input: MemberProfileUpdateInput!): MemberProfileUpdatePayload!",
    "purchaseRecord(input: PurchaseRecordInput!): PurchaseRecordPayload!",
    "purchaseRecordBatch(input: PurchaseRecordBatchInput!): PurchaseRecordBatchPayload!",
    "purchaseRefund(input: PurchaseRefundInput!): PurchaseRefundPayload!",
    "pointsPay(input: PointsPayInput!): PointsPayPayload!",
    "operatorLogin(input: OperatorLoginInput!): OperatorLoginPayload!",
    "members(first: Int!, after: String = null, search: String = null): MemberConnection!",
    "member(id: ID!): Member", "merchants(first: Int!, after: String = null): MerchantConnection!",
    "pointsAdjust(input: PointsAdjustInput!): PointsAdjustPayload!",
    "pointsExpireRun(input: PointsExpireRunInput!): PointsExpireRunPayload!",
    "smsMessages(first: Int!): [SmsMessage!]!",
]


ADMIN_NAMES = {n for n in CONTRACT_NAMES if n.split("(")[0] in (
    "operatorLogin", "members", "member", "merchants", "pointsAdjust", "pointsExpireRun", "smsMessages")}


@pytest.mark.parametrize("name", CONTRACT_NAMES)
def test_contract_names_are_in_the_schema(name):
    path = ADMIN_SCHEMA_FILE if name in ADMIN_NAMES else SCHEMA_FILE
    assert name in path.read_text(encoding="utf-8")


def test_user_error_codes_of_the_contract():
    text = SCHEMA_FILE.read_text(encoding="utf-8")
    enum = text.split("enum UserErrorCode {", 1)[1].split("}", 1)[0].split()
    for code in ["INVALID_INPUT", "NOT_FOUND", "INSUFFICIENT_POINTS", "DUPLICATE_RECEIPT", "IDEMPOTENCY_KEY_REUSED",
                 "MEMBER_CODE_EXPIRED", "SMS_CODE_INVALID", "RATE_LIMITED"]:
        assert code in enum


def _cli(tmp_path, *args, env=None):
    full_env = {**os.environ, "MALLPOINTS_DATABASE_URL": f"sqlite://{tmp_path}/cli.sqlite3", **(env or {})}
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=300)


def test_cli_migrate_seed_twice_and_expire(tmp_path):
    assert _cli(tmp_path, "migrate").returncode == 0
    first = _cli(tmp_path, "seed")
    assert first.returncode == 0, first.stderr
    assert "'members': 50" in first.stdout
    second = _cli(tmp_path, "seed")
    assert "'members': 0" in second.stdout and "'purchases': 0" in second.stdout
    expire = _cli(tmp_path, "expire")
    assert expire.returncode == 0 and "expired 0 points" in expire.stdout
    future = _cli(tmp_path, "expire", "--as-of", "2999-01-01T00:00:00+08:00")
    assert future.returncode != 0
    keys = _cli(tmp_path, "integration-key", "list")
    assert "demo-pos" in keys.stdout


def test_production_refuses_default_secrets(tmp_path):
    result = _cli(tmp_path, "migrate", env={"MALLPOINTS_ENV": "production"})
    assert result.returncode != 0 and "MALLPOINTS_SECRET_KEY" in (result.stderr + result.stdout)
    result = _cli(tmp_path, "migrate", env={
        "MALLPOINTS_ENV": "production", "MALLPOINTS_SECRET_KEY": "x" * 40, "MALLPOINTS_ADMIN_PASSWORD": "s3cret-pw",
        "MALLPOINTS_TEST_SMS_CODE": "123456",
    })
    assert result.returncode != 0 and "MALLPOINTS_TEST_SMS_CODE" in (result.stderr + result.stdout)


async def test_rate_limiter_on_redis_and_without(backend, redis):  # the installation id names the keys
    from redis.asyncio import from_url

    from api.services import ratelimit

    key = f"test:{os.getpid()}"
    assert [await ratelimit.allow(redis, key, 3, 60) for _ in range(5)] == [True, True, True, False, False]
    assert await redis_keys(redis, f"{await ratelimit.bucket_prefix(key)}*")  # counted in Redis, not in the process
    local = unique("local")  # the process table outlives the test (it runs once per Redis kind)
    assert [await ratelimit.allow(None, local, 2, 60) for _ in range(3)] == [True, True, False]
    dead = from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    assert await ratelimit.allow(dead, unique("dead"), 1, 60) is True  # falls back, never fails the call
    await dead.aclose()


