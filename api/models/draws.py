"""Lucky draws (幸运抽奖): games, their prizes, and every play with the inputs of its draw."""
from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from api.models.ledger import PointsEntry
    from api.models.mall import MallOrder, Product
    from api.models.members import Member
    from api.models.reach import Segment



class DrawGame(Model):
    # kind: WHEEL, NINE_GRID, SCRATCH (how the client shows it; the draw is the same). cost_points per
    # play (0 allowed); free_plays (JSON {"GOLD": 2, …}: free plays per Asia/Shanghai day by tier code,
    # "*" for every tier) are used before paid ones; daily_limit / total_limit: plays per member.

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=128)
    kind = fields.CharField(max_length=12)
    cost_points = fields.BigIntField()
    free_plays = fields.TextField(default="{}")
    daily_limit = fields.IntField(null=True)
    total_limit = fields.IntField(null=True)
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField()
    status = fields.CharField(max_length=12, default="ACTIVE")  # ACTIVE PAUSED ARCHIVED
    # Only members of this segment (issue 13 item 3); null = everyone.
    segment: fields.ForeignKeyNullableRelation["Segment"] = fields.ForeignKeyField(
        "models.Segment", related_name=False, on_delete=fields.RESTRICT, null=True)
    segment_id: int | None
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "draw_game"


class DrawPrize(Model):
    # kind: POINTS (points credited), COUPON (a coupon, voucher or parking coupon of the catalogue),
    # GIFT (a physical gift: a GOODS product of the catalogue, picked up with its code), NOTHING
    # ("thanks for playing"). stock NULL: unlimited. A prize whose stock is 0 is never drawn.

    id = fields.IntField(primary_key=True)
    game: fields.ForeignKeyRelation[DrawGame] = fields.ForeignKeyField("models.DrawGame", related_name="prizes", on_delete=fields.RESTRICT)
    game_id: int
    name = fields.CharField(max_length=128)
    kind = fields.CharField(max_length=8)
    points = fields.BigIntField(null=True)
    product: fields.ForeignKeyNullableRelation[Product] = fields.ForeignKeyField("models.Product", related_name=False, on_delete=fields.RESTRICT, null=True)
    product_id: int | None
    weight = fields.IntField()
    stock = fields.BigIntField(null=True)
    stock_total = fields.BigIntField(null=True)
    position = fields.IntField(default=0)
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "draw_prize"
        indexes = (("game_id", "position"),)


class DrawPlay(Model):
    # One play, with what is needed to audit it: the prizes that could be drawn and their weights at
    # that moment (candidates, JSON), the random number drawn from the OS's CSPRNG (roll, below the
    # weights' total), and how many prizes ran out between the draw and the reservation (redraws).

    id = fields.BigIntField(primary_key=True)
    game: fields.ForeignKeyRelation[DrawGame] = fields.ForeignKeyField("models.DrawGame", related_name=False, on_delete=fields.RESTRICT)
    game_id: int
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField("models.Member", related_name=False, on_delete=fields.RESTRICT)
    member_id: int
    prize: fields.ForeignKeyRelation[DrawPrize] = fields.ForeignKeyField("models.DrawPrize", related_name=False, on_delete=fields.RESTRICT)
    prize_id: int
    free = fields.BooleanField()
    cost_points = fields.BigIntField()
    candidates = fields.TextField()
    roll = fields.BigIntField()
    redraws = fields.IntField(default=0)
    spend_entry: fields.ForeignKeyNullableRelation[PointsEntry] = fields.ForeignKeyField("models.PointsEntry", related_name=False, on_delete=fields.RESTRICT, null=True)
    spend_entry_id: int | None
    grant_entry: fields.ForeignKeyNullableRelation[PointsEntry] = fields.ForeignKeyField("models.PointsEntry", related_name=False, on_delete=fields.RESTRICT, null=True)
    grant_entry_id: int | None
    order: fields.ForeignKeyNullableRelation[MallOrder] = fields.ForeignKeyField("models.MallOrder", related_name=False, on_delete=fields.RESTRICT, null=True)
    order_id: int | None
    idempotency_key = fields.CharField(max_length=128)
    played_at = fields.DatetimeField()

    class Meta:
        table = "draw_play"
        indexes = (("game_id", "member_id", "played_at"), ("member_id", "id"), ("prize_id",))
