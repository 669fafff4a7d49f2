"""Logs fit for production (issue 11, finding 11): one JSON object per line, a request id on every line
and in the answer's `X-Request-Id`, phone numbers and plates masked, no secrets."""
from __future__ import annotations

import io
import json
import logging

import pytest

from api import logs

INLINE = [
    ('mutation Login { authSmsLogin(input: {phone: "+8613912345678", code: "918273"}) { tokn } }', "/graphql"),
    ('mutation Op { operatorLogin(input: {username: "admin", password: "Pw-4471-hidden", extra: 1}) { token } }',
     "/admin/graphql"),
]


@pytest.fixture
def json_log():
    """The process's handler as `serve` sets it up in production, writing to a buffer; the handlers that
    were there before (pytest's) are put back afterwards."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    buffer = io.StringIO()
    logs.configure(logging.INFO, production=True, stream=buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


async def test_every_answer_carries_a_request_id(api):
    first = await api.client.post("/graphql", json={"query": "{ tiers { code } }"})
    second = await api.client.post("/graphql", json={"query": "{ tiers { code } }"})
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids) and ids[0] != ids[1]
    assert (await api.client.get("/healthz")).headers["x-request-id"]


async def test_a_proxy_s_request_id_is_kept_only_when_it_is_a_plain_token(api):
    kept = await api.client.post("/graphql", json={"query": "{ tiers { code } }"}, headers={"X-Request-Id": "edge-7f3a9c01"})
    assert kept.headers["x-request-id"] == "edge-7f3a9c01"
    for sent in ("short", "has space in it ok", "x" * 65, "quote\"d-123456"):
        replaced = await api.client.post("/graphql", json={"query": "{ tiers { code } }"}, headers={"X-Request-Id": sent})
        assert replaced.headers["x-request-id"] != sent and len(replaced.headers["x-request-id"]) == 16


async def test_production_log_is_json_lines_with_the_request_id_and_no_secrets(api, json_log):
    answered = []
    for query, path in INLINE:
        response = await api.client.post(path, json={"query": query})
        assert response.json()["errors"]
        answered.append(response.headers["x-request-id"])
    logging.getLogger("mallpoints.test").warning("member 13912345678 parked 沪A12345 at gate 2")
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]  # every line is one JSON object
    assert lines and all({"time", "level", "logger", "request_id", "message"} <= set(line) for line in lines)
    graphql = [line for line in lines if line["logger"] == "strawberry.execution"]
    assert sorted({line["request_id"] for line in graphql}) == sorted(answered)
    assert all(line["level"] == "INFO" and "exception" not in line for line in graphql)
    text = json_log.getvalue()
    for secret in ("918273", "Pw-4471-hidden", "13912345678", "沪A12345", INLINE[0][0][:40]):
        assert secret not in text, f"{secret!r} is in the log"
    assert lines[-1]["message"] == "member 139****5678 parked 沪A***45 at gate 2" and lines[-1]["request_id"] == "-"


def test_development_log_is_text_with_the_request_id():
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    buffer = io.StringIO()
    try:
        logs.configure(logging.INFO, production=False, stream=buffer)
        logging.getLogger("mallpoints.test").info("phone +8613800138000 signed in")
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
    line = buffer.getvalue().strip()
    assert line.endswith("INFO mallpoints.test [-]: phone +86138****8000 signed in"), line


def test_personal_data_mask():
    assert logs.mask_personal("13912345678 and +8613912345678") == "139****5678 and +86139****5678"
    assert logs.mask_personal("order 1391234567890123") == "order 1391234567890123"  # not a phone: longer
    assert logs.mask_personal("粤B1234D5 left") == "粤B***D5 left"
