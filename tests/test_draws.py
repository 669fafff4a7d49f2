"""Lucky draws over GraphQL, with the Redis gate in front and on the database alone."""
from __future__ import annotations

from collections import Counter
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from api import db
from api.schema.ids import from_global_id
from api.services import clock, draws, installation, mall, members, signing
from tests.conftest import unique
from tests.mall_helpers import create_product, funded_member, later, operator_token, state

GAME_CREATE = """mutation($i: DrawGameCreateInput!) { drawGameCreate(input: $i) {
  game { id name costPoints open prizes { id name kind weight stockLeft } freePlays { tierCode playsPerDay } }
  userErrors { code field message } } }"""
GAME_UPDATE = """mutation($i: DrawGameUpdateInput!) { drawGameUpdate(input: $i) { game { status } userErrors { code } } }"""
PRIZE_UPDATE = """mutation($i: DrawPrizeUpdateInput!) { drawPrizeUpdate(input: $i) {
  game { prizes { id stockLeft weight } } userErrors { code field } } }"""
PLAY = """mutation($i: LuckyDrawPlayInput!) { luckyDrawPlay(input: $i) {
  play { id free costPoints pointsGranted roll candidateWeights redraws prize { id name kind }
         order { vouchers { code kind } } game { id } }
  pointsBalance userErrors { code field message } } }"""
STATS = """query($id: ID!) { node(id: $id) { ... on DrawGame { stats { plays players freePlays pointsConsumed
  pointsGranted prizes { prize { name } granted stockLeft } } } } }"""


async def new_game(api, op: str, prizes: list[dict], **terms) -> dict:
    data = {"name": unique("转盘"), "kind": "WHEEL", "costPoints": 10, "startsAt": later(minutes=-1),
            "endsAt": later(days=1), "prizes": prizes, **terms}
    result = (await api.post(GAME_CREATE, {"i": data}, token=op, admin=True))["data"]["drawGameCreate"]
    assert not result["userErrors"], result
    return result["game"]


async def play(api, token: str, game: dict, key: str | None = None) -> dict:
    result = await api.post(PLAY, {"i": {"gameId": game["id"], "idempotencyKey": key or unique("K")}}, token=token)
    return result["data"]["luckyDrawPlay"]


async def test_a_play_charges_draws_and_grants_in_one_step(api, gate):
    op = await operator_token(api)
    coupon = await create_product(api, op, kind="COUPON", stock=0)
    game = await new_game(api, op, [
        {"name": "50积分", "kind": "POINTS", "points": 50, "weight": 1, "stock": 1},
        {"name": "优惠券", "kind": "COUPON", "productId": coupon["id"], "weight": 1, "stock": 1},
        {"name": "谢谢参与", "kind": "NOTHING", "weight": 1},
    ])
    member_id, token = await funded_member(100)
    won: Counter = Counter()
    for _ in range(5):
        result = await play(api, token, game)
        assert result["userErrors"] == [], result
        p = result["play"]
        won[p["prize"]["kind"]] += 1
        assert p["costPoints"] == 10 and not p["free"]
        assert 0 <= p["roll"] < sum(w for _, w in p["candidateWeights"])
        if p["prize"]["kind"] == "COUPON":
            assert p["order"]["vouchers"][0]["kind"] == "COUPON"
        assert p["pointsGranted"] == (50 if p["prize"]["kind"] == "POINTS" else 0)
    # Each limited prize is drawn at most once; the rest is "thanks for playing".
    assert won["POINTS"] <= 1 and won["COUPON"] <= 1 and sum(won.values()) == 5
    assert (await state(member_id))["balance"] == 100 - 50 + 50 * won["POINTS"]
    stats = (await api.post(STATS, {"id": game["id"]}, token=op, admin=True))["data"]["node"]["stats"]
    assert (stats["plays"], stats["pointsConsumed"], stats["pointsGranted"]) == (5, 50, 50 * won["POINTS"])


