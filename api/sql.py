"""The infrastructure's raw SQL: statements that belong to no domain, each with why it is SQL.

Placeholders are PostgreSQL's `$1, $2…` (`api.db.Tx` turns them into SQLite's `?1, ?2…`).
"""
from __future__ import annotations

# Why SQL: the health check asks the database for the cheapest answer there is (no table, no model).
HEALTH = "SELECT 1 AS ok"

# Why SQL: a transaction-scoped advisory lock (PostgreSQL) on (space, key) for a thing that has no row to lock;
# the ORM has no advisory locks.
ADVISORY_XACT_LOCK = "SELECT pg_advisory_xact_lock($1, hashtext($2))"


def writes_in_one_round_trip(ctes: list[str]) -> str:
    """Why SQL: several independent writes (`name AS (statement)`) as the data-modifying CTEs of one
    statement, one round trip instead of one each (`api.db.Tx.execute_many`)."""
    return "WITH " + ", ".join(ctes) + " SELECT 1"
