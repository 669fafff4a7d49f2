"""No "Did you mean" anywhere on the public endpoint (issue 11, finding 8): arguments, types named in
fragments, enum values and input fields are refused without a hint, on the first request (Strawberry's
path) and on the second (the prepared path)."""
from __future__ import annotations

import json

import pytest

from tests.conftest import make_member

MISTAKES = {
    "argument": ("{ products(frist: 5) { edges { node { id } } } }", "frist"),
    "fragment type": ("fragment T on Tierr { code } { tiers { ...T } }", "Tierr"),
    "enum value": ("{ products(first: 5, kind: VOUCHR) { edges { node { id } } } }", "VOUCHR"),
    "input field": ("mutation { memberProfileUpdate(input: {gendr: FEMALE}) { userErrors { code } } }", "gendr"),
    "field": ("{ tiers { cod } }", "cod"),
    "type of a variable": ("query($k: ProductKnd) { products(first: 5, kind: $k) { edges { node { id } } } }", "ProductKnd"),
}


@pytest.mark.parametrize("kind", MISTAKES)
async def test_refused_without_a_suggestion(api, kind):
    query, wrong = MISTAKES[kind]
    _, token = await make_member()
    for _ in range(2):
        answer = await api.post(query, token=token)
        assert answer.get("data") is None and answer["errors"], answer
        text = json.dumps(answer)
        assert wrong in text, f"the error does not name {wrong!r}: {text}"
        assert "Did you mean" not in text and "did you mean" not in text.lower()
