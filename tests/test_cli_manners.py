"""The command line's manners: every user mistake is one line on standard error and a non-zero exit,
never a traceback; commands that need a database do not create one; keys list their scopes, merchants
and car parks; parking keys are bound from the command line; every option says what it takes."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys

import pytest
import pytest_asyncio

from api import cli
from api.config import Settings
from tests.conftest import TEST_SECRET
from tests.live_server import free_port, serving

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("MALLPOINTS_")}


@pytest_asyncio.fixture
async def live_server(backend):
    async with serving() as url:
        yield url


def run(cwd, *args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=cwd, env={**CLEAN_ENV, **(env or {})},
                          capture_output=True, text=True, timeout=300)


def one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mallpoints: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def mall(tmp_path_factory):
    """A folder with a migrated, seeded SQLite database at its default place (./var/)."""
    folder = tmp_path_factory.mktemp("mall")
    seeded = run(folder, "seed")
    assert seeded.returncode == 0, seeded.stderr
    return folder


def test_outside_a_project_no_database_is_created(tmp_path):
    for command in (["integration-key", "list"], ["expire"], ["earning-run"], ["integration-key", "revoke", "k"]):
        one_line_error(run(tmp_path, *command), "no database at", "mallpoints migrate")
    assert not (tmp_path / "var").exists()


def test_key_without_merchant(mall):
    one_line_error(run(mall, "integration-key", "create", "--name", "bad"),
                   "--merchant", "bind the key to at least one merchant", "INVALID_INPUT")
    one_line_error(run(mall, "integration-key", "create", "--name", "x", "--merchant", "NOPE"), "NOPE", "NOT_FOUND")


def test_as_of_that_is_not_a_time(mall, tmp_path):
    for folder in (mall, tmp_path):  # the option is checked before the database
        one_line_error(run(folder, "expire", "--as-of", "yesterday"), "--as-of 'yesterday' is not a time", "+08:00")
    one_line_error(run(mall, "tiers-evaluate", "--as-of", "2026-01-01T00:00:00"), "has no zone")


def test_signed_call_mistakes(tmp_path):
    one_line_error(run(tmp_path, "signed-call", "--query", "{ tiers { code } }", "--variables", "{bad"),
                   "--variables is not JSON")
    one_line_error(run(tmp_path, "signed-call", "--query", "{ tiers { code } }", "--variables", "[1]"),
                   "must be a JSON object")
    one_line_error(run(tmp_path, "signed-call", "--query", "@nowhere.graphql"), "@nowhere.graphql", "cannot read the file")
    port = free_port()  # closed again: nothing listens there
    one_line_error(run(tmp_path, "signed-call", "--query", "{ tiers { code } }", "--url", f"http://127.0.0.1:{port}/graphql"),
                   f"cannot reach http://127.0.0.1:{port}/graphql", "mallpoints serve")


def test_database_that_cannot_be_reached(tmp_path):
    port = free_port()
    line = one_line_error(run(tmp_path, "integration-key", "list", env={
        "MALLPOINTS_DATABASE_URL": f"postgres://mall:hunter2@127.0.0.1:{port}/mall"}), "cannot open the database")
    assert "hunter2" not in line  # the password never reaches the terminal


def test_keys_list_scopes_merchants_car_parks_and_bind(mall):
    created = run(mall, "integration-key", "create", "--name", "gate 2", "--scope", "parking")
    assert created.returncode == 0, created.stderr
    key_id = created.stdout.split("key id: ", 1)[1].split()[0]
    assert "bind-car-park" in created.stdout
    bound = run(mall, "integration-key", "bind-car-park", key_id, "--car-park", "p1")
    assert bound.returncode == 0 and key_id in bound.stdout and "P1" in bound.stdout, bound.stderr
    listing = run(mall, "integration-key", "list")
    assert listing.returncode == 0, listing.stderr
    header, *rows = listing.stdout.splitlines()
    assert header.split()[:6] == ["KEY", "ID", "STATE", "SCOPES", "MERCHANTS", "CAR"]
    by_id = {row.split()[0]: row.split() for row in rows}
    assert by_id["demo-pos"][1:4] == ["active", "pos", "M001,M002,M003"]
    assert by_id["demo-parking"][1:5] == ["active", "parking", "-", "P1"]
    assert by_id[key_id][1:5] == ["active", "parking", "-", "P1"]
    unbound = run(mall, "integration-key", "bind-car-park", key_id, "--car-park", "P1", "--unbind")
    assert unbound.returncode == 0, unbound.stderr
    assert {r.split()[0]: r.split() for r in run(mall, "integration-key", "list").stdout.splitlines()}[key_id][4] == "-"
    one_line_error(run(mall, "integration-key", "bind-car-park", "demo-pos", "--car-park", "P1"),
                   "KEY_ID", "parking scope")
    one_line_error(run(mall, "integration-key", "bind-car-park", key_id, "--car-park", "NOPE"), "NOT_FOUND")


def test_every_option_has_help_with_its_format():
    def walk(parser: argparse.ArgumentParser, path: str):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from walk(child, f"{path} {name}")
            elif not isinstance(action, argparse._HelpAction):
                yield path, action

    checked = 0
    for path, action in walk(cli.build_parser(), "mallpoints"):
        assert action.help, f"{path} {action.option_strings or action.dest} has no help"
        checked += 1
        if action.dest == "as_of":
            assert "+08:00" in action.help
    assert checked >= 20


def test_serve_banner_shows_demo_logins_only_with_demo():
    cfg = Settings(admin_password="pw-from-env", demo_pos_secret="pos-secret")
    plain = "\n".join(cli.serve_banner(cfg, demo=False))
    assert "mallpoints operator create --username U --role ADMIN" in plain
    assert "pw-from-env" not in plain and "pos-secret" not in plain and "demo-pos" not in plain
    demo = "\n".join(cli.serve_banner(cfg, demo=True))
    assert "admin / pw-from-env" in demo and "demo-pos / pos-secret" in demo and "demo-parking" in demo


def test_demo_is_refused_in_production(tmp_path):
    production = {"MALLPOINTS_ENV": "production", "MALLPOINTS_SECRET_KEY": "x" * 40, "MALLPOINTS_ADMIN_PASSWORD": "s3cret-pw"}
    one_line_error(run(tmp_path, "serve", "--demo", env=production), "serve --demo", "MALLPOINTS_ENV=production")
    one_line_error(run(tmp_path, "seed", env=production), "`seed`", "operator create")
    assert not (tmp_path / "var").exists()


def test_usage_mistakes_are_argparse_lines(tmp_path):
    result = run(tmp_path, "integration-key", "create", "--scope", "everything", "--name", "x")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "invalid choice" in result.stderr


async def run_async(cwd, *args) -> subprocess.CompletedProcess:
    """The command in a subprocess while this event loop keeps serving the live server."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "api.cli", *args, cwd=cwd, env=CLEAN_ENV,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return subprocess.CompletedProcess(args, process.returncode, out.decode(), err.decode())


async def test_signed_call_against_a_running_server(live_server, tmp_path):
    query = tmp_path / "tiers.graphql"
    query.write_text("query Tiers { tiers { code } }", encoding="utf-8")
    url = f"{live_server}/graphql"
    ok = await run_async(tmp_path, "signed-call", "--url", url, "--secret", TEST_SECRET, "--query", f"@{query}")
    assert ok.returncode == 0 and ok.stderr == "", ok.stderr
    assert "NORMAL" in [t["code"] for t in json.loads(ok.stdout)["data"]["tiers"]]
    wrong = await run_async(tmp_path, "signed-call", "--url", url, "--secret", "not-the-secret", "--query", "{ tiers { code } }")
    assert json.loads(wrong.stdout)["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    one_line_error(wrong, "the server refused the request", "UNAUTHENTICATED")
