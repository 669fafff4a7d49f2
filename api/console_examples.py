"""Ready-made operations for the operators' daily jobs, offered by the console's Examples menu.

Each one validates against the operators' schema (tests/test_console.py), as does WELCOME, the
console's first tab.
"""
from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    name: str
    title: str
    description: str
    query: str
    variables: dict

    def as_json(self) -> dict:
        return {"name": self.name, "title": self.title, "description": self.description,
                "query": self.query, "variables": json.dumps(self.variables, indent=2, ensure_ascii=False)}


WELCOME = """# mallpoints operators' console
#
# 1. Sign in: the key icon on the left puts "Authorization: Bearer <token>" in the Headers tab below
#    (GraphiQL keeps it in this browser). Or paste a token from operatorLogin there yourself.
# 2. Daily jobs: the list icon opens ready-made operations (find a member, adjust points, create an
#    earning rule, run a flash sale, read a settlement), each in a new tab with its variables.
# 3. Run with the play button or Ctrl-Enter. The compass icon builds queries by clicking fields;
#    the book icon is the schema's documentation.
query Tiers {
  tiers { code name growthThreshold earnMultiplierPercent }
}
"""

EXAMPLES: tuple[Example, ...] = (
    Example(
        "find-member", "Find a member",
        "By phone digits or nickname: balance, pending and held points, tier, the last entries.",
        """query FindMember($search: String!) {
  members(first: 10, search: $search) {
    edges {
      node {
        id
        phoneMasked
        nickname
        tier { code name }
        pointsBalance
        pointsPending
        pointsHeld
        pointsExpiringSoon(days: 30) { points earliestExpiresAt }
        pointsLedger(first: 5) {
          edges { node { kind points balanceAfter reason occurredAt } }
        }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
""", {"search": "138000000"}),
    Example(
        "adjust-points", "Adjust points",
        "Adds (or with a negative number takes) points with a reason; a repeat of the same key books once.",
        """mutation AdjustPoints($input: PointsAdjustInput!) {
  pointsAdjust(input: $input) {
    entry { id kind points balanceAfter reason occurredAt }
    member { id pointsBalance }
    userErrors { field message code }
  }
}
""", {"input": {"memberId": "paste a member id from Find a member", "points": 100,
                "reason": "goodwill: receipt lost at the service desk", "idempotencyKey": "adjust-2026-0001"}}),
    Example(
        "create-rule", "Create an earning rule",
        "Double points at one merchant for a weekend; it applies from startsAt to endsAt.",
        """mutation CreateEarnRule($input: EarnRuleCreateInput!) {
  earnRuleCreate(input: $input) {
    rule { id code name status trigger action actionValue startsAt endsAt }
    userErrors { field message code }
  }
}
""", {"input": {"code": "WEEKEND_DOUBLE_M001", "name": "Double points at M001 this weekend",
                "trigger": "PURCHASE", "action": "MULTIPLIER_PERCENT", "actionValue": 200,
                "conditions": {"merchantCodes": ["M001"], "weekdays": [6, 7]},
                "startsAt": "2026-01-01T00:00:00+08:00", "endsAt": "2026-12-31T23:59:59+08:00"}}),
    Example(
        "products", "Products (for a flash sale)",
        "The points mall's products with stock; a flash sale needs a product's id.",
        """query Products {
  products(first: 20) {
    edges { node { id kind name pointsPrice stock status onSale } }
    pageInfo { hasNextPage endCursor }
  }
}
""", {}),
    Example(
        "flash-sale", "Run a flash sale",
        "A limited stock at a points price inside a time window; members buy with flashSaleRedeem.",
        """mutation CreateFlashSale($input: FlashSaleCreateInput!) {
  flashSaleCreate(input: $input) {
    flashSale { id title pointsPrice stock stockTotal perMemberLimit startsAt endsAt status onSale }
    userErrors { field message code }
  }
}
""", {"input": {"productId": "paste a product id from Products", "title": "Friday 8 pm flash sale",
                "pointsPrice": 500, "stock": 50, "perMemberLimit": 1,
                "startsAt": "2026-01-09T20:00:00+08:00", "endsAt": "2026-01-09T20:30:00+08:00"}}),
    Example(
        "flash-sales", "Flash sales: stock left",
        "Every flash sale with its stock left, to watch a running sale.",
        """query FlashSales {
  flashSales(first: 20) {
    edges { node { id title stock stockTotal onSale startsAt endsAt product { name } } }
    pageInfo { hasNextPage endCursor }
  }
}
""", {}),
    Example(
        "parking-settlement", "Read a settlement (parking)",
        "Fees and discounts of the stays that left in a period, per car park: what to settle with the car park.",
        """query ParkingSettlement($from: DateTime!, $to: DateTime!) {
  parkingOffsetTotals(from: $from, to: $to) {
    carPark { code name }
    stays
    unpaidStays
    fee { amountFen currency }
    tierDiscount { amountFen }
    purchaseDiscount { amountFen }
    couponDiscount { amountFen }
    pointsDiscount { amountFen }
    pointsSpent
    payable { amountFen currency }
  }
}
""", {"from": "2026-01-01T00:00:00+08:00", "to": "2026-02-01T00:00:00+08:00"}),
)
