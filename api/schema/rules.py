"""Validation rules of the public endpoint."""
from __future__ import annotations

from graphql import FieldNode, FragmentSpreadNode, GraphQLError, InlineFragmentNode, ValidationRule

# Mutations that pay, redeem, draw or verify a one-time code run alone: one root field per request.
SENSITIVE_FIELDS = frozenset({"pointsPay", "authSmsLogin", "merchantStaffLogin", "voucherWriteOff",
                              "pointsMallRedeem", "checkoutCreate", "flashSaleRedeem", "luckyDrawPlay",
                              "parkingOffsetApply"})


class OncePerRequest(ValidationRule):
    """A sensitive mutation must be the only root field of its operation (aliases, fragments and
    repeats included), so that one request cannot try it many times."""

    def enter_operation_definition(self, node, *_args):
        fields = list(self._root_fields(node.selection_set, set()))
        sensitive = [f for f in fields if f.name.value in SENSITIVE_FIELDS]
        if sensitive and len(fields) > 1:
            name = sensitive[0].name.value
            self.report_error(GraphQLError(f"{name} must be the only field of its request", sensitive[0]))

    def _root_fields(self, selection_set, seen: set[str]):
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, InlineFragmentNode):
                yield from self._root_fields(selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                seen.add(selection.name.value)
                fragment = self.context.get_fragment(selection.name.value)
                if fragment is not None:
                    yield from self._root_fields(fragment.selection_set, seen)
