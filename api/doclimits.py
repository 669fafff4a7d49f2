"""Limits checked on the parsed document before validation (issue 11, finding 4).

graphql-core's validation is not linear in the document: `OverlappingFieldsCanBeMerged` compares every
pair of fields that share a response key, so `{tiers{name} tiers{name} …×490}` (5.9 KB, under the token
limit) took 4–7 s to refuse. One linear walk over the parsed document counts what makes validation
expensive and refuses the document before any rule runs:

- the field selections of the operation with every fragment spread expanded (`MAX_FIELDS`),
- how often one response key repeats in a selection set, fragments included (`MAX_REPEATS`),
- fragment spreads in the whole document (`MAX_SPREADS`) and fragment definitions (`MAX_FRAGMENTS`).

The walk stops counting as soon as a limit is passed, so its cost is bounded by the limits, not by the
document. The first-party documents (`clients/`) stay far below every limit (a test checks it).
"""
from __future__ import annotations

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

MAX_FIELDS = 300
MAX_REPEATS = 4
MAX_SPREADS = 50
MAX_FRAGMENTS = 30


class _Over(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


class _Walk:
    def __init__(self, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self.fragments = fragments
        self.fields = 0

    def selection_set(self, node: SelectionSetNode, path: tuple[str, ...]) -> None:
        keys: dict[str, int] = {}
        self._flat(node, keys, path)

    def _flat(self, node: SelectionSetNode, keys: dict[str, int], path: tuple[str, ...]) -> None:
        """Counts this selection set's fields (inline fragments and spreads flattened into it)."""
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                self.fields += 1
                if self.fields > MAX_FIELDS:
                    raise _Over(f"the operation selects more than {MAX_FIELDS} fields")
                key = (selection.alias or selection.name).value
                keys[key] = keys.get(key, 0) + 1
                if keys[key] > MAX_REPEATS:
                    raise _Over(f"the field {key!r} is selected more than {MAX_REPEATS} times in one selection set")
                if selection.selection_set is not None:
                    self.selection_set(selection.selection_set, path)
            elif isinstance(selection, InlineFragmentNode):
                self._flat(selection.selection_set, keys, path)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in path:  # unknown or cyclic: validation reports it, cheaply
                    continue
                self._flat(fragment.selection_set, keys, (*path, name))


def check(document: DocumentNode) -> GraphQLError | None:
    """The first limit the document passes, as a GraphQL error; None within every limit."""
    fragments: dict[str, FragmentDefinitionNode] = {}
    spreads = 0
    stack: list[SelectionSetNode] = []
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            fragments[definition.name.value] = definition
            stack.append(definition.selection_set)
        elif isinstance(definition, OperationDefinitionNode):
            stack.append(definition.selection_set)
    if len(fragments) > MAX_FRAGMENTS:
        return GraphQLError(f"the document defines more than {MAX_FRAGMENTS} fragments")
    while stack:  # every spread in the text, used or not
        node = stack.pop()
        for selection in node.selections:
            if isinstance(selection, FragmentSpreadNode):
                spreads += 1
                if spreads > MAX_SPREADS:
                    return GraphQLError(f"the document has more than {MAX_SPREADS} fragment spreads")
            elif isinstance(selection, (FieldNode, InlineFragmentNode)) and selection.selection_set is not None:
                stack.append(selection.selection_set)
    try:
        for definition in document.definitions:
            if isinstance(definition, OperationDefinitionNode):
                _Walk(fragments).selection_set(definition.selection_set, ())
            elif isinstance(definition, FragmentDefinitionNode):
                _Walk(fragments).selection_set(definition.selection_set, (definition.name.value,))
    except _Over as over:
        return GraphQLError(over.message)
    return None
