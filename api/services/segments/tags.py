"""Member tags: by hand (member ids), from a segment, or from an uploaded list of phone numbers (CSV or
XLSX, the first column; a header row is skipped). Set-based writes in chunks; every change audited."""
from __future__ import annotations

import base64
import binascii
import csv
import io
from dataclasses import dataclass

from api.db import transaction
from api.models import Member, MemberTag
from api.services import clock, members, text
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode
from api.services.segments import segments
from api.services.segments.filters import tag_name

MAX_IDS = 1000  # member ids per call
CHUNK = 1000
MAX_FILE_BYTES = 700 * 1024  # decoded upload (the operators' body limit is 1 MiB of base64)
MAX_ROWS = 50_000


async def tags_of(member_ids: list[int]) -> dict[int, list[str]]:
    rows = await MemberTag.filter(member_id__in=member_ids).order_by("tag").values_list("member_id", "tag")
    out: dict[int, list[str]] = {m: [] for m in member_ids}
    for member_id, tag in rows:
        out[int(member_id)].append(tag)
    return out


async def _known(ids: list[int]) -> None:
    if len(ids) > MAX_IDS:
        raise DomainError(ErrorCode.INVALID_INPUT, f"at most {MAX_IDS} members per call", ["input", "memberIds"])
    found = {int(r["id"]) for r in await Member.filter(id__in=ids).values("id")}
    for index, member_id in enumerate(ids):
        if member_id not in found:
            raise DomainError(ErrorCode.NOT_FOUND, "no such member", ["input", "memberIds", str(index)])


async def _add(ids: list[int], tag: str) -> int:
    """Tags these (existing) members; returns how many did not have the tag."""
    have = {int(r["member_id"]) for r in await MemberTag.filter(tag=tag, member_id__in=ids).values("member_id")}
    now = clock.now()
    new = [MemberTag(member_id=m, tag=tag, created_at=now) for m in dict.fromkeys(ids) if m not in have]
    if new:
        await MemberTag.bulk_create(new, ignore_conflicts=True)
    return len(new)


async def add(actor: Actor, member_ids: list[int], tag: str) -> int:
    clean = tag_name(tag, ["input", "tag"])
    await _known(member_ids)
    async with transaction() as tx:
        count = await _add(member_ids, clean)
        await audit(tx, actor, "member.tag_add", "Tag", clean, {"members": len(member_ids), "added": count})
    return count


async def remove(actor: Actor, member_ids: list[int], tag: str) -> int:
    clean = tag_name(tag, ["input", "tag"])
    await _known(member_ids)
    async with transaction() as tx:
        count = await MemberTag.filter(tag=clean, member_id__in=member_ids).delete()
        await audit(tx, actor, "member.tag_remove", "Tag", clean, {"members": len(member_ids), "removed": count})
    return count


async def add_from_segment(actor: Actor, segment_id: int, tag: str) -> int:
    clean = tag_name(tag, ["input", "tag"])
    segment = await segments.get(segment_id)
    added, last = 0, 0
    while True:
        ids = await segments.member_ids_after(segment.filter, last, CHUNK)
        if not ids:
            break
        async with transaction():  # one chunk a transaction: never more than CHUNK rows written at once
            added += await _add(ids, clean)
        last = ids[-1]
    async with transaction() as tx:
        await audit(tx, actor, "member.tag_add", "Tag", clean, {"segment": segment_id, "added": added})
    return added


@dataclass(frozen=True)
class ImportResult:
    rows: int
    added: int
    unknown: int  # valid numbers of no member, and values that are no phone number


def phones_in(file_name: str, content: bytes) -> list[str]:
    """The first column's values of a CSV or XLSX file (by the name's extension)."""
    lowered = file_name.lower()
    values: list[str] = []
    if lowered.endswith(".csv"):
        try:
            decoded = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            decoded = content.decode("gb18030", errors="replace")
        for row in csv.reader(io.StringIO(decoded)):
            if row:
                values.append(row[0].strip())
            if len(values) > MAX_ROWS:
                break
    elif lowered.endswith(".xlsx"):
        from openpyxl import load_workbook  # type: ignore[import-untyped]  # imported when used: only uploads need it

        try:
            book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        except Exception:  # noqa: BLE001 - any unreadable workbook is the same input error
            raise DomainError(ErrorCode.INVALID_INPUT, "not a readable XLSX file", ["input", "content"]) from None
        for row in book.worksheets[0].iter_rows(max_col=1, values_only=True):
            cell = row[0] if row else None
            if cell is not None:
                values.append(str(int(cell)) if isinstance(cell, float) and cell.is_integer() else str(cell).strip())
            if len(values) > MAX_ROWS:
                break
        book.close()
    else:
        raise DomainError(ErrorCode.INVALID_INPUT, "the file must be .csv or .xlsx", ["input", "fileName"])
    if len(values) > MAX_ROWS:
        raise DomainError(ErrorCode.INVALID_INPUT, f"at most {MAX_ROWS} rows", ["input", "content"])
    return values


async def import_phones(actor: Actor, tag: str, file_name: str, content_base64: str) -> ImportResult:
    clean = tag_name(tag, ["input", "tag"])
    if len(content_base64) > MAX_FILE_BYTES * 4 // 3 + 4:
        raise DomainError(ErrorCode.INVALID_INPUT, f"the file must be at most {MAX_FILE_BYTES} bytes", ["input", "content"])
    try:
        content = base64.b64decode(content_base64, validate=True)
    except (binascii.Error, ValueError):
        raise DomainError(ErrorCode.INVALID_INPUT, "content must be base64", ["input", "content"]) from None
    file_name = text.name(file_name, ["input", "fileName"], 128)
    values = phones_in(file_name, content)
    phones: list[str] = []
    for value in values:
        try:
            phones.append(members.normalize_phone(value))
        except DomainError:
            continue  # a header row or a value that is no phone number
    wanted = list(dict.fromkeys(phones))
    added, found = 0, 0
    for start in range(0, len(wanted), CHUNK):
        rows = await Member.filter(phone__in=wanted[start:start + CHUNK]).values_list("id", "phone")
        found += len(rows)
        if rows:
            async with transaction():
                added += await _add([int(r[0]) for r in rows], clean)
    result = ImportResult(rows=len(values), added=added, unknown=len(values) - found - (len(phones) - len(wanted)))
    async with transaction() as tx:  # the file's name and counts, never its phone numbers
        await audit(tx, actor, "member.tag_import", "Tag", clean,
                    {"file": file_name[:64], "rows": result.rows, "added": added, "unknown": result.unknown})
    return result
