"""The `postgres` and `redis` markers are applied from what a test uses (tests/conftest.py), so
`-m "not postgres"` and `-m "not redis"` select exactly the tests that run without those servers."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def collected(marker: str, *paths: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", marker, *paths],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode in (0, 5), result.stdout + result.stderr  # 5: everything deselected
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_not_postgres_deselects_every_postgres_run():
    paths = ("tests/test_orm_backends.py", "tests/test_concurrency.py")
    everything = collected("", *paths)
    without = collected("not postgres", *paths)
    only = collected("postgres", *paths)
    assert any("[postgres" in t for t in everything) and any("[sqlite" in t for t in everything)
    assert without and all("postgres" not in t for t in without)
    assert only and all("[postgres" in t for t in only)
    assert sorted(without + only) == sorted(everything)


def test_redis_marker_follows_the_fixture_and_the_gate_parameter():
    paths = ("tests/test_schema_and_cli.py", "tests/test_flash_sale.py")
    only = collected("redis", *paths)
    without = collected("not redis", *paths)
    assert any("test_rate_limiter_on_redis_and_without" in t for t in only)
    assert any("-redis]" in t for t in only)  # the Redis side of `gate`
    assert not any("-redis]" in t for t in without)
    assert not any("test_rate_limiter_on_redis_and_without" in t for t in without)
    assert any("-database]" in t for t in without)
