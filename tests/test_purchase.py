"""purchaseRecord, purchaseRecordBatch, purchaseRefund and pointsPay through the public endpoint."""
from __future__ import annotations

from datetime import timedelta

from api.services import clock
from tests.conftest import (
    PAY,
    PURCHASE,
    REFUND,
    code_for,
    make_member,
    make_merchant,
    purchase_input,
    snapshot,
    unique,
)


async def test_purchase_earns_floor_of_yuan_times_multiplier(api):
    member_id, _ = await make_member()
    data = await api.signed(PURCHASE, {"input": purchase_input(member_id, 12345)})
    result = data["data"]["purchaseRecord"]
    assert result["userErrors"] == []
    assert result["pointsEarned"] == 123  # floor(123.45 × 1 × 100%)
    assert result["pointsBalance"] == 123
    assert result["purchase"]["amountFen"] == 12345
    state = await snapshot(member_id)
    assert state["balance"] == 123 and state["growth_value"] == 123 and state["entries"] == 1


async def test_upgrade_is_immediate_and_multiplier_applies_after(api):
    member_id, _ = await make_member()
    first = await api.signed(PURCHASE, {"input": purchase_input(member_id, 1_600_000)})  # 16,000 yuan
    assert first["data"]["purchaseRecord"]["pointsEarned"] == 16000  # earned at 普通 ×1
    state = await snapshot(member_id)
    tiers = {t["code"]: t for t in (await api.post("{ tiers { id code growthThreshold } }"))["data"]["tiers"]}
    assert state["growth_value"] == 16000
    second = await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_001)})
    assert second["data"]["purchaseRecord"]["pointsEarned"] == 200  # 钻石 ×2: floor(100.01 × 2)
    assert tiers["DIAMOND"]["growthThreshold"] == 15000


async def test_same_idempotency_key_returns_first_result_and_books_once(api):
    member_id, _ = await make_member()
    payload = purchase_input(member_id, 5000)
    first = await api.signed(PURCHASE, {"input": payload})
    again = await api.signed(PURCHASE, {"input": payload})
    assert again["data"] == first["data"]
    assert (await snapshot(member_id))["entries"] == 1


async def test_same_key_with_other_input_is_refused(api):
    member_id, _ = await make_member()
    payload = purchase_input(member_id, 5000)
    await api.signed(PURCHASE, {"input": payload})
    before = await snapshot(member_id)
    changed = {**payload, "amountFen": 5001}
    result = (await api.signed(PURCHASE, {"input": changed}))["data"]["purchaseRecord"]
    assert [e["code"] for e in result["userErrors"]] == ["IDEMPOTENCY_KEY_REUSED"]
    assert result["pointsEarned"] is None
    assert await snapshot(member_id) == before


async def test_duplicate_receipt_earns_once(api):
    member_id, _ = await make_member()
    payload = purchase_input(member_id, 5000)
    await api.signed(PURCHASE, {"input": payload})
    before = await snapshot(member_id)
    result = (await api.signed(PURCHASE, {"input": {**payload, "idempotencyKey": unique("K")}}))["data"]
    assert result["purchaseRecord"]["userErrors"][0]["code"] == "DUPLICATE_RECEIPT"
    assert result["purchaseRecord"]["userErrors"][0]["field"] == ["receiptNo"]
    assert await snapshot(member_id) == before


async def test_bad_inputs_are_refused_and_change_nothing(api):
    member_id, _ = await make_member()
    await api.signed(PURCHASE, {"input": purchase_input(member_id, 5000)})
    before = await snapshot(member_id)
    other_merchant = await make_merchant()  # the demo key is not bound to it
    cases = [
        ({"amountFen": 0}, "INVALID_INPUT", ["amountFen"]),
        ({"amountFen": -100}, "INVALID_INPUT", ["amountFen"]),
        ({"amountFen": 10_000_001}, "INVALID_INPUT", ["amountFen"]),
        ({"memberCode": "1" * 32}, "NOT_FOUND", ["memberCode"]),
        ({"memberCode": "garbage"}, "NOT_FOUND", ["memberCode"]),
        ({"merchantCode": "NOPE"}, "NOT_FOUND", ["merchantCode"]),
        ({"merchantCode": other_merchant}, "MERCHANT_NOT_ALLOWED", ["merchantCode"]),
        ({"receiptNo": ""}, "INVALID_INPUT", ["receiptNo"]),
        ({"idempotencyKey": ""}, "INVALID_INPUT", ["idempotencyKey"]),
        ({"occurredAt": (clock.now() + timedelta(hours=1)).isoformat()}, "INVALID_INPUT", ["occurredAt"]),
        ({"occurredAt": (clock.now() - timedelta(days=31)).isoformat()}, "INVALID_INPUT", ["occurredAt"]),
    ]
    for change, code, field in cases:
        result = (await api.signed(PURCHASE, {"input": {**purchase_input(member_id, 5000), **change}}))
        errors = result["data"]["purchaseRecord"]["userErrors"]
        assert [(e["code"], e["field"]) for e in errors] == [(code, field)], change
        assert errors[0]["message"]
    assert await snapshot(member_id) == before