async def test_a_prize_out_of_stock_is_never_drawn(api, gate):
    op = await operator_token(api)
    game = await new_game(api, op, [
        {"name": "大奖", "kind": "POINTS", "points": 1000, "weight": 1_000_000, "stock": 1},
        {"name": "谢谢参与", "kind": "NOTHING", "weight": 1},
    ], costPoints=0)
    _, token = await funded_member(0)
    kinds = [(await play(api, token, game))["play"]["prize"]["name"] for _ in range(4)]
    assert kinds == ["大奖", "谢谢参与", "谢谢参与", "谢谢参与"]
    # The audit shows that only the in-stock prize was a candidate after the first play.
    plays = await db.fetch("SELECT candidates FROM draw_play WHERE game_id = $1 ORDER BY id",
                           from_global_id(game["id"])[1])
    assert [len(__import__("json").loads(r["candidates"])) for r in plays] == [2, 1, 1, 1]


async def test_all_prizes_gone_refuses_without_charging(api, gate):
    op = await operator_token(api)
    game = await new_game(api, op, [{"name": "唯一", "kind": "POINTS", "points": 5, "weight": 1, "stock": 1}])
    member_id, token = await funded_member(100)
    assert (await play(api, token, game))["userErrors"] == []
    before = await state(member_id)
    result = await play(api, token, game)
    assert result["userErrors"][0]["code"] == "OUT_OF_STOCK" and await state(member_id) == before


async def test_free_plays_by_tier_then_paid_then_limits(api, gate):
    op = await operator_token(api)
    game = await new_game(api, op, [{"name": "谢谢参与", "kind": "NOTHING", "weight": 1}], costPoints=20,
                          freePlays=[{"tierCode": "GOLD", "playsPerDay": 2}, {"tierCode": "*", "playsPerDay": 0}],
                          dailyLimit=3, totalLimit=4, endsAt=later(days=3))
    member_id, token = await funded_member(100, "GOLD")
    results = [await play(api, token, game) for _ in range(3)]
    assert [r["play"]["free"] for r in results] == [True, True, False]
    assert results[2]["pointsBalance"] == 80
    before = await state(member_id)
    over = await play(api, token, game)
    assert over["userErrors"][0]["code"] == "PLAY_LIMIT_REACHED" and await state(member_id) == before
    clock.freeze(clock.now() + timedelta(days=1))
    token = signing.issue_token("member", member_id, 3600)
    assert (await play(api, token, game))["play"]["free"] is True
    total = await play(api, token, game)
    assert total["userErrors"][0]["code"] == "PLAY_LIMIT_REACHED"
    day = await api.post('query($id: ID!) { node(id: $id) { ... on DrawGame { myDay { playsToday freePlaysLeft'
                         ' playsTotal } } } }', {"id": game["id"]}, token=token)
    assert day["data"]["node"]["myDay"] == {"playsToday": 1, "freePlaysLeft": 1, "playsTotal": 4}


async def test_refusals_change_nothing(api, gate):
    op = await operator_token(api)
    game = await new_game(api, op, [{"name": "奖", "kind": "POINTS", "points": 5, "weight": 1, "stock": 3}],
                          costPoints=50)
    member_id, token = await funded_member(20)
    before = await state(member_id)
    poor = await play(api, token, game)
    assert poor["userErrors"][0]["code"] == "INSUFFICIENT_POINTS" and await state(member_id) == before
    prize_stock = await db.fetch("SELECT stock FROM draw_prize WHERE game_id = $1", from_global_id(game["id"])[1])
    assert prize_stock[0]["stock"] == 3
    if gate is not None:  # the gate's reservation was given back
        key = draws.gate_key(from_global_id(game["id"])[1], from_global_id(game["prizes"][0]["id"])[1])
        assert int(await gate.get(await installation.key(key))) == 3
    later_game = await new_game(api, op, [{"name": "x", "kind": "NOTHING", "weight": 1}],
                                startsAt=later(days=1), endsAt=later(days=2))
    assert (await play(api, token, later_game))["userErrors"][0]["code"] == "GAME_NOT_OPEN"
    paused = await new_game(api, op, [{"name": "x", "kind": "NOTHING", "weight": 1}], costPoints=0)
    await api.post(GAME_UPDATE, {"i": {"gameId": paused["id"], "status": "PAUSED"}}, token=op, admin=True)
    draws.forget()
    assert (await play(api, token, paused))["userErrors"][0]["code"] == "GAME_NOT_OPEN"
    assert (await play(api, token, {"id": "eHl6"}))["userErrors"][0]["code"] == "NOT_FOUND"
    assert await state(member_id) == before


