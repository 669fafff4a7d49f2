"""Issue 10: the roles table covers every root field; each role is refused every mutation it may not call
(top-level FORBIDDEN, nothing changed); an operation with one refused field is refused whole."""
from __future__ import annotations

import pytest

from api.db import fetch
from api.schema.admin import schema
from api.services import operators, signing
from api.services.operators.roles import ADMIN, PERMISSIONS, ROLE_NAMES, may
from tests.conftest import unique


def test_every_root_field_is_in_the_roles_table():
    gql = schema._schema
    fields = set(gql.query_type.fields) | set(gql.mutation_type.fields)
    assert fields - set(PERMISSIONS) == set()
    assert set(PERMISSIONS) - fields == set()


def test_roles_table_is_in_the_docs():
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "operators.md").read_text(encoding="utf-8")
    section = text.split("## What each role may call", 1)[1].split("\n## ", 1)[0]
    documented = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            name = cells[0].strip("`")
            documented[name] = None if cells[1].startswith("anyone") else {
                r for r, c in zip(ROLE_NAMES, cells[1:], strict=True) if c == "✓"}
    assert set(documented) == set(PERMISSIONS)
    for field, allowed in PERMISSIONS.items():
        assert documented[field] == (None if allowed is None else set(allowed) | {ADMIN}), field


def test_a_field_missing_from_the_table_is_admin_only():
    assert may([ADMIN], "someNewField") and not any(may([r], "someNewField") for r in ROLE_NAMES if r != ADMIN)


def _document(name: str) -> str:
    field = schema._schema.mutation_type.fields[name]
    decls = ", ".join(f"${a}: {arg.type}" for a, arg in field.args.items())
    args = ", ".join(f"{a}: ${a}" for a in field.args)
    return f"mutation{'(' + decls + ')' if decls else ''} {{ {name}{'(' + args + ')' if args else ''} {{ __typename }} }}"


async def _state() -> tuple:
    audit = (await fetch("SELECT COUNT(*) AS n FROM audit_log"))[0]["n"]
    points = (await fetch("SELECT COALESCE(SUM(balance), 0) AS b, COUNT(*) AS n FROM points_account"))[0]
    entries = (await fetch("SELECT COUNT(*) AS n FROM points_entry"))[0]["n"]
    approvals = (await fetch("SELECT COUNT(*) AS n FROM points_adjust_approval"))[0]["n"]
    ops = (await fetch("SELECT COUNT(*) AS n FROM operator"))[0]["n"]
    return int(audit), int(points["b"]), int(points["n"]), int(entries), int(approvals), int(ops)


async def token_for(*roles: str) -> tuple[int, str]:
    op = await operators.create_operator(unique("op"), "测试", "a-long-password", list(roles))
    return op.id, signing.issue_token("operator", op.id, 600)


@pytest.mark.parametrize("role", sorted(ROLE_NAMES))
async def test_each_role_is_forbidden_every_mutation_outside_its_roles(api, role):
    _, token = await token_for(role)
    before = await _state()
    mutations = list(schema._schema.mutation_type.fields)
    refused = [n for n in mutations if not may([role], n)]
    allowed = [n for n in mutations if may([role], n)]
    assert bool(refused) == (role != ADMIN)
    for name in refused:
        answer = await api.post(_document(name), token=token, admin=True)
        assert answer["data"] is None and answer["errors"][0]["extensions"]["code"] == "FORBIDDEN", name
    assert await _state() == before
    # The fields the role may call pass the check (and fail later, for want of the input).
    for name in allowed:
        answer = await api.post(_document(name), token=token, admin=True)
        assert all(e.get("extensions", {}).get("code") != "FORBIDDEN" for e in answer.get("errors") or []), name


@pytest.mark.parametrize("role,query,expected", [
    ("SERVICE", "{ auditLog(first: 5) { edges { node { id } } } }", "FORBIDDEN"),
    ("MARKETING", "{ integrationKeys { keyId } }", "FORBIDDEN"),
    ("AUDITOR", "{ auditLog(first: 5) { edges { node { id } } } }", None),
    ("SERVICE", "{ operatorMe { username roles } }", None),
])
async def test_queries_are_checked_too(api, role, query, expected):
    _, token = await token_for(role)
    answer = await api.post(query, token=token, admin=True)
    if expected is None:
        assert "errors" not in answer and answer["data"]
    else:
        assert answer["data"] is None and answer["errors"][0]["extensions"]["code"] == expected


