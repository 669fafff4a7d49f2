"""Lucky-draw types: games, prizes, plays; inputs and payloads."""
from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Optional

import strawberry
from strawberry.types import Info

from api.schema.base import Node, global_id
from api.schema.errors import UserError
from api.schema.mall.types import MallOrder, Product, ProductStatus
from api.services import clock, draws
from api.services.errors import forbidden


@strawberry.enum(description="How the client shows the game; the draw is the same.")
class DrawGameKind(Enum):
    WHEEL = "WHEEL"
    NINE_GRID = "NINE_GRID"
    SCRATCH = "SCRATCH"


@strawberry.enum(description="POINTS credited; COUPON (a coupon or voucher of the mall); GIFT (a physical gift, "
                 "picked up with its code); NOTHING (thanks for playing).")
class DrawPrizeKind(Enum):
    POINTS = "POINTS"
    COUPON = "COUPON"
    GIFT = "GIFT"
    NOTHING = "NOTHING"


@strawberry.type
class DrawPrize(Node):
    pk: strawberry.Private[int]
    info: strawberry.Private[draws.PrizeInfo]
    name: str
    kind: DrawPrizeKind
    points: Optional[int]
    weight: int = strawberry.field(description="The chance of a prize is its weight over the weights of the prizes "
                                               "still in stock.")
    stock_left: Optional[int] = strawberry.field(description="null: unlimited.")
    position: int
    active: bool

    @classmethod
    def of(cls, p: draws.PrizeInfo) -> "DrawPrize":
        return cls(id=global_id("DrawPrize", p.id), pk=p.id, info=p, name=p.name,
                   kind=DrawPrizeKind(p.kind), points=p.points, weight=p.weight, stock_left=p.stock,
                   position=p.position, active=p.active)

    @strawberry.field
    async def product(self, info: Info) -> Optional[Product]:
        if self.info.product_id is None:
            return None
        return Product.of(await info.context.loaders.product.load(self.info.product_id))


@strawberry.type
class FreePlays:
    tier_code: str = strawberry.field(description="A tier's code, or * for every tier.")
    plays_per_day: int


@strawberry.type
class DrawPrizeStats:
    prize: DrawPrize
    granted: int
    stock_left: Optional[int]


@strawberry.type(description="For operators: what a game took and gave.")
class DrawGameStats:
    plays: int
    players: int
    free_plays: int
    points_consumed: int
    points_granted: int
    prizes: list[DrawPrizeStats]


@strawberry.type
class MemberDrawDay:
    plays_today: int
    free_plays_left: int
    plays_total: int


@strawberry.type(description="幸运抽奖: a wheel, a nine-grid or a scratch card.")
class DrawGame(Node):
    pk: strawberry.Private[int]
    info: strawberry.Private[draws.GameInfo]
    name: str
    kind: DrawGameKind
    cost_points: int
    daily_limit: Optional[int]
    total_limit: Optional[int]
    starts_at: datetime
    ends_at: datetime
    status: ProductStatus
    prizes: list[DrawPrize]
    free_plays: list[FreePlays]
    segment_pk: strawberry.Private[Optional[int]] = None  # the `segment` field of the operators' schema only

    @classmethod
    def of(cls, g: draws.GameInfo) -> "DrawGame":
        return cls(id=global_id("DrawGame", g.id), pk=g.id, info=g, name=g.name,
                   kind=DrawGameKind(g.kind), cost_points=g.cost_points, daily_limit=g.daily_limit,
                   total_limit=g.total_limit, starts_at=g.starts_at, ends_at=g.ends_at, status=ProductStatus(g.status),
                   prizes=[DrawPrize.of(p) for p in g.prizes if p.active],
                   free_plays=[FreePlays(tier_code=k, plays_per_day=v) for k, v in sorted(g.free_plays.items())],
                   segment_pk=g.segment_id)

    @strawberry.field
    def open(self) -> bool:
        return self.info.open(clock.now())

    @strawberry.field(description="The signed-in member's plays today, free plays left and plays in all.")
    async def my_day(self, info: Info) -> Optional[MemberDrawDay]:
        member_id = info.context.caller.member_id
        if member_id is None:
            return None
        record = await info.context.loaders.member.load(member_id)
        plays = await info.context.loaders.play_counts.load((member_id, self.pk))
        allowance = self.info.free_allowance((await info.context.loaders.tier.load(record.tier_id)).code)
        return MemberDrawDay(plays_today=plays.today, free_plays_left=max(0, allowance - plays.free_today),
                             plays_total=plays.total)

    @strawberry.field(description="Operators only.")
    async def stats(self, info: Info) -> DrawGameStats:
        info.context.require_operator()
        s = await draws.stats(self.info)
        prizes = {p.id: p for p in self.info.prizes}
        return DrawGameStats(plays=s.plays, players=s.players, free_plays=s.free_plays,
                             points_consumed=s.points_consumed, points_granted=s.points_granted,
                             prizes=[DrawPrizeStats(prize=DrawPrize.of(prizes[x.prize_id]), granted=x.granted,
                                                    stock_left=x.stock_left) for x in s.prizes])


