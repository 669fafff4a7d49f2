"""Trusted documents (persisted operations) of the first-party clients (issue 14, CONTRACT.md).

`clients/**/*.graphql` holds every operation the mini-program, the H5 pages, the merchant assistant, the
tills, the car parks and the payment notifier send, one named operation per file (the file is named
after it). `mallpoints persisted-manifest` writes `api/trusted_documents.json` from them, in Apollo's
persisted-query manifest format: `{"format", "version", "operations": [{"id", "name", "type", "body"}]}`,
where `id` is the lowercase hex SHA-256 of `body`, the file's text exactly as committed (UTF-8).

A client sends `{"extensions": {"persistedQuery": {"version": 1, "sha256Hash": id}}, "variables": …,
"operationName": …}` instead of the text. The server parses and validates every document of the
manifest once, when the app is built, never per request; an unknown hash is answered with a top-level
error whose `extensions.code` is `PERSISTED_QUERY_NOT_FOUND`. With `MALLPOINTS_TRUSTED_DOCUMENTS_ONLY=true`
the public endpoint refuses every full text with the same code.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from graphql import DocumentNode, GraphQLError, OperationDefinitionNode, parse

PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
MANIFEST = Path(__file__).with_name("trusted_documents.json")
CLIENTS = Path(__file__).resolve().parent.parent / "clients"
FORMAT = "apollo-persisted-query-manifest"


class ManifestError(ValueError):
    """A client document that cannot be trusted (does not parse, not one named operation, misnamed)."""


def document_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _operation(document: DocumentNode, where: str) -> OperationDefinitionNode:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operations[0].name is None:
        raise ManifestError(f"{where}: one named operation per file")
    return operations[0]


def collect(clients: Path = CLIENTS) -> list[dict[str, str]]:
    """The manifest's operations from the client folder, sorted by path; names are unique."""
    operations: list[dict[str, str]] = []
    names: dict[str, str] = {}
    for path in sorted(clients.rglob("*.graphql")):
        where = str(path.relative_to(clients.parent))
        body = path.read_text(encoding="utf-8")
        try:
            operation = _operation(parse(body), where)
        except ManifestError:
            raise
        except Exception as exc:  # a GraphQLSyntaxError, said with the file's name
            raise ManifestError(f"{where}: {exc}") from None
        name = operation.name.value if operation.name else ""
        if name != path.stem:
            raise ManifestError(f"{where}: the operation is named {name!r}; name the file after it")
        if name in names:
            raise ManifestError(f"{where}: operation {name!r} is also in {names[name]}")
        names[name] = where
        operations.append({"id": document_hash(body), "name": name, "type": operation.operation.value,
                           "body": body})
    return operations


def manifest_text(clients: Path = CLIENTS) -> str:
    """The manifest file's text for the client folder (what `mallpoints persisted-manifest` writes)."""
    manifest = {"format": FORMAT, "version": 1, "operations": collect(clients)}
    return json.dumps(manifest, ensure_ascii=False, indent=2) + "\n"


@dataclass(frozen=True)
class TrustedDocument:
    id: str
    name: str
    text: str
    document: DocumentNode


class TrustedDocuments:
    """The manifest's documents, parsed and validated against the schema once; looked up by hash or
    by text (a full text that is a trusted document takes the same prepared document)."""

    def __init__(self, check: Callable[[DocumentNode], list[GraphQLError]], manifest: Path = MANIFEST) -> None:
        """`check`: the endpoint's validation (its rules and limits), run once per document here."""
        self.by_id: dict[str, TrustedDocument] = {}
        self.by_text: dict[str, TrustedDocument] = {}
        data = json.loads(manifest.read_text(encoding="utf-8")) if manifest.exists() else {"operations": []}
        for op in data["operations"]:
            body = op["body"]
            if document_hash(body) != op["id"]:
                raise ManifestError(f"{op['name']}: its id is not the SHA-256 of its body")
            document = parse(body)
            errors = check(document)
            if errors:
                raise ManifestError(f"{op['name']}: {errors[0].message}")
            trusted = TrustedDocument(op["id"], op["name"], body, document)
            self.by_id[trusted.id] = trusted
            self.by_text[body] = trusted

    @classmethod
    def none(cls) -> "TrustedDocuments":
        """No trusted documents (an executor built without a manifest)."""
        return cls(lambda _document: [], Path("/nonexistent"))

    def __len__(self) -> int:
        return len(self.by_id)


def persisted_hash(payload: dict[str, Any]) -> str | None:
    """The `sha256Hash` of an Apollo persisted-query request, or None when the request sends no
    `extensions.persistedQuery`; "" when it sends one without a usable hash."""
    extensions = payload.get("extensions")
    if not isinstance(extensions, dict) or "persistedQuery" not in extensions:
        return None
    persisted = extensions["persistedQuery"]
    if not isinstance(persisted, dict):
        return ""
    found = persisted.get("sha256Hash")
    return found.lower() if isinstance(found, str) else ""
