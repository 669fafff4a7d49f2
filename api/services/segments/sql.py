"""The segments domain's raw SQL fragments. Each says why it is SQL.

Why SQL: the month of a member's birthday has no ORM lookup that works on both databases; these are the
one expression per dialect, used as an annotation (RawSQL) of the members' query so that the filter stays
set-based (one query counts or pages the segment).
"""
from __future__ import annotations

BIRTH_MONTH_PG = "CAST(EXTRACT(MONTH FROM \"member\".\"birthday\") AS INTEGER)"
BIRTH_MONTH_SQLITE = "CAST(strftime('%m', \"member\".\"birthday\") AS INTEGER)"