async def test_expired_member_code_is_refused(api):
    member_id, _ = await make_member()
    code = code_for(member_id)
    clock.freeze(clock.now() + timedelta(minutes=3))
    before = await snapshot(member_id)
    result = await api.signed(PURCHASE, {"input": purchase_input(member_id, 5000, code=code)})
    assert result["data"]["purchaseRecord"]["userErrors"][0]["code"] == "MEMBER_CODE_EXPIRED"
    assert await snapshot(member_id) == before


async def test_offline_upload_uses_the_time_of_purchase_for_the_code(api):
    """A till that was offline uploads later: the code was valid when the purchase happened."""
    member_id, _ = await make_member()
    scanned_at = clock.now()
    code = code_for(member_id)
    clock.freeze(scanned_at + timedelta(hours=2))
    ok = await api.signed(PURCHASE, {"input": purchase_input(member_id, 5000, code=code, occurred_at=scanned_at)})
    assert ok["data"]["purchaseRecord"]["pointsEarned"] == 50
    late = await api.signed(PURCHASE, {"input": purchase_input(
        member_id, 5000, code=code, occurred_at=scanned_at + timedelta(minutes=5))})
    assert late["data"]["purchaseRecord"]["userErrors"][0]["code"] == "MEMBER_CODE_EXPIRED"


BATCH = """
mutation($input: PurchaseRecordBatchInput!) {
  purchaseRecordBatch(input: $input) {
    results { purchase { receiptNo } pointsEarned userErrors { field code } }
    userErrors { code }
  }
}"""


async def test_batch_answers_each_receipt_on_its_own(api):
    member_id, _ = await make_member()
    good = [purchase_input(member_id, 1000 * (i + 1)) for i in range(3)]
    bad = {**purchase_input(member_id, 0)}
    dup = {**good[0], "idempotencyKey": unique("K")}
    result = (await api.signed(BATCH, {"input": {"purchases": [good[0], bad, good[1], dup, good[2]]}}))
    batch = result["data"]["purchaseRecordBatch"]
    assert batch["userErrors"] == []
    earned = [r["pointsEarned"] for r in batch["results"]]
    assert earned == [10, None, 20, None, 30]
    assert batch["results"][1]["userErrors"] == [{"field": ["purchases", "1", "amountFen"], "code": "INVALID_INPUT"}]
    assert batch["results"][3]["userErrors"][0]["code"] == "DUPLICATE_RECEIPT"
    assert (await snapshot(member_id))["balance"] == 60
    # Replaying the whole batch books nothing new and answers the same.
    again = (await api.signed(BATCH, {"input": {"purchases": [good[0], bad, good[1], dup, good[2]]}}))
    assert [r["pointsEarned"] for r in again["data"]["purchaseRecordBatch"]["results"]] == earned
    assert (await snapshot(member_id))["entries"] == 3


async def test_batch_over_100_is_refused_whole(api):
    member_id, _ = await make_member()
    items = [purchase_input(member_id, 100) for _ in range(101)]
    result = (await api.signed(BATCH, {"input": {"purchases": items}}))["data"]["purchaseRecordBatch"]
    assert result["userErrors"][0]["code"] == "INVALID_INPUT" and result["results"] == []
    assert (await snapshot(member_id))["entries"] == 0


async def test_refund_reverses_in_proportion_and_in_full_over_parts(api):
    member_id, _ = await make_member()
    payload = purchase_input(member_id, 9999)  # 99 points
    await api.signed(PURCHASE, {"input": payload})
    refund = {"merchantCode": "M001", "receiptNo": payload["receiptNo"]}
    r1 = (await api.signed(REFUND, {"input": {**refund, "refundAmountFen": 3333, "idempotencyKey": unique("K")}}))
    assert r1["data"]["purchaseRefund"]["pointsReversed"] == 33  # floor(99 × 3333 / 9999)
    r2 = (await api.signed(REFUND, {"input": {**refund, "refundAmountFen": 6666, "idempotencyKey": unique("K")}}))
    total = r1["data"]["purchaseRefund"]["pointsReversed"] + r2["data"]["purchaseRefund"]["pointsReversed"]
    assert total == 99
    state = await snapshot(member_id)
    assert state["balance"] == 0 and state["growth_value"] == 0
    over = (await api.signed(REFUND, {"input": {**refund, "refundAmountFen": 1, "idempotencyKey": unique("K")}}))
    assert over["data"]["purchaseRefund"]["userErrors"][0]["code"] == "INVALID_INPUT"
    assert await snapshot(member_id) == state