@strawberry.type(description="One play and its result, with the inputs of its draw for audit.")
class DrawPlay(Node):
    pk: strawberry.Private[int]
    info: strawberry.Private[draws.PlayInfo]
    free: bool
    cost_points: int
    points_granted: int
    played_at: datetime
    roll: int = strawberry.field(description="The CSPRNG's number, below the candidates' total weight.")
    candidate_weights: list[list[int]] = strawberry.field(
        description="[prize number, weight] of the prizes that could be drawn, in draw order (prize numbers are "
                    "the pk of DrawPrize ids).")
    redraws: int = strawberry.field(description="Prizes that ran out between the draw and the reservation.")
    won: strawberry.Private[Optional[draws.PrizeInfo]] = None  # the prize as the play just booked it

    @classmethod
    def of(cls, p: draws.PlayInfo, won: Optional[draws.PrizeInfo] = None) -> "DrawPlay":
        return cls(id=global_id("DrawPlay", p.id), pk=p.id, info=p, free=p.free,
                   cost_points=p.cost_points, points_granted=p.points_granted, played_at=p.played_at, roll=p.roll,
                   candidate_weights=p.candidates, redraws=p.redraws, won=won)

    @strawberry.field
    async def game(self, info: Info) -> DrawGame:
        return DrawGame.of(await info.context.loaders.draw_game.load(self.info.game_id))

    @strawberry.field
    async def prize(self, info: Info) -> DrawPrize:
        if self.won is not None:
            return DrawPrize.of(self.won)
        g = await info.context.loaders.draw_game.load(self.info.game_id)
        return DrawPrize.of(next(p for p in g.prizes if p.id == self.info.prize_id))

    @strawberry.field(description="The order holding the voucher of a COUPON or GIFT prize.")
    async def order(self, info: Info) -> Optional[MallOrder]:
        if self.info.order_id is None:
            return None
        found = await info.context.loaders.order.load(self.info.order_id)
        return MallOrder.of(found) if found else None

    @strawberry.field(description="The member who played (operators only).")
    async def member_phone_masked(self, info: Info) -> str:
        info.context.require_operator()
        record = await info.context.loaders.member.load(self.info.member_id)
        if record is None:
            raise forbidden("no such member")
        return record.phone_masked


# --- inputs and payloads -------------------------------------------------------------------------


@strawberry.input
class LuckyDrawPlayInput:
    game_id: strawberry.ID
    idempotency_key: str


@strawberry.type
class LuckyDrawPlayPayload:
    play: Optional[DrawPlay] = None
    points_balance: Optional[int] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class FreePlaysInput:
    tier_code: str
    plays_per_day: int


@strawberry.input
class DrawPrizeInput:
    name: str
    kind: DrawPrizeKind
    weight: int
    points: Optional[int] = None
    product_id: Optional[strawberry.ID] = None
    stock: Optional[int] = strawberry.field(default=None, description="null: unlimited.")
    position: int = 0


@strawberry.input
class DrawGameCreateInput:
    name: str
    kind: DrawGameKind
    cost_points: int
    free_plays: Optional[list[FreePlaysInput]] = None
    daily_limit: Optional[int] = None
    total_limit: Optional[int] = None
    starts_at: datetime
    ends_at: datetime
    prizes: list[DrawPrizeInput]
    segment_id: Optional[strawberry.ID] = strawberry.field(
        default=None, description="Only members of this segment may play it; null: every member.")


@strawberry.input
class DrawGameUpdateInput:
    game_id: strawberry.ID
    name: Optional[str] = None
    cost_points: Optional[int] = None
    free_plays: Optional[list[FreePlaysInput]] = None
    daily_limit: Optional[int] = None
    total_limit: Optional[int] = None
    starts_at: Optional[datetime] = None
    ends_at: Optional[datetime] = None
    status: Optional[ProductStatus] = None
    segment_id: Optional[strawberry.ID] = strawberry.field(
        default=None, description="Restricts it to the members of this segment (who may play it); null leaves it "
                                  "as it is; segmentId in clear opens it to every member again.")
    clear: Optional[list[str]] = strawberry.field(
        default=None, description="Any of: dailyLimit, totalLimit (no limit), segmentId (every member).")


@strawberry.input
class DrawPrizeUpdateInput:
    prize_id: strawberry.ID
    weight: Optional[int] = None
    stock_delta: int = 0
    active: Optional[bool] = None


@strawberry.type
class DrawGamePayload:
    game: Optional[DrawGame] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)
