"""The steady-state phase of bench/flash_sale.py (issue 14, table row 2): sold-out answers of
`flashSaleRedeem` from one server process under a steady load, against the bare floor (bench/floor.py)
under the same load, in the same run.

What it does, after the contests (their server stopped):
  1. a sale that is sold out from the start (stock 0 of 1) and one member who never bought;
  2. mallpoints, one uvicorn process with Redis: one request decides the body (the trusted document
     `clients/member/FlashSaleRedeem.graphql` by its hash when the server knows it, else its full text),
     its answer must be OUT_OF_STOCK; `wrk` warms up (--steady-warm s), then measures (--steady-seconds s)
     with --steady-connections connections, the same body on every request;
  3. the floor, one uvicorn process, the same body and the same wrk runs;
  4. checks: no non-2xx answer and no socket error in either run, the floor's answer is the server's, and
     nothing changed in the database (the sale's stock 0 and no order, the member's balance).
Without `wrk` on the PATH the phase is skipped with a note (`apt-get install wrk`).
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.contest import ContestServer, global_id
from bench.purchase_load import connect, log

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "clients" / "member" / "FlashSaleRedeem.graphql"
TARGET_FLOOR_RATIO = 0.6  # sold-out answers/s of mallpoints ÷ the bare floor's


class FloorServer(ContestServer):
    def __init__(self, args, env: dict[str, str], logdir: Path, label: str) -> None:
        super().__init__(args, env, logdir, label)
        self.app = "bench.floor:create_app"


@dataclass
class WrkRun:
    label: str
    requests: int = 0
    seconds: float = 0.0
    non_2xx: int = 0
    socket_errors: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass
class SteadyPhase:
    mode: str = ""
    server: WrkRun | None = None
    floor: WrkRun | None = None
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    skipped: str = ""

    @property
    def ratio(self) -> float | None:
        if self.server is None or self.floor is None or not self.floor.rps:
            return None
        return self.server.rps / self.floor.rps


_LUA = """local f = io.open("{body}", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
done = function(summary, latency, requests)
  io.write(string.format("WRKSTATS %d %d %d %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


async def run_wrk(label: str, port: int, body: bytes, token: str, connections: int, seconds: int,
                  workdir: Path) -> WrkRun:
    body_path = workdir / f"body-{label}.json"
    body_path.write_bytes(body)
    script = workdir / f"wrk-{label}.lua"
    script.write_text(_LUA.format(body=body_path, token=token))
    threads = min(2, connections)
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
           "-s", str(script), f"http://127.0.0.1:{port}/graphql"]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    found = re.search(r"WRKSTATS (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", text)
    if found is None:
        raise RuntimeError(f"wrk said:\n{text}")
    n, micros, c, r, w, status, timeout, p50, p99 = (int(x) for x in found.groups())
    return WrkRun(label, n, micros / 1e6, status, c + r + w + timeout, p50 / 1000, p99 / 1000)


async def post(port: int, token: str, body: bytes) -> tuple[int, bytes]:
    conn = await asyncio.wait_for(connect(port), 5)
    try:
        head = (f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        return await asyncio.wait_for(conn.request(head + body), 10)
    finally:
        conn.close()


def redeem_body(variables: dict[str, Any], by_hash: bool) -> bytes:
    """The body of a `flashSaleRedeem` as the mini-program sends it: the trusted document by its hash, or
    (a server that knows no trusted documents) its full text."""
    document = DOCUMENT.read_text(encoding="utf-8")
    if by_hash:
        ask: dict[str, Any] = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(
            document.encode()).hexdigest()}}}
    else:
        ask = {"query": document}
    return json.dumps({**ask, "variables": variables, "operationName": "FlashSaleRedeem"}).encode()


async def knows_trusted_documents(port: int, token: str, variables: dict[str, Any]) -> bool:
    """Whether the server answers the trusted document by its hash (one request, answered sold out)."""
    status, raw = await post(port, token, redeem_body(variables, True))
    return status == 200 and _sold_out(raw)


def _sold_out(raw: bytes) -> bool:
    try:
        payload = json.loads(raw)["data"]["flashSaleRedeem"]
    except (ValueError, KeyError, TypeError):
        return False
    return bool(payload) and [e.get("code") for e in payload.get("userErrors") or []] == ["OUT_OF_STOCK"]


async def _state(conn, sale_id: int, member_id: int) -> tuple[Any, ...]:
    sale = await conn.fetchval("SELECT stock FROM flash_sale WHERE id = $1", sale_id)
    orders = await conn.fetchval("SELECT count(*) FROM mall_order WHERE flash_sale_id = $1", sale_id)
    balance = await conn.fetchval("SELECT balance FROM points_account WHERE member_id = $1", member_id)
    return sale, orders, balance


