"""Loads the demo mall idempotently: every step looks for what it would create first, purchases
carry fixed receipt numbers, so running it twice changes nothing."""
from __future__ import annotations

import json
import random
from datetime import timedelta
from pathlib import Path

from api.config import settings
from api.db import transaction
from api.services import clock, insight, integrations, members, merchants, operators, purchases, tiers

DATA = Path(__file__).with_name("demo.json")


async def load_demo(*, with_history: bool = True) -> dict[str, int]:
    """Tiers and the operator `admin` always; in development also the demo merchants, the `demo-pos`
    key and (with_history) 50 members with months of purchases. Production gets only the base."""
    data = json.loads(DATA.read_text(encoding="utf-8"))
    cfg = settings()
    if cfg.is_production:
        data["merchants"] = []
        with_history = False
    counts = {"tiers": 0, "merchants": 0, "members": 0, "purchases": 0}
    now = clock.now()
    async with transaction() as tx:
        for t in data["tiers"]:
            created = await tx.fetchval(
                "INSERT INTO tier (code, name, growth_threshold, earn_multiplier_percent, created_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (code) DO NOTHING RETURNING id",
                t["code"], t["name"], t["growth_threshold"], t["earn_multiplier_percent"], now,
            )
            counts["tiers"] += created is not None
        for m in data["merchants"]:
            created = await tx.fetchval(
                "INSERT INTO merchant (code, name, category, floor, created_at) VALUES ($1, $2, $3, $4, $5)"
                " ON CONFLICT (code) DO NOTHING RETURNING id",
                m["code"], m["name"], m["category"], m["floor"], now,
            )
            counts["merchants"] += created is not None
        op = data["operator"]
        await operators.ensure_operator(tx, op["username"], cfg.admin_password, op["display_name"])
    tiers.invalidate_cache()
    merchants.invalidate_cache()
    key = data["integration_key"]
    if not cfg.is_production and not await integrations.list_keys(key["key_id"]):
        await integrations.create_key(key["name"], key["merchants"], ("cli", "seed"),
                                      key_id=key["key_id"], secret=cfg.demo_pos_secret)
    if with_history:
        counts["earning"] = await _earning_demo(data.get("earning") or {}, now)  # issue 3: demo rules and tasks
        counts.update(await _members_with_history(data, now))
        counts["products"] = await _mall(data, now)
        counts["car_parks"] = await _parking(data)
        # issue 13: the KPI rollup of the closed days and every member's RFM scores and lifecycle stage,
        # so that the dashboard shows the mall's month at once.
        counts["insight_members"] = (await insight.run_now(("cli", "seed"))).members
        counts["campaign_notifications"] = await _reach(data)
    return counts


async def _reach(data: dict) -> int:
    """The demo members tagged, a segment of those who have not been in for two weeks, and a win-back
    campaign with 100 points sent to it at once (the dashboard's campaign panel); once: a second load
    finds the segment and the campaign's key."""
    from api.models import Member, Segment
    from api.services.segments import campaigns, filters, segments, tags

    spec = data.get("reach")
    if not spec:
        return 0
    actor = ("cli", "seed")
    s = spec["segment"]
    found = await Segment.get_or_none(name=s["name"])
    if found is not None:
        segment_id = found.id
    else:
        demo = [m.id for m in await Member.filter(phone__startswith=data["members"]["phone_prefix"]).only("id")]
        await tags.add(actor, demo, spec["tag"])
        segment_id = (await segments.create(actor, s["name"], filters.build(
            tags_all=[spec["tag"]], no_purchase_for_days=s["no_purchase_for_days"]))).id
    c = spec["campaign"]
    await campaigns.create(actor, c["name"], segment_id, c["channel"], c["title"], c["body"], None,
                           c["holdout_percent"], grant_points=c["grant_points"], idempotency_key=c["idempotency_key"])
    return (await campaigns.send_due()).notifications


async def _mall(data: dict, now) -> int:
    """The demo points mall: a few products of every kind and a flash sale running for a week."""
    from api.db import fetch
    from api.services import mall
    from api.services.mall import flash_sales

    existing = {r["name"]: r["id"] for r in await fetch("SELECT id, name FROM product")}
    tier_ids = {t.code: t.id for t in await tiers.all_tiers()}
    created = 0
    for p in data.get("products", []):
        if p["name"] in existing:
            continue
        merchant = await merchants.by_code(p["merchant"], ["merchant"]) if p.get("merchant") else None
        product = await mall.create_product(("cli", "seed"), mall.ProductData(
            kind=p["kind"], name=p["name"], description=p.get("description"), image_urls=p.get("image_urls"),
            merchant_id=merchant.id if merchant else None, face_value_fen=p.get("face_value_fen"),
            points_price=p["points_price"], cash_price_fen=p.get("cash_price_fen", 0),
            limit_per_member=p.get("limit_per_member"), limit_per_member_daily=p.get("limit_per_member_daily"),
            zone=p.get("zone"), min_tier_id=tier_ids.get(p.get("min_tier", "")),
        ), p["stock"])
        existing[p["name"]] = product.id
        created += 1
    sale = data.get("flash_sale")
    if sale and not await fetch("SELECT id FROM flash_sale WHERE title = $1", sale["title"]):
        await flash_sales.create_sale(
            ("cli", "seed"), product_id=existing[sale["product"]], title=sale["title"], points_price=sale["points_price"],
            stock=sale["stock"], per_member_limit=sale["per_member_limit"], starts_at=now,
            ends_at=now + timedelta(days=sale["days"]))
    await _draw_game(data, existing, now)
    return created


