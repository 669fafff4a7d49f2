"""Lucky-draw races on real PostgreSQL."""
from __future__ import annotations

import asyncio

import pytest

from api import db
from api.schema.ids import from_global_id
from api.services import draws, installation
from tests.conftest import unique
from tests.mall_helpers import funded_member, operator_token
from tests.test_draws import PLAY, new_game

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


async def test_200_parallel_plays_grant_a_single_top_prize_once(api, gate):
    op = await operator_token(api)
    game = await new_game(api, op, [
        {"name": "头奖", "kind": "POINTS", "points": 888, "weight": 1000, "stock": 1},
        {"name": "小奖", "kind": "POINTS", "points": 5, "weight": 1000, "stock": 20},
        {"name": "谢谢参与", "kind": "NOTHING", "weight": 1},
    ], costPoints=10)
    players = [await funded_member(10) for _ in range(200)]
    results = await asyncio.gather(*(
        api.post(PLAY, {"i": {"gameId": game["id"], "idempotencyKey": unique("K")}}, token=token)
        for _, token in players))
    payloads = [r["data"]["luckyDrawPlay"] for r in results]
    assert all(not p["userErrors"] for p in payloads), [p["userErrors"] for p in payloads if p["userErrors"]][:3]
    won = [p["play"]["prize"]["name"] for p in payloads]
    assert won.count("头奖") == 1 and won.count("小奖") == 20 and won.count("谢谢参与") == 179
    game_pk = from_global_id(game["id"])[1]
    stock = {r["name"]: r["stock"] for r in await db.fetch("SELECT name, stock FROM draw_prize WHERE game_id = $1",
                                                           game_pk)}
    assert stock == {"头奖": 0, "小奖": 0, "谢谢参与": None}
    ids = ", ".join(str(m) for m, _ in players)
    balances = {r["member_id"]: int(r["balance"]) for r in await db.fetch(
        f"SELECT member_id, balance FROM points_account WHERE member_id IN ({ids})")}
    by_member = {m: w for (m, _), w in zip(players, won, strict=True)}
    for member_id, balance in balances.items():
        assert balance == {"头奖": 888, "小奖": 5, "谢谢参与": 0}[by_member[member_id]]
    if gate is not None:
        top = next(p for p in game["prizes"] if p["name"] == "头奖")
        key = await installation.key(draws.gate_key(game_pk, from_global_id(top['id'])[1]))
        assert int(await gate.get(key)) == 0
