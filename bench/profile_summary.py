"""Summarises py-spy collapsed-stack profiles (`py-spy record --format raw`), such as the files that
`python -m bench.purchase_load --profile-dir DIR` writes for each server worker.

    python -m bench.profile_summary DIR/single-worker*.txt [--top 25]

Prints, over all given files together: where the samples go by area (curated list below, each
sample counted once, in the first area whose pattern occurs anywhere in its stack), the functions
with the most inclusive time, the functions with the most self time, and self time by package.
py-spy leaves idle threads out by default, so the samples approximate CPU time.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

# (area, pattern over a frame "func (file:line)"); first match from this list wins for a sample.
AREAS: list[tuple[str, str]] = [
    ("signature check + nonce transaction (api/auth.py → integrations.authenticate)", r"\(api/services/integrations\.py"),
    ("Strawberry: building extensions per request (get_extensions, rule classes)", r"Schema\.get_extensions"),
    ("GraphQL parse", r"\(graphql/language/(parser|lexer)\.py"),
    ("GraphQL validation", r"validate_document|\(graphql/validation/"),
    ("service: earn transaction (api/services/purchases.py & ledger, tiers, idempotency)",
     r"\(api/services/(purchases|ledger|tiers|idempotency|merchants)\.py"),
    ("GraphQL execution & result (graphql-core execute, strawberry resolvers/conversion)",
     r"\(graphql/execution/|strawberry/schema/schema\.py|strawberry/types/|strawberry/schema/schema_converter"),
    ("Strawberry HTTP view / extensions runner", r"\(strawberry/"),
    ("Starlette / uvicorn HTTP (request handling, response send)", r"\((starlette/|uvicorn/(protocols|middleware)/)"),
    ("app glue (api/app.py)", r"\(api/app\.py"),
    ("database driver outside the above (asyncpg, Tortoise)", r"\((asyncpg|tortoise)/"),
]
PACKAGE = re.compile(r"\(([^/:()]+)")


def read_stacks(paths: list[Path]) -> Counter:
    stacks: Counter = Counter()
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                stacks[stack] += int(count)
    return stacks


def package_of(frame: str) -> str:
    match = PACKAGE.search(frame)
    if not match:
        return "?"
    name = match.group(1)
    return name.removesuffix(".py")


def summarise(stacks: Counter, top: int) -> None:
    total = sum(stacks.values())
    if not total:
        print("no samples")
        return
    areas: Counter = Counter()
    inclusive: Counter = Counter()
    self_time: Counter = Counter()
    by_package: Counter = Counter()
    compiled = [(name, re.compile(p)) for name, p in AREAS]
    for stack, n in stacks.items():
        frames = stack.split(";")
        for name, pattern in compiled:
            if pattern.search(stack):
                areas[name] += n
                break
        else:
            areas["other (event loop, asyncio internals, GC…)"] += n
        for frame in set(frames):
            inclusive[frame] += n
        leaf = frames[-1]
        self_time[leaf] += n
        by_package[package_of(leaf)] += n
    print(f"{total:,} samples")
    print("\nby area (each sample once, first matching area):")
    for name, n in areas.most_common():
        print(f"  {100 * n / total:5.1f}%  {name}")
    print(f"\ntop {top} inclusive (frames in under 97% of samples):")
    shown = 0
    for frame, n in inclusive.most_common():
        if n / total > 0.97:
            continue
        print(f"  {100 * n / total:5.1f}%  {frame}")
        shown += 1
        if shown >= top:
            break
    print(f"\ntop {top} self:")
    for frame, n in self_time.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {frame}")
    print("\nself time by package of the leaf frame:")
    for name, n in by_package.most_common(15):
        print(f"  {100 * n / total:5.1f}%  {name}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.profile_summary", description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    missing = [f for f in args.files if not f.exists()]
    if missing:
        sys.exit(f"missing: {', '.join(map(str, missing))}")
    summarise(read_stacks(args.files), args.top)


if __name__ == "__main__":
    main()
