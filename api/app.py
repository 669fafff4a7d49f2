"""Starlette app factory: mounts the GraphQL endpoints, health and metrics; no logic."""
from __future__ import annotations

import gc
import logging
import time
from contextlib import asynccontextmanager
from functools import partial

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from strawberry.asgi import GraphQL

from api import console, dashboard, db, logs
from api import sql as raw_sql
from api.auth import caller_for
from api.config import settings
from api.context import Context
from api.prepared import PreparedExecutor, refusal
from api.services.errors import AuthError
from api.services.loops import Loops
from api.transport import UNSUPPORTED_MEDIA_TYPE, TransportError, check_json_request, read_body, unsupported_media_type

log = logging.getLogger("mallpoints")
REQUESTS = Counter("mallpoints_graphql_requests_total", "GraphQL requests", ["endpoint", "outcome"])
LATENCY = Histogram("mallpoints_graphql_request_seconds", "GraphQL request latency", ["endpoint"],
                    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))


class _View(GraphQL[Context, None]):
    def __init__(self, schema, endpoint: str, **kwargs) -> None:
        super().__init__(schema, **kwargs)
        self.endpoint = endpoint

    async def get_context(self, request, response) -> Context:
        return Context(caller=request.scope["state"]["caller"], endpoint=self.endpoint, request=request,
                       response=response, redis=request.app.state.redis)


class GuardedGraphQL:
    """Authenticates before Strawberry sees the request: a bad signature or token is refused with a
    top-level error (extensions.code) and nothing is executed or recorded."""

    def __init__(self, schema, endpoint: str, ide: bool, prepared: PreparedExecutor | None = None) -> None:
        self.endpoint = endpoint
        # Strawberry's own GraphiQL page loads its scripts from a CDN: the operators' console
        # (api/console.py) is served instead, from the project's files.
        self.view = _View(schema, endpoint, graphql_ide=None, allow_queries_via_get=ide)
        self.prepared = prepared
        self.ide = ide
        # Labelled once per process, not per request (prometheus_client's labels() takes a lock).
        self.ok, self.latency = REQUESTS.labels(endpoint, "ok"), LATENCY.labels(endpoint)

    async def __call__(self, scope, receive, send) -> None:
        started = time.perf_counter()
        request = Request(scope, receive)
        if request.method == "GET" and "query" not in request.query_params:
            if self.ide:
                page = console.console_page() if console.wants_html(request) else console.admin_endpoint_info(request)
            else:
                page = console.public_endpoint_info(request)
            await page(scope, receive, send)
            return
        try:
            body, payload = await self._body(scope, receive, request)
        except TransportError as err:
            REQUESTS.labels(self.endpoint, err.code).inc()
            await err.response()(scope, receive, send)
            return
        if self.prepared is not None and request.method == "POST" and payload is None:
            # Only JSON on the public endpoint: Strawberry's view would read any content type that merely
            # contains "application/json" and run its text past the prepared path's limits and the
            # trusted-documents rule.
            REQUESTS.labels(self.endpoint, UNSUPPORTED_MEDIA_TYPE).inc()
            await unsupported_media_type().response()(scope, receive, send)
            return
        try:  # an integration's signature covers the raw body as sent (a trusted document's hash too)
            caller = await caller_for(self.endpoint, request.headers, body, request.app.state.redis)
        except AuthError as err:
            REQUESTS.labels(self.endpoint, err.code).inc()
            await Response(refusal(err.code, err.message), media_type="application/json")(scope, receive, send)
            return
        if self.prepared is not None and payload is not None:
            context = Context(caller=caller, endpoint=self.endpoint, request=request, redis=request.app.state.redis)
            answer: bytes | None = await self.prepared.run(payload, context)
            if answer is not None:
                await Response(answer, media_type="application/json")(scope, receive, send)
                self._count(started)
                return
            body = self.prepared.body_for_strawberry(payload, body)
        scope.setdefault("state", {})["caller"] = caller
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.view(scope, replay, send)
        self._count(started)

    async def _body(self, scope, receive, request: Request) -> tuple[bytes, dict | None]:
        """The body within the endpoint's limit and, when it is JSON, the one GraphQL request it holds
        (parsed once); the request's label for the log (api/logs.py)."""
        if request.method != "POST":
            logs.bind_request(request.query_params.get("query"), request.query_params.get("operationName"))
            return b"", None
        cfg = settings()
        body = await read_body(scope, receive, cfg.max_body_bytes if self.endpoint == "public" else cfg.admin_max_body_bytes)
        payload = check_json_request(body) if _is_json(request) else None
        if payload is not None:
            logs.bind_request(payload.get("query"), payload.get("operationName"))
        else:
            logs.bind_request(None, None)
        return body, payload

    def _count(self, started: float) -> None:
        self.ok.inc()
        self.latency.observe(time.perf_counter() - started)


def _is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


async def healthz(request: Request) -> Response:
    try:
        await db.fetch(raw_sql.HEALTH)
    except Exception as exc:  # the database is the one dependency that decides health
        return JSONResponse({"status": "error", "database": str(exc.__class__.__name__)}, status_code=503)
    redis_state = "not configured"
    if request.app.state.redis is not None:
        try:
            await request.app.state.redis.ping()
            redis_state = "ok"
        except Exception:
            redis_state = "unavailable"
    return JSONResponse({"status": "ok", "database": "ok", "redis": redis_state})


