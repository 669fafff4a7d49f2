"""Opaque global IDs: base64url("Type:pk")."""
from __future__ import annotations

import base64


def to_global_id(type_name: str, pk: int | str) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def from_global_id(global_id: str, expected: str | None = None) -> tuple[str, int] | None:
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        type_name, _, pk = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        value = int(pk)
    except (ValueError, UnicodeDecodeError):
        return None
    if expected is not None and type_name != expected:
        return None
    return type_name, value


def cursor_for(pk: int) -> str:
    return to_global_id("cursor", pk)


def from_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    parsed = from_global_id(cursor, "cursor")
    return parsed[1] if parsed else -1
