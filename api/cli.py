"""The `mallpoints` command: serve, migrate, seed, expire, export-schema, and key management.

A user's mistake (a bad option, an unknown merchant, no database yet, the server not running) is one
line on standard error and a non-zero exit, never a traceback."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from tortoise.exceptions import BaseORMException

from api import db, logs
from api.config import ConfigError, Settings, settings
from api.services.errors import DomainError

EXIT_FAILED = 1  # the command could not do its work (a refused input, an absent database or server)
# (argparse exits with 2 for a bad command line, with its usage and one error line)
T = TypeVar("T")


class CliError(Exception):
    """A message for the person at the terminal: printed as one line, exit status EXIT_FAILED."""


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


def _database_label() -> str:
    """The database URL without its password, for messages."""
    cfg = settings()
    if cfg.sqlite_path is not None:
        return str(cfg.sqlite_path.resolve())
    parts = urlsplit(cfg.database_url)
    host = parts.hostname or ""
    netloc = (f"{parts.username}@" if parts.username else "") + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _require_existing_database() -> None:
    """Commands that work on a mall's data do not create an empty database where there was none."""
    cfg = settings()
    if cfg.sqlite_path is not None and not cfg.sqlite_path.exists():
        raise CliError(f"no database at {cfg.sqlite_path.resolve()}: run `mallpoints migrate` (or `serve`) in the "
                       "project folder first, or set MALLPOINTS_DATABASE_URL")


async def _with_db(work: Callable[[], Awaitable[T]], *, migrate: bool = True, create: bool = False) -> T:
    """Runs `work` with the database open. Only `create=True` commands (serve, migrate, seed) may make
    a new SQLite file; the others need one that exists."""
    if not create:
        _require_existing_database()
    try:
        if migrate:
            await db.migrate_db()
            await db.close_db()
        await db.init_db()
    except (OSError, BaseORMException) as exc:
        await db.close_db()
        raise CliError(f"cannot open the database {_database_label()}: {_reason(exc)}") from None
    try:
        return await work()
    finally:
        await db.close_db()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


async def _seed() -> dict:
    from seeds.loader import load_demo

    return await load_demo()


AS_OF_FORMAT = "ISO 8601 with a zone, e.g. 2026-01-31T23:59:59+08:00 or 2026-01-31T15:59:59Z"


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"--as-of {value!r} is not a time: use {AS_OF_FORMAT}") from None
    if parsed.tzinfo is None:
        raise CliError(f"--as-of {value!r} has no zone: use {AS_OF_FORMAT}")
    return parsed


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from api.app import create_app

    cfg = settings()
    if args.demo:
        _refuse_demo_in_production("serve --demo")
    asyncio.run(_with_db(_seed if args.demo else (lambda: asyncio.sleep(0)), create=True))
    host = args.host
    print(f"mallpoints on {cfg.dialect} ({'WAL, one server process' if cfg.dialect == 'sqlite' else 'pooled'})")
    print(f"  public endpoint:     http://{host}:{args.port}/graphql")
    print(f"  operators' GraphiQL: http://{host}:{args.port}/admin/graphql")
    for line in serve_banner(cfg, demo=args.demo):
        print(line)
    workers = 1 if cfg.dialect == "sqlite" else args.workers
    if workers > 1:
        uvicorn.run("api.app:create_app", factory=True, host=host, port=args.port, workers=workers,
                    **serve_options(cfg))
    else:
        uvicorn.run(create_app(), host=host, port=args.port, **serve_options(cfg))


def serve_options(cfg: Settings) -> dict[str, Any]:
    """uvicorn's options for `serve`. `X-Forwarded-For` is believed only from MALLPOINTS_TRUSTED_PROXIES:
    uvicorn's own default (FORWARDED_ALLOW_IPS, else loopback) would let anyone on the same host, or
    behind a proxy that does not overwrite the header, choose the address the rate limits see."""
    return {"log_level": "info", "log_config": None, "access_log": False, "proxy_headers": bool(cfg.trusted_proxies),
            "forwarded_allow_ips": cfg.forwarded_allow_ips, **fast_io()}