async def test_an_operation_with_one_refused_field_is_refused_whole(api):
    _, token = await token_for("MARKETING")
    before = await _state()
    code = unique("T").upper()
    document = """mutation($c: String!) {
      tierCreate(input: {code: $c, name: "x", growthThreshold: 987654}) { tier { id } }
      ...more
    }
    fragment more on Mutation { merchantCreate(input: {code: $c, name: "x"}) { merchant { id } } }"""
    answer = await api.post(document, {"c": code}, token=token, admin=True)
    assert answer["data"] is None and answer["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "merchantCreate" in answer["errors"][0]["message"]
    assert await _state() == before
    assert not await fetch("SELECT id FROM tier WHERE code = $1", code)


async def test_without_a_token_only_login_runs(api):
    answer = await api.post("{ operatorMe { id } }", admin=True)
    assert answer["data"] is None and answer["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    login = await api.post('mutation { operatorLogin(input: {username: "nobody", password: "x"}) { userErrors { code } } }',
                           admin=True)
    assert login["data"]["operatorLogin"]["userErrors"] == [{"code": "INVALID_CREDENTIALS"}]


async def test_a_role_taken_away_stops_at_once(api):
    op_id, token = await token_for("FINANCE")
    assert (await api.post("{ auditLog(first: 1) { edges { node { id } } } }", token=token, admin=True))["data"]
    admin_id = (await fetch("SELECT id FROM operator WHERE username = 'admin'"))[0]["id"]
    await operators.update_operator(admin_id, ("ADMIN",), op_id, roles=["SERVICE"])
    answer = await api.post("{ auditLog(first: 1) { edges { node { id } } } }", token=token, admin=True)
    assert answer["errors"][0]["extensions"]["code"] == "FORBIDDEN"


OPERATORS_CONTRACT = [
    "enum OperatorRole {", "operatorMe: Operator", "operators(first: Int!, after: String = null): OperatorConnection!",
    "auditLog(first: Int!, after: String = null, action: String = null, actorId: ID = null, from: DateTime = null,"
    " to: DateTime = null", "operatorCreate(input: OperatorCreateInput!): OperatorCreatePayload!",
    "operatorUpdate(input: OperatorUpdateInput!): OperatorUpdatePayload!",
    "merchantCreate(input: MerchantCreateInput!): MerchantCreatePayload!",
    "merchantUpdate(input: MerchantUpdateInput!): MerchantUpdatePayload!",
    "tierCreate(input: TierCreateInput!): TierCreatePayload!", "tierUpdate(input: TierUpdateInput!): TierUpdatePayload!",
    "pointsAdjustApprove(input: PointsAdjustApproveInput!): PointsAdjustApprovePayload!",
]


@pytest.mark.parametrize("name", OPERATORS_CONTRACT)
def test_operators_contract_names_are_in_the_admin_schema(name):
    from api.cli import ADMIN_SCHEMA_FILE

    assert name in ADMIN_SCHEMA_FILE.read_text(encoding="utf-8")


def test_operator_and_audit_entry_fields_of_the_contract():
    gql = schema._schema
    assert {"id", "username", "displayName", "roles", "active", "lastLoginAt"} <= set(gql.type_map["Operator"].fields)
    assert {"id", "actor", "action", "objectType", "objectId", "before", "after", "createdAt"} <= set(
        gql.type_map["AuditEntry"].fields)
    assert set(gql.type_map["AuditActor"].fields) == {"kind", "id", "name"}
    assert {"entry", "member", "approval", "userErrors"} <= set(gql.type_map["PointsAdjustPayload"].fields)
    assert {"approval", "entry", "userErrors"} <= set(gql.type_map["PointsAdjustApprovePayload"].fields)
    assert {"approvalId", "approve", "note"} == set(gql.type_map["PointsAdjustApproveInput"].fields)
    assert set(gql.type_map["OperatorRole"].values) == set(ROLE_NAMES)


def test_the_examples_in_docs_operators_are_valid_operations():
    import re
    from pathlib import Path

    from graphql import parse, validate

    text = (Path(__file__).resolve().parent.parent / "docs" / "operators.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```graphql\n(.*?)```", text, re.S)
    assert len(blocks) >= 5
    for block in blocks:
        document = parse(block)
        assert len(document.definitions) == 1, block
        assert validate(schema._schema, document) == [], block
