from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from api.models.merchants import Merchant


class IntegrationKey(Model):
    # A signing key of an integration (POS, parking, payment). The secret is stored encrypted.

    id = fields.IntField(primary_key=True)
    key_id = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=128)
    secret_encrypted = fields.TextField()
    created_at = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)
    # What the key may do, comma-separated: pos (purchases, refunds, points payments), payment
    # (payment notifications). NULL is a key from before scopes: pos.
    scopes = fields.CharField(max_length=64, null=True)
    merchant_links: fields.ReverseRelation["IntegrationKeyMerchant"]

    class Meta:
        table = "integration_key"


class IntegrationKeyMerchant(Model):
    id = fields.IntField(primary_key=True)
    key: fields.ForeignKeyRelation["IntegrationKey"] = fields.ForeignKeyField(
        "models.IntegrationKey", related_name="merchant_links", on_delete=fields.CASCADE)
    key_id: int
    merchant: fields.ForeignKeyRelation["Merchant"] = fields.ForeignKeyField(
        "models.Merchant", related_name=False, on_delete=fields.RESTRICT)
    merchant_id: int

    class Meta:
        table = "integration_key_merchant"
        unique_together = (("key_id", "merchant_id"),)


class IntegrationNonce(Model):
    id = fields.BigIntField(primary_key=True)
    key_id = fields.CharField(max_length=64)
    nonce = fields.CharField(max_length=64)
    seen_at = fields.DatetimeField()

    class Meta:
        table = "integration_nonce"
        unique_together = (("key_id", "nonce"),)
        indexes = (("seen_at",),)