def fast_io() -> dict[str, str]:
    """uvloop and httptools (uvicorn[standard]) for every start path (issue 14); asyncio's own loop and
    h11 only where they are not installed (uvloop has no Windows build)."""
    import importlib.util

    return {"loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
            "http": "httptools" if importlib.util.find_spec("httptools") else "h11"}


def serve_banner(cfg: Settings, *, demo: bool) -> list[str]:
    """The demo's logins only when the demo mall was loaded; otherwise how to make the first operator."""
    if demo:
        return [f"  demo operator login: admin / {cfg.admin_password}",
                f"  demo POS key:        demo-pos / {cfg.demo_pos_secret}",
                "  demo parking key:    demo-parking (car park P1), same secret as demo-pos"]
    return ["  operators: create the first one with",
            "    mallpoints operator create --username U --role ADMIN",
            "  (the password is asked for, or read from standard input); `mallpoints serve --demo` loads a demo mall"]


def cmd_migrate(args: argparse.Namespace) -> None:
    asyncio.run(_with_db(lambda: asyncio.sleep(0), create=True))
    print("migrations applied")


def _refuse_demo_in_production(command: str) -> None:
    if settings().is_production:
        raise CliError(f"`{command}` loads the demo mall and its public logins (operator admin, keys demo-pos and "
                       "demo-parking); refused with MALLPOINTS_ENV=production: create the first operator with "
                       "`mallpoints operator create --username U --role ADMIN`")


def cmd_seed(args: argparse.Namespace) -> None:
    _refuse_demo_in_production("seed")
    print("seeded:", asyncio.run(_with_db(_seed, create=True)))


def cmd_expire(args: argparse.Namespace) -> None:
    from api.services import operators

    as_of = _parse_time(args.as_of)
    result = asyncio.run(_with_db(lambda: operators.run_expiry(("cli", None), as_of)))
    print(f"expired {result.points_expired} points in {result.lots_expired} lots of {result.accounts} members")


def cmd_orders_expire(args: argparse.Namespace) -> None:
    from api.services import operators

    as_of = _parse_time(args.as_of)
    result = asyncio.run(_with_db(lambda: operators.run_order_expiry(("cli", None), as_of)))
    print(f"lapsed {result.orders_expired} unpaid orders; released {result.points_released} held points")


def cmd_parking_abandon(args: argparse.Namespace) -> None:
    from api.services import parking

    as_of = _parse_time(args.as_of)
    result = asyncio.run(_with_db(lambda: parking.abandon_stays(("cli", None), args.older_than_hours, as_of)))
    print(f"abandoned {result.stays_abandoned} open stays; released {result.points_released} held points")


def cmd_tiers_evaluate(args: argparse.Namespace) -> None:
    from api.services import operators

    as_of = _parse_time(args.as_of)
    result = asyncio.run(_with_db(lambda: operators.run_tier_evaluation(("cli", None), as_of)))
    print(f"closed {result.members_evaluated} qualification periods: {result.downgraded} downgraded, {result.kept} kept")


def cmd_earning_run(args: argparse.Namespace) -> None:
    from api.services import scheduler

    as_of = _parse_time(args.as_of)
    result = asyncio.run(_with_db(lambda: scheduler.run_once(("cli", None), as_of)))
    print(f"released {result.pending_points_released} pending points ({result.pending_released} purchases),"
          f" rewarded {result.invites_rewarded} invites, expired {result.points_expired} points,"
          f" closed {result.tier_periods_closed} tier periods, lapsed {result.orders_expired} unpaid orders,"
          f" closed {result.stays_abandoned} abandoned parking stays")


def cmd_export_schema(args: argparse.Namespace) -> None:
    for path, text in export_schema_texts().items():
        if args.stdout:
            sys.stdout.write(text + "\n")
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.name}")


