"""The sold-out answer of a trusted `flashSaleRedeem` document, without the GraphQL executor (issue 14).

In a flash sale nearly every request is refused by the Redis gate; the refusal used to pay the whole
GraphQL execution. For a trusted document (api/trusted.py) whose one root field is
`flashSaleRedeem(input: $variable)`, the request is checked exactly as the resolver checks it (a signed-in
member, the sale's global ID, the service's input checks and the gate, `flash_sales.pass_checks`); when
the gate's verdict is SOLD_OUT, the answer is the payload the full path would give, rendered once per
document from its own selection set (aliases, `__typename`, fragments) and the service's own refusal
(`flash_sales.sold_out()`), serialised as the prepared path serialises. Anything else — no member, a
malformed input, a sale not on, a winner, a repeat, the limit, Redis down — takes the full path, which
uses the checks already taken (`Context.gate_pass`) instead of asking the gate a second time.

A document this module cannot render exactly (directives, a literal input, a field of the payload it
does not know, an interface fragment) simply has no fast answer. A test proves the fast answer is the
same bytes as the full path's for the same request.
"""
from __future__ import annotations

from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    is_leaf_type,
)

from api.prepared import FastAnswer, dumps
from api.schema.ids import from_global_id
from api.services.errors import DomainError
from api.services.mall import flash_sales
from api.trusted import TrustedDocuments

ROOT_FIELD = "flashSaleRedeem"
INPUT_FIELDS = frozenset({"flashSaleId", "idempotencyKey"})
ENABLED = True  # tests turn the fast answer off to compare it with the full path


class _Unrenderable(Exception):
    """The document asks for something the fast answer does not render exactly."""


def _collect(schema_type: GraphQLObjectType, selection_sets: list[SelectionSetNode],
             fragments: dict[str, FragmentDefinitionNode]) -> dict[str, list[FieldNode]]:
    """The fields of `selection_sets` by response key, in the executor's order (graphql-core's
    collect_fields for a document without directives)."""
    fields: dict[str, list[FieldNode]] = {}

    def walk(selection_set: SelectionSetNode) -> None:
        for selection in selection_set.selections:
            if selection.directives:
                raise _Unrenderable("directives")
            if isinstance(selection, FieldNode):
                fields.setdefault((selection.alias or selection.name).value, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if condition is not None and condition.name.value != schema_type.name:
                    raise _Unrenderable("a fragment on another type")
                walk(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = fragments[selection.name.value]
                if fragment.type_condition.name.value != schema_type.name:
                    raise _Unrenderable("a fragment on another type")
                walk(fragment.selection_set)

    for selection_set in selection_sets:
        walk(selection_set)
    return fields


def _render(schema: GraphQLSchema, schema_type: Any, nodes: list[FieldNode], value: Any,
            fragments: dict[str, FragmentDefinitionNode]) -> Any:
    """`value` (plain Python: dicts for objects) rendered as the executor renders it for `nodes`."""
    if isinstance(schema_type, GraphQLNonNull):
        schema_type = schema_type.of_type
    if value is None:
        return None
    if isinstance(schema_type, GraphQLList):
        return [_render(schema, schema_type.of_type, nodes, item, fragments) for item in value]
    if is_leaf_type(schema_type):
        return schema_type.serialize(value)
    if not isinstance(schema_type, GraphQLObjectType):
        raise _Unrenderable("an abstract type")
    selection_sets = [node.selection_set for node in nodes if node.selection_set is not None]
    rendered: dict[str, Any] = {}
    for key, field_nodes in _collect(schema_type, selection_sets, fragments).items():
        name = field_nodes[0].name.value
        if name == "__typename":
            rendered[key] = schema_type.name
            continue
        if name not in value or name not in schema_type.fields:
            raise _Unrenderable(f"the field {name}")
        rendered[key] = _render(schema, schema_type.fields[name].type, field_nodes, value[name], fragments)
    return rendered


def _refusal_value(err: DomainError) -> dict[str, Any]:
    """The payload the resolver returns for a refusal (`user_errors`), as plain values by field name."""
    return {"order": None, "pointsBalance": None,
            "userErrors": [{"field": err.field, "message": err.message, "code": err.code}]}


def _root(document: DocumentNode) -> tuple[str, str] | None:
    """(response key, input variable name) of a lone `flashSaleRedeem(input: $v)` root field."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operations[0].operation is not OperationType.MUTATION:
        return None
    selections = operations[0].selection_set.selections
    if len(selections) != 1 or not isinstance(selections[0], FieldNode):
        return None
    field = selections[0]
    arguments = field.arguments or ()
    if field.name.value != ROOT_FIELD or field.directives or len(arguments) != 1:
        return None
    argument = arguments[0]
    if argument.name.value != "input" or not isinstance(argument.value, VariableNode):
        return None
    return (field.alias or field.name).value, argument.value.name.value


def build(schema: GraphQLSchema, document: DocumentNode) -> FastAnswer | None:
    """The fast answer of a trusted document, or None when it has none."""
    root = _root(document)
    if root is None:
        return None
    key, variable = root
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    field = operation.selection_set.selections[0]
    assert isinstance(field, FieldNode)
    mutation = schema.mutation_type
    assert mutation is not None
    payload_type = mutation.fields[ROOT_FIELD].type
    try:
        data = {key: _render(schema, payload_type, [field], _refusal_value(flash_sales.sold_out()), fragments)}
    except _Unrenderable:
        return None
    answer = dumps({"data": data})

    async def sold_out(variables: dict[str, Any], context: Any) -> bytes | None:
        if not ENABLED:
            return None
        member_id = context.caller.member_id
        given = variables.get(variable)
        if member_id is None or not isinstance(given, dict) or given.keys() != INPUT_FIELDS:
            return None
        sale_gid, idempotency_key = given["flashSaleId"], given["idempotencyKey"]
        if not isinstance(sale_gid, str) or not isinstance(idempotency_key, str):
            return None
        parsed = from_global_id(sale_gid, "FlashSale")
        if parsed is None:
            return None
        try:
            gate = await flash_sales.pass_checks(member_id, parsed[1], idempotency_key, context.redis)
        except DomainError:
            return None  # the full path checks again and answers the input's userErrors
        if gate is not None and gate.verdict == "SOLD_OUT":
            return answer
        context.gate_pass = gate  # the executor's resolver takes these checks instead of repeating them
        return None

    return sold_out


def answers(schema: GraphQLSchema, trusted: TrustedDocuments) -> dict[str, FastAnswer]:
    """The fast answers of the trusted documents that have one, by document id."""
    found = {}
    for document in trusted.by_id.values():
        fast = build(schema, document.document)
        if fast is not None:
            found[document.id] = fast
    return found