async def metrics(request: Request) -> Response:
    return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def dev_pay(request: Request) -> Response:
    """The development payment provider's cashier: pays an order's payment in full (dev-only)."""
    from api.services.errors import DomainError
    from api.services.mall import payments

    if not payments.dev_provider_enabled():
        return JSONResponse({"error": "the development payment provider is off"}, status_code=404)
    try:
        result = await payments.dev_pay(request.path_params["out_trade_no"])
    except DomainError as err:
        return JSONResponse({"error": err.message, "code": err.code.value}, status_code=404)
    return JSONResponse({"orderStatus": result.order_status, "paymentStatus": result.payment_status,
                         "refundRequestedFen": result.refund_requested_fen})


REDIS_CONNECTIONS = 64  # per server process; a burst waits for a free one instead of failing
REDIS_CLUSTER_CONNECTIONS = 1024  # per server process and cluster node (these pools raise when full)


def redis_client(url: str, mode: str = "single"):
    """A bounded pool that makes a caller wait (up to 1 s) for a free connection: the default pool
    raises once it has 100 connections, which in a flash-sale burst sent a thousand requests down the
    database path as if Redis were down.

    `cluster` (issue 15): redis-py's cluster client, started from any node's URL; it learns the slots
    and follows MOVED answers. Every script's keys share a hash tag, so each runs on one shard. Its
    per-node pools cannot wait for a free connection (they raise), so they are allowed more: a flash
    sale's burst all goes to the one node that holds the sale's slot."""
    if mode == "cluster":
        from redis.asyncio.cluster import RedisCluster

        return RedisCluster.from_url(url, max_connections=REDIS_CLUSTER_CONNECTIONS, socket_connect_timeout=1,
                                     socket_timeout=1)
    from redis.asyncio import BlockingConnectionPool, Redis

    pool = BlockingConnectionPool.from_url(url, max_connections=REDIS_CONNECTIONS, timeout=1,
                                           socket_connect_timeout=1, socket_timeout=1)
    return Redis.from_pool(pool)


def public_executor(schema) -> PreparedExecutor:
    """The public endpoint's prepared path: its trusted documents parsed and validated now, once, and
    the sold-out answer of the trusted flashSaleRedeem documents (api/soldout.py)."""
    from api import soldout
    from api.trusted import MANIFEST

    executor = PreparedExecutor(schema, manifest=MANIFEST)
    executor.fast_answers = soldout.answers(schema._schema, executor.trusted)
    return executor


YOUNG_GENERATION = 10_000  # allocations between two collections of the youngest generation (default 700)


def settle_heap() -> tuple[int, ...]:
    """Once a server process has started: what start-up built (schemas, models, the console's bundle)
    moves out of the cyclic garbage collector's sight (`gc.freeze`), and the youngest generation is
    collected every 10,000 allocations instead of 700. A request frees its objects by reference counting
    (api/schema/execution.py removes the one cycle each request used to make), so the collector has little
    to find; with Python's defaults it took 18% of a worker's CPU under load, scanning the whole start-up
    heap again and again (bench/README.md). Returns the thresholds to restore."""
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION, *before[1:])
    return before


def create_app(*, manage_db: bool = True) -> Starlette:
    """`manage_db=False` when the caller (tests, the CLI) has initialised Tortoise already."""
    from api.resolvers.settlement import statement_download
    from api.schema import public
    from api.schema.admin import schema as admin_schema

    logs.install()
    if not logging.getLogger().handlers:  # a worker process uvicorn started: log as `serve` does
        logs.configure(logging.INFO, production=settings().is_production)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        cfg = settings()
        console.assets()  # read and compress the console's bundle now, not in the first request
        if manage_db:
            await db.init_db(cfg)
        app.state.redis = None
        if cfg.redis_url:
            app.state.redis = redis_client(cfg.redis_url, cfg.redis_mode)
        from api.services import scheduler
        from api.services.notifications import dispatcher

        background = Loops()
        if app.state.redis is not None and cfg.gate_refresh_seconds > 0:  # issue 11 finding 12
            background.start(partial(scheduler.gate_loop, app.state.redis, cfg.gate_refresh_seconds))
        if cfg.scheduler_enabled:  # earning (issue 3): pending release, expiry, tier evaluation
            background.start(partial(scheduler.loop, app.state.redis))
            background.start(dispatcher.loop)  # notifications go out between runs too
        settled = settle_heap() if manage_db else None
        try:
            yield
        finally:
            if settled is not None:
                gc.unfreeze()
                gc.set_threshold(*settled)
            await background.stop()  # before Redis and the database close under them
            if app.state.redis is not None:
                await app.state.redis.aclose()
            if manage_db:
                await db.close_db()

    routes = [
        Route("/graphql", GuardedGraphQL(public.schema, "public", ide=False, prepared=public_executor(public.schema)),
              methods=["GET", "POST"]),
        Route("/admin/graphql", GuardedGraphQL(admin_schema, "admin", ide=True), methods=["GET", "POST"]),
        Route(console.STATIC_PREFIX + "{name}", console.static_asset, methods=["GET", "HEAD"]),
        Route("/admin/dashboard", dashboard.page, methods=["GET", "HEAD"]),  # issue 13
        Route(dashboard.PREFIX + "{name}", dashboard.static_asset, methods=["GET", "HEAD"]),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Route("/dev/pay/{out_trade_no}", dev_pay, methods=["POST"]),
        Route("/admin/settlement/statements/{statement_id:int}.{fmt}", statement_download, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(logs.RequestIdMiddleware)])
    app.state.redis = None
    return app
