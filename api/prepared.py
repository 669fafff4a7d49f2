"""Prepared execution for the public endpoint's hot path.

Strawberry parses, validates and executes through its view and extension runner on every request;
for a query text it has seen before, that work is the same each time. Here a query text is parsed
and validated once, and later requests run the prepared document straight through graphql-core with
Strawberry's own execution context, so resolvers see exactly what they see under Strawberry.

Nothing about the pipeline is written twice: `Pipeline.of(schema)` reads it from the schema's own
configuration — the parse options and validation rules its extensions add (`MaxTokensLimiter`,
`AddValidationRules` and its subclasses such as `DisableIntrospection`), the `MaskErrors` instance that
masks errors, `disable_field_suggestions` — and validates with Strawberry's own `validate_document`.
An extension this module does not know (or a known one whose hooks were overridden) makes the prepared
path step aside for every request, so that an extension added to the schema later always applies; the
parity test (`tests/test_prepared_parity.py`) sends the same documents both ways and compares.

Anything unusual — not JSON, a batch, a document that does not validate, a subscription — is left to
Strawberry, which answers it as always.
"""
from __future__ import annotations

import inspect
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import strawberry
from graphql import DocumentNode, GraphQLError, OperationType, execute, get_operation_ast, parse
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.schema import validate_document
from strawberry.types.execution import ExecutionContext

log = logging.getLogger("mallpoints.graphql")

# Hooks through which an extension changes a request; a known extension must not override them.
HOOKS = ("on_operation", "on_parse", "on_validate", "on_execute", "on_stream_result", "resolve", "get_results")
# Extensions whose whole effect the prepared path reproduces (the two caches: it caches per query text).
KNOWN = (AddValidationRules, MaxTokensLimiter, MaskErrors, ParserCache, ValidationCache)


def _known_base(extension: SchemaExtension) -> type | None:
    """The known extension class `extension` is, if it adds no behaviour of its own to it."""
    cls = type(extension)
    base = next((k for k in KNOWN if isinstance(extension, k)), None)
    if base is None:
        return None
    same = all(getattr(cls, hook, None) is getattr(base, hook, None) for hook in HOOKS)
    return base if same else None


@dataclass(frozen=True)
class Pipeline:
    """What Strawberry does to a POSTed operation of this schema, as data."""

    parse_options: dict[str, Any]
    rules: tuple[type, ...]
    mask: MaskErrors | None
    unsupported: tuple[str, ...]  # extensions the prepared path cannot reproduce

    @classmethod
    def of(cls, schema: strawberry.Schema) -> "Pipeline":
        context = ExecutionContext(query=None, schema=schema, allowed_operations=())
        parse_options: dict[str, Any] = dict(context.parse_options)
        rules = list(context.validation_rules)
        mask: MaskErrors | None = None
        unsupported: list[str] = []
        for extension in schema.get_extensions():
            base = _known_base(extension)
            if base is AddValidationRules and isinstance(extension, AddValidationRules):
                rules.extend(extension.validation_rules)
            elif base is MaxTokensLimiter and isinstance(extension, MaxTokensLimiter):
                parse_options["max_tokens"] = extension.max_token_count
            elif base is MaskErrors and isinstance(extension, MaskErrors):
                mask = extension
            elif base is None:
                unsupported.append(type(extension).__name__)
        if schema.config.enable_experimental_incremental_execution:
            unsupported.append("incremental execution")
        return cls(parse_options, tuple(rules), mask, tuple(unsupported))


class PreparedExecutor:
    def __init__(self, schema: strawberry.Schema, maxsize: int = 1024) -> None:
        self.schema = schema
        self.graphql_schema = schema._schema
        self.pipeline = Pipeline.of(schema)
        if self.pipeline.unsupported:
            log.warning("prepared path off: the schema has extensions it cannot reproduce (%s)",
                        ", ".join(self.pipeline.unsupported))
        self.prepare = lru_cache(maxsize=maxsize)(self._prepare)

    def _prepare(self, query: str) -> DocumentNode | None:
        """The parsed document when it is valid; None sends the request to Strawberry."""
        try:
            document = parse(query, **self.pipeline.parse_options)
        except GraphQLError:
            return None
        return None if validate_document(self.graphql_schema, document, self.pipeline.rules) else document

    async def run(self, body: bytes, context: Any) -> bytes | None:
        """The JSON response, or None when Strawberry should handle the request."""
        if self.pipeline.unsupported:
            return None
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
        operation = get_operation_ast(document, operation_name) if document is not None else None
        if document is None or operation is None or operation.operation is OperationType.SUBSCRIPTION:
            return None
        result = execute(
            self.graphql_schema, document, context_value=context, variable_values=variables,
            operation_name=operation_name, executor_class=self.schema.execution_context_class,
        )
        if inspect.isawaitable(result):
            result = await result
        response: dict[str, Any] = {"data": result.data}
        if result.errors:
            response["errors"] = [error.formatted for error in self._errors(result.errors)]
        return json.dumps(response, ensure_ascii=False, separators=(",", ":")).encode()

    def _errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        """As Strawberry does: suggestions removed and errors logged (`Schema._process_errors`), then masked."""
        if self.schema.config.disable_field_suggestions:
            for error in errors:
                self.schema.remove_field_suggestion(error)
        self.schema.process_errors(errors)
        mask = self.pipeline.mask
        return [mask.anonymise_error(e) if mask.should_mask_error(e) else e for e in errors] if mask else errors