async def test_refund_of_spent_points_claws_back_into_a_debt_that_blocks_spending(api):
    member_id, _ = await make_member()
    payload = purchase_input(member_id, 100_000)  # 1000 points
    await api.signed(PURCHASE, {"input": payload})
    pay = {"memberCode": code_for(member_id), "merchantCode": "M001", "receiptNo": unique("P"), "points": 900,
           "idempotencyKey": unique("K")}
    assert (await api.signed(PAY, {"input": pay}))["data"]["pointsPay"]["pointsBalance"] == 100
    refund = {"merchantCode": "M001", "receiptNo": payload["receiptNo"], "refundAmountFen": 100_000,
              "idempotencyKey": unique("K")}
    result = (await api.signed(REFUND, {"input": refund}))["data"]["purchaseRefund"]
    assert result["pointsReversed"] == 1000 and result["pointsBalance"] == -900
    spend = {**pay, "receiptNo": unique("P"), "points": 100, "idempotencyKey": unique("K")}
    blocked = (await api.signed(PAY, {"input": spend}))["data"]["pointsPay"]
    assert blocked["userErrors"][0]["code"] == "INSUFFICIENT_POINTS"
    # A later purchase pays the debt off first. The member stays 银卡 (×1.2) until the period ends,
    # although the refund took the growth value back: downgrades wait for the period's end.
    later = (await api.signed(PURCHASE, {"input": purchase_input(member_id, 100_000)}))["data"]["purchaseRecord"]
    assert later["pointsEarned"] == 1200 and later["pointsBalance"] == 300


async def test_refund_errors(api):
    member_id, _ = await make_member()
    other = await make_merchant()
    cases = [
        ({"merchantCode": "M001", "receiptNo": "NO-SUCH", "refundAmountFen": 100}, "NOT_FOUND"),
        ({"merchantCode": "M001", "receiptNo": "X", "refundAmountFen": 0}, "INVALID_INPUT"),
        ({"merchantCode": other, "receiptNo": "X", "refundAmountFen": 100}, "MERCHANT_NOT_ALLOWED"),
    ]
    for data, code in cases:
        result = await api.signed(REFUND, {"input": {**data, "idempotencyKey": unique("K")}})
        assert result["data"]["purchaseRefund"]["userErrors"][0]["code"] == code


async def test_points_pay_spends_at_the_configured_rate(api):
    member_id, _ = await make_member()
    await api.signed(PURCHASE, {"input": purchase_input(member_id, 50_000)})  # 500 points
    pay = {"memberCode": code_for(member_id), "merchantCode": "M002", "receiptNo": unique("P"), "points": 300,
           "idempotencyKey": unique("K")}
    result = (await api.signed(PAY, {"input": pay}))["data"]["pointsPay"]
    assert result == {"pointsSpent": 300, "cashValueFen": 300, "pointsBalance": 200, "userErrors": []}
    again = (await api.signed(PAY, {"input": pay}))["data"]["pointsPay"]
    assert again == result
    before = await snapshot(member_id)
    too_much = {**pay, "receiptNo": unique("P"), "points": 201, "idempotencyKey": unique("K")}
    refused = (await api.signed(PAY, {"input": too_much}))["data"]["pointsPay"]
    assert refused["userErrors"][0]["code"] == "INSUFFICIENT_POINTS" and refused["pointsSpent"] is None
    same_receipt = {**pay, "points": 100, "idempotencyKey": unique("K")}
    dup = (await api.signed(PAY, {"input": same_receipt}))["data"]["pointsPay"]
    assert dup["userErrors"][0]["code"] == "DUPLICATE_RECEIPT"
    zero = (await api.signed(PAY, {"input": {**too_much, "points": 0}}))["data"]["pointsPay"]
    assert zero["userErrors"][0]["code"] == "INVALID_INPUT"
    assert await snapshot(member_id) == before


