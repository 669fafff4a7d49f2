"""Licence plates: what a Chinese plate looks like, and the lock that serialises a plate's entry with
its binding and unbinding."""
from __future__ import annotations

import re

from api import locks
from api.locks import Rank
from api.services.errors import DomainError, ErrorCode

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_L = "A-HJ-NP-Z"  # letters on plates: no I, no O
PLATE_PATTERNS = (
    re.compile(f"^[{PROVINCES}][{_L}][{_L}0-9]{{4}}[{_L}0-9学警港澳]$"),  # ordinary: 粤B12345, 粤BA123学
    re.compile(f"^[{PROVINCES}][{_L}][DFA-HJK][{_L}0-9][0-9]{{4}}$"),  # small new-energy: 粤BD12345, 粤BDA1234
    re.compile(f"^[{PROVINCES}][{_L}][0-9]{{5}}[DF]$"),  # large new-energy: 粤B12345D
)
PLATE_LOCK_SPACE = 4711  # the first key of pg_advisory_xact_lock(int, int) for plates


def normalize_plate(text: str | None, field: list[str] | None = None) -> str:
    """A Chinese plate (ordinary, or new-energy of 8 characters), upper-case, without spaces and the
    dot or dash some systems put after the city letter; anything else is PLATE_INVALID."""
    plate = re.sub(r"[\s·•.\-]", "", (text or "")).upper()
    if not any(p.match(plate) for p in PLATE_PATTERNS):
        raise DomainError(ErrorCode.PLATE_INVALID, "not a Chinese licence plate (e.g. 粤B12345, 粤BD12345)",
                          field or ["input", "plate"])
    return plate


async def lock_plate(plate: str) -> None:
    """Serialises a plate's entry with its binding and unbinding: an entry racing an unbind must not
    link the stay to the former owner. Rank.PLATE comes before the member's lock (an entry's insert
    checks its member's row); the lock ends with the transaction."""
    await locks.advisory(Rank.PLATE, PLATE_LOCK_SPACE, plate)
