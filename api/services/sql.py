"""The raw SQL of the core's one-module domains (members, idempotency, integrations, staff, tiers, rate limits, the
scheduler's lease): inserts that must not fail on a unique index, and conditional updates that must
return the row they changed. Everything else in those modules goes through the Tortoise models.

Why ON CONFLICT DO NOTHING rather than the ORM's create: a unique violation aborts a PostgreSQL
transaction (the caller's whole move), and a savepoint per insert would cost a round trip more.
Placeholders are PostgreSQL's `$1, $2…` (`api.db.Tx` turns them into SQLite's `?1, ?2…`).
"""
from __future__ import annotations

# Idempotency: the claim of a key (a concurrent repeat waits here on the unique index).
CLAIM_KEY = (
    "INSERT INTO idempotency_record (scope, key, request_hash, created_at) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (scope, key) DO NOTHING RETURNING id"
)

# Idempotency: the result of every points move (draws, the mall, adjustments), stored before commit; raw
# because it is on every move's hot path (the ORM's update costs about 0.13 ms more CPU a call).
REMEMBER = "UPDATE idempotency_record SET result = $1 WHERE id = $2"

# Members: registration by phone (two first logins at once register one member).
REGISTER_MEMBER = (
    "INSERT INTO member (phone, tier_id, growth_value, tier_period_start, created_at, updated_at)"
    " VALUES ($1, $2, 0, $3, $3, $3) ON CONFLICT (phone) DO NOTHING RETURNING id"
)

# Integrations: a nonce seen for the first time (autocommit, on every signed request without Redis).
NONCE_INSERT = (
    "INSERT INTO integration_nonce (key_id, nonce, seen_at) VALUES ($1, $2, $3)"
    " ON CONFLICT (key_id, nonce) DO NOTHING RETURNING id"
)
# Integrations: a nonce older than the window used again (a conditional update returning whether it won).
NONCE_RENEW = (
    "UPDATE integration_nonce SET seen_at = $1 WHERE key_id = $2 AND nonce = $3 AND seen_at < $4 RETURNING id"
)
# Integrations: a new key unless its id is taken.
INSERT_KEY = (
    "INSERT INTO integration_key (key_id, name, secret_encrypted, created_at, scopes) VALUES ($1, $2, $3, $4, $5)"
    " ON CONFLICT (key_id) DO NOTHING RETURNING id"
)

# Staff: a new account unless its username is taken.
INSERT_STAFF = (
    "INSERT INTO merchant_staff (merchant_id, username, display_name, password_hash, active, created_at, role)"
    " VALUES ($1, $2, $3, $4, TRUE, $5, $6) ON CONFLICT (username) DO NOTHING RETURNING id"
)

# Scheduler: the lease row, created once by whichever server comes first.
LEASE_ROW = "INSERT INTO job_lease (name) VALUES ($1) ON CONFLICT (name) DO NOTHING"

# Tiers: a receipt's growth value, on the earn's general path. SQL because the update, its history row and
# (when a threshold is crossed) the upgrade go out in one round trip (`Tx.execute_many`) inside the
# receipt's transaction, after the account lock; the ORM would send them one by one.
GROWTH_UPDATE = "UPDATE member SET growth_value = $1, tier_id = $2, updated_at = $3 WHERE id = $4"
GROWTH_ENTRY = (
    "INSERT INTO growth_entry (member_id, delta, growth_after, reason, source_type, source_ref, occurred_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
TIER_UPGRADE = (
    "INSERT INTO tier_change (member_id, from_tier_id, to_tier_id, direction, growth_value, reason, occurred_at)"
    " VALUES ($1, $2, $3, 'UPGRADE', $4, $5, $6)"
)

# Rate limits kept in the database (no Redis): a window's counter per hashed key.
# Counts one hit on a key's window and returns the new count. An upsert, because two first hits on a
# key must not both insert; ON CONFLICT takes the row lock, so concurrent hits are counted one by one.
# A row whose window has ended starts again at 1.
RATE_HIT = (
    "INSERT INTO rate_counter (key_hash, expires_at, hits) VALUES ($1, $2, 1)"
    " ON CONFLICT (key_hash) DO UPDATE SET"
    " hits = CASE WHEN rate_counter.expires_at = excluded.expires_at THEN rate_counter.hits + 1 ELSE 1 END,"
    " expires_at = excluded.expires_at"
    " RETURNING hits"
)
# Gives back one hit of a window (a sign-in that succeeded); a conditional update, never below 0.
RATE_GIVE_BACK = "UPDATE rate_counter SET hits = hits - 1 WHERE key_hash = $1 AND expires_at = $2 AND hits > 0"
# Drops ended windows in one set-based statement (at most once a minute per process).
RATE_PURGE = "DELETE FROM rate_counter WHERE expires_at <= $1"

# Installation: the one row made by the first server start (two workers starting at once make one row).
INSTALLATION_CLAIM = "INSERT INTO installation (id, key, created_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING"
