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

The prepared path answers every JSON request of the endpoint itself, refusals included: a text is
parsed once (limits before validation, `api/doclimits.py`), validated once, and a failing text is answered
from here and never kept, so that no request is validated twice (issue 11). Trusted documents
(`api/trusted.py`) are parsed and validated when the executor is built and never again; a trusted
document may carry a fast answer (`api/soldout.py`) tried before the executor. What is left to
Strawberry: anything not JSON, a subscription, a text whose operation cannot be chosen, and every
request when the schema has an extension this module cannot reproduce.
"""
from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
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

from api import doclimits
from api.config import settings
from api.textcache import TextCache
from api.trusted import PERSISTED_QUERY_NOT_FOUND, TrustedDocument, TrustedDocuments, persisted_hash

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


def dumps(response: Any) -> bytes:
    """A response as compact UTF-8 JSON (orjson; the standard library for what orjson refuses, such as
    an integer beyond 64 bits from a custom scalar)."""
    try:
        return orjson.dumps(response)
    except TypeError:
        return json.dumps(response, ensure_ascii=False, separators=(",", ":")).encode()


def refusal(code: str, message: str) -> bytes:
    """A request error with a code, in the shape of every top-level refusal of the endpoint."""
    return dumps({"data": None, "errors": [{"message": message, "extensions": {"code": code}}]})


# A fast answer for a trusted document: the response, or None to run the document as usual.
FastAnswer = Callable[[dict[str, Any], Any], Awaitable[bytes | None]]


class PreparedExecutor:
    def __init__(self, schema: strawberry.Schema, max_cache_bytes: int = 8 * 1024 * 1024,
                 manifest: Path | None = None) -> None:
        """`manifest`: the trusted documents (api/trusted.py), parsed and validated here, once."""
        self.schema = schema
        self.graphql_schema = schema._schema
        self.pipeline = Pipeline.of(schema)
        if self.pipeline.unsupported:
            log.warning("prepared path off: the schema has extensions it cannot reproduce (%s)",
                        ", ".join(self.pipeline.unsupported))
        # Valid documents only, bounded by the bytes of their texts (issue 11: a count bound let 20
        # distinct 2 MB texts pin 56 MB, and failing texts were kept as well). A document's tokens keep
        # another copy of the text's comments and strings, hence texts of half the bound.
        self.cache: TextCache[DocumentNode] = TextCache(max_cache_bytes // 2)
        self.trusted = TrustedDocuments(self.check, manifest) if manifest is not None else TrustedDocuments.none()
        self.fast_answers: dict[str, FastAnswer] = {}  # by trusted document id (api/soldout.py)

    def check(self, document: DocumentNode) -> list[GraphQLError]:
        """The endpoint's checks of a parsed document: the limits first (linear), then validation."""
        over = doclimits.check(document)
        if over is not None:
            return [over]
        return validate_document(self.graphql_schema, document, self.pipeline.rules)

    def prepare(self, query: str) -> DocumentNode | None:
        """The parsed document when it is valid (cached); None when it is refused."""
        document, _ = self.prepare_or_errors(query)
        return document

    def prepare_or_errors(self, query: str) -> tuple[DocumentNode | None, list[GraphQLError]]:
        """The valid document (cached), or why it is refused (never cached: a failing text is not kept)."""
        trusted = self.trusted.by_text.get(query)
        if trusted is not None:
            return trusted.document, []
        document = self.cache.get(query)
        if document is not None:
            return document, []
        try:
            document = parse(query, **self.pipeline.parse_options)
        except GraphQLError as error:
            return None, [error]
        errors = self.check(document)
        if errors:
            return None, errors
        self.cache.put(query, document)
        return document, []

    def trusted_for(self, payload: dict[str, Any]) -> TrustedDocument | bytes | None:
        """The trusted document a request names (by hash, or by sending its exact text); the refusal
        when it names an unknown one, or sends a full text while only trusted documents are accepted;
        None for a full text that is accepted."""
        wanted = persisted_hash(payload)
        query = payload.get("query")
        if wanted is not None:
            found = self.trusted.by_id.get(wanted)
            if found is None or (query is not None and query != found.text):
                return refusal(PERSISTED_QUERY_NOT_FOUND, "PersistedQueryNotFound")
            return found
        found = self.trusted.by_text.get(query) if isinstance(query, str) else None
        if found is None and settings().trusted_documents_only:
            return refusal(PERSISTED_QUERY_NOT_FOUND, "PersistedQueryNotFound: this endpoint accepts trusted "
                           "documents only (clients/, sent by extensions.persistedQuery.sha256Hash)")
        return found

    async def run(self, payload: dict[str, Any], context: Any) -> bytes | None:
        """The JSON response, or None when Strawberry should handle the request."""
        trusted = self.trusted_for(payload)
        if isinstance(trusted, bytes):
            return trusted
        if self.pipeline.unsupported:
            return None
        variables, operation_name = payload.get("variables"), payload.get("operationName")
        if variables is not None and not isinstance(variables, dict):
            return None
        if trusted is not None:
            fast = self.fast_answers.get(trusted.id)
            if fast is not None:
                answer = await fast(variables or {}, context)
                if answer is not None:
                    return answer
            document = trusted.document
        else:
            query = payload.get("query")
            if not isinstance(query, str):
                return None
            found, errors = self.prepare_or_errors(query)
            if found is None:
                return self._answer(None, errors)
            document = found
        operation = get_operation_ast(document, operation_name)
        if operation is None or operation.operation is OperationType.SUBSCRIPTION:
            return None
        result = execute(
            self.graphql_schema, document, context_value=context, variable_values=variables,
            operation_name=operation_name, executor_class=self.schema.execution_context_class,
        )
        if inspect.isawaitable(result):
            result = await result
        return self._answer(result.data, result.errors)

    def body_for_strawberry(self, payload: dict[str, Any], body: bytes) -> bytes:
        """The body Strawberry's view reads when the prepared path steps aside: a trusted document named
        by its hash is sent on as its text (Strawberry knows no persisted queries)."""
        found = self.trusted_for(payload) if persisted_hash(payload) is not None else None
        if isinstance(found, TrustedDocument):
            return dumps({key: value for key, value in payload.items() if key != "extensions"} | {"query": found.text})
        return body

    def _answer(self, data: Any, errors: list[GraphQLError] | None) -> bytes:
        response: dict[str, Any] = {"data": data}
        if errors:
            response["errors"] = [error.formatted for error in self._errors(errors)]
        return dumps(response)

    def _errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        """As Strawberry does: suggestions removed and errors logged (`Schema._process_errors`), then masked."""
        if self.schema.config.disable_field_suggestions:
            for error in errors:
                self.schema.remove_field_suggestion(error)
        self.schema.process_errors(errors)
        mask = self.pipeline.mask
        return [mask.anonymise_error(e) if mask.should_mask_error(e) else e for e in errors] if mask else errors

