"""Parking: members' vehicles, car parks with their fee rules, stays and what was taken off them."""
from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from api.models.integrations import IntegrationKey
    from api.models.ledger import PointsEntry
    from api.models.mall import PointsHold
    from api.models.members import Member



class CarPark(Model):
    # A car park and its fee rules (fen): free_minutes after entry cost nothing; then hourly_fen per
    # hour or part of one, at most daily_cap_fen per 24 hours. Benefits: tier_free_minutes (JSON
    # {"GOLD": 120, …}, per member per Asia/Shanghai day), purchase_free_minutes when the member spent at
    # least purchase_min_fen at the mall that day, and points at offset_points_per_yuan, at most
    # offset_max_points per stay.

    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=128)
    free_minutes = fields.IntField()
    hourly_fen = fields.BigIntField()
    daily_cap_fen = fields.BigIntField(null=True)
    tier_free_minutes = fields.TextField(default="{}")
    purchase_min_fen = fields.BigIntField(null=True)
    purchase_free_minutes = fields.IntField(default=0)
    offset_points_per_yuan = fields.IntField()
    offset_max_points = fields.BigIntField()
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "car_park"


class Vehicle(Model):
    # A plate bound to a member (at most 3 active per member; a plate to one member at a time).
    # Binding needs the member's consent to process plate records; when and to which text is stored.

    id = fields.IntField(primary_key=True)
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField("models.Member", related_name=False, on_delete=fields.RESTRICT)
    member_id: int
    plate = fields.CharField(max_length=10)
    active = fields.BooleanField()
    consent_version = fields.CharField(max_length=16)
    consented_at = fields.DatetimeField()
    bound_at = fields.DatetimeField()
    unbound_at = fields.DatetimeField(null=True)

    class Meta:
        table = "vehicle"
        indexes = (("member_id", "active"), ("plate",))


class ParkingSession(Model):
    # A stay: from the entry the car park reports to its exit. status: OPEN, CLOSED (exit reported),
    # ABANDONED (no exit within the car park's limit; holds released). member is the plate's member at
    # entry (null: not a member's car). The fee and every discount are fixed at the exit.

    id = fields.BigIntField(primary_key=True)
    car_park: fields.ForeignKeyRelation[CarPark] = fields.ForeignKeyField("models.CarPark", related_name=False, on_delete=fields.RESTRICT)
    car_park_id: int
    plate = fields.CharField(max_length=10)
    member: fields.ForeignKeyNullableRelation[Member] = fields.ForeignKeyField("models.Member", related_name=False, on_delete=fields.RESTRICT, null=True)
    member_id: int | None
    status = fields.CharField(max_length=10)
    entry_event = fields.CharField(max_length=64)
    exit_event = fields.CharField(max_length=64, null=True)
    entered_at = fields.DatetimeField()
    exited_at = fields.DatetimeField(null=True)
    offset_points = fields.BigIntField(default=0)  # points the member chose to use (held until the exit)
    hold: fields.ForeignKeyNullableRelation[PointsHold] = fields.ForeignKeyField("models.PointsHold", related_name=False, on_delete=fields.RESTRICT, null=True)
    hold_id: int | None
    coupon_codes = fields.TextField(default="[]")  # JSON: parking coupons the member chose
    fee_fen = fields.BigIntField(null=True)
    tier_discount_fen = fields.BigIntField(null=True)
    tier_minutes_used = fields.IntField(null=True)
    purchase_discount_fen = fields.BigIntField(null=True)
    coupon_discount_fen = fields.BigIntField(null=True)
    points_discount_fen = fields.BigIntField(null=True)
    points_spent = fields.BigIntField(null=True)
    payable_fen = fields.BigIntField(null=True)
    paid = fields.BooleanField(null=True)  # the car park says the rest was paid (False: left unpaid)
    spend_entry: fields.ForeignKeyNullableRelation[PointsEntry] = fields.ForeignKeyField("models.PointsEntry", related_name=False, on_delete=fields.RESTRICT, null=True)
    spend_entry_id: int | None
    created_at = fields.DatetimeField()

    class Meta:
        table = "parking_session"
        unique_together = (("car_park_id", "entry_event"),)
        indexes = (("car_park_id", "plate", "status"), ("member_id", "entered_at"), ("status", "entered_at"), ("exited_at",))


class CarParkKey(Model):
    # Which integration keys (scope parking) may report for a car park.

    id = fields.IntField(primary_key=True)
    car_park: fields.ForeignKeyRelation[CarPark] = fields.ForeignKeyField("models.CarPark", related_name="keys", on_delete=fields.CASCADE)
    car_park_id: int
    key: fields.ForeignKeyRelation[IntegrationKey] = fields.ForeignKeyField("models.IntegrationKey", related_name=False, on_delete=fields.CASCADE)
    key_id: int
    created_at = fields.DatetimeField()

    class Meta:
        table = "car_park_key"
        unique_together = (("car_park_id", "key_id"),)
