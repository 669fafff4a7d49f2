"""Every ```graphql block in README.md and docs/ is one operation that validates against the schema of
the endpoint it is meant for, so a newcomer can paste it as written. So is every operation inside a
shell command of the docs: the README's `gql <<'GQL' … GQL` (the public endpoint, or the operators' one
after `ENDPOINT=/admin/graphql`) and `mallpoints signed-call --query '…'` (the public endpoint).

The endpoint is the block's marker when it has one (a first line `# operators' endpoint` or
`# public endpoint`), else the one whose root type has every root field the operation uses (the
public endpoint when both have them, e.g. `tiers`)."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from graphql import GraphQLError, GraphQLSchema, OperationDefinitionNode, build_schema, parse, validate

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = {"public": build_schema((ROOT / "schema.graphql").read_text(encoding="utf-8")),
           "admin": build_schema((ROOT / "schema.admin.graphql").read_text(encoding="utf-8"))}
MARKERS = {"# operators' endpoint": "admin", "# public endpoint": "public"}
SHELL = re.compile(r"^([ \t]*)```(?:sh|bash|shell)\n(.*?)^[ \t]*```", re.M | re.S)
HEREDOC = re.compile(r"^([^\n]*)\bgql\b[^\n]*<<'GQL'\n(.*?)^GQL$", re.M | re.S)
SIGNED_CALL = re.compile(r"signed-call\b[^']*?--query '([^']*)'", re.S)
FENCE = re.compile(r"^([ \t]*)```graphql[^\n]*\n(.*?)^[ \t]*```", re.M | re.S)  # also indented, in lists


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks() -> list[tuple[str, str]]:
    found = []
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{path.relative_to(ROOT)}:{line}", textwrap.dedent(match.group(2))))
    return found


def shell_operations() -> list[tuple[str, str, str]]:
    """(where, operation, endpoint) of every operation sent by a documented shell command."""
    found = []
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        for block in SHELL.finditer(text):
            body = textwrap.dedent(block.group(2))
            start = text.count("\n", 0, block.start()) + 2
            for match in HEREDOC.finditer(body):
                line = start + body.count("\n", 0, match.start())
                endpoint = "admin" if "ENDPOINT=/admin/graphql" in match.group(1) else "public"
                found.append((f"{path.relative_to(ROOT)}:{line}", match.group(2), endpoint))
            for match in SIGNED_CALL.finditer(body):
                line = start + body.count("\n", 0, match.start())
                found.append((f"{path.relative_to(ROOT)}:{line}", match.group(1), "public"))
    return found


def _root_fields(operation: OperationDefinitionNode) -> set[str]:
    return {s.name.value for s in operation.selection_set.selections if s.kind == "field"} - {"__typename"}


def _root(schema: GraphQLSchema, operation: OperationDefinitionNode):
    return {"query": schema.query_type, "mutation": schema.mutation_type,
            "subscription": schema.subscription_type}[operation.operation.value]


def endpoint_of(source: str, operation: OperationDefinitionNode) -> str:
    first = source.lstrip().splitlines()[0].strip() if source.strip() else ""
    for marker, endpoint in MARKERS.items():
        if first.startswith(marker):
            return endpoint
    fields = _root_fields(operation)
    for endpoint in ("public", "admin"):
        root = _root(SCHEMAS[endpoint], operation)
        if root is not None and fields <= set(root.fields):
            return endpoint
    raise AssertionError(f"no endpoint has every root field of this {operation.operation.value}: {sorted(fields)}")


def check_block(source: str, endpoint: str | None = None) -> str:
    document = parse(source)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    anonymous = [o for o in operations if o.name is None]
    assert len(anonymous) < 2, "two anonymous operations in one block: GraphQL refuses the whole document"
    assert len(operations) == 1, f"{len(operations)} operations in one block; put each in a block of its own"
    endpoint = endpoint or endpoint_of(source, operations[0])
    errors: list[GraphQLError] = validate(SCHEMAS[endpoint], document)
    assert not errors, f"invalid on the {endpoint} endpoint: " + "; ".join(e.message for e in errors)
    return endpoint


@pytest.mark.parametrize(("where", "source"), blocks(), ids=[where for where, _ in blocks()])
def test_block_is_one_valid_operation(where, source):
    check_block(source)


@pytest.mark.parametrize(("where", "source", "endpoint"), shell_operations(),
                         ids=[where for where, _, _ in shell_operations()])
def test_shell_command_sends_one_valid_operation(where, source, endpoint):
    check_block(source, endpoint)


def test_blocks_are_found_everywhere():
    wheres = {where.split(":")[0] for where, _ in blocks()}
    assert "README.md" in wheres and any(w.startswith("docs/") for w in wheres)
    commands = shell_operations()
    assert len(blocks()) + len(commands) >= 30
    assert any(endpoint == "admin" for _, _, endpoint in commands)  # the operator's shell steps
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(SIGNED_CALL.findall(readme)) >= 5 and len(HEREDOC.findall(readme)) >= 10


def test_the_checker_refuses_what_breaks_a_paste():
    with pytest.raises(AssertionError, match="two anonymous operations"):
        check_block("mutation { pointsExpireRun(input: {}) { lotsExpired } }\n{ tiers { code } }")
    with pytest.raises(AssertionError, match="2 operations"):
        check_block("query A { tiers { code } }\nquery B { tiers { name } }")
    with pytest.raises(AssertionError, match="invalid on the public endpoint"):
        check_block("{ tiers { code nope } }")
    with pytest.raises(AssertionError, match="no endpoint"):
        check_block("{ viewer { member { id } } members(first: 1) { edges { node { id } } } }")
    assert check_block("# operators' endpoint\n{ tiers { code } }") == "admin"
    assert check_block("{ members(first: 1) { edges { node { id } } } }") == "admin"
    assert check_block("{ viewer { member { id } } }") == "public"


def test_readme_two_commands_section_has_exactly_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^```sh\n(.*?)^```", section, re.M | re.S)
    assert len(commands) == 2 and all(len(c.strip().splitlines()) == 1 for c in commands), commands
    assert commands[1].strip() == "python3.11 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    gated = commands[1].strip().replace(" && .venv/bin/python -m pytest", " && .ci/lint && .venv/bin/python -m pytest")
    assert gated in ci, ".ci/run must run the README's test command, with the lint gate before the tests"
