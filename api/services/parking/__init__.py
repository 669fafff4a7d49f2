"""Parking: members' vehicles, car parks and their fee rules, stays reported by the car park's system
(entry, quote, exit), parking-fee offsets by points and parking coupons, abandoned stays, and the
operators' figures (docs/parking.md). One idea a module:

- `fees`: the fee and discount arithmetic (pure);     - `plates`: what a plate is, and its lock;
- `car_parks`, `keys`: car parks, and which keys may report for them;
- `vehicles`: binding and unbinding plates;           - `stays`: a stay, its final bill, its look-ups;
- `billing`: a stay's bill with the member's benefits, and quotes;
- `entries`, `exits`: what the car park reports;      - `offsets`, `holds`: the member's coupons and points;
- `abandon`: stays with no exit;                       - `reports`: operators' figures;
- `sql`: the statements that stay SQL.

Locks (api/locks.py, in its global order): plate → idempotency key → member (account) → stay →
vouchers. A stay's points are held (`ledger.hold`, source_type "parking_session") from
`parkingOffsetApply` until the exit: spent when the car park reports a paid exit, released when the
car leaves unpaid, the stay is abandoned or the member changes the amount (then a new hold replaces
the old one).
"""
from api.services.parking.abandon import ABANDON_AFTER_HOURS, ABANDON_CHUNK, AbandonResult, abandon_stays
from api.services.parking.billing import Quote, open_stay_quote, quote
from api.services.parking.car_parks import (
    CarParkData,
    CarParkInfo,
    car_park_by_code,
    car_park_by_id,
    car_parks,
    car_parks_by_id,
    create_car_park,
    update_car_park,
)
from api.services.parking.common import (
    CONSENT_VERSION,
    FUTURE_SLACK,
    HOLD_HOURS,
    HOLD_SOURCE,
    MAX_COUPONS,
    MAX_EVENT_ID,
    MAX_FEN,
    MAX_VEHICLES,
)
from api.services.parking.entries import record_entry
from api.services.parking.exits import ExitResult, record_exit
from api.services.parking.fees import Bill, Coupon, FeeRules, bill, minutes_between
from api.services.parking.keys import bind_key, keys_of, require_key
from api.services.parking.offsets import OffsetResult, apply_offset
from api.services.parking.plates import PLATE_LOCK_SPACE, PLATE_PATTERNS, PROVINCES, normalize_plate
from api.services.parking.reports import Occupancy, OffsetTotals, occupancy, offset_totals
from api.services.parking.stays import StayInfo, final_bill, member_history, member_open_stay, stay, stays_page
from api.services.parking.vehicles import VehicleInfo, bind_vehicle, unbind_vehicle, vehicle, vehicles_of

__all__ = [
    "ABANDON_AFTER_HOURS", "ABANDON_CHUNK", "AbandonResult", "abandon_stays", "Quote", "open_stay_quote", "quote",
    "CarParkData", "CarParkInfo", "car_park_by_code", "car_park_by_id", "car_parks", "car_parks_by_id",
    "create_car_park", "update_car_park", "CONSENT_VERSION", "FUTURE_SLACK", "HOLD_HOURS", "HOLD_SOURCE",
    "MAX_COUPONS", "MAX_EVENT_ID", "MAX_FEN", "MAX_VEHICLES", "record_entry", "ExitResult", "record_exit", "Bill",
    "Coupon", "FeeRules", "bill", "minutes_between", "bind_key", "keys_of", "require_key", "OffsetResult",
    "apply_offset", "PLATE_LOCK_SPACE", "PLATE_PATTERNS", "PROVINCES", "normalize_plate", "Occupancy",
    "OffsetTotals", "occupancy", "offset_totals", "StayInfo", "final_bill", "member_history", "member_open_stay",
    "stay", "stays_page", "VehicleInfo", "bind_vehicle", "unbind_vehicle", "vehicle", "vehicles_of",
]
