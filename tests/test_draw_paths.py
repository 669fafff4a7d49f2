"""A lucky-draw play's one-statement writes (PostgreSQL, `draws.sql.play_writes`) and the general path
(the ledger's debit and credit, the models) write the same rows and give the same answers.

Two members set up the same way play two identical games with the same rolls: member A with the
one-statement path, member B with it switched off. The plays cover a free play (no charge), paid plays,
each kind of prize (points, limited and not; a coupon with its order and voucher; nothing), a limited
prize running out (the candidates shrink), a charge that takes two lots, and a repeat of a key. Every row
is compared with ids replaced by their position: the entries, lots and lot moves, the account, the plays,
the orders and vouchers, the idempotency key's stored result; and every answer, which must also be what
the play reads as afterwards (`node`).
"""
from __future__ import annotations

import importlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from api import db
from api.schema.ids import from_global_id
from api.services import clock
from tests.mall_helpers import create_product, funded_member, later, operator_token
from tests.test_draws import new_game

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)
draw_play = importlib.import_module("api.services.draws.play")  # the module (the package exports its `play`)

PLAY = """mutation($i: LuckyDrawPlayInput!) { luckyDrawPlay(input: $i) {
  play { id free costPoints pointsGranted roll candidateWeights redraws playedAt prize { id name kind points stockLeft }
         order { status vouchers { kind } } }
  pointsBalance userErrors { code } } }"""
NODE = """query($id: ID!) { node(id: $id) { ... on DrawPlay { id free costPoints pointsGranted roll candidateWeights
  redraws playedAt prize { id name kind points } order { status vouchers { kind } } } } }"""

# Weights 10 each: a roll of 0-9 draws the first candidate, 10-19 the second, and so on.
ROLLS = [35, 5, 25, 15, 5, 5, 5, 25, 25, 3]


async def _play_all(api, token: str, game: dict, rolls: list[int], monkeypatch) -> list[dict]:
    queue = [*rolls, 0]  # the repeat draws too, before its key finds the first result
    monkeypatch.setattr(draw_play, "draw_number", lambda n: queue.pop(0) % n)
    answers = []
    for j in range(len(rolls)):
        result = (await api.post(PLAY, {"i": {"gameId": game["id"], "idempotencyKey": f"paths-{j}"}},
                                 token=token))["data"]["luckyDrawPlay"]
        assert result["userErrors"] == [], result
        answers.append(result)
    repeat = (await api.post(PLAY, {"i": {"gameId": game["id"], "idempotencyKey": "paths-1"}},
                             token=token))["data"]["luckyDrawPlay"]
    answers.append(repeat)
    return answers


def _index(ids: list[Any]) -> dict[Any, int]:
    return {v: i for i, v in enumerate(ids)}


async def _rows(member_id: int, game: dict) -> dict[str, Any]:
    """Every row a member's plays wrote, ids replaced by their position among the member's rows."""
    game_pk = from_global_id(game["id"])[1]
    prizes = _index([from_global_id(p["id"])[1] for p in game["prizes"]])
    account = (await db.fetch("SELECT id, balance, updated_at FROM points_account WHERE member_id = $1", member_id))[0]
    entries = await db.fetch(
        "SELECT id, kind, points, balance_after, reason, source_type, source_ref, occurred_at, expires_at,"
        " operator_id, reverses_id FROM points_entry WHERE account_id = $1 ORDER BY id", account["id"])
    e = _index([r["id"] for r in entries])
    lots = await db.fetch("SELECT id, kind, entry_id, points, remaining, earned_at, expires_at FROM points_lot"
                          " WHERE account_id = $1 ORDER BY id", account["id"])
    lot = _index([r["id"] for r in lots])
    moves = await db.fetch("SELECT m.entry_id, m.lot_id, m.delta FROM points_lot_move m JOIN points_lot l"
                           " ON l.id = m.lot_id WHERE l.account_id = $1 ORDER BY m.id", account["id"])
    plays = await db.fetch("SELECT * FROM draw_play WHERE member_id = $1 ORDER BY id", member_id)
    play = _index([r["id"] for r in plays])
    orders = await db.fetch("SELECT id, member_id, product_id, flash_sale_id, channel, status, quantity, points,"
                            " cash_fen, idempotency_key, created_at, paid_at, spend_entry_id FROM mall_order"
                            " WHERE member_id = $1 ORDER BY id", member_id)
    order = _index([r["id"] for r in orders])
    vouchers = await db.fetch("SELECT order_id, kind, status, valid_from, valid_until, face_value_fen FROM voucher"
                              " WHERE member_id = $1 ORDER BY id", member_id)
    records = await db.fetch("SELECT key, request_hash, result FROM idempotency_record WHERE scope = $1 ORDER BY id",
                             f"member:{member_id}")

    def ref(value: str | None) -> str | None:
        prefix = f"draw:{game_pk}:{member_id}:"
        return None if value is None else ("<draw>" + value[len(prefix):] if value.startswith(prefix) else value)

    return {
        "account": (account["balance"], account["updated_at"]),
        "entries": [(r["kind"], r["points"], r["balance_after"], r["reason"], r["source_type"], ref(r["source_ref"]),
                     r["occurred_at"], r["expires_at"], r["operator_id"], r["reverses_id"]) for r in entries],
        "lots": [(r["kind"], e[r["entry_id"]], r["points"], r["remaining"], r["earned_at"], r["expires_at"])
                 for r in lots],
        "moves": [(e[r["entry_id"]], lot[r["lot_id"]], r["delta"]) for r in moves],
        "plays": [(prizes[r["prize_id"]], r["free"], r["cost_points"],
                   [[prizes[i], w] for i, w in json.loads(r["candidates"])], r["roll"], r["redraws"],
                   None if r["spend_entry_id"] is None else e[r["spend_entry_id"]],
                   None if r["grant_entry_id"] is None else e[r["grant_entry_id"]],
                   None if r["order_id"] is None else order[r["order_id"]], r["idempotency_key"], r["played_at"])
                  for r in plays],
        "orders": [(r["channel"], r["status"], r["quantity"], r["points"], r["cash_fen"], r["idempotency_key"],
                    r["created_at"], r["paid_at"], r["spend_entry_id"], r["flash_sale_id"]) for r in orders],
        "vouchers": [(order[r["order_id"]], r["kind"], r["status"], r["valid_from"], r["valid_until"],
                      r["face_value_fen"]) for r in vouchers],
        "results": [(r["key"], r["request_hash"] == records[0]["request_hash"],
                     {**json.loads(r["result"]), "play_id": play[json.loads(r["result"])["play_id"]]})
                    for r in records],
    }