async def test_spend_takes_earliest_expiring_lots_first(api):
    from api.db import fetch

    member_id, _ = await make_member()
    now = clock.now()
    await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000, occurred_at=now - timedelta(days=20))})
    await api.signed(PURCHASE, {"input": purchase_input(member_id, 20_000, occurred_at=now - timedelta(days=10))})
    pay = {"memberCode": code_for(member_id), "merchantCode": "M001", "receiptNo": unique("P"), "points": 150,
           "idempotencyKey": unique("K")}
    await api.signed(PAY, {"input": pay})
    lots = await fetch(
        "SELECT l.points, l.remaining FROM points_lot l JOIN points_account a ON a.id = l.account_id"
        " WHERE a.member_id = $1 ORDER BY l.expires_at", member_id,
    )
    assert [(r["points"], r["remaining"]) for r in lots] == [(100, 0), (200, 150)]


async def test_refund_after_expiry_forgives_what_expired_and_claws_back_what_was_spent(api):
    from api.services import ledger

    member_id, _ = await make_member()
    start = clock.now()
    payload = purchase_input(member_id, 10_000)  # 100 points, expiring in 12 months
    await api.signed(PURCHASE, {"input": payload})
    pay = {"memberCode": code_for(member_id), "merchantCode": "M001", "receiptNo": unique("P"), "points": 60,
           "idempotencyKey": unique("K")}
    await api.signed(PAY, {"input": pay})  # 40 left in the lot
    clock.freeze(start + timedelta(days=366))
    await ledger.expire_due(clock.now())  # the 40 expire
    # The purchase was bought back late (a till may refund within its own rules): the full refund
    # settles 100 points: 40 expired (forgiven), 60 spent (clawed back, into a debt here).
    refund = {"merchantCode": "M001", "receiptNo": payload["receiptNo"], "refundAmountFen": 10_000,
              "idempotencyKey": unique("K")}
    result = (await api.signed(REFUND, {"input": refund}))["data"]["purchaseRefund"]
    assert result == {"pointsReversed": 60, "pointsBalance": -60, "userErrors": []}


async def test_an_earn_first_expires_what_is_due(api):
    member_id, _ = await make_member()
    await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000)})
    clock.freeze(clock.now() + timedelta(days=400))
    payload = purchase_input(member_id, 5_000)
    result = (await api.signed(PURCHASE, {"input": payload}))["data"]["purchaseRecord"]
    assert result["pointsEarned"] == 50 and result["pointsBalance"] == 50
    again = (await api.signed(PURCHASE, {"input": payload}))["data"]["purchaseRecord"]
    assert again == result
    state = await snapshot(member_id)
    assert state["balance"] == 50 and state["entries"] == 3  # EARN, EXPIRE, EARN


async def test_group_commit_isolates_a_receipt_that_fails_for_another_reason(api, monkeypatch):
    """Concurrent receipts share a transaction; one that fails with an unexpected fault must not
    take the others down: the group is booked again one by one, and only its caller sees the fault."""
    import asyncio

    import pytest

    from api.services import purchases

    member_id, _ = await make_member()
    identity = purchases.IntegrationIdentity("demo-pos", "test", frozenset(
        m.id for m in [await purchases.merchants.by_code("M001", [])]))
    real_book = purchases._book

    async def book(tx, item, now):
        if item.receipt_no.startswith("BOOM"):
            raise RuntimeError("a fault that is not a business rule")
        return await real_book(tx, item, now)

    real_set_book = purchases.batch.book

    async def set_book(tx, items, fast, order, qualified):  # the same fault on the set-based path
        if any(items[i][0].receipt_no.startswith("BOOM") for i in fast):
            raise RuntimeError("a fault that is not a business rule")
        return await real_set_book(tx, items, fast, order, qualified)

    monkeypatch.setattr(purchases.earn, "book", book)
    monkeypatch.setattr(purchases.batch, "book", set_book)
    inputs = [purchases.PurchaseInput(code_for(member_id), "M001", ("BOOM" if i == 2 else "") + unique("R"), 1000,
                                      clock.now(), unique("K")) for i in range(6)]
    results = await asyncio.gather(*(purchases.record_purchase(identity, data) for data in inputs),
                                   return_exceptions=True)
    assert isinstance(results[2], RuntimeError)
    assert [r.points_earned for i, r in enumerate(results) if i != 2] == [10] * 5
    state = await snapshot(member_id)
    assert state["balance"] == 50 and state["purchases"] == 5
    with pytest.raises(RuntimeError):
        await purchases.record_purchase(identity, inputs[2])


