"""A request's objects are freed by reference counting, not left for the cyclic garbage collector.

graphql-core 3.3 builds a reference cycle into every execution context (`async_helpers` holds two bound
methods of the context); everything a request touched hung off it (context, request, connection state,
collected fields) until the collector found it, and with the server's young generation of 10,000
allocations (api/app.py, `settle_heap`) that is memory held and a collector that scans far more (18% of a
worker's CPU under load with Python's defaults). Both schemas execute with `AcyclicExecutionContext`.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager

from api.app import settle_heap
from tests.conftest import PURCHASE, make_member, purchase_input

SERVER_PACKAGES = {"api", "graphql", "strawberry", "starlette", "uvicorn", "tortoise", "asyncpg"}
LEDGER = "query { viewer { member { pointsBalance pointsLedger(first: 5) { edges { node { points } } } } } }"


@contextmanager
def collector_off():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def test_requests_leave_no_cycles(api):
    member_id, token = await make_member()
    await api.signed(PURCHASE, {"input": purchase_input(member_id)})  # caches warm
    await api.post(LEDGER, token=token)
    await api.post("{ tiers { code } }", admin=True)
    with collector_off():
        gc.collect()
        for _ in range(5):
            answer = await api.signed(PURCHASE, {"input": purchase_input(member_id)})
            assert answer["data"]["purchaseRecord"]["userErrors"] == []
            assert (await api.post(LEDGER, token=token))["data"]["viewer"]["member"]["pointsBalance"] > 0
            await api.post("{ tiers { code } }", admin=True)  # the operators' schema (refused: not signed in)
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            server_side = {f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage
                           if type(o).__module__.split(".")[0] in SERVER_PACKAGES}
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    # Before, each of these 15 requests left ~70 such objects (its execution context, Context, Request,
    # collected fields); what the test's HTTP client leaves (httpx's streams) is not the server's.
    assert server_side == set(), sorted(server_side)


def test_settle_heap_freezes_start_up_and_restores():
    before = gc.get_threshold()
    restore = settle_heap()
    try:
        assert restore == before
        assert gc.get_threshold()[0] == 10_000
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*restore)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