async def test_idempotent_play(api, gate):
    op = await operator_token(api)
    game = await new_game(api, op, [{"name": "奖", "kind": "POINTS", "points": 5, "weight": 1, "stock": 5}])
    member_id, token = await funded_member(100)
    key = unique("K")
    first = await play(api, token, game, key)
    again = await play(api, token, game, key)
    assert again["play"]["id"] == first["play"]["id"]
    assert (await state(member_id))["balance"] == 95
    prize = await db.fetch("SELECT stock FROM draw_prize WHERE game_id = $1", from_global_id(game["id"])[1])
    assert prize[0]["stock"] == 4
    if gate is not None:
        key_name = draws.gate_key(from_global_id(game["id"])[1], from_global_id(game["prizes"][0]["id"])[1])
        assert int(await gate.get(await installation.key(key_name))) == 4


async def test_operators_define_games_carefully(api):
    op = await operator_token(api)
    goods = await create_product(api, op, kind="GOODS")
    coupon = await create_product(api, op, kind="COUPON")
    bad_prizes = [
        [{"name": "x", "kind": "POINTS", "weight": 1}],
        [{"name": "x", "kind": "NOTHING", "weight": 0}],
        [{"name": "x", "kind": "GIFT", "productId": coupon["id"], "weight": 1}],
        [{"name": "x", "kind": "COUPON", "productId": goods["id"], "weight": 1}],
        [{"name": "x", "kind": "NOTHING", "weight": 1, "points": 3}],
        [],
    ]
    for prizes in bad_prizes:
        data = {"name": "x", "kind": "WHEEL", "costPoints": 0, "startsAt": later(), "endsAt": later(days=1),
                "prizes": prizes}
        result = await api.post(GAME_CREATE, {"i": data}, token=op, admin=True)
        assert result["data"]["drawGameCreate"]["userErrors"][0]["code"] == "INVALID_INPUT", prizes
    game = await new_game(api, op, [{"name": "礼品", "kind": "GIFT", "productId": goods["id"], "weight": 1,
                                     "stock": 2}])
    restock = await api.post(PRIZE_UPDATE, {"i": {"prizeId": game["prizes"][0]["id"], "stockDelta": 3, "weight": 7}},
                             token=op, admin=True)
    assert restock["data"]["drawPrizeUpdate"]["game"]["prizes"][0] == {
        "id": game["prizes"][0]["id"], "stockLeft": 5, "weight": 7}
    too_far = await api.post(PRIZE_UPDATE, {"i": {"prizeId": game["prizes"][0]["id"], "stockDelta": -6}},
                             token=op, admin=True)
    assert too_far["data"]["drawPrizeUpdate"]["userErrors"][0]["code"] == "OUT_OF_STOCK"
    audit = await db.fetch("SELECT action FROM audit_log WHERE target_type IN ('draw_game', 'draw_prize')"
                           " AND target_id IN ($1, $2)", str(from_global_id(game["id"])[1]),
                           str(from_global_id(game["prizes"][0]["id"])[1]))
    assert {r["action"] for r in audit} >= {"draw_game.create", "draw_prize.update"}


async def test_members_see_their_own_plays_only(api):
    op = await operator_token(api)
    game = await new_game(api, op, [{"name": "谢谢参与", "kind": "NOTHING", "weight": 1}], costPoints=0)
    _, token = await funded_member(0)
    played = await play(api, token, game)
    mine = await api.post("{ viewer { member { drawPlays(first: 5) { edges { node { id prize { name } } } } } } }",
                          token=token)
    assert [e["node"]["id"] for e in mine["data"]["viewer"]["member"]["drawPlays"]["edges"]] == [played["play"]["id"]]
    _, stranger = await funded_member(0)
    theirs = await api.post('query($id: ID!) { node(id: $id) { id } }', {"id": played["play"]["id"]}, token=stranger)
    assert theirs["data"]["node"] is None
    listed = await api.post("{ drawGames(first: 100) { edges { node { id open prizes { name } } } } }", token=stranger)
    assert game["id"] in [e["node"]["id"] for e in listed["data"]["drawGames"]["edges"]]


