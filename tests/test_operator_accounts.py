"""Issue 10: operator accounts over the operators' endpoint: create, update, deactivate, list, operatorMe;
bad input is a typed userErrors code with nothing changed."""
from __future__ import annotations

import pytest

from api.db import fetch
from api.schema.ids import to_global_id
from api.services import operators, signing
from tests.conftest import unique

CREATE = """mutation($i: OperatorCreateInput!) { operatorCreate(input: $i) {
  operator { id username displayName roles active } userErrors { code field } } }"""
UPDATE = """mutation($i: OperatorUpdateInput!) { operatorUpdate(input: $i) {
  operator { id username displayName roles active } userErrors { code field } } }"""
LOGIN = """mutation($u: String!, $p: String!) { operatorLogin(input: {username: $u, password: $p}) {
  token operator { username roles lastLoginAt } userErrors { code } } }"""
ME = "{ operatorMe { id username displayName roles active lastLoginAt } }"


async def make(*roles: str, password: str = "a-long-password") -> tuple[int, str, str]:
    username = unique("op")
    op = await operators.create_operator(username, None, password, list(roles))
    return op.id, username, signing.issue_token("operator", op.id, 600)


async def state() -> tuple:
    ops = await fetch("SELECT id, username, display_name, roles, is_active, password_hash FROM operator ORDER BY id")
    audit = (await fetch("SELECT COUNT(*) AS n FROM audit_log"))[0]["n"]
    return [dict(r) for r in ops], int(audit)


async def test_admin_creates_an_operator_who_signs_in_and_sees_themself(api):
    _, _, admin = await make("ADMIN")
    username = unique("svc")
    created = await api.post(CREATE, {"i": {"username": username, "displayName": "客服小王",
                                            "password": "pw-of-ten-chars", "roles": ["service", "AUDITOR"]}},
                             token=admin, admin=True)
    op = created["data"]["operatorCreate"]
    assert op["userErrors"] == [] and op["operator"]["roles"] == ["SERVICE", "AUDITOR"]
    assert op["operator"]["active"] is True and op["operator"]["displayName"] == "客服小王"
    stored = await fetch("SELECT password_hash FROM operator WHERE username = $1", username)
    assert stored[0]["password_hash"].startswith("$argon2id$")
    login = (await api.post(LOGIN, {"u": username, "p": "pw-of-ten-chars"}, admin=True))["data"]["operatorLogin"]
    assert login["userErrors"] == [] and login["operator"]["lastLoginAt"]
    me = (await api.post(ME, token=login["token"], admin=True))["data"]["operatorMe"]
    assert me["username"] == username and me["roles"] == ["SERVICE", "AUDITOR"] and me["lastLoginAt"]
    listed = await api.post("{ operators(first: 100) { edges { node { username } } pageInfo { hasNextPage } } }",
                            token=admin, admin=True)
    assert listed["data"]["operators"]["edges"]
    audit = await fetch("SELECT action, before, after FROM audit_log WHERE target_type = 'operator'"
                        " AND target_id = $1 ORDER BY id", str(await _id(username)))
    assert audit[0]["action"] == "operator.create" and audit[0]["before"] is None
    assert "password" not in audit[0]["after"] and "SERVICE" in audit[0]["after"]


async def _id(username: str) -> int:
    return (await fetch("SELECT id FROM operator WHERE username = $1", username))[0]["id"]


async def test_deactivated_operator_tokens_stop_at_once(api):
    _, _, admin = await make("ADMIN")
    op_id, username, token = await make("SERVICE")
    assert (await api.post(ME, token=token, admin=True))["data"]["operatorMe"]["username"] == username
    done = await api.post(UPDATE, {"i": {"operatorId": to_global_id("Operator", op_id), "active": False}},
                          token=admin, admin=True)
    assert done["data"]["operatorUpdate"]["operator"]["active"] is False
    refused = await api.post(ME, token=token, admin=True)
    assert refused["data"] is None and refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    login = await api.post(LOGIN, {"u": username, "p": "a-long-password"}, admin=True)
    assert login["data"]["operatorLogin"]["userErrors"] == [{"code": "INVALID_CREDENTIALS"}]
    again = await api.post(UPDATE, {"i": {"operatorId": to_global_id("Operator", op_id), "active": True,
                                          "password": "a-new-long-password", "displayName": "回来了"}},
                           token=admin, admin=True)
    assert again["data"]["operatorUpdate"]["operator"]["displayName"] == "回来了"
    login = await api.post(LOGIN, {"u": username, "p": "a-new-long-password"}, admin=True)
    assert login["data"]["operatorLogin"]["token"]
    row = await fetch("SELECT before, after, detail FROM audit_log WHERE action = 'operator.update' AND target_id = $1"
                      " ORDER BY id DESC LIMIT 1", str(op_id))
    assert '"active": false' in row[0]["before"] and '"active": true' in row[0]["after"]
    assert "a-new-long-password" not in (row[0]["after"] + row[0]["detail"])


