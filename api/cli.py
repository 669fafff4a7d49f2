"""The `mallpoints` command: serve, migrate, seed, expire, export-schema, and key management."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import datetime
from pathlib import Path

from api import db
from api.config import ConfigError, settings

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


ADMIN_SCHEMA_FILE = SCHEMA_FILE.with_name("schema.admin.graphql")


def export_schema_texts() -> dict[Path, str]:
    """The public endpoint's schema and the operators' endpoint's schema, as committed."""
    from api.schema.admin import schema as admin_schema
    from api.schema.public import schema as public_schema

    return {
        SCHEMA_FILE: "# mallpoints public endpoint: POST /graphql\n" + public_schema.as_str().strip() + "\n",
        ADMIN_SCHEMA_FILE: "# mallpoints operators' endpoint: /admin/graphql\n" + admin_schema.as_str().strip() + "\n",
    }


async def _with_db(work, *, migrate: bool = True):
    if migrate:
        await db.migrate_db()
        await db.close_db()
    await db.init_db()
    try:
        return await work()
    finally:
        await db.close_db()


async def _seed() -> dict:
    from seeds.loader import load_demo

    return await load_demo()


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise SystemExit("--as-of needs a zone, e.g. 2026-01-01T00:00:00+08:00")
    return parsed


def cmd_serve(args) -> None:
    import uvicorn

    from api.app import create_app

    cfg = settings()
    asyncio.run(_with_db(_seed if args.demo else (lambda: asyncio.sleep(0))))
    host = args.host
    print(f"mallpoints on {cfg.dialect} ({'WAL, one server process' if cfg.dialect == 'sqlite' else 'pooled'})")
    print(f"  public endpoint:     http://{host}:{args.port}/graphql")
    print(f"  operators' GraphiQL: http://{host}:{args.port}/admin/graphql")
    if not cfg.is_production:
        print(f"  demo operator login: admin / {cfg.admin_password}")
        print(f"  demo POS key:        demo-pos / {cfg.demo_pos_secret}")
    workers = 1 if cfg.dialect == "sqlite" else args.workers
    if workers > 1:
        uvicorn.run("api.app:create_app", factory=True, host=host, port=args.port, workers=workers,
                    log_level="info", access_log=False)
    else:
        uvicorn.run(create_app(), host=host, port=args.port, log_level="info", access_log=False)


def cmd_migrate(args) -> None:
    asyncio.run(_with_db(lambda: asyncio.sleep(0)))
    print("migrations applied")


def cmd_seed(args) -> None:
    print("seeded:", asyncio.run(_with_db(_seed)))


def cmd_expire(args) -> None:
    from api.services import operators

    result = asyncio.run(_with_db(lambda: operators.run_expiry(("cli", None), _parse_time(args.as_of))))
    print(f"expired {result.points_expired} points in {result.lots_expired} lots of {result.accounts} members")


def cmd_orders_expire(args) -> None:
    from api.services import operators

    result = asyncio.run(_with_db(lambda: operators.run_order_expiry(("cli", None), _parse_time(args.as_of))))
    print(f"lapsed {result.orders_expired} unpaid orders; released {result.points_released} held points")


def cmd_parking_abandon(args) -> None:
    from api.services import parking

    result = asyncio.run(_with_db(lambda: parking.abandon_stays(("cli", None), args.older_than_hours,
                                                                _parse_time(args.as_of))))
    print(f"abandoned {result.stays_abandoned} open stays; released {result.points_released} held points")


def cmd_tiers_evaluate(args) -> None:
    from api.services import operators

    result = asyncio.run(_with_db(lambda: operators.run_tier_evaluation(("cli", None), _parse_time(args.as_of))))
    print(f"closed {result.members_evaluated} qualification periods: {result.downgraded} downgraded, {result.kept} kept")


def cmd_earning_run(args) -> None:
    from api.services import scheduler

    result = asyncio.run(_with_db(lambda: scheduler.run_once(("cli", None), _parse_time(args.as_of))))
    print(f"released {result.pending_points_released} pending points ({result.pending_released} purchases),"
          f" rewarded {result.invites_rewarded} invites, expired {result.points_expired} points,"
          f" closed {result.tier_periods_closed} tier periods, lapsed {result.orders_expired} unpaid orders,"
          f" closed {result.stays_abandoned} abandoned parking stays")


def cmd_export_schema(args) -> None:
    for path, text in export_schema_texts().items():
        if args.stdout:
            sys.stdout.write(text + "\n")
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.name}")


def cmd_key(args) -> None:
    from api.services import integrations

    async def work():
        if args.key_command == "create":
            key, secret = await integrations.create_key(args.name, args.merchant or [], ("cli", None), scopes=args.scope)
            print(f"key id: {key.key_id}\nsecret: {secret}\nmerchants: {', '.join(key.merchant_codes)}"
                  f"\nscopes: {', '.join(key.scopes)}")
            print("The secret is shown once; it is stored encrypted.")
        elif args.key_command == "revoke":
            key = await integrations.revoke_key(args.key_id, ("cli", None))
            print(f"revoked {key.key_id}")
        else:
            for key in await integrations.list_keys():
                state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
                print(f"{key.key_id}\t{state}\t{key.name}\t{','.join(key.merchant_codes)}")

    asyncio.run(_with_db(work))


