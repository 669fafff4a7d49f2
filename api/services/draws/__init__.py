"""Lucky draws (幸运抽奖): operators define games and prizes (`admin`); members play (`play`).

A play (docs/draws.md):
  1. the candidates are the game's active prizes that still have stock (read from the Redis gate, or
     from the database without one, `gate`); a prize is picked by weight with `secrets.randbelow`, the
     OS's CSPRNG;
  2. a limited prize is reserved in the Redis gate first (a prize the gate says is gone is dropped and
     the draw is made again among the rest);
  3. one transaction claims the idempotency key, locks the member's account, checks the window and the
     play limits (counted under the lock), uses a free play or charges the cost, grants the prize
     (points credited, or an order with its voucher), records the play with its inputs (candidates and
     weights, the roll, the redraws), and takes the prize's stock last with a conditional update
     (Rank.PRIZE). When that update finds the prize gone, the whole transaction (the charge with it) is
     rolled back, the gate is told, and the draw is made again without it. So a prize out of stock is
     never drawn, and a play either charges and grants together or does nothing.

`games`: games and prizes and their look-ups; `reads`: plays, figures and the schema's batches;
`sql`: the statements that stay SQL.
"""
from api.services.draws.admin import (
    GAME_KINDS,
    MAX_PRIZES,
    MAX_WEIGHT,
    PRIZE_KINDS,
    STATUSES,
    PrizeData,
    create_game,
    update_game,
    update_prize,
)
from api.services.draws.games import CACHE_SECONDS, GameInfo, PrizeInfo, forget, game, games_by_id, games_page
from api.services.draws.gate import gate_key, reload_prize_gate
from api.services.draws.play import PlayResult, pick, play
from api.services.draws.reads import (
    GameStats,
    MemberDay,
    PlayInfo,
    PrizeStats,
    member_day,
    orders_by_id,
    phones_masked,
    play_by_id,
    plays_page,
    stats,
)

__all__ = [
    "GAME_KINDS", "MAX_PRIZES", "MAX_WEIGHT", "PRIZE_KINDS", "STATUSES", "PrizeData", "create_game", "update_game",
    "update_prize", "CACHE_SECONDS", "GameInfo", "PrizeInfo", "forget", "game", "games_by_id", "games_page",
    "gate_key", "reload_prize_gate", "PlayResult", "pick", "play", "GameStats", "MemberDay", "PlayInfo", "PrizeStats",
    "member_day", "orders_by_id", "phones_masked", "play_by_id", "plays_page", "stats",
]