async def test_play_runs_alone_in_a_request(api):
    _, token = await funded_member(0)
    query = ('mutation { a: luckyDrawPlay(input: {gameId: "x", idempotencyKey: "1"}) { userErrors { code } }'
             ' b: luckyDrawPlay(input: {gameId: "x", idempotencyKey: "2"}) { userErrors { code } } }')
    assert "only field" in (await api.post(query, token=token))["errors"][0]["message"]


@given(st.lists(st.integers(min_value=1, max_value=1000), min_size=1, max_size=12), st.data())
def test_pick_follows_the_weights(weights, data):
    candidates = list(enumerate(weights))
    roll = data.draw(st.integers(min_value=0, max_value=sum(weights) - 1))
    chosen = draws.pick(candidates, roll)
    below = sum(w for i, w in candidates if i < chosen)
    assert below <= roll < below + weights[chosen]


async def test_operators_change_and_clear_a_games_limits(api):
    op = await operator_token(api)
    game = await new_game(api, op, [{"name": "谢谢参与", "kind": "NOTHING", "weight": 1}], costPoints=0, dailyLimit=1)
    _, token = await funded_member(0)
    assert (await play(api, token, game))["userErrors"] == []
    assert (await play(api, token, game))["userErrors"][0]["code"] == "PLAY_LIMIT_REACHED"
    update = """mutation($i: DrawGameUpdateInput!) { drawGameUpdate(input: $i) {
      game { dailyLimit totalLimit freePlays { tierCode } } userErrors { code field } } }"""
    cleared = await api.post(update, {"i": {"gameId": game["id"], "clear": ["dailyLimit"]}}, token=op, admin=True)
    assert cleared["data"]["drawGameUpdate"]["game"]["dailyLimit"] is None
    draws.forget()
    assert (await play(api, token, game))["userErrors"] == []
    unknown = await api.post(update, {"i": {"gameId": game["id"], "freePlays": [{"tierCode": "NOPE", "playsPerDay": 1}]}},
                             token=op, admin=True)
    assert unknown["data"]["drawGameUpdate"]["userErrors"][0]["code"] == "NOT_FOUND"
    bad = await api.post(update, {"i": {"gameId": game["id"], "clear": ["name"]}}, token=op, admin=True)
    assert bad["data"]["drawGameUpdate"]["userErrors"][0]["code"] == "INVALID_INPUT"


async def test_batches_for_a_list_of_plays_match_the_single_reads(api):
    """phones_masked and orders_by_id (the schema's DataLoader batches for DrawPlay.memberPhoneMasked and
    DrawPlay.order) answer a list of ids as the one-by-one reads do, and leave unknown ids out."""
    op = await operator_token(api)
    coupon = await create_product(api, op, kind="COUPON", stock=0)
    game = await new_game(api, op, [{"name": "优惠券", "kind": "COUPON", "productId": coupon["id"], "weight": 1}],
                          costPoints=0)
    players = [await funded_member(0) for _ in range(2)]
    for _, token in players:
        assert (await play(api, token, game))["userErrors"] == []
    plays = await draws.plays_page(member_id=None, game_id=from_global_id(game["id"])[1], limit=10, before_id=None)
    member_ids = [p.member_id for p in plays]
    order_ids = [p.order_id for p in plays]
    assert sorted(member_ids) == sorted(m for m, _ in players) and None not in order_ids
    phones = await draws.phones_masked([*member_ids, 2**40])
    assert phones == {m: (await members.get_member(m)).phone_masked for m in member_ids}
    orders = await draws.orders_by_id([*order_ids, 2**40])
    assert orders == {o: await mall.order(o) for o in order_ids}
    assert {o.member_id for o in orders.values()} == set(member_ids)
    assert await draws.phones_masked([]) == {} and await draws.orders_by_id([]) == {}
