"""Prepared execution for the public endpoint's hot path.

Strawberry parses, validates and executes through its view and extension runner on every request;
for a query text it has seen before, that work is the same each time. Here a query text is parsed
and validated once (with every rule of the public schema: depth, aliases, tokens, introspection,
once-per-request), and later requests run the prepared document straight through graphql-core with
Strawberry's own execution context, so resolvers see exactly what they see under Strawberry. Errors
are masked with the same rule as the schema's MaskErrors. Anything unusual — not JSON, a batch, a
document that does not validate, a subscription — is left to Strawberry, which answers it as always.
"""
from __future__ import annotations

import inspect
import json
import logging
from functools import lru_cache
from typing import Any

import strawberry
from graphql import (
    DocumentNode, GraphQLError, OperationType, execute, get_operation_ast, parse, specified_rules, validate,
)
from graphql.validation import NoSchemaIntrospectionCustomRule

from api.schema.errors import should_mask

log = logging.getLogger("mallpoints.graphql")
MASKED = "Unexpected error."


class PreparedExecutor:
    def __init__(self, schema: strawberry.Schema, rules: list, max_tokens: int, maxsize: int = 1024) -> None:
        self.schema = schema
        self.graphql_schema = schema._schema
        self.rules = (*specified_rules, NoSchemaIntrospectionCustomRule, *rules)
        self.max_tokens = max_tokens
        self.prepare = lru_cache(maxsize=maxsize)(self._prepare)

    def _prepare(self, query: str) -> DocumentNode | None:
        """The parsed document when it is valid; None sends the request to Strawberry."""
        try:
            document = parse(query, max_tokens=self.max_tokens)
        except GraphQLError:
            return None
        return None if validate(self.graphql_schema, document, self.rules) else document

    async def run(self, body: bytes, context: Any) -> bytes | None:
        """The JSON response, or None when Strawberry should handle the request."""
        try:
            payload = json.loads(body)
        except ValueError:
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return None
        variables, operation_name = payload.get("variables"), payload.get("operationName")
        if variables is not None and not isinstance(variables, dict):
            return None
        document = self.prepare(payload["query"])
        operation = document and get_operation_ast(document, operation_name)
        if operation is None or operation.operation is OperationType.SUBSCRIPTION:
            return None
        result = execute(
            self.graphql_schema, document, context_value=context, variable_values=variables,
            operation_name=operation_name, executor_class=self.schema.execution_context_class,
            hide_suggestions=True,
        )
        if inspect.isawaitable(result):
            result = await result
        response: dict[str, Any] = {"data": result.data}
        if result.errors:
            response["errors"] = [self._format(error) for error in result.errors]
        return json.dumps(response, ensure_ascii=False, separators=(",", ":")).encode()

    @staticmethod
    def _format(error: GraphQLError) -> dict:
        if should_mask(error):
            log.error("masked error in %s", error.path, exc_info=error.original_error)
            return GraphQLError(MASKED, error.nodes, error.source, error.positions, error.path).formatted
        return error.formatted
