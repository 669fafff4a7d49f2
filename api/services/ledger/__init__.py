"""The points ledger: the code that writes points_entry, points_lot, points_lot_move and the cached
balance (the exceptions are the common purchase earn on PostgreSQL, `purchases.sql.EARN`, which
makes the same writes as `credit` in one statement and is compared with the general path by
tests/test_earn_paths.py, and a lucky-draw play on PostgreSQL, `draws.sql.play_writes`, which makes
the writes of `debit` and `credit` in one statement and is compared with the general path by
tests/test_draw_paths.py). Every move here runs inside a transaction opened by the caller through
`api.db.transaction()`, on an account it locked with `lock_account`.

Invariants (checked by tests after every move, see docs/ledger.md):
  account.balance = Σ entry.points = Σ lot.remaining
  lot.remaining   = lot.points + Σ move.delta (over the lot's moves)
  entry.points    = Σ lot.points created by the entry + Σ move.delta (over the entry's moves)
  a DEBT lot is non-zero only while the balance is negative, and then equals it.

A move that changes what the one-statement earn reads in subqueries (due or held points) under the
account lock also writes the account row, so that the earn can tell that its snapshot is stale.

Modules: `accounts` (the lock and what it reads), `moves` (credit, debit, give back), `holds`,
`expiry` (before a spend, and the set-based run), `reads`, and `sql` (the raw SQL, each statement
with why it is SQL).
"""
from api.services.ledger.accounts import (
    EXPIRE_REASON,
    KINDS,
    Entry,
    LockedAccount,
    expiry_for,
    lock_account,
    lock_account_row,
    shortfall,
)
from api.services.ledger.expiry import EXPIRY_CHUNK, ExpiryResult, expire_account, expire_due
from api.services.ledger.holds import capture, hold, release
from api.services.ledger.moves import credit, debit, give_back
from api.services.ledger.reads import balances, entries_page, entry_with_owner, expiring_soon, held_points
from api.services.ledger.sql import sql_ids

__all__ = [
    "EXPIRE_REASON", "EXPIRY_CHUNK", "KINDS", "Entry", "ExpiryResult", "LockedAccount", "balances",
    "capture", "credit", "debit", "entries_page", "entry_with_owner", "expire_account", "expire_due",
    "expiring_soon", "expiry_for", "give_back", "held_points", "hold", "lock_account", "lock_account_row", "release",
    "shortfall", "sql_ids",
]
