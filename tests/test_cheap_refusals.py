"""Cheap refusals (issue 11, finding 4): documents that make validation expensive are refused on the
parsed document, in milliseconds, before any validation rule runs; a failing document is validated at
most once and never cached; a wrong-typed variable is named, not masked. Times are measured in this
test's own process: CPU seconds where the bound is about the work (the machine is shared, wall time
drifts), wall seconds for /healthz."""
from __future__ import annotations

import asyncio
import time
import uuid

import strawberry.schema.schema as strawberry_schema

import api.prepared as prepared_module
from tests.conftest import make_member


def repeated_fields(n: int = 490) -> str:
    """The attack: one field repeated n times, with a unique comment that defeats every cache."""
    return "{" + " tiers{name}" * n + "} #" + uuid.uuid4().hex


def spread_fragments(n: int = 400) -> str:
    return "{ ...F" + " ...F" * n + " } fragment F on Query { tiers { name } } #" + uuid.uuid4().hex


def nested_spreads() -> str:
    """Fragments that double at each level: 2^12 fields once expanded, from a short text."""
    levels = 12
    parts = [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    parts.append(f"fragment F{levels} on Query {{ tiers {{ name }} }}")
    return "{ ...F0 } " + " ".join(parts)


class Counter:
    def __init__(self, monkeypatch) -> None:
        self.calls = 0
        for module in (prepared_module, strawberry_schema):
            real = module.validate_document

            def counting(*args, _real=real, **kwargs):
                self.calls += 1
                return _real(*args, **kwargs)

            monkeypatch.setattr(module, "validate_document", counting)


async def test_repeated_fields_refused_in_milliseconds_before_validation(api, monkeypatch):
    validations = Counter(monkeypatch)
    for attack in (repeated_fields(), spread_fragments(), nested_spreads()):
        started = time.process_time()
        answer = await api.post(attack)
        elapsed = time.process_time() - started
        assert answer["data"] is None and answer["errors"], attack[:40]
        assert elapsed < 0.25, f"refused in {elapsed:.3f} CPU s"  # 4–7 s before (graphql-core's overlap rule)
        print(f"\nrefused {len(attack):,}-byte attack in {elapsed * 1000:.1f} CPU ms")  # the closing note's figure
    assert validations.calls == 0  # the limits answered; no validation rule ran


async def test_a_failing_document_is_validated_once_and_not_kept(api, monkeypatch):
    validations = Counter(monkeypatch)
    executor = api.client._transport.app.routes[0].endpoint.prepared
    kept = len(executor.cache)
    answer = await api.post("{ tiers { nope } } #" + uuid.uuid4().hex)
    assert "nope" in answer["errors"][0]["message"]
    assert validations.calls == 1
    assert len(executor.cache) == kept
    over = await api.post(repeated_fields(10))
    assert "more than" in over["errors"][0]["message"] and len(executor.cache) == kept


def test_the_limits_leave_ordinary_documents_alone():
    from graphql import parse

    from api import doclimits

    ordinary = parse("query A($f: Int!) { viewer { member { id tier { name } pointsLedger(first: $f) { edges { node "
                     "{ points } } pageInfo { hasNextPage } } } } tiers { code name } a: tiers { code } }")
    assert doclimits.check(ordinary) is None
    four = parse("{" + " tiers { name }" * doclimits.MAX_REPEATS + " }")
    assert doclimits.check(four) is None
    five = parse("{" + " tiers { name }" * (doclimits.MAX_REPEATS + 1) + " }")
    assert "selected more than" in doclimits.check(five).message


async def test_a_wrong_typed_variable_is_named_not_masked(api):
    _, token = await make_member()
    query = "query Page($f: Int!) { viewer { member { pointsLedger(first: $f) { edges { cursor } } } } }"
    for value in (2**63, "ten", 1.5):
        answer = await api.post(query, {"f": value}, token=token)
        message = answer["errors"][0]["message"]
        assert message.startswith("Variable '$f'") and "Unexpected error" not in message, message
    when = ("mutation E($i: ParkingEntryRecordInput!) { parkingEntryRecord(input: $i) { userErrors { code } } }")
    answer = await api.post(when, {"i": {"carParkCode": "P1", "plate": "粤B12345", "enteredAt": "yesterday",
                                         "eventId": "e1"}})
    assert answer["errors"][0]["message"].startswith("Variable '$i'") and "enteredAt" in answer["errors"][0]["message"]


async def test_healthz_answers_during_a_burst_of_expensive_documents(api):
    async def attack() -> None:
        for _ in range(3):
            await api.post(repeated_fields())

    async def health() -> float:
        await asyncio.sleep(0.01)
        started = time.perf_counter()
        assert (await api.client.get("/healthz")).status_code == 200
        return time.perf_counter() - started

    started = time.perf_counter()
    results = await asyncio.gather(*(attack() for _ in range(8)), health())
    assert results[-1] < 2.5, f"/healthz took {results[-1]:.2f} s"  # up to 11.5 s before
    print(f"\n/healthz during 8 attackers: {results[-1] * 1000:.0f} ms; 24 attacks in {time.perf_counter() - started:.2f} s")
    assert time.perf_counter() - started < 8.0  # 24 such requests: over a minute of CPU before
