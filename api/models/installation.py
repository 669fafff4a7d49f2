"""The installation: one row naming this database (issue 11 finding 13). Redis keys that describe rows
of this database (the flash-sale and draw gates) carry its id, so a database that is re-created or
replaced beside the same Redis never reads counters written for another one."""
from tortoise import fields
from tortoise.models import Model


class Installation(Model):
    # Always id 1 (a CHECK on PostgreSQL); `key` is random, made the first time a server starts.
    id = fields.IntField(primary_key=True)
    key = fields.CharField(max_length=32, unique=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "installation"
