"""The statements of parking that stay SQL, each with the reason it is not written with the ORM.
Placeholders are PostgreSQL's `$1…` (api.db turns them into SQLite's `?1…`)."""

# Occupancy report: three conditional counts per car park in one pass over the stays (a report: CASE
# aggregates grouped by car park, which the ORM cannot say).
OCCUPANCY = (
    "SELECT car_park_id, SUM(CASE WHEN status = 'OPEN' THEN 1 ELSE 0 END) AS open_stays,"
    " SUM(CASE WHEN entered_at >= $1 AND entered_at < $2 THEN 1 ELSE 0 END) AS entries,"
    " SUM(CASE WHEN exited_at >= $1 AND exited_at < $2 THEN 1 ELSE 0 END) AS exits"
    " FROM parking_session WHERE status = 'OPEN' OR entered_at >= $1 OR exited_at >= $1 GROUP BY car_park_id"
)

# Offset totals report: nine sums per car park over the stays that exited in a period, one of them
# conditional (a report: COALESCE/CASE aggregates grouped by car park).
OFFSET_TOTALS = (
    "SELECT car_park_id, COUNT(*) AS stays, COALESCE(SUM(fee_fen), 0) AS fee,"
    " COALESCE(SUM(tier_discount_fen), 0) AS tier, COALESCE(SUM(purchase_discount_fen), 0) AS purchase,"
    " COALESCE(SUM(coupon_discount_fen), 0) AS coupon, COALESCE(SUM(points_discount_fen), 0) AS points_fen,"
    " COALESCE(SUM(points_spent), 0) AS points, COALESCE(SUM(payable_fen), 0) AS payable,"
    " SUM(CASE WHEN paid THEN 0 ELSE 1 END) AS unpaid"
    " FROM parking_session WHERE status = 'CLOSED' AND exited_at >= $1 AND exited_at < $2 GROUP BY car_park_id"
)
