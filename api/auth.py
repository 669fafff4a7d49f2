"""Who is calling: turns request headers into a Caller, or refuses with UNAUTHENTICATED/FORBIDDEN."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.context import ANONYMOUS, Caller
from api.services import integrations, operators, signing, staff
from api.services.errors import forbidden, unauthenticated


async def caller_for(endpoint: str, headers: Mapping[str, str], body: bytes, redis: Any = None) -> Caller:
    key_id = headers.get("x-mallpoints-key")
    authorization = headers.get("authorization")
    if key_id is not None:
        if endpoint != "public":
            raise forbidden("integrations call the public endpoint")
        identity = await integrations.authenticate(
            key_id, headers.get("x-mallpoints-timestamp"), headers.get("x-mallpoints-nonce"),
            headers.get("x-mallpoints-signature"), body, redis,
        )
        return Caller(integration=identity)
    if not authorization:
        return ANONYMOUS
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated("use Authorization: Bearer <token>")
    claims = signing.read_token(token.strip())
    if endpoint == "admin":
        if claims.kind != "operator":
            raise forbidden("the operators' endpoint needs an operator token")
        # Read at every request, never cached: a deactivated operator, or a role taken away, stops at once.
        operator = await operators.get_operator(claims.subject_id)
        if operator is None:
            raise unauthenticated("operator disabled")
        return Caller(operator_id=operator.id, operator_roles=operator.roles)
    if claims.kind == "staff":
        account = await staff.get_active(claims.subject_id)
        if account is None:
            raise unauthenticated("staff account disabled")
        return Caller(staff_id=account.id, staff_merchant_id=account.merchant.id)
    if claims.kind != "member":
        raise forbidden("operators use /admin/graphql")
    return Caller(member_id=claims.subject_id)