async def test_bad_input_is_a_typed_code_and_changes_nothing(api):
    admin_id, _, admin = await make("ADMIN")
    _, _, finance = await make("FINANCE")
    svc_id, svc_name, _ = await make("SERVICE")
    fin2_id, _, _ = await make("FINANCE")
    new = {"username": unique("x"), "password": "pw-of-ten-chars"}
    cases = [
        (admin, CREATE, {**new, "roles": ["SUPERUSER"]}, "ROLE_INVALID"),
        (admin, CREATE, {**new, "roles": []}, "ROLE_INVALID"),
        (admin, CREATE, {**new, "username": svc_name, "roles": ["SERVICE"]}, "USERNAME_TAKEN"),
        (admin, CREATE, {**new, "password": "short", "roles": ["SERVICE"]}, "INVALID_INPUT"),
        (admin, CREATE, {**new, "username": "NO SPACES", "roles": ["SERVICE"]}, "INVALID_INPUT"),
        # a role above one's own: FINANCE gives only FINANCE
        (finance, CREATE, {**new, "roles": ["ADMIN"]}, "ROLE_NOT_GRANTABLE"),
        (finance, CREATE, {**new, "roles": ["FINANCE", "SERVICE"]}, "ROLE_NOT_GRANTABLE"),
        (finance, UPDATE, {"operatorId": to_global_id("Operator", svc_id), "active": False}, "ROLE_NOT_GRANTABLE"),
        (finance, UPDATE, {"operatorId": to_global_id("Operator", fin2_id), "roles": ["FINANCE", "AUDITOR"]},
         "ROLE_NOT_GRANTABLE"),
        (admin, UPDATE, {"operatorId": to_global_id("Operator", svc_id), "roles": ["nope"]}, "ROLE_INVALID"),
        (admin, UPDATE, {"operatorId": to_global_id("Operator", 10**9), "active": False}, "NOT_FOUND"),
        (admin, UPDATE, {"operatorId": "garbage", "active": False}, "NOT_FOUND"),
    ]
    before = await state()
    for token, document, data, code in cases:
        answer = await api.post(document, {"i": data}, token=token, admin=True)
        payload = next(iter(answer["data"].values()))
        assert payload["operator"] is None and payload["userErrors"][0]["code"] == code, (data, answer)
    assert await state() == before
    # what FINANCE may do: a FINANCE colleague
    ok = await api.post(CREATE, {"i": {**new, "roles": ["FINANCE"]}}, token=finance, admin=True)
    assert ok["data"]["operatorCreate"]["operator"]["roles"] == ["FINANCE"]


async def test_the_last_active_admin_cannot_leave(api):
    """Every other ADMIN is made inactive for the test (in one transaction the test can see), then the
    last one may neither deactivate themself nor drop ADMIN; with a second ADMIN both work."""
    others = [r["id"] for r in await fetch("SELECT id, roles FROM operator WHERE is_active") if "ADMIN" in r["roles"]]
    last_id, _, last = await make("ADMIN")
    for op_id in others:
        await operators.update_operator(last_id, ("ADMIN",), op_id, active=False)
    second_id = None
    try:
        before = await state()
        gid = to_global_id("Operator", last_id)
        for change in ({"active": False}, {"roles": ["SERVICE"]}, {"roles": ["FINANCE"], "active": False}):
            answer = await api.post(UPDATE, {"i": {"operatorId": gid, **change}}, token=last, admin=True)
            assert answer["data"]["operatorUpdate"]["userErrors"][0]["code"] == "LAST_ADMIN", change
        assert await state() == before
        second_id, _, _ = await make("ADMIN")
        answer = await api.post(UPDATE, {"i": {"operatorId": gid, "active": False}}, token=last, admin=True)
        assert answer["data"]["operatorUpdate"]["operator"]["active"] is False
        refused = await api.post(ME, token=last, admin=True)
        assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    finally:
        admin_id = second_id or last_id
        for op_id in others:
            await operators.update_operator(admin_id, ("ADMIN",), op_id, active=True)


async def test_seeded_operator_is_admin():
    rows = await fetch("SELECT roles FROM operator WHERE username = 'admin'")
    assert rows[0]["roles"] == "ADMIN"