def _answer(a: dict, game: dict) -> dict:
    """An answer with the ids replaced by positions."""
    prizes = _index([p["id"] for p in game["prizes"]])
    p = a["play"]
    return {**a, "play": {**p, "id": None, "prize": {**p["prize"], "id": prizes[p["prize"]["id"]]},
                          "candidateWeights": [[prizes[next(x["id"] for x in game["prizes"]
                                                            if from_global_id(x["id"])[1] == i)], w]
                                               for i, w in p["candidateWeights"]]}}


async def test_one_statement_and_general_paths_write_the_same_rows(api, monkeypatch):
    clock.freeze(datetime(2026, 11, 3, 4, 5, 6, 123456, tzinfo=UTC))
    op = await operator_token(api)
    coupon = await create_product(api, op, kind="COUPON", stock=0, name="路径券")
    prizes = [{"name": "50积分", "kind": "POINTS", "points": 50, "weight": 10, "stock": 3},
              {"name": "7积分", "kind": "POINTS", "points": 7, "weight": 10},
              {"name": "优惠券", "kind": "COUPON", "productId": coupon["id"], "weight": 10, "stock": 2},
              {"name": "谢谢参与", "kind": "NOTHING", "weight": 10}]
    terms = {"name": "路径转盘", "freePlays": [{"tierCode": "*", "playsPerDay": 1}], "startsAt": later(minutes=-1)}
    games = [await new_game(api, op, prizes, **terms) for _ in range(2)]
    sides = []
    for one_statement, game in zip((True, False), games, strict=True):
        monkeypatch.setattr(draw_play, "ONE_STATEMENT", one_statement)
        member_id, token = await funded_member(25)  # the third paid play takes this lot's last 5 and a grant's 5
        answers = await _play_all(api, token, game, ROLLS, monkeypatch)
        for a in answers:  # the answer as booked is what the play reads as afterwards
            node = (await api.post(NODE, {"id": a["play"]["id"]}, token=token))["data"]["node"]
            assert node == {k: v for k, v in a["play"].items() if k != "prize"} | {
                "prize": {k: v for k, v in a["play"]["prize"].items() if k != "stockLeft"}}
        sides.append(([_answer(a, game) for a in answers], await _rows(member_id, game)))
    (answers_a, rows_a), (answers_b, rows_b) = sides
    assert answers_a == answers_b
    for table in rows_a:
        assert rows_a[table] == rows_b[table], table
    kinds = {p[0] for p in rows_a["plays"]}
    assert kinds == {0, 1, 2, 3}, "every prize was won at least once"
    assert any(p[1] for p in rows_a["plays"]) and any(not p[1] for p in rows_a["plays"]), "free and paid plays"
    spends = [m[0] for m in rows_a["moves"] if m[2] < 0]
    assert any(spends.count(x) > 1 for x in spends), "a charge took two lots"
    assert any(len(p[3]) < len(prizes) for p in rows_a["plays"]), "a limited prize ran out: fewer candidates"
    def without_stock(a: dict) -> dict:  # a repeat reads the prize's stock as it is now
        return {**a, "play": {**a["play"], "prize": {**a["play"]["prize"], "stockLeft": None}}}

    assert without_stock(answers_a[-1]) == without_stock(answers_a[1]), "a repeat answers as the first call"
