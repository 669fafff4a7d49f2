"""The prepared hot path (`api/prepared.py`) answers exactly as Strawberry's view does.

The same documents go over HTTP to two routes of one app: the public endpoint as served (prepared path
in front of Strawberry's view) and Strawberry's view alone. The JSON answers (data, errors with their
messages, locations, paths and extension codes) and the status codes must be equal. For every document
the test also states which way the prepared path goes: it executes a document when Strawberry's pipeline
accepts it, and answers every document that Strawberry refuses (syntax, validation, limits,
introspection, a sensitive mutation twice) with Strawberry's own refusal, without handing the request on
(issue 11: a failing document is validated once, not once here and again by Strawberry).
"""
from __future__ import annotations

import json

import httpx
import pytest
import strawberry
from graphql import GraphQLError, ValidationRule
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.extensions import AddValidationRules, MaskErrors, SchemaExtension

from api.app import GuardedGraphQL
from api.prepared import PreparedExecutor
from api.schema import public
from tests.conftest import PURCHASE, Api, make_member, purchase_input

DEEP_PATH = ["viewer", "member", "drawPlays(first: 1)", "edges", "node", "game", "stats", "prizes", "prize", "product",
             "minTier"]
DEEP = "{ " + " { ".join(DEEP_PATH) + " { id" + " }" * (len(DEEP_PATH) + 1)
ALIASES = "{ " + " ".join(f"a{i}: tiers {{ code }}" for i in range(16)) + " }"
TOKENS = "{ tiers { " + "code " * 2100 + "} }"
LOGIN = 'authSmsLogin(input: {phone: "+8613900009999", code: "000000"}) { token userErrors { code field } }'
LEDGER = ("query Ledger($first: Int!) { viewer { member { phoneMasked pointsBalance pointsLedger(first: $first) {"
          " edges { cursor node { points } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } } }")
PROFILE = "mutation($i: MemberProfileUpdateInput!) { memberProfileUpdate(input: $i) { userErrors { code } } }"

# (name, document, variables, operation name, needs a member token, executed by the prepared path)
DOCUMENTS = [
    ("valid", "{ tiers { code name growthThreshold earnMultiplierPercent } }", None, None, False, True),
    ("typename", "{ __typename }", None, None, False, True),
    ("member data and a page", LEDGER, {"first": 2}, None, True, True),
    ("operation chosen by name", "query A { tiers { code } } query B { viewer { member { id } } }", None, "B", True,
     True),
    ("coded top-level error", "{ viewer { member { pointsLedger(first: 101) { edges { cursor } } } } }", None, None,
     True, True),
    ("unauthenticated mutation", 'mutation { memberCheckIn(input: {idempotencyKey: "k"}) { userErrors { code } } }',
     None, None, False, True),
    ("variable of a wrong enum value", PROFILE, {"i": {"gender": "FEMAL"}}, None, True, True),
    ("missing variable", PROFILE, None, None, True, True),
    ("sensitive mutation once", "mutation { " + LOGIN + " }", None, None, False, True),
    ("sensitive mutation twice", "mutation { a: " + LOGIN + " b: " + LOGIN + " }", None, None, False, False),
    ("sensitive mutation next to another field", "mutation { " + LOGIN + " memberCheckIn(input: {idempotencyKey: "
     '"k"}) { userErrors { code } } }', None, None, False, False),
    ("unknown field", "{ tiers { nope } }", None, None, False, False),
    ("misspelt field (suggestions off)", "{ tiers { cod } }", None, None, False, False),
    ("syntax error", "{ tiers { code ", None, None, False, False),
    ("two anonymous operations", "{ tiers { code } } { viewer { member { id } } }", None, None, False, False),
    ("over the depth limit", DEEP, None, None, True, False),
    ("over the alias limit", ALIASES, None, None, False, False),
    ("over the token limit", TOKENS, None, None, False, False),
    ("introspection: __schema", "{ __schema { queryType { name } } }", None, None, False, False),
    ("introspection: __type", '{ __type(name: "Member") { name } }', None, None, False, False),
]


def _app(schema: strawberry.Schema, prepared: PreparedExecutor | None) -> Starlette:
    app = Starlette(routes=[
        Route("/graphql", GuardedGraphQL(schema, "public", ide=False, prepared=prepared), methods=["POST"])])
    app.state.redis = None
    return app


def _apps(schema: strawberry.Schema = public.schema) -> tuple[tuple[Starlette, Starlette], PreparedExecutor]:
    """The endpoint as served (the prepared path in front of Strawberry's view), and the view alone."""
    executor = PreparedExecutor(schema)
    return (_app(schema, executor), _app(schema, None)), executor


def _client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def _both(apps: tuple[Starlette, Starlette], body: dict, token: str | None,
                signed: bool = False) -> tuple[httpx.Response, httpx.Response]:
    answers = []
    for app in apps:
        async with _client(app) as client:
            if signed:
                answers.append(await Api(client).signed(body["query"], body.get("variables"), raw=True))
            else:
                headers = {"content-type": "application/json"}
                if token:
                    headers["authorization"] = f"Bearer {token}"
                answers.append(await client.post("/graphql", content=json.dumps(body), headers=headers))
    return answers[0], answers[1]


