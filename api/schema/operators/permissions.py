"""The roles table (api/services/operators/roles.py) enforced on every root field of the operators'
endpoint, in one place: before anything runs, every root field of the operation (fragments included)
is checked, so an operation with one field outside the caller's roles is refused whole with a top-level
FORBIDDEN (UNAUTHENTICATED without an operator token) and nothing is changed."""
from __future__ import annotations

from collections.abc import Iterator

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import SchemaExtension

from api.schema.errors import ApiError
from api.services.operators import roles as R


def root_fields(document: DocumentNode, operation_name: str | None) -> list[str]:
    """The root field names the operation would run (introspection fields left out)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name is not None and o.name.value == operation_name]
    if len(operations) != 1:
        return []  # graphql-core refuses the request itself
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    names: list[str] = []
    seen: set[str] = set()
    pending: list[SelectionSetNode] = [operations[0].selection_set]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                if not selection.name.value.startswith("__"):
                    names.append(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                seen.add(selection.name.value)
                fragment = fragments.get(selection.name.value)
                if fragment is not None:
                    pending.append(fragment.selection_set)
    return names


class RolePermissions(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        ctx = self.execution_context
        error = self._refusal()
        if error is not None:
            ctx.result = ExecutionResult(data=None, errors=[error])
        yield

    def _refusal(self) -> ApiError | None:
        ctx = self.execution_context
        if ctx.graphql_document is None:
            return None
        fields = root_fields(ctx.graphql_document, ctx.operation_name)
        caller = ctx.context.caller
        if caller.operator_id is None:
            if any(R.needs_sign_in(f) for f in fields):
                return ApiError("sign in as an operator first", "UNAUTHENTICATED")
            return None
        refused = sorted({f for f in fields if not R.may(caller.operator_roles, f)})
        if refused:
            return ApiError(f"your roles do not allow {', '.join(refused)}", "FORBIDDEN")
        return None
