from tortoise import fields
from tortoise.models import Model


class Merchant(Model):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=128)
    category = fields.CharField(max_length=64, null=True)
    floor = fields.CharField(max_length=16, null=True)
    # An inactive merchant (left the mall, suspended) records no new receipts or till payments.
    active = fields.BooleanField(db_default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "merchant"
        ordering = ["id"]