def cmd_persisted_manifest(args: argparse.Namespace) -> None:
    """Writes the trusted documents' manifest from clients/ (or with --check, says whether it is current)."""
    from api import trusted

    clients = Path(args.clients) if args.clients else trusted.CLIENTS
    output = Path(args.output) if args.output else trusted.MANIFEST
    if not clients.is_dir():
        raise CliError(f"--clients {clients}: no such folder")
    try:
        text = trusted.manifest_text(clients)
    except trusted.ManifestError as err:
        raise CliError(str(err)) from None
    count = text.count('"id":')
    if args.check:
        if not output.exists() or output.read_text(encoding="utf-8") != text:
            raise CliError(f"{output} is out of date: run `mallpoints persisted-manifest`")
        print(f"{output}: {count} trusted documents, up to date")
        return
    output.write_text(text, encoding="utf-8")
    print(f"{output}: {count} trusted documents")


def cmd_key(args: argparse.Namespace) -> None:
    from api.models.parking import CarParkKey
    from api.services import integrations, parking

    async def work() -> None:
        if args.key_command == "create":
            key, secret = await integrations.create_key(args.name, args.merchant or [], ("cli", None), scopes=args.scope)
            print(f"key id: {key.key_id}\nsecret: {secret}\nmerchants: {', '.join(key.merchant_codes) or '-'}"
                  f"\nscopes: {', '.join(key.scopes)}")
            print("The secret is shown once; it is stored encrypted.")
            if "parking" in key.scopes:
                print(f"Bind it to a car park: mallpoints integration-key bind-car-park {key.key_id} --car-park CODE")
        elif args.key_command == "revoke":
            key = await integrations.revoke_key(args.key_id, ("cli", None))
            print(f"revoked {key.key_id}")
        elif args.key_command == "bind-car-park":
            keys = await parking.bind_key(("cli", None), args.car_park, args.key_id, not args.unbind)
            print(f"car park {args.car_park.strip().upper()} {'no longer takes' if args.unbind else 'takes'} "
                  f"reports from {args.key_id}; its keys: {', '.join(keys) or '-'}")
        else:
            car_parks: dict[str, list[str]] = {}
            for link in await CarParkKey.all().select_related("car_park", "key").order_by("car_park__code"):
                car_parks.setdefault(link.key.key_id, []).append(link.car_park.code)
            rows = [("KEY ID", "STATE", "SCOPES", "MERCHANTS", "CAR PARKS", "NAME")]
            for key in await integrations.list_keys():
                state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
                rows.append((key.key_id, state, ",".join(key.scopes), ",".join(key.merchant_codes) or "-",
                             ",".join(car_parks.get(key.key_id, [])) or "-", key.name))
            widths = [max(len(row[i]) for row in rows) for i in range(5)]
            for row in rows:
                print("  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)) + "  " + row[5])

    asyncio.run(_with_db(work))


def cmd_operator(args: argparse.Namespace) -> None:
    """Operators' accounts (issue 10): the password comes from a prompt, or standard input when it is not
    a terminal; never from an argument (it would stay in the shell history and the process list)."""
    import getpass

    from api.services import operators

    async def work() -> None:
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
                raise CliError("the two passwords differ")
        else:
            password = sys.stdin.readline().rstrip("\r\n")
    asyncio.run(_with_db(work))


def cmd_signed_call(args: argparse.Namespace) -> None:
    """Sends one signed integration request (what a POS does), for trying the API from a shell."""
    import time
    import urllib.error
    import urllib.request
    import uuid

    from api.services.integrations import sign

    try:
        variables = json.loads(args.variables)
    except json.JSONDecodeError as err:
        raise CliError(f"--variables is not JSON ({err.msg} at character {err.pos}): "
                       """give an object, e.g. '{"input": {"receiptNo": "R1"}}'""") from None
    if not isinstance(variables, dict):
        raise CliError("--variables must be a JSON object, e.g. '{\"input\": {...}}'")
    query = args.query
    if query.startswith("@"):
        try:
            query = Path(query[1:]).read_text(encoding="utf-8")
        except OSError as err:
            raise CliError(f"--query {args.query}: cannot read the file ({err.strerror})") from None
    secret = args.secret or settings().demo_pos_secret
    if not secret:
        raise CliError("--secret is needed (the demo secret exists only in development)")
    body = json.dumps({"query": query, "variables": variables}).encode()
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex
    request = urllib.request.Request(args.url, data=body, headers={
        "content-type": "application/json", "X-Mallpoints-Key": args.key, "X-Mallpoints-Timestamp": timestamp,
        "X-Mallpoints-Nonce": nonce, "X-Mallpoints-Signature": sign(secret, timestamp, nonce, body),
    })
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = response.read()
    except urllib.error.HTTPError as err:
        answer = err.read()
        if not answer.strip().startswith(b"{"):
            raise CliError(f"{args.url} answered HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise CliError(f"cannot reach {args.url} ({reason}): is `mallpoints serve` running there?") from None
    try:
        result = json.loads(answer)
    except ValueError:
        raise CliError(f"{args.url} did not answer with JSON: is it the mallpoints GraphQL endpoint?") from None
    print(json.dumps(result, ensure_ascii=False, indent=2))
    errors = result.get("errors") if isinstance(result, dict) else None
    if errors:  # the whole request was refused (bad signature, invalid query): the answer above says why
        first = errors[0] if isinstance(errors[0], dict) else {}
        code = (first.get("extensions") or {}).get("code")
        raise CliError(f"the server refused the request: {first.get('message', '?')}" + (f" ({code})" if code else ""))


def _as_of(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--as-of", metavar="TIME", help=f"{what} as at this time instead of now: {AS_OF_FORMAT}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mallpoints", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="apply migrations and serve (optionally with the demo mall)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    serve.add_argument("--demo", action="store_true",
                       help="load the demo mall from seeds/ once (its operator admin, keys demo-pos and demo-parking); "
                            "development only")
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="server processes, PostgreSQL only (default 1); SQLite always runs one process")
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="apply the committed migrations (creates the SQLite file if there is none)"
                   ).set_defaults(func=cmd_migrate)
    sub.add_parser("seed", help="load the demo mall: tiers, merchants, members, the operator admin and demo keys "
                   "(idempotent; development only)").set_defaults(func=cmd_seed)
    expire = sub.add_parser("expire", help="expire every points lot due at --as-of (default now)")
    _as_of(expire, "expire lots due")
    expire.set_defaults(func=cmd_expire)
    orders_expire = sub.add_parser("orders-expire", help="lapse unpaid points-plus-cash orders past their deadline")
    _as_of(orders_expire, "lapse orders past their deadline")
    orders_expire.set_defaults(func=cmd_orders_expire)
    abandon = sub.add_parser("parking-abandon", help="close open parking stays older than a limit as ABANDONED")
    abandon.add_argument("--older-than-hours", type=int, default=72, metavar="HOURS",  # parking.ABANDON_AFTER_HOURS
                         help="close stays open longer than this many hours (default 72)")
    _as_of(abandon, "measure the stays' age")
    abandon.set_defaults(func=cmd_parking_abandon)
    evaluate = sub.add_parser("tiers-evaluate", help="close ended tier qualification periods")
    _as_of(evaluate, "close periods ended")
    evaluate.set_defaults(func=cmd_tiers_evaluate)
    earning_run = sub.add_parser("earning-run", help="the scheduled runs once: pending release, invites, expiry, tiers")
    _as_of(earning_run, "run the jobs")
    earning_run.set_defaults(func=cmd_earning_run)
    export = sub.add_parser("export-schema", help="write schema.graphql and schema.admin.graphql")
    export.add_argument("--stdout", action="store_true", help="print them instead of writing the files")
    export.set_defaults(func=cmd_export_schema)
    manifest = sub.add_parser("persisted-manifest", help="write the trusted documents' manifest from clients/**/*.graphql")
    manifest.add_argument("--clients", metavar="DIR", help="the client documents' folder (default: clients/ of the project)")
    manifest.add_argument("--output", metavar="FILE", help="the manifest (default: api/trusted_documents.json)")
    manifest.add_argument("--check", action="store_true", help="write nothing; fail when the manifest is out of date")
    manifest.set_defaults(func=cmd_persisted_manifest)
    key = sub.add_parser("integration-key", help="create, list, revoke integration keys; bind parking keys to car parks")
    key_sub = key.add_subparsers(dest="key_command", required=True, metavar="ACTION")
    create = key_sub.add_parser("create", help="a new key and its secret (shown once)")
    create.add_argument("--name", required=True, help="what the key is for, 1 to 128 characters, e.g. 'M001 till 3'")
    create.add_argument("--merchant", action="append", metavar="CODE",
                        help="merchant code the key acts for, e.g. M001; repeat for several (a pos key needs one)")
    create.add_argument("--scope", action="append", choices=["pos", "payment", "parking"],
                        help="what the key may do: pos (default: purchases, refunds, points payments), payment "
                             "(payment notifications), parking (a car park's system); repeatable")
    revoke = key_sub.add_parser("revoke", help="stop a key at once")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the key's id, e.g. key_0123456789abcdef")
    key_sub.add_parser("list", help="every key with its state, scopes, merchants and car parks")
    bind = key_sub.add_parser("bind-car-park", help="let a parking key report for a car park (audited)")
    bind.add_argument("key_id", metavar="KEY_ID", help="a key with the parking scope, e.g. demo-parking")
    bind.add_argument("--car-park", required=True, metavar="CODE", help="the car park's code, e.g. P1")
    bind.add_argument("--unbind", action="store_true", help="remove the binding instead")
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
    call = sub.add_parser("signed-call", help="send one signed integration request, as a POS or car park does (development aid)")
    call.add_argument("--url", default="http://127.0.0.1:8000/graphql", help="the public endpoint (default %(default)s)")
    call.add_argument("--key", default="demo-pos", metavar="KEY_ID",
                      help="integration key id (default demo-pos; demo-parking for the demo car park)")
    call.add_argument("--secret", help="the key's secret (default: MALLPOINTS_DEMO_POS_SECRET, development only)")
    call.add_argument("--query", required=True, metavar="GRAPHQL",
                      help="the GraphQL document, or @FILE to read it from a file")
    call.add_argument("--variables", default="{}", metavar="JSON",
                      help="""variables as a JSON object, e.g. '{"input": {"receiptNo": "R1"}}' (default {})""")
    call.set_defaults(func=cmd_signed_call)
    return parser


# A service's error names an input field; the person at the terminal typed an option.
OPTION_OF_FIELD = {"merchantCodes": "--merchant", "name": "--name", "scopes": "--scope", "keyId": "KEY_ID",
                   "carParkCode": "--car-park"}


def _fail(message: str, status: int = EXIT_FAILED) -> None:
    print(f"mallpoints: {message}", file=sys.stderr)
    raise SystemExit(status)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    # The server logs its requests; a one-off command prints its result and, on a mistake, one line.
    try:
        cfg = settings()
        logs.configure(logging.INFO if args.command == "serve" else logging.WARNING, production=cfg.is_production)
        args.func(args)
    except ConfigError as err:
        _fail(str(err))
    except CliError as err:
        _fail(str(err))
    except DomainError as err:
        option = next((OPTION_OF_FIELD[f] for f in reversed(err.field or []) if f in OPTION_OF_FIELD), None)
        _fail((f"{option}: " if option else "") + f"{err.message} ({err.code.value})")
    except KeyboardInterrupt:
        _fail("interrupted", 130)


if __name__ == "__main__":
    main()