async def run_steady(bench: Any, args: argparse.Namespace, sale_id: int, env: dict[str, str]) -> SteadyPhase:
    phase = SteadyPhase()
    if shutil.which("wrk") is None:
        phase.skipped = "wrk is not installed (apt-get install wrk): steady phase skipped"
        return phase
    member_id, token = bench.member_ids[0], bench.tokens[0]
    variables = {"input": {"flashSaleId": global_id("FlashSale", sale_id), "idempotencyKey": f"steady-{bench.run_tag}"}}
    by_hash, full = redeem_body(variables, True), redeem_body(variables, False)
    before = await _state(bench.stats_conn, sale_id, member_id)
    one = argparse.Namespace(**{**vars(args), "workers": 1, "port": 0})
    workdir = Path(tempfile.mkdtemp(prefix="mallpoints-steady-"))
    answers: dict[str, bytes] = {}
    body = full
    # The floor has no database: it is told the installation id the server names its gate keys with.
    installation = await bench.stats_conn.fetchval("SELECT key FROM installation WHERE id = 1")
    floor_env = {**env, "MALLPOINTS_BENCH_INSTALLATION": str(installation)}
    for label, cls in (("mallpoints", ContestServer), ("floor", FloorServer)):
        server = cls(one, env if cls is ContestServer else floor_env, workdir, label)
        server.start()
        try:
            await server.wait_ready()
            if label == "mallpoints":
                trusted = await knows_trusted_documents(server.port, token, variables)
                body, phase.mode = (by_hash, "trusted document by hash") if trusted else (full, "full text")
            status, raw = await post(server.port, token, body)
            answers[label] = raw
            phase.checks.append((f"{label}: the request is answered sold out", status == 200 and _sold_out(raw),
                                 f"HTTP {status}: {raw[:160]!r}"))
            log(f"steady phase, {label}: warm-up {args.steady_warm} s, then {args.steady_seconds} s of wrk with"
                f" {args.steady_connections} connections ({phase.mode})")
            await run_wrk(f"{label}-warm", server.port, body, token, args.steady_connections, args.steady_warm, workdir)
            run = await run_wrk(label, server.port, body, token, args.steady_connections, args.steady_seconds, workdir)
        finally:
            server.stop()
        setattr(phase, "server" if label == "mallpoints" else "floor", run)
        phase.checks.append((f"{label}: every answer 2xx, no socket error", run.non_2xx == 0 and run.socket_errors == 0,
                             f"{run.non_2xx} non-2xx, {run.socket_errors} socket errors"))
    phase.checks.append(("the floor answers what mallpoints answers",
                         json.loads(answers.get("floor", b"null")) == json.loads(answers.get("mallpoints", b"null")),
                         f"{answers.get('floor', b'')[:120]!r}"))
    after = await _state(bench.stats_conn, sale_id, member_id)
    phase.checks.append(("nothing changed: sale stock, its orders, the member's balance", after == before,
                         f"before {before}, after {after}"))
    return phase


def print_steady(phase: SteadyPhase) -> None:
    print()
    print("phase steady: sold-out answers under a steady load, one server process each (wrk)")
    if phase.skipped:
        print(f"  {phase.skipped}")
        return
    print(f"  mallpoints request: {phase.mode}")
    print(f"  {'server':<12} {'requests':>9} {'seconds':>8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for run in (phase.server, phase.floor):
        if run is not None:
            print(f"  {run.label:<12} {run.requests:>9,} {run.seconds:>8.2f} {run.rps:>9,.0f} {run.p50_ms:>8.2f}"
                  f" {run.p99_ms:>8.2f}")
    print("  checks:")
    for label, good, detail in phase.checks:
        print(f"    {'PASS' if good else 'FAIL'}  {label}" + ("" if good else f"  ({detail})"))


def steady_figures(phase: SteadyPhase) -> dict[str, Any]:
    if phase.skipped:
        return {"skipped": phase.skipped}
    return {"mode": phase.mode, "ratio": None if phase.ratio is None else round(phase.ratio, 3),
            **{f"{run.label}_rps": round(run.rps, 1) for run in (phase.server, phase.floor) if run is not None},
            "checks_pass": all(good for _, good, _ in phase.checks)}


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steady-seconds", type=int, default=10, help="measured seconds of each steady run (10)")
    p.add_argument("--steady-warm", type=int, default=2, help="warm-up seconds before each steady run (2)")
    p.add_argument("--steady-connections", type=int, default=64, help="wrk connections of the steady phase (64)")
