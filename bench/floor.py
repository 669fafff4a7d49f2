"""The bare floor under a sold-out answer (issue 14, bench/flash_sale.py's steady phase).

A Starlette endpoint that does only what any sold-out answer must do, in one uvicorn process: parse
the request's JSON body, check the member's bearer token (its HMAC, `signing.read_token`), run the
flash sale's gate script once in Redis (`gate.pass_gate`: one EVALSHA, as the server runs it, over the
server's own Redis client, `api.app.redis_client`) and
answer the same JSON as mallpoints' sold-out payload. mallpoints' sold-out answers/s under the same
load, divided by this endpoint's, is how close the server comes to the machine (target ≥ 0.6).

    uvicorn bench.floor:create_app --factory   (MALLPOINTS_REDIS_URL, MALLPOINTS_SECRET_KEY as the server's,
                                                MALLPOINTS_BENCH_INSTALLATION: the database's installation id)

It answers HTTP 500 for anything but a sold-out verdict, so that a load generator counts it as a failure.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ANSWER = orjson.dumps({"data": {"flashSaleRedeem": {"order": None, "pointsBalance": None, "userErrors": [
    {"field": ["input", "flashSaleId"], "message": "sold out", "code": "OUT_OF_STOCK"}]}}})


@dataclass(frozen=True)
class _Sale:  # what the gate reads of a sale
    id: int
    per_member_limit: int = 1


def create_app() -> Starlette:
    from api.app import redis_client
    from api.schema.ids import from_global_id
    from api.services import installation
    from api.services.errors import AuthError
    from api.services.mall.gate import pass_gate
    from api.services.signing import read_token

    redis = redis_client(os.environ["MALLPOINTS_REDIS_URL"])  # the server's own client (pool, timeouts)
    installation.assume(os.environ["MALLPOINTS_BENCH_INSTALLATION"])  # the gate's keys, without a database

    async def graphql(request: Request) -> Response:
        payload = orjson.loads(await request.body())
        given = payload["variables"]["input"]
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            claims = read_token(token)
        except AuthError:
            return Response(b'{"errors":[{"message":"invalid token"}]}', status_code=401)
        parsed = from_global_id(given["flashSaleId"], "FlashSale")
        assert parsed is not None and scheme.lower() == "bearer"
        verdict = await pass_gate(redis, _Sale(parsed[1]), claims.subject_id, given["idempotencyKey"])  # type: ignore[arg-type]
        if verdict != "SOLD_OUT":
            return Response(f'{{"verdict":"{verdict}"}}'.encode(), status_code=500)
        return Response(ANSWER, media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(routes=[Route("/graphql", graphql, methods=["POST"]), Route("/healthz", healthz)])
