"""node(id:) comes from one registry that every domain fills, and lists resolve related objects in batches."""
from __future__ import annotations

import contextvars
import logging
from contextlib import contextmanager

import strawberry
from graphql import GraphQLObjectType
from strawberry.types.base import StrawberryObjectDefinition

from api.resolvers.nodes import NOT_FETCHABLE, REGISTRY
from api.schema import admin, public
from api.schema.ids import from_global_id
from tests.conftest import unique
from tests.mall_helpers import create_product, funded_member, later, operator_token


def node_types(schema: strawberry.Schema) -> set[str]:
    node = schema._schema.get_type("Node")
    return {t.name for t in schema._schema.type_map.values()
            if isinstance(t, GraphQLObjectType) and node in t.interfaces}


def test_every_node_type_has_a_fetcher_or_is_named_as_not_fetchable():
    every = node_types(public.schema) | node_types(admin.schema)
    missing = every - REGISTRY.keys() - NOT_FETCHABLE
    assert not missing, f"Node types without a node(id:) fetcher: {sorted(missing)}"
    assert not REGISTRY.keys() & NOT_FETCHABLE
    assert NOT_FETCHABLE <= every, "NOT_FETCHABLE names a type that is not a Node any more"
    assert set(REGISTRY) <= every, "a fetcher for a type that no schema has"


def test_both_schemas_resolve_node_through_the_registry():
    for schema in (public.schema, admin.schema):
        query = schema.get_type_by_name("Query")
        assert isinstance(query, StrawberryObjectDefinition)
        field = query.get_field("node")
        assert field is not None and field.base_resolver is not None
        assert field.base_resolver.wrapped_func.__module__ == "api.resolvers.nodes"


# --- DataLoaders: a page of plays costs the same number of statements for 2 rows as for 6 -------------------

GAME_CREATE = """mutation($i: DrawGameCreateInput!) { drawGameCreate(input: $i) { game { id } userErrors { code } } }"""
PLAY = """mutation($i: LuckyDrawPlayInput!) { luckyDrawPlay(input: $i) { play { id } userErrors { code } } }"""
PLAYS = """query($game: ID!, $first: Int!) { drawPlays(first: $first, gameId: $game) { edges { node {
  memberPhoneMasked order { orderNo product { name } vouchers { code } payment { status } } game { name }
  prize { name } } } } }"""


_counting: contextvars.ContextVar[bool] = contextvars.ContextVar("counting", default=False)


