"""The settlement domain's raw SQL: what the ORM cannot say as well or as fast. Each statement says why it is SQL.

Placeholders are PostgreSQL's `$1, $2…` (`api.db.Tx` turns them into SQLite's `?1, ?2…`). Journal columns:
posting, kind, merchant_id, debit_account, credit_account, amount_fen, points, reverses, booked_at.
"""
from __future__ import annotations

_COLUMNS = ("journal_entry (posting, kind, merchant_id, debit_account, credit_account, amount_fen, points,"
            " reverses, booked_at)")
MERCHANT_ACCOUNTS = "('MERCHANT_PAYABLE', 'MERCHANT_RECEIVABLE')"
# What a journal row does to a merchant's net (> 0: the mall owes the merchant more).
EFFECT = (f"(CASE WHEN e.credit_account IN {MERCHANT_ACCOUNTS} THEN e.amount_fen ELSE 0 END"
          f" - CASE WHEN e.debit_account IN {MERCHANT_ACCOUNTS} THEN e.amount_fen ELSE 0 END)")

# Why SQL: the receipt path's whole posting in one statement, reading the merchant's terms in it (no
# round trip for them): the merchant's share to its receivable, the mall's to the points liability.
#  $1 posting  $2 merchant  $3 points  $4 their value (fen)  $5 booked at
POINTS_ISSUED = f"""
INSERT INTO {_COLUMNS}
SELECT $1, 'POINTS_ISSUED', $2, legs.debit, 'POINTS_LIABILITY', legs.amount, $3, NULL, $5
FROM (SELECT 'MERCHANT_RECEIVABLE' AS debit, t.share AS amount FROM
        (SELECT COALESCE((SELECT point_cost_share_percent FROM merchant_terms WHERE merchant_id = $2), 0) * $4 / 100
         AS share) t
      UNION ALL
      SELECT 'MALL', $4 - t.share FROM
        (SELECT COALESCE((SELECT point_cost_share_percent FROM merchant_terms WHERE merchant_id = $2), 0) * $4 / 100
         AS share) t) legs
WHERE legs.amount > 0
"""

# Why SQL: the same postings for many receipts at once (the set-based batch of api/services/purchases/batch.py),
# over arrays, as one data-modifying CTE of the batch's write statement: no round trip per receipt.
#  $1 postings  $2 merchants  $3 points  $4 their values (fen)  $5 booked at
POINTS_ISSUED_MANY = f"""
INSERT INTO {_COLUMNS}
SELECT v.posting, 'POINTS_ISSUED', v.merchant_id, legs.debit, 'POINTS_LIABILITY', legs.amount, v.points, NULL,
       v.booked_at
FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::timestamptz[]) WITH ORDINALITY
       AS v(posting, merchant_id, points, value, booked_at, n)
LEFT JOIN merchant_terms t ON t.merchant_id = v.merchant_id
CROSS JOIN LATERAL (SELECT COALESCE(t.point_cost_share_percent, 0) * v.value / 100 AS share) s
CROSS JOIN LATERAL (VALUES (1, 'MERCHANT_RECEIVABLE', s.share), (2, 'MALL', v.value - s.share))
       AS legs(leg, debit, amount)
WHERE legs.amount > 0
ORDER BY v.n, legs.leg
"""

# Why SQL: beside the till payment's own raw insert (api/services/purchases/sql.py), on the same connection.
#  $1 posting  $2 merchant  $3 cash value  $4 points  $5 booked at
POINTS_PAID = f"""
INSERT INTO {_COLUMNS}
VALUES ($1, 'POINTS_PAID', $2, 'POINTS_LIABILITY', 'MERCHANT_PAYABLE', $3, $4, NULL, $5)
"""

# Why SQL: a partial refund reverses its part of every row of the original posting in one set-based
# statement, cumulatively (floor(amount × refunded after / total) − floor(amount × refunded before /
# total)), so refunding a receipt in parts reverses exactly what was posted.
#  $1 new posting  $2 original posting  $3 refunded before  $4 refunded after  $5 receipt amount  $6 booked at
PROPORTIONAL_REVERSAL = f"""
INSERT INTO {_COLUMNS}
SELECT $1, 'REFUND', e.merchant_id, e.credit_account, e.debit_account,
       e.amount_fen * $4 / $5 - e.amount_fen * $3 / $5, e.points * $4 / $5 - e.points * $3 / $5,
       CAST($2 AS VARCHAR(64)), $6
FROM journal_entry e
WHERE e.posting = CAST($2 AS VARCHAR(64)) AND e.kind = 'POINTS_ISSUED' AND e.amount_fen * $4 / $5 - e.amount_fen * $3 / $5 > 0
"""

# Why SQL: the reversing posting of a whole posting (debit and credit swapped), one statement.
#  $1 new posting  $2 original posting  $3 booked at
REVERSAL = f"""
INSERT INTO {_COLUMNS}
SELECT $1, 'REFUND', e.merchant_id, e.credit_account, e.debit_account, e.amount_fen, e.points,
       CAST($2 AS VARCHAR(64)), $3
FROM journal_entry e WHERE e.posting = CAST($2 AS VARCHAR(64)) AND e.reverses IS NULL
"""

