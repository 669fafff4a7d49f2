"""Rate-limit counters kept in the database when Redis is not configured (api/services/ratelimit.py)."""
from tortoise import fields
from tortoise.models import Model


class RateCounter(Model):
    # One fixed window of one limit: hits counted until `expires_at` (unix seconds), then it starts
    # again at 1. The key is a hash, so no username or address is stored.

    key_hash = fields.CharField(max_length=64, primary_key=True)
    expires_at = fields.BigIntField()
    hits = fields.IntField()

    class Meta:
        table = "rate_counter"