@pytest.mark.parametrize("name,query,variables,operation,member,prepared", DOCUMENTS, ids=[d[0] for d in DOCUMENTS])
async def test_same_answer_both_ways(backend, name, query, variables, operation, member, prepared):
    apps, executor = _apps()
    token = (await make_member())[1] if member else None
    assert (executor.prepare(query) is not None) is prepared, f"{name}: the prepared path went the wrong way"
    body = {"query": query, "variables": variables, "operationName": operation}
    for _ in range(2):  # the second time the document comes from the prepared cache
        served, alone = await _both(apps, body, token)
        assert served.status_code == alone.status_code
        assert served.json() == alone.json(), name
    answer = served.json()
    if not prepared:
        assert answer["data"] is None and answer["errors"], name
    assert "Did you mean" not in json.dumps(answer)


async def test_answers_hold_what_each_case_is_about(backend):
    """The compared answers are not trivially equal: each case is what its name says."""
    apps, _ = _apps()
    _, token = await make_member()
    checks = {
        "over the depth limit": (DEEP, "exceeds maximum operation depth"),
        "over the alias limit": (ALIASES, "aliases"),
        "over the token limit": (TOKENS, "token"),
        "introspection": ("{ __schema { queryType { name } } }", "introspection"),
        "twice": ("mutation { a: " + LOGIN + " b: " + LOGIN + " }", "only field"),
    }
    for name, (query, words) in checks.items():
        served, _ = await _both(apps, {"query": query}, token)
        assert words in served.json()["errors"][0]["message"].lower(), name
    served, _ = await _both(apps, {"query": "{ viewer { member { pointsLedger(first: 101) { edges { cursor } } } } }"},
                            token)
    assert served.json()["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    served, _ = await _both(apps, {"query": "mutation { " + LOGIN + " }"}, None)
    assert served.json()["data"]["authSmsLogin"]["userErrors"][0]["code"] == "SMS_CODE_INVALID"


async def test_a_masked_internal_fault_is_the_same_both_ways(backend, monkeypatch):
    from api.services import tiers

    async def boom(*_args, **_kwargs):
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(tiers, "all_tiers", boom)
    apps, executor = _apps()
    query = "{ tiers { code } }"
    assert executor.prepare(query) is not None
    served, alone = await _both(apps, {"query": query}, None)
    assert served.json() == alone.json()
    assert served.json()["errors"][0]["message"] == "Unexpected error." and "hunter2" not in served.text


async def test_a_till_receipt_and_its_repeat_the_same_both_ways(backend):
    """The hot path itself: a signed purchaseRecord. The repeat (same idempotency key, new nonce) through
    Strawberry's view returns the first result, as the prepared path booked it."""
    apps, executor = _apps()
    member_id, _ = await make_member()
    assert executor.prepare(PURCHASE) is not None
    body = {"query": PURCHASE, "variables": {"input": purchase_input(member_id, 12345)}}
    served, alone = await _both(apps, body, None, signed=True)
    assert served.json() == alone.json()
    assert served.json()["data"]["purchaseRecord"]["pointsEarned"] == 123
    wrong = {"query": PURCHASE, "variables": {"input": {**purchase_input(member_id, 100), "merchantCode": "NOPE"}}}
    served, alone = await _both(apps, wrong, None, signed=True)
    assert served.json() == alone.json() and served.json()["data"]["purchaseRecord"]["userErrors"]


# --- an extension added to the schema later applies to both paths ----------------------------------------


class NoTiers(ValidationRule):
    def enter_field(self, node, *_args):
        if node.name.value == "tiers":
            self.report_error(GraphQLError("tiers are closed today", node))


class Stamp(SchemaExtension):
    """An extension the prepared path cannot reproduce: it adds to every answer."""

    def get_results(self):
        return {"stamp": 1}


class LoudMask(MaskErrors):
    def on_operation(self):  # a known extension with a hook of its own is not known any more
        yield


def _schema_with(*extensions) -> strawberry.Schema:
    return strawberry.Schema(query=public.Query, mutation=public.Mutation, types=public.TYPES,
                             config=public.schema.config, execution_context_class=public.schema.execution_context_class,
                             extensions=[*public.EXTENSIONS, *extensions])


async def test_an_added_validation_rule_applies_to_both(backend):
    apps, executor = _apps(_schema_with(lambda: AddValidationRules([NoTiers])))
    assert executor.prepare("{ tiers { code } }") is None
    served, alone = await _both(apps, {"query": "{ tiers { code } }"}, None)
    assert served.json() == alone.json() and served.json()["errors"][0]["message"] == "tiers are closed today"


@pytest.mark.parametrize("extension", [Stamp, LoudMask], ids=["unknown extension", "known one with its own hook"])
async def test_an_extension_it_cannot_reproduce_turns_the_prepared_path_off(backend, extension):
    apps, executor = _apps(_schema_with(extension))
    assert executor.pipeline.unsupported == (extension.__name__,)
    assert await executor.run({"query": "{ tiers { code } }"}, None) is None
    served, alone = await _both(apps, {"query": "{ tiers { code } }"}, None)
    assert served.json() == alone.json()
    if extension is Stamp:
        assert served.json()["extensions"] == {"stamp": 1}


def test_the_pipeline_is_read_from_the_public_schema():
    pipeline = PreparedExecutor(public.schema).pipeline
    assert pipeline.unsupported == ()
    assert pipeline.parse_options == {"max_tokens": public.MAX_TOKENS}
    assert pipeline.mask is not None
    names = {rule.__name__ for rule in pipeline.rules}
    assert {"NoSchemaIntrospectionCustomRule", "OncePerRequest", "DepthLimitValidator", "MaxAliasesValidator"} <= names