def cmd_operator(args) -> None:
    """Operators' accounts (issue 10): the password comes from a prompt, or standard input when it is not
    a terminal; never from an argument (it would stay in the shell history and the process list)."""
    import getpass

    from api.services import operators
    from api.services.errors import DomainError

    async def work():
        if args.operator_command == "list":
            for op in await operators.page(10_000, None):
                when = f"{op.last_login_at:%Y-%m-%d %H:%M}" if op.last_login_at else "never"
                print(f"{op.username}\t{'active' if op.active else 'inactive'}\t{','.join(op.roles)}"
                      f"\t{op.display_name or ''}\tlast sign-in: {when}")
            return
        created = await operators.create_operator(args.username, args.display_name, password, args.role)
        print(f"created operator {created.username} ({', '.join(created.roles)})")

    password = ""
    if args.operator_command == "create":
        if sys.stdin.isatty():
            password = getpass.getpass("password: ")
            if getpass.getpass("again: ") != password:
                raise SystemExit("mallpoints: the two passwords differ")
        else:
            password = sys.stdin.readline().rstrip("\r\n")
    try:
        asyncio.run(_with_db(work))
    except DomainError as err:
        raise SystemExit(f"mallpoints: {err.message}") from None


def cmd_signed_call(args) -> None:
    """Sends one signed integration request (what a POS does), for trying the API from a shell."""
    import json
    import time
    import urllib.request
    import uuid

    from api.services.integrations import sign

    body = json.dumps({"query": args.query, "variables": json.loads(args.variables)}).encode()
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex
    request = urllib.request.Request(args.url, data=body, headers={
        "content-type": "application/json", "X-Mallpoints-Key": args.key, "X-Mallpoints-Timestamp": timestamp,
        "X-Mallpoints-Nonce": nonce,
        "X-Mallpoints-Signature": sign(args.secret or settings().demo_pos_secret, timestamp, nonce, body),
    })
    with urllib.request.urlopen(request, timeout=30) as response:
        print(json.dumps(json.loads(response.read()), ensure_ascii=False, indent=2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mallpoints", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="apply migrations and serve (optionally with the demo mall)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--demo", action="store_true", help="load seeds/ (once; loading again changes nothing)")
    serve.add_argument("--workers", type=int, default=1, help="PostgreSQL only; SQLite always runs one process")
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="apply the committed migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("seed", help="load the demo mall (idempotent)").set_defaults(func=cmd_seed)
    expire = sub.add_parser("expire", help="expire every points lot due at --as-of (default now)")
    expire.add_argument("--as-of")
    expire.set_defaults(func=cmd_expire)
    orders_expire = sub.add_parser("orders-expire", help="lapse unpaid points-plus-cash orders past their deadline")
    orders_expire.add_argument("--as-of")
    orders_expire.set_defaults(func=cmd_orders_expire)
    abandon = sub.add_parser("parking-abandon", help="close open parking stays older than a limit as ABANDONED")
    abandon.add_argument("--older-than-hours", type=int, default=72)  # parking.ABANDON_AFTER_HOURS
    abandon.add_argument("--as-of")
    abandon.set_defaults(func=cmd_parking_abandon)
    evaluate = sub.add_parser("tiers-evaluate", help="close ended tier qualification periods")
    evaluate.add_argument("--as-of")
    evaluate.set_defaults(func=cmd_tiers_evaluate)
    earning_run = sub.add_parser("earning-run", help="the scheduled runs once: pending release, invites, expiry, tiers")
    earning_run.add_argument("--as-of")
    earning_run.set_defaults(func=cmd_earning_run)
    export = sub.add_parser("export-schema", help="write schema.graphql and schema.admin.graphql")
    export.add_argument("--stdout", action="store_true", help="print them instead")
    export.set_defaults(func=cmd_export_schema)
    key = sub.add_parser("integration-key", help="create, revoke or list integration keys")
    key_sub = key.add_subparsers(dest="key_command", required=True)
    create = key_sub.add_parser("create")
    create.add_argument("--name", required=True)
    create.add_argument("--merchant", action="append", help="merchant code; repeat for several (a pos key needs one)")
    create.add_argument("--scope", action="append", choices=["pos", "payment", "parking"],
                        help="what the key may do: pos (default), payment (payment notifications), parking (the car park); repeatable")
    revoke = key_sub.add_parser("revoke")
    revoke.add_argument("key_id")
    key_sub.add_parser("list")
    key.set_defaults(func=cmd_key)
    operator = sub.add_parser("operator", help="create or list operators' accounts")
    operator_sub = operator.add_subparsers(dest="operator_command", required=True)
    op_create = operator_sub.add_parser("create", help="a new operator; the password is asked for (or read from stdin)")
    op_create.add_argument("--username", required=True, help="3 to 64 of a-z, 0-9, '.', '_', '-'")
    op_create.add_argument("--role", action="append", required=True, metavar="ROLE",
                           help="ADMIN, MARKETING, SERVICE, FINANCE or AUDITOR; repeat for several")
    op_create.add_argument("--display-name", help="the name shown in the console (default: the username)")
    operator_sub.add_parser("list", help="every operator with roles, state and last sign-in")
    operator.set_defaults(func=cmd_operator)
    call = sub.add_parser("signed-call", help="send one signed integration request (development aid)")
    call.add_argument("--url", default="http://127.0.0.1:8000/graphql")
    call.add_argument("--key", default="demo-pos")
    call.add_argument("--secret", help="default: MALLPOINTS_DEMO_POS_SECRET (dev)")
    call.add_argument("--query", required=True)
    call.add_argument("--variables", default="{}")
    call.set_defaults(func=cmd_signed_call)
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        settings()
    except ConfigError as err:
        raise SystemExit(f"mallpoints: {err}") from None
    args.func(args)


if __name__ == "__main__":
    main()