# Why SQL: a write-off's amount comes from the voucher, its order and the product's terms: one statement.
# The fixed settlement price when the product has one, else the value of the points paid for one unit.
#  $1 voucher id  $2 posting  $3 booked at  $4 points per yuan
VOUCHER_WRITTEN_OFF = f"""
INSERT INTO {_COLUMNS}
SELECT $2, 'VOUCHER_WRITTEN_OFF', x.merchant_id, 'MALL', 'MERCHANT_PAYABLE', x.amount, x.points, NULL, $3
FROM (SELECT v.merchant_id, o.points / o.quantity AS points,
             COALESCE(ps.settlement_price_fen, (o.points / o.quantity) * 100 / $4) AS amount
      FROM voucher v JOIN mall_order o ON o.id = v.order_id
      LEFT JOIN product_settlement ps ON ps.product_id = v.product_id
      WHERE v.id = $1 AND v.merchant_id IS NOT NULL) x
WHERE x.amount > 0
"""

# Why SQL: the cash part of a paid order of a merchant's goods, less the merchant's commission, in one
# statement with its terms: the cash less commission to the merchant, the commission to the mall.
#  $1 order id  $2 posting  $3 booked at
CASH_SALE = f"""
INSERT INTO {_COLUMNS}
SELECT $2, 'CASH_SALE', legs.merchant_id, 'PROVIDER_CLEARING', legs.credit, legs.amount, legs.points, NULL, $3
FROM (SELECT x.merchant_id, 'MERCHANT_PAYABLE' AS credit, x.cash - x.fee AS amount, x.points FROM
        (SELECT p.merchant_id, o.cash_fen AS cash, o.points,
                o.cash_fen * COALESCE(t.commission_percent, 0) / 100 AS fee
         FROM mall_order o JOIN product p ON p.id = o.product_id
         LEFT JOIN merchant_terms t ON t.merchant_id = p.merchant_id
         WHERE o.id = $1 AND o.cash_fen > 0 AND p.merchant_id IS NOT NULL) x
      UNION ALL
      SELECT x.merchant_id, 'MALL', x.fee, x.points FROM
        (SELECT p.merchant_id, o.cash_fen AS cash, o.points,
                o.cash_fen * COALESCE(t.commission_percent, 0) / 100 AS fee
         FROM mall_order o JOIN product p ON p.id = o.product_id
         LEFT JOIN merchant_terms t ON t.merchant_id = p.merchant_id
         WHERE o.id = $1 AND o.cash_fen > 0 AND p.merchant_id IS NOT NULL) x) legs
WHERE legs.amount > 0
"""

# Why SQL: a generation takes every journal row of the merchant booked before the period's end that no
# statement holds yet, in one set-based statement (a month can hold many thousand rows).
#  $1 statement  $2 merchant  $3 period end (exclusive instant)
ASSIGN = """
INSERT INTO settlement_statement_entry (statement_id, entry_id)
SELECT $1, e.id FROM journal_entry e
WHERE e.merchant_id = $2 AND e.booked_at < $3
  AND NOT EXISTS (SELECT 1 FROM settlement_statement_entry s WHERE s.entry_id = e.id)
"""

# Why SQL: a report, grouped by kind with a CASE over the accounts.  $1 statement
TOTALS = f"""
SELECT e.kind AS kind, COUNT(DISTINCT e.posting) AS count, SUM({EFFECT}) AS amount
FROM settlement_statement_entry s JOIN journal_entry e ON e.id = s.entry_id
WHERE s.statement_id = $1 GROUP BY e.kind ORDER BY e.kind
"""

# Why SQL: a statement's lines, one per posting, with the posting's effect on the merchant.
#  $1 statement  $2 after (the first row id of the last line seen, 0 for none)  $3 limit
LINES = f"""
SELECT MIN(e.id) AS id, e.posting AS posting, e.kind AS kind, SUM({EFFECT}) AS amount,
       MAX(e.points) AS points, MIN(e.booked_at) AS booked_at
FROM settlement_statement_entry s JOIN journal_entry e ON e.id = s.entry_id
WHERE s.statement_id = $1
GROUP BY e.posting, e.kind HAVING MIN(e.id) > $2 ORDER BY MIN(e.id) LIMIT $3
"""

# Why SQL: every account's balance (debits − credits), a report over the whole journal.
BALANCES = """
SELECT account, merchant_id, SUM(amount) AS balance FROM (
  SELECT debit_account AS account, merchant_id, amount_fen AS amount FROM journal_entry
  UNION ALL
  SELECT credit_account, merchant_id, -amount_fen FROM journal_entry) x
GROUP BY account, merchant_id ORDER BY account, merchant_id
"""

# Why SQL: each statement's stored net against the sum of the rows it holds, in one pass.
STATEMENT_MISMATCHES = f"""
SELECT st.id AS id, st.net_fen AS stored, COALESCE(SUM({EFFECT}), 0) AS computed
FROM settlement_statement st
LEFT JOIN settlement_statement_entry s ON s.statement_id = st.id
LEFT JOIN journal_entry e ON e.id = s.entry_id
GROUP BY st.id, st.net_fen HAVING st.net_fen <> COALESCE(SUM({EFFECT}), 0)
"""