class _Statements(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if _counting.get():  # this request's statements, not a background task's (gate reconciliation …)
            self.count += 1


@contextmanager
def counted_statements():
    """Counts the SQL statements Tortoise's clients send (they log each one at DEBUG) from the task
    that enters this block; the in-process ASGI client runs the request in that task's context."""
    logger = logging.getLogger("tortoise.db_client")
    handler, level = _Statements(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    token = _counting.set(True)
    try:
        yield handler
    finally:
        _counting.reset(token)
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_a_page_of_plays_loads_orders_and_members_in_batches(api):
    op = await operator_token(api)
    coupon = await create_product(api, op, kind="COUPON", stock=0)
    game = (await api.post(GAME_CREATE, {"i": {
        "name": unique("转盘"), "kind": "WHEEL", "costPoints": 0, "startsAt": later(minutes=-1), "endsAt": later(days=1),
        "prizes": [{"name": "优惠券", "kind": "COUPON", "productId": coupon["id"], "weight": 1, "stock": 100}]}},
        token=op, admin=True))["data"]["drawGameCreate"]["game"]
    for _ in range(6):  # six members, one play each: six orders, six members behind the page
        _, token = await funded_member(0)
        played = await api.post(PLAY, {"i": {"gameId": game["id"], "idempotencyKey": unique("K")}}, token=token)
        assert played["data"]["luckyDrawPlay"]["userErrors"] == []
    costs = {}
    for first in (2, 6):
        await api.post(PLAYS, {"game": game["id"], "first": first}, token=op, admin=True)  # warm caches (tiers …)
        with counted_statements() as statements:
            result = await api.post(PLAYS, {"game": game["id"], "first": first}, token=op, admin=True)
        edges = result["data"]["drawPlays"]["edges"]
        assert len(edges) == first and all(e["node"]["order"]["vouchers"] for e in edges), result
        assert all("*" in e["node"]["memberPhoneMasked"] for e in edges)
        costs[first] = statements.count
    assert costs[2] > 0, "the statement counter saw nothing"
    # (a cache that expires between the two pages may add a statement to either: never more with more rows)
    assert costs[6] <= costs[2], f"statements grow with the page: {costs}"


async def test_the_loaders_written_on_the_models_answer_as_the_services_do(api):
    """orders_by_id and payments_by_order (Tortoise queries in api/resolvers/loaders.py) give the same
    records as the services' one-at-a-time reads, for an order with a payment and one without."""
    from api.resolvers import loaders
    from api.services import mall
    from tests.mall_helpers import CHECKOUT, REDEEM

    op = await operator_token(api)
    paid = await create_product(api, op, pointsPrice=100, cashPriceFen=990)
    free = await create_product(api, op, pointsPrice=100)
    _, token = await funded_member(1000)
    ids = []
    for query, product in ((CHECKOUT, paid), (REDEEM, free)):
        result = await api.post(query, {"i": {"productId": product["id"], "idempotencyKey": unique("K")}}, token=token)
        payload = next(iter(result["data"].values()))
        assert not payload["userErrors"], payload
        ids.append(from_global_id(payload["order"]["id"])[1])
    orders = await loaders.orders_by_id(ids + [10**12])
    assert orders == {i: await mall.order(i) for i in ids}
    payments = await loaders.payments_by_order(ids)
    assert payments == {ids[0]: await mall.payment_for_order(ids[0])} and await mall.payment_for_order(ids[1]) is None


async def test_play_counts_match_the_service(api):
    """DrawGame.myDay counts a page of games in one batch; the counts are draws.member_day's."""
    from api.resolvers import loaders
    from api.services import draws, tiers

    op = await operator_token(api)
    games = []
    for cost in (0, 0):
        games.append((await api.post(GAME_CREATE, {"i": {
            "name": unique("转盘"), "kind": "WHEEL", "costPoints": cost, "startsAt": later(minutes=-1),
            "endsAt": later(days=1), "freePlays": [{"tierCode": "*", "playsPerDay": 1}],
            "prizes": [{"name": "谢谢参与", "kind": "NOTHING", "weight": 1}]}},
            token=op, admin=True))["data"]["drawGameCreate"]["game"])
    member_id, token = await funded_member(0)
    for game, times in zip(games, (3, 1), strict=True):
        for _ in range(times):
            played = await api.post(PLAY, {"i": {"gameId": game["id"], "idempotencyKey": unique("K")}}, token=token)
            assert played["data"]["luckyDrawPlay"]["userErrors"] == []
    ids = [from_global_id(g["id"])[1] for g in games]
    counts = await loaders.count_plays([(member_id, i) for i in ids] + [(member_id, 999_999)])
    tier = (await tiers.all_tiers())[0].code
    for game_id in ids:
        day = await draws.member_day(member_id, await draws.game(game_id), tier)
        c = counts[(member_id, game_id)]
        assert (c.total, c.today) == (day.plays_total, day.plays_today)
        allowance = (await draws.game(game_id)).free_allowance(tier)
        assert max(0, allowance - c.free_today) == day.free_plays_left
    assert [counts[(member_id, i)].total for i in ids] == [3, 1] and (member_id, 999_999) not in counts
    listed = await api.post("{ drawGames(first: 100) { edges { node { id myDay { playsToday freePlaysLeft"
                            " playsTotal } } } } }", token=token)
    days = {e["node"]["id"]: e["node"]["myDay"] for e in listed["data"]["drawGames"]["edges"]}
    assert days[games[0]["id"]] == {"playsToday": 3, "freePlaysLeft": 0, "playsTotal": 3}
    assert days[games[1]["id"]] == {"playsToday": 1, "freePlaysLeft": 0, "playsTotal": 1}
