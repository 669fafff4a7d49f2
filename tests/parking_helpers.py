"""Helpers of the parking tests: the car park's signed calls, car parks, plates, and a snapshot of
everything a refused call must leave as it was."""
from __future__ import annotations

import itertools
from datetime import datetime

from api import db
from api.schema.ids import from_global_id
from api.services import clock, integrations, signing
from tests.conftest import unique
from tests.mall_helpers import REDEEM, create_product, funded_member

PARKING_SECRET = "test-parking-secret"
_plates = itertools.count(1)

SESSION_FIELDS = """id plate status enteredAt exitedAt memberLinked offsetPoints couponCodes paid minutes
  carPark { code }"""
BILL_FIELDS = """minutes fee { amountFen } tierFreeMinutesUsed tierDiscount { amountFen } purchaseFreeMinutesUsed
  purchaseDiscount { amountFen } couponDiscount { amountFen } couponsUsed pointsDiscount { amountFen }
  pointsApplied pointsNeeded discount { amountFen } payable { amountFen }"""
ENTRY = f"""mutation($i: ParkingEntryRecordInput!) {{ parkingEntryRecord(input: $i) {{
  session {{ {SESSION_FIELDS} }} userErrors {{ code field message }} }} }}"""
EXIT = f"""mutation($i: ParkingExitRecordInput!) {{ parkingExitRecord(input: $i) {{
  session {{ {SESSION_FIELDS} }} bill {{ {BILL_FIELDS} }} userErrors {{ code field message }} }} }}"""
QUOTE = f"""mutation($i: ParkingSessionQuoteInput!) {{ parkingSessionQuote(input: $i) {{
  session {{ id status }} bill {{ {BILL_FIELDS} }} at userErrors {{ code field message }} }} }}"""
OFFSET = f"""mutation($i: ParkingOffsetApplyInput!) {{ parkingOffsetApply(input: $i) {{
  session {{ id offsetPoints couponCodes bill {{ {BILL_FIELDS} }} }} pointsHeld pointsBalance
  userErrors {{ code field message }} }} }}"""
BIND = """mutation($i: VehicleBindInput!) { vehicleBind(input: $i) {
  vehicle { id plate active consentVersion consentedAt } userErrors { code field message } } }"""
UNBIND = """mutation($i: VehicleUnbindInput!) { vehicleUnbind(input: $i) {
  vehicle { id plate active unboundAt } userErrors { code field message } } }"""
CAR_PARK_CREATE = """mutation($i: CarParkCreateInput!) { carParkCreate(input: $i) {
  carPark { id code name freeMinutes hourlyFee { amountFen } dailyCap { amountFen }
    tierFreeMinutes { tierCode minutes } purchaseMin { amountFen } purchaseFreeMinutes offsetPointsPerYuan
    offsetMaxPoints } userErrors { code field message } } }"""
ME_PARKING = f"""{{ viewer {{ member {{ pointsBalance pointsHeld vehicles {{ plate }}
  parkingSession {{ {SESSION_FIELDS} bill {{ {BILL_FIELDS} }} }}
  parkingHistory(first: 10) {{ edges {{ node {{ id status bill {{ payable {{ amountFen }} pointsApplied }} }} }} }}
}} }} }}"""


async def member(points: int = 0, tier_code: str | None = None) -> tuple[int, str]:
    """A funded member and a token that outlives the clock moves of these tests (ten days)."""
    member_id, _ = await funded_member(points, tier_code)
    return member_id, signing.issue_token("member", member_id, 10 * 86400)


def new_plate() -> str:
    return f"粤B{next(_plates) % 100000:05d}"


async def parking_key() -> tuple[str, str]:
    key_id = unique("park")
    await integrations.create_key("测试停车场", [], ("cli", None), key_id=key_id, secret=PARKING_SECRET,
                                  scopes=["parking"])
    return key_id, PARKING_SECRET


async def bound_key(car_park_code: str) -> tuple[str, str]:
    """A parking key bound to the car park (as an operator binds it with carParkKeyBind)."""
    from api.services import parking

    key = await parking_key()
    await parking.bind_key(("cli", None), car_park_code, key[0], True)
    return key