async def test_group_commit_runs_one_group_and_starts_another_beside_one_that_waits(api, monkeypatch):
    """One group of receipts in flight per process: a receipt that arrives while a group runs waits for
    the next group; once the running group has taken longer than STALL_SECONDS (it waits for a lock that
    another transaction holds), the next group starts beside it instead of waiting too."""
    import asyncio

    from api.services import purchases
    from api.services.purchases import group

    release = asyncio.Event()
    real_book_together = group.book_together

    async def book_together(items):
        if any(item.receipt_no.startswith("SLOW") for item, _ in items):
            await release.wait()  # a group held up (as by another transaction's lock)
        return await real_book_together(items)

    monkeypatch.setattr(group, "book_together", book_together)
    monkeypatch.setattr(group.group_commit, "STALL_SECONDS", 0.3)
    first, second, third = [(await make_member())[0] for _ in range(3)]
    identity = purchases.IntegrationIdentity("demo-pos", "test", frozenset(
        [(await purchases.merchants.by_code("M001", [])).id]))

    def receipt(member_id: int, prefix: str = "") -> purchases.PurchaseInput:
        return purchases.PurchaseInput(code_for(member_id), "M001", prefix + unique("R"), 1000, clock.now(), unique("K"))

    slow = asyncio.create_task(purchases.record_purchase(identity, receipt(first, "SLOW")))
    await asyncio.sleep(0.05)
    queued = asyncio.create_task(purchases.record_purchase(identity, receipt(second)))  # the group is moving
    await asyncio.sleep(0.1)
    assert not queued.done() and group.group_commit.running == 1
    await asyncio.sleep(0.3)  # now the running group has taken longer than STALL_SECONDS
    beside = await asyncio.wait_for(purchases.record_purchase(identity, receipt(third)), 10)
    assert beside.points_earned == 10 and not slow.done()
    release.set()
    assert (await slow).points_earned == 10 and (await queued).points_earned == 10
    assert [(await snapshot(m))["balance"] for m in (first, second, third)] == [10, 10, 10]


async def test_a_big_batch_is_booked_in_chunks_of_members_and_answers_in_input_order(api, monkeypatch):
    """purchaseRecordBatch books its receipts in transactions of about 25 (a member's receipts never
    split); two members with one receipt number keep the batch in one transaction (who is refused
    depends on the order of both); a lock timeout after the first chunk answers TRY_AGAIN for the
    receipts not booked, and the same batch sent again books them and repeats the others."""
    from api.services import purchases
    from api.services.errors import DomainError, ErrorCode
    from api.services.purchases import group

    calls: list[list[int]] = []
    fail_call: list[int] = []
    real_book_together = group.book_together

    async def book_together(items):
        calls.append(sorted({item.member_id for item, _ in items}))
        if len(calls) in fail_call:
            raise DomainError(ErrorCode.TRY_AGAIN, "the accounts were busy", None)
        return await real_book_together(items)

    monkeypatch.setattr(group, "book_together", book_together)
    members = [(await make_member())[0] for _ in range(12)]
    identity = purchases.IntegrationIdentity("demo-pos", "test", frozenset(
        [(await purchases.merchants.by_code("M001", [])).id]))

    def batch(receipt_no=lambda i: unique("R")) -> list[purchases.PurchaseInput]:
        return [purchases.PurchaseInput(code_for(members[i % 12]), "M001", receipt_no(i), 1000 + i, clock.now(),
                                        unique("K")) for i in range(60)]

    items = await purchases.record_batch(identity, batch())
    assert [(it.error, it.result.amount_fen if it.result else None) for it in items] == [
        (None, 1000 + i) for i in range(60)]
    assert [len(c) for c in calls] == [5, 5, 2]  # 25, 25 and 10 receipts
    assert sorted(m for c in calls for m in c) == sorted(members)
    assert [(await snapshot(m))["balance"] for m in members] == [50] * 12

    calls.clear()
    shared = unique("R")
    items = await purchases.record_batch(identity, batch(lambda i: shared if i in (0, 1) else unique("R")))
    assert len(calls) == 1
    assert [it.error.code for it in items if it.error] == [ErrorCode.DUPLICATE_RECEIPT]

    calls.clear()
    fail_call.append(2)
    inputs = batch()
    items = await purchases.record_batch(identity, inputs)
    busy = [i for i, it in enumerate(items) if it.error]
    assert len(busy) == 35 and all(items[i].error.code is ErrorCode.TRY_AGAIN for i in busy)
    assert all(items[i].error.field == ["purchases", str(i)] for i in busy)
    first = {i: it.result for i, it in enumerate(items) if it.result}
    calls.clear()
    fail_call.clear()
    again = await purchases.record_batch(identity, inputs)
    assert all(it.error is None for it in again) and all(again[i].result == r for i, r in first.items())
    assert sum([(await snapshot(m))["purchases"] for m in members]) == 60 + 59 + 60
