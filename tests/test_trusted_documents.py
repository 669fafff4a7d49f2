"""Trusted documents (issue 14): the client folder, the manifest, requests by hash, the production mode,
and the sold-out answer of a trusted flashSaleRedeem that skips the executor."""
from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from graphql import parse
from starlette.applications import Starlette
from starlette.routing import Route

import api.prepared as prepared_module
from api import cli, doclimits, soldout, trusted
from api.app import GuardedGraphQL, public_executor
from api.config import Settings, set_settings, settings
from api.prepared import PreparedExecutor
from api.schema import public
from api.services import clock
from tests.conftest import TEST_SECRET, make_member, purchase_input, unique
from tests.mall_helpers import funded_member, operator_token, state
from tests.test_flash_sale import new_sale, sale_stock

CLIENTS = trusted.CLIENTS


def _id(name: str) -> str:
    body = next(CLIENTS.rglob(f"{name}.graphql")).read_text(encoding="utf-8")
    return hashlib.sha256(body.encode()).hexdigest()


def by_hash(name: str, variables: dict | None = None, **extra) -> dict:
    return {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": _id(name)}},
            "variables": variables or {}, "operationName": name, **extra}


async def send(client: httpx.AsyncClient, body: dict, token: str | None = None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return await client.post("/graphql", content=json.dumps(body), headers=headers)


@pytest.fixture
def only_trusted(api):
    before = settings()
    set_settings(replace(before, trusted_documents_only=True))
    yield
    set_settings(before)


# --- the client folder and its manifest -------------------------------------------------------------------

def test_every_client_document_is_valid_against_the_schema_and_within_the_limits():
    executor = PreparedExecutor(public.schema)
    operations = trusted.collect()
    assert len(operations) >= 30
    names = {op["name"] for op in operations}
    assert {"AuthSmsLogin", "Viewer", "PointsLedgerPage", "MemberCheckIn", "FlashSaleRedeem", "LuckyDrawPlay",
            "CheckoutCreate", "PurchaseRecord", "PurchaseRecordBatch", "ParkingEntryRecord", "ParkingExitRecord",
            "ParkingSessionQuote", "VoucherWriteOff", "MerchantStaffLogin", "PaymentNotify"} <= names
    for op in operations:
        document = parse(op["body"])
        assert doclimits.check(document) is None, op["name"]
        assert executor.check(document) == [], op["name"]


def test_the_committed_manifest_is_up_to_date():
    assert trusted.MANIFEST.read_text(encoding="utf-8") == trusted.manifest_text(), \
        "run `mallpoints persisted-manifest` and commit api/trusted_documents.json"
    manifest = json.loads(trusted.MANIFEST.read_text(encoding="utf-8"))
    assert manifest["format"] == "apollo-persisted-query-manifest"
    for op in manifest["operations"]:
        assert op["id"] == hashlib.sha256(op["body"].encode()).hexdigest()


def test_the_cli_writes_and_checks_the_manifest(tmp_path: Path, capsys):
    (tmp_path / "clients" / "h5").mkdir(parents=True)
    (tmp_path / "clients" / "h5" / "Tiers.graphql").write_text("query Tiers { tiers { code } }\n")
    out = tmp_path / "manifest.json"
    with pytest.raises(SystemExit):
        cli.main(["persisted-manifest", "--clients", str(tmp_path / "clients"), "--output", str(out), "--check"])
    cli.main(["persisted-manifest", "--clients", str(tmp_path / "clients"), "--output", str(out)])
    written = json.loads(out.read_text())
    assert written["operations"] == [{"id": hashlib.sha256(b"query Tiers { tiers { code } }\n").hexdigest(),
                                      "name": "Tiers", "type": "query", "body": "query Tiers { tiers { code } }\n"}]
    cli.main(["persisted-manifest", "--clients", str(tmp_path / "clients"), "--output", str(out), "--check"])
    assert "up to date" in capsys.readouterr().out
    (tmp_path / "clients" / "h5" / "Other.graphql").write_text("query Tiers { tiers { name } }\n")
    with pytest.raises(SystemExit):  # the file is named after its operation, and names are unique
        cli.main(["persisted-manifest", "--clients", str(tmp_path / "clients"), "--output", str(out)])


def test_documents_are_parsed_and_validated_once_at_start_up(monkeypatch):
    executor = public_executor(public.schema)
    assert len(executor.trusted) == len(trusted.collect())
    assert set(executor.fast_answers) == {_id("FlashSaleRedeem")}

    def forbidden(*_args, **_kwargs):
        raise AssertionError("parsed or validated per request")

    monkeypatch.setattr(prepared_module, "parse", forbidden)
    monkeypatch.setattr(prepared_module, "validate_document", forbidden)
    for op in trusted.collect():  # by hash or by its exact text: the document prepared at start-up
        assert executor.trusted_for(by_hash(op["name"])).document is executor.trusted.by_id[op["id"]].document
        assert executor.prepare(op["body"]) is executor.trusted.by_id[op["id"]].document


# --- requests by hash ---------------------------------------------------------------------------------------

async def test_a_request_by_hash_is_answered_and_an_unknown_hash_refused(api):
    member_id, token = await make_member()
    answer = (await send(api.client, by_hash("Viewer"), token)).json()
    assert answer["data"]["viewer"]["member"]["id"] and "errors" not in answer
    page = (await send(api.client, by_hash("PointsLedgerPage", {"first": 5}), token)).json()
    assert page["data"]["viewer"]["member"]["pointsLedger"]["edges"] == []
    for body in ({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}},
                 {"extensions": {"persistedQuery": {"version": 1}}},
                 by_hash("Viewer", query="{ tiers { code } }")):  # a text that is not the named document
        refused = (await send(api.client, body, token)).json()
        assert refused["data"] is None and refused["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    # development: full texts are accepted
    assert (await api.post("{ tiers { code } }"))["data"]["tiers"]


async def test_only_trusted_documents_in_production_mode(api, only_trusted):
    refused = await api.post("{ tiers { code } }")
    assert refused["data"] is None and refused["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert (await send(api.client, by_hash("Tiers"))).json()["data"]["tiers"]
    text = next(CLIENTS.rglob("Tiers.graphql")).read_text(encoding="utf-8")
    assert (await api.post(text))["data"]["tiers"]  # the exact text of a trusted document is trusted too
    admin = await api.post('mutation { operatorLogin(input: {username: "admin", password: "admin-demo-password"})'
                           " { token } }", admin=True)
    assert admin["data"]["operatorLogin"]["token"]  # the operators' endpoint is not concerned


def test_production_defaults_to_trusted_documents_only():
    production = {"MALLPOINTS_ENV": "production", "MALLPOINTS_SECRET_KEY": "x" * 40,
                  "MALLPOINTS_ADMIN_PASSWORD": "a-real-password"}
    assert Settings.from_env(production).trusted_documents_only is True
    assert Settings.from_env({**production, "MALLPOINTS_TRUSTED_DOCUMENTS_ONLY": "false"}).trusted_documents_only is False
    assert Settings.from_env({}).trusted_documents_only is False
    assert Settings.from_env({"MALLPOINTS_TRUSTED_DOCUMENTS_ONLY": "true"}).trusted_documents_only is True


async def test_a_signed_till_request_by_hash(api, only_trusted):
    """The signature covers the raw body as sent: here the hash, not a query text."""
    member_id, _ = await make_member()
    body = json.dumps(by_hash("PurchaseRecord", {"input": purchase_input(member_id, 12345)})).encode()
    ts, nonce = str(int(clock.now().timestamp())), uuid.uuid4().hex
    signature = hmac.new(TEST_SECRET.encode(), ts.encode() + b"\n" + nonce.encode() + b"\n" + body,
                         hashlib.sha256).hexdigest()
    headers = {"content-type": "application/json", "X-Mallpoints-Key": "demo-pos", "X-Mallpoints-Timestamp": ts,
               "X-Mallpoints-Nonce": nonce, "X-Mallpoints-Signature": signature}
    answer = (await api.client.post("/graphql", content=body, headers=headers)).json()
    assert answer["data"]["purchaseRecord"]["pointsEarned"] == 123
    headers["X-Mallpoints-Nonce"] = uuid.uuid4().hex  # a tampered body: the signature no longer holds
    tampered = body.replace(b'"PurchaseRecord"', b'"PurchaseRecorx"')
    refused = (await api.client.post("/graphql", content=tampered, headers=headers)).json()
    assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# --- the sold-out answer ------------------------------------------------------------------------------------

def _redeem(sale_id: str, key: str | None = None) -> dict:
    return {"input": {"flashSaleId": sale_id, "idempotencyKey": key or unique("K")}}


async def test_sold_out_answer_is_byte_for_byte_the_full_path(api, redis, monkeypatch):
    api.client._transport.app.state.redis = redis
    op = await operator_token(api)
    sale = await new_sale(api, op, stock=1)
    winner, loser = await funded_member(300), await funded_member(300)
    first_key = unique("K")
    won = (await send(api.client, by_hash("FlashSaleRedeem", _redeem(sale["id"], first_key)), winner[1])).json()
    assert won["data"]["flashSaleRedeem"]["userErrors"] == []

    executed = []
    real_execute = prepared_module.execute

    def counting(*args, **kwargs):
        executed.append(1)
        return real_execute(*args, **kwargs)

    monkeypatch.setattr(prepared_module, "execute", counting)
    body = by_hash("FlashSaleRedeem", _redeem(sale["id"]))
    before = await state(loser[0])
    fast = await send(api.client, body, loser[1])
    assert executed == []  # answered without the executor
    monkeypatch.setattr(soldout, "ENABLED", False)
    full = await send(api.client, body, loser[1])
    assert executed == [1]
    assert fast.content == full.content and fast.status_code == full.status_code
    assert fast.headers["content-type"] == full.headers["content-type"]
    assert json.loads(fast.content)["data"]["flashSaleRedeem"]["userErrors"][0]["code"] == "OUT_OF_STOCK"
    assert await state(loser[0]) == before and await sale_stock(sale) == 0
    monkeypatch.setattr(soldout, "ENABLED", True)
    # The winner's repeat takes the full path and gets the first order back; so does bad input.
    executed.clear()
    repeat = (await send(api.client, by_hash("FlashSaleRedeem", _redeem(sale["id"], first_key)), winner[1])).json()
    assert repeat["data"]["flashSaleRedeem"]["order"]["orderNo"] == won["data"]["flashSaleRedeem"]["order"]["orderNo"]
    bad = (await send(api.client, by_hash("FlashSaleRedeem", _redeem("not-an-id")), loser[1])).json()
    assert bad["data"]["flashSaleRedeem"]["userErrors"][0]["code"] == "NOT_FOUND"
    anonymous = (await send(api.client, body)).json()
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert len(executed) == 3


async def test_a_winner_through_the_fast_path_asks_the_gate_once(api, redis):
    """The checks the fast path took are the full path's: the gate counts one unit per winner."""
    api.client._transport.app.state.redis = redis
    op = await operator_token(api)
    sale = await new_sale(api, op, stock=2)
    buyers = [await funded_member(300) for _ in range(3)]
    answers = [(await send(api.client, by_hash("FlashSaleRedeem", _redeem(sale["id"])), token)).json()
               for _, token in buyers]
    codes = [a["data"]["flashSaleRedeem"]["userErrors"] for a in answers]
    assert codes[0] == [] and codes[1] == [] and codes[2][0]["code"] == "OUT_OF_STOCK"
    assert await sale_stock(sale) == 0
    from api.schema.ids import from_global_id
    from api.services.mall.gate import gate_state
    assert (await gate_state(redis, from_global_id(sale["id"])[1])).stock == 0


FANCY = """mutation FancyRedeem($x: FlashSaleRedeemInput!) {
  r: flashSaleRedeem(input: $x) { __typename ...Errors order { orderNo } balance: pointsBalance ... on FlashSaleRedeemPayload { userErrors { code } } }
}
fragment Errors on FlashSaleRedeemPayload { userErrors { message field } e2: userErrors { code __typename } }
"""


async def test_the_sold_out_answer_renders_aliases_fragments_and_typename(api, redis, monkeypatch, tmp_path):
    clients = tmp_path / "clients"
    clients.mkdir()
    (clients / "FancyRedeem.graphql").write_text(FANCY)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(trusted.manifest_text(clients))
    executor = PreparedExecutor(public.schema, manifest=manifest)
    executor.fast_answers = soldout.answers(public.schema._schema, executor.trusted)
    assert len(executor.fast_answers) == 1
    app = Starlette(routes=[Route("/graphql", GuardedGraphQL(public.schema, "public", ide=False, prepared=executor),
                                  methods=["POST"])])
    app.state.redis = redis
    api.client._transport.app.state.redis = redis
    op = await operator_token(api)
    sale = await new_sale(api, op, stock=1)
    buyers = [await funded_member(300) for _ in range(2)]
    body = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": trusted.document_hash(FANCY)}}}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        won = (await send(client, {**body, "variables": {"x": _redeem(sale["id"])["input"]}}, buyers[0][1])).json()
        assert won["data"]["r"]["order"]["orderNo"]
        refused = {**body, "variables": {"x": _redeem(sale["id"])["input"]}}
        fast = await send(client, refused, buyers[1][1])
        monkeypatch.setattr(soldout, "ENABLED", False)
        full = await send(client, refused, buyers[1][1])
    assert fast.content == full.content
    assert json.loads(fast.content)["data"]["r"]["e2"] == [{"code": "OUT_OF_STOCK", "__typename": "UserError"}]


def test_documents_the_fast_answer_cannot_render_have_none():
    schema = public.schema._schema
    for text in ('mutation A($i: FlashSaleRedeemInput!) { flashSaleRedeem(input: $i) { userErrors { code @include(if: true) } } }',
                 'mutation B { flashSaleRedeem(input: {flashSaleId: "x", idempotencyKey: "k"}) { pointsBalance } }',
                 "query C { tiers { code } }"):
        assert soldout.build(schema, parse(text)) is None


def test_every_start_path_runs_uvloop_and_httptools():
    """`mallpoints serve` (also the Docker image's command) and the benches' servers."""
    from api.cli import serve_options

    options = serve_options(settings())
    assert options["loop"] == "uvloop" and options["http"] == "httptools"
    root = Path(__file__).resolve().parent.parent
    for bench in ("bench/contest.py", "bench/purchase_load.py"):
        assert '"--loop", "uvloop", "--http", "httptools"' in (root / bench).read_text(encoding="utf-8"), bench


async def test_no_other_content_type_reaches_past_the_rules(api, only_trusted):
    """Strawberry's view reads any content type that contains "application/json": the public endpoint
    answers such a body 415 itself, so that no text gets past the trusted-documents rule or the limits."""
    body = json.dumps({"query": "{ tiers { code } }"})
    for content_type in ("application/json-seq", "text/plain; application/json", "application/graphql"):
        response = await api.client.post("/graphql", content=body, headers={"content-type": content_type})
        assert response.status_code == 415, content_type
        assert response.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
