"""The segments domain's raw SQL fragments. Each says why it is SQL.

Why SQL: the month of a member's birthday has no ORM lookup that works on both databases; these are the
one expression per dialect, used as an annotation (RawSQL) of the members' query so that the filter stays
set-based (one query counts or pages the segment).
"""
from __future__ import annotations

BIRTH_MONTH_PG = "CAST(EXTRACT(MONTH FROM \"member\".\"birthday\") AS INTEGER)"
BIRTH_MONTH_SQLITE = "CAST(strftime('%m', \"member\".\"birthday\") AS INTEGER)"

# Why SQL: lifecycle stages and RFM scores live in insight's table `member_insight` (member_id, lifecycle,
# r, f, m; issue 13 item 2), which this domain reads but does not model. One EXISTS per member, as an
# annotation of the members' query (set-based like the rest). The conditions are built only from
# validated values (stage names from a fixed set, scores 1-5 as ints), never from free text.
INSIGHT_MATCH = (
    'CASE WHEN EXISTS (SELECT 1 FROM member_insight i WHERE i.member_id = "member"."id" AND {conditions})'
    " THEN 1 ELSE 0 END"
)
INSIGHT_PRESENT = "SELECT 1 FROM member_insight LIMIT 1"
