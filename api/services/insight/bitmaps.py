"""Member bitmaps for the rollup (PostgreSQL `bit varying`): bit i is member id i, sent as hex text."""
from __future__ import annotations

from collections.abc import Iterable


def hex_bits(ids: Iterable[int]) -> str:
    """'x…' text of a bitmap with the given member ids set ('' when none): PostgreSQL reads it as varbit."""
    ids = list(ids)
    if not ids:
        return ""
    bits = bytearray(max(ids) // 8 + 1)
    for i in ids:
        bits[i >> 3] |= 0x80 >> (i & 7)
    return "x" + bits.hex()


def width(text: str) -> int:
    """The bit length of a hex_bits text."""
    return 0 if not text else (len(text) - 1) * 4