class CarParkSystem:
    """The car park's side: signed calls with a parking key."""

    def __init__(self, api, key: tuple[str, str], code: str) -> None:
        self.api, self.key_id, self.secret, self.code = api, key[0], key[1], code

    async def call(self, query: str, data: dict, name: str) -> dict:
        result = await self.api.signed(query, {"i": {"carParkCode": self.code, **data}}, key_id=self.key_id,
                                       secret=self.secret)
        assert "errors" not in result, result
        return result["data"][name]

    async def entry(self, plate: str, at: datetime | None = None, event: str | None = None) -> dict:
        return await self.call(ENTRY, {"plate": plate, "enteredAt": (at or clock.now()).isoformat(),
                                       "eventId": event or unique("in")}, "parkingEntryRecord")

    async def exit(self, plate: str, at: datetime | None = None, event: str | None = None, paid: bool = True) -> dict:
        return await self.call(EXIT, {"plate": plate, "exitedAt": (at or clock.now()).isoformat(),
                                      "eventId": event or unique("out"), "paid": paid}, "parkingExitRecord")

    async def quote(self, plate: str, at: datetime | None = None) -> dict:
        data = {"plate": plate} | ({"at": at.isoformat()} if at else {})
        return await self.call(QUOTE, data, "parkingSessionQuote")


async def new_car_park(api, op_token: str, **fields) -> str:
    code = unique("P")
    data = {"code": code, "name": f"停车场{code}", "freeMinutes": 15, "hourlyFen": 500, "dailyCapFen": 5000,
            "tierFreeMinutes": [{"tierCode": "GOLD", "minutes": 120}, {"tierCode": "DIAMOND", "minutes": 180}],
            "purchaseMinFen": 20000, "purchaseFreeMinutes": 120, "offsetPointsPerYuan": 100,
            "offsetMaxPoints": 2000, **fields}
    result = await api.post(CAR_PARK_CREATE, {"i": data}, token=op_token, admin=True)
    payload = result["data"]["carParkCreate"]
    assert payload["userErrors"] == [], payload
    return code


async def bind(api, token: str, plate: str, consent: bool = True) -> dict:
    return (await api.post(BIND, {"i": {"plate": plate, "consent": consent}}, token=token))["data"]["vehicleBind"]


async def offset(api, token: str, session_id: str, points: int, coupons: list[str] | None = None,
                 key: str | None = None) -> dict:
    data = {"sessionId": session_id, "points": points, "couponCodes": coupons or [], "idempotencyKey": key or unique("K")}
    return (await api.post(OFFSET, {"i": data}, token=token))["data"]["parkingOffsetApply"]


async def parking_coupon(api, op_token: str, token: str, face_value_fen: int, points_price: int = 100) -> str:
    """A parking coupon bought in the points mall by the member; returns its code."""
    product = await create_product(api, op_token, kind="PARKING_COUPON", faceValueFen=face_value_fen,
                                   pointsPrice=points_price, stock=10)
    result = await api.post(REDEEM, {"i": {"productId": product["id"], "idempotencyKey": unique("K")}}, token=token)
    payload = result["data"]["pointsMallRedeem"]
    assert payload["userErrors"] == [], payload
    return payload["order"]["vouchers"][0]["code"]


def pk(global_id: str) -> int:
    return from_global_id(global_id)[1]


async def parking_state(member_id: int | None, plate: str | None = None) -> dict:
    """Everything a refused parking call must leave as it was: points, holds, vouchers, stays, vehicles."""
    out: dict = {}
    if member_id is not None:
        rows = await db.fetch(
            "SELECT a.balance, (SELECT COUNT(*) FROM points_entry e WHERE e.account_id = a.id) AS entries,"
            " (SELECT COUNT(*) FROM points_hold h WHERE h.account_id = a.id AND h.status = 'HELD') AS live_holds,"
            " (SELECT COUNT(*) FROM points_hold h WHERE h.account_id = a.id) AS holds,"
            " (SELECT COALESCE(SUM(h.points), 0) FROM points_hold h WHERE h.account_id = a.id AND h.status = 'HELD')"
            " AS held, (SELECT COUNT(*) FROM voucher v WHERE v.member_id = a.member_id AND v.status = 'ISSUED')"
            " AS vouchers_issued, (SELECT COUNT(*) FROM vehicle x WHERE x.member_id = a.member_id AND x.active)"
            " AS vehicles, (SELECT COUNT(*) FROM parking_session s WHERE s.member_id = a.member_id) AS stays"
            " FROM points_account a WHERE a.member_id = $1", member_id)
        out.update({k: int(v) for k, v in dict(rows[0]).items()})
    if plate is not None:
        rows = await db.fetch("SELECT id, status, member_id, offset_points, hold_id, coupon_codes FROM parking_session"
                              " WHERE plate = $1 ORDER BY id", plate)
        out["plate_stays"] = [dict(r) for r in rows]
    return out


async def car_park_system(api, op_token: str, **fields) -> "CarParkSystem":
    """A new car park and its system, signing with a key bound to it."""
    code = await new_car_park(api, op_token, **fields)
    return CarParkSystem(api, await bound_key(code), code)