async def _parking(data: dict) -> int:
    """The demo car park P1 (fee rules and benefits as in docs/parking.md)."""
    from api.db import fetch
    from api.services import parking

    created = 0
    for c in data.get("car_parks", []):
        if await fetch("SELECT id FROM car_park WHERE code = $1", c["code"]):
            continue
        await parking.create_car_park(("cli", "seed"), c["code"], parking.CarParkData(
            name=c["name"], free_minutes=c["free_minutes"], hourly_fen=c["hourly_fen"],
            daily_cap_fen=c.get("daily_cap_fen"), tier_free_minutes=c.get("tier_free_minutes"),
            purchase_min_fen=c.get("purchase_min_fen"), purchase_free_minutes=c.get("purchase_free_minutes"),
            offset_points_per_yuan=c["offset_points_per_yuan"], offset_max_points=c["offset_max_points"]))
        created += 1
    # Dev-only: the demo car park's system signs with `demo-parking` (the demo POS secret), bound to P1.
    if data.get("car_parks") and not await integrations.list_keys("demo-parking"):
        await integrations.create_key("演示停车场系统 (demo car park)", [], ("cli", "seed"), key_id="demo-parking",
                                      secret=settings().demo_pos_secret, scopes=["parking"])
        for c in data["car_parks"]:
            await parking.bind_key(("cli", "seed"), c["code"], "demo-parking", True)
    return created


async def _draw_game(data: dict, products: dict[str, int], now) -> None:
    from api.db import fetch
    from api.services import draws

    game = data.get("draw_game")
    if not game or await fetch("SELECT id FROM draw_game WHERE name = $1", game["name"]):
        return
    await draws.create_game(
        ("cli", "seed"), name=game["name"], kind=game["kind"], cost_points=game["cost_points"],
        free_plays=game["free_plays"], daily_limit=game["daily_limit"], total_limit=None, starts_at=now,
        ends_at=now + timedelta(days=game["days"]),
        prizes=[draws.PrizeData(name=p["name"], kind=p["kind"], weight=p["weight"], points=p.get("points"),
                                product_id=products.get(p.get("product", "")), stock=p.get("stock"), position=i)
                for i, p in enumerate(game["prizes"])])


async def _earning_demo(spec: dict, now) -> int:
    """The demo mall's earning rules and tasks (not the default rule: migration 0007 seeds that one)."""
    created = 0
    async with transaction() as tx:
        for r in spec.get("rules", []):
            created += await tx.fetchval(
                "INSERT INTO earn_rule (code, name, trigger, status, priority, stacking, stack_group, conditions, action,"
                " action_value, apply_tier_multiplier, growth_action, growth_value, cap_daily_points,"
                " cap_monthly_points, cap_daily_times, budget_points, return_days, created_at, updated_at)"
                " VALUES ($1, $2, $3, 'ACTIVE', 0, $4, $5, $6, $7, $8, FALSE, 'NONE', 0, NULL, $9, $10, NULL, 0,"
                " $11, $11) ON CONFLICT (code) DO NOTHING RETURNING id",
                r["code"], r["name"], r["trigger"], r.get("stacking", "ADD"), r.get("stack_group"),
                json.dumps(r.get("conditions") or {}, ensure_ascii=False), r["action"], r["action_value"],
                r.get("cap_monthly_points"), r.get("cap_daily_times"), now,
            ) is not None
        for t in spec.get("tasks", []):
            created += await tx.fetchval(
                "INSERT INTO earn_task (code, name, description, period, metric, target, reward_points, reward_growth,"
                " tier_codes, status, starts_at, ends_at, created_at, updated_at) VALUES ($1, $2, NULL, $3, $4, $5,"
                " $6, $7, NULL, 'ACTIVE', NULL, NULL, $8, $8) ON CONFLICT (code) DO NOTHING RETURNING id",
                t["code"], t["name"], t["period"], t["metric"], t["target"], t["reward_points"], t["reward_growth"], now,
            ) is not None
    from api.services import earning

    earning.invalidate_cache()
    return created


async def _members_with_history(data: dict, now) -> dict[str, int]:
    spec = data["members"]
    rng = random.Random(spec["random_seed"])
    merchant_codes = [m["code"] for m in data["merchants"]]
    new_members = booked = 0
    for n in range(1, spec["count"] + 1):
        phone = f"{spec['phone_prefix']}{n:02d}"
        joined = now - timedelta(days=rng.randint(30 * spec["months_of_history"] - 20, 30 * spec["months_of_history"]))
        async with transaction() as tx:
            existing = await tx.fetchval("SELECT id FROM member WHERE phone = $1", phone)
            member_id = existing or await members.register_member(tx, phone, joined)
            if existing is None:
                nickname = f"{spec['nicknames'][n % len(spec['nicknames'])]}{n:02d}"
                await tx.execute("UPDATE member SET nickname = $1 WHERE id = $2", nickname, member_id)
                new_members += 1
        visits = rng.randint(2, 14) * (3 if n % 10 == 0 else 1)  # every tenth member is a big spender
        times = sorted(
            min(joined + timedelta(days=rng.randint(0, (now - joined).days), minutes=rng.randint(600, 1300)),
                now - timedelta(minutes=5))
            for _ in range(visits)
        )
        for v, when in enumerate(times):
            amount = rng.choice([2800, 3600, 8800, 15800, 29900, 59900, 128000, 268000])
            result = await purchases.import_purchase(
                member_id, rng.choice(merchant_codes), f"DEMO-{n:02d}-{v:03d}", amount, when
            )
            booked += result is not None
    return {"members": new_members, "purchases": booked}