def _cli(tmp_path, *args, stdin: str = ""):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "MALLPOINTS_DATABASE_URL": f"sqlite://{tmp_path}/cli.sqlite3"}
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=Path(__file__).resolve().parent.parent,
                          env=env, input=stdin, capture_output=True, text=True, timeout=300)


def test_cli_creates_and_lists_operators_with_the_password_from_stdin(tmp_path):
    absent = _cli(tmp_path, "operator", "list")  # no database yet: said so, none created
    assert absent.returncode != 0 and "mallpoints migrate" in absent.stderr and not (tmp_path / "cli.sqlite3").exists()
    assert _cli(tmp_path, "migrate").returncode == 0
    made = _cli(tmp_path, "operator", "create", "--username", "first-admin", "--role", "ADMIN", "--role", "finance",
                "--display-name", "第一位", stdin="a-long-password\n")
    assert made.returncode == 0, made.stderr
    assert "created operator first-admin (ADMIN, FINANCE)" in made.stdout
    listed = _cli(tmp_path, "operator", "list")
    assert listed.returncode == 0 and "first-admin\tactive\tADMIN,FINANCE\t第一位" in listed.stdout
    for args, stdin, message in [
        (["--username", "first-admin", "--role", "ADMIN"], "a-long-password\n", "this username is taken"),
        (["--username", "second", "--role", "BOSS"], "a-long-password\n", "unknown role 'BOSS'"),
        (["--username", "second", "--role", "ADMIN"], "short\n", "password must be 10 to 256 characters"),
    ]:
        refused = _cli(tmp_path, "operator", "create", *args, stdin=stdin)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        mine = [line for line in refused.stderr.splitlines() if line.startswith("mallpoints:")]
        assert len(mine) == 1 and message in mine[0], refused.stderr
    no_password_argument = _cli(tmp_path, "operator", "create", "--username", "x", "--role", "ADMIN",
                                "--password", "a-long-password")
    assert no_password_argument.returncode != 0
    assert _cli(tmp_path, "operator", "list").stdout.count("\tactive\t") == 1


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_two_last_admins_removing_each_other_at_once_leave_one(api, backend):
    import asyncio

    others = [r["id"] for r in await fetch("SELECT id, roles FROM operator WHERE is_active") if "ADMIN" in r["roles"]]
    a_id, _, a = await make("ADMIN")
    b_id, _, b = await make("ADMIN")
    for op_id in others:
        await operators.update_operator(a_id, ("ADMIN",), op_id, active=False)
    try:
        results = await asyncio.gather(
            api.post(UPDATE, {"i": {"operatorId": to_global_id("Operator", b_id), "active": False}}, token=a, admin=True),
            api.post(UPDATE, {"i": {"operatorId": to_global_id("Operator", a_id), "roles": ["FINANCE"]}}, token=b,
                     admin=True),
        )
        payloads = [r["data"]["operatorUpdate"] if r["data"] else r["errors"][0]["extensions"]["code"] for r in results]
        assert sum(1 for p in payloads if isinstance(p, dict) and p["operator"]) == 1, payloads
        left = [r for r in await fetch("SELECT id, roles FROM operator WHERE is_active AND id = ANY($1)", [a_id, b_id])
                if "ADMIN" in r["roles"]]
        assert len(left) == 1
    finally:
        keeper = (await fetch("SELECT id FROM operator WHERE is_active AND roles LIKE '%ADMIN%' AND id = ANY($1)",
                              [a_id, b_id]))[0]["id"]
        for op_id in others:
            await operators.update_operator(keeper, ("ADMIN",), op_id, active=True)


async def test_node_fetches_operators_and_approvals_on_the_operators_endpoint_only(api):
    from tests.conftest import make_member

    op_id, username, token = await make("SERVICE")
    _, _, auditor = await make("AUDITOR")
    gid = to_global_id("Operator", op_id)
    query = "query($id: ID!) { node(id: $id) { id ... on Operator { username roles } ... on AuditEntry { action } } }"
    found = (await api.post(query, {"id": gid}, token=token, admin=True))["data"]["node"]
    assert found == {"id": gid, "username": username, "roles": ["SERVICE"]}
    member_id, member_token = await make_member()
    public = await api.post("query($id: ID!) { node(id: $id) { id } }", {"id": gid}, token=member_token)
    assert public["data"]["node"] is None
    row = (await fetch("SELECT id FROM audit_log WHERE action = 'operator.create' AND target_id = $1", str(op_id)))[0]
    entry = to_global_id("AuditEntry", row["id"])
    assert (await api.post(query, {"id": entry}, token=auditor, admin=True))["data"]["node"]["action"] == "operator.create"
    assert (await api.post(query, {"id": entry}, token=token, admin=True))["data"]["node"] is None  # SERVICE: no audit
