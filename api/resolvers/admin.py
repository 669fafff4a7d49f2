from __future__ import annotations

from typing import Optional

import strawberry
from strawberry.types import Info

from api.resolvers import user_errors
from api.schema import payloads as p
from api.schema.ids import from_cursor, from_global_id
from api.schema.types import Connection, Member, Merchant, check_first
from api.services import integrations, members, merchants, operators


async def members_page(info: Info, first: int, after: Optional[str] = None,
                       search: Optional[str] = None) -> Connection[Member]:
    info.context.operator_id()
    check_first(first)
    rows = await members.search_members(search, first + 1, from_cursor(after))
    return Connection.of([Member.of(r) for r in rows], first, after)


async def member(info: Info, id: strawberry.ID) -> Optional[Member]:
    info.context.operator_id()
    parsed = from_global_id(id, "Member")
    record = await info.context.loaders.member.load(parsed[1]) if parsed else None
    return Member.of(record) if record else None


async def merchants_page(info: Info, first: int, after: Optional[str] = None) -> Connection[Merchant]:
    info.context.operator_id()
    check_first(first)
    rows = await merchants.page(first + 1, from_cursor(after))
    return Connection.of([Merchant.of(r) for r in rows], first, after)


@user_errors(p.PointsExpireRunPayload)
async def points_expire_run(info: Info, input: p.PointsExpireRunInput) -> p.PointsExpireRunPayload:
    result = await operators.run_expiry(("operator", str(info.context.operator_id())), input.as_of)
    return p.PointsExpireRunPayload(lots_expired=result.lots_expired, points_expired=result.points_expired,
                                    members_affected=result.accounts)


@user_errors(p.TierEvaluationRunPayload)
async def tier_evaluation_run(info: Info, input: p.TierEvaluationRunInput) -> p.TierEvaluationRunPayload:
    result = await operators.run_tier_evaluation(("operator", str(info.context.operator_id())), input.as_of)
    return p.TierEvaluationRunPayload(members_evaluated=result.members_evaluated, downgraded=result.downgraded)


async def sms_messages(info: Info, first: int) -> list[p.SmsMessage]:
    info.context.operator_id()
    check_first(first)
    rows = await operators.sms_outbox(first)
    return [p.SmsMessage(id=strawberry.ID(str(r["id"])), phone=r["phone"], body=r["body"],
                         created_at=r["created_at"]) for r in rows]


def _key(k: integrations.KeyInfo) -> p.IntegrationKey:
    return p.IntegrationKey(key_id=k.key_id, name=k.name, merchant_codes=k.merchant_codes,
                            created_at=k.created_at, revoked_at=k.revoked_at, scopes=k.scopes)


async def integration_keys(info: Info) -> list[p.IntegrationKey]:
    info.context.operator_id()
    return [_key(k) for k in await integrations.list_keys()]


@user_errors(p.IntegrationKeyCreatePayload)
async def integration_key_create(info: Info, input: p.IntegrationKeyCreateInput) -> p.IntegrationKeyCreatePayload:
    actor = ("operator", str(info.context.operator_id()))
    key, secret = await integrations.create_key(input.name, input.merchant_codes, actor, scopes=input.scopes)
    return p.IntegrationKeyCreatePayload(integration_key=_key(key), secret=secret)


@user_errors(p.IntegrationKeyRevokePayload)
async def integration_key_revoke(info: Info, input: p.IntegrationKeyRevokeInput) -> p.IntegrationKeyRevokePayload:
    key = await integrations.revoke_key(input.key_id, ("operator", str(info.context.operator_id())))
    return p.IntegrationKeyRevokePayload(integration_key=_key(key))


