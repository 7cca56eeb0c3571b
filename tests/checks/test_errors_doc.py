"""docs/errors.md stays true: every schema setting is listed, each example message is what the code says,
and every case of the tables with a test column comes out of a test in the cited file that names the row
(``errors.md row 52`` in its docstring or a comment) and asserts part of the row's message."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from rql_lightning.checks import SETTINGS, check_config, check_machine, check_overrides
from rql_lightning.config import compose_config
from rql_lightning.errors import UserError

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "errors.md").read_text()
SCHEMA_SECTION = DOC.split("## Settings out of range")[1].split("\n## ")[0]
EXAMPLES = re.findall(r"^\| \d+\w? \|.*\| `([a-z_.]+=[^` ]+ [^`]*)` \|$", SCHEMA_SECTION, flags=re.M)


def test_every_schema_setting_is_listed():
    missing = [s.key for s in SETTINGS if f"`{s.key}`" not in SCHEMA_SECTION]
    assert not missing, missing


def test_the_catalogue_has_at_least_40_cases():
    assert len(re.findall(r"^\| \d+ \|", DOC, flags=re.M)) >= 40


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.split(" ", 1)[0])
def test_example_message_is_what_the_check_says(example):
    override = example.split(" ", 1)[0]
    context = ["model=fql"] if override.startswith(("model.expectile", "model.rho")) else []
    overrides = [*context, override, "paths.output_dir=/tmp/rql-doc-test"]
    with pytest.raises(UserError) as err:
        check_overrides(overrides)
        cfg = compose_config(overrides)
        check_config(cfg)
        check_machine(cfg)
    assert str(err.value).startswith(example.removesuffix(" ...").removesuffix("...")), str(err.value)


def test_cited_test_files_exist():
    cited = set(re.findall(r"([a-z_/]+\.py)(?:::\w+)?", DOC.split("## Determinism")[0]))
    cited = {c for c in cited if not c.startswith("rql_lightning/")}
    missing = [c for c in cited if not (REPO / "tests" / c.removeprefix("tests/")).is_file()]
    assert not missing, missing


# | # | problem | what you see | test |: the rows with a test column (the schema rows are walked above).
CASES = re.findall(r"^\| (\d+[a-z]?) \| .* \| ([^|]*) \| ([a-z_/, .]+\.py) \|$", DOC, flags=re.M)
NAMED = re.compile(r"errors\.md rows? ((?:\d+[a-z]?(?:, | and )?)+)")


def _tests_naming(path: Path) -> dict[str, list[str]]:
    """Row -> the message-like string constants (>= 10 characters, a space inside) of each test function in
    ``path`` naming that row in its docstring or a comment, decorators (parametrize) included."""
    source = path.read_text()
    lines = source.splitlines()
    found: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test"):
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        text = "\n".join(lines[first - 1 : node.end_lineno])
        constants = [
            c.value
            for part in [*node.decorator_list, *node.body[1 if ast.get_docstring(node) else 0 :]]
            for c in ast.walk(part)
            if isinstance(c, ast.Constant) and isinstance(c.value, str)
        ]
        # a pytest.raises(match=...) pattern counts by its literal pieces
        pieces = [p.replace("\\", "").strip() for c in constants for p in re.split(r"\.\*|\.\+", c)]
        strings = [p for p in pieces if len(p) >= 10 and " " in p]
        for rows in NAMED.findall(text):
            for row in re.findall(r"\d+[a-z]?", rows):
                found.setdefault(row, []).extend(strings)
    return found


# tests/results/ was being rewritten when this check came: its tests name their rows in the next change (strict:
# this fails as soon as they do, so the mark comes off then).
CASE_PARAMS = [pytest.param(*c, id=c[0]) for c in CASES]


@pytest.mark.parametrize(("row", "message", "files"), CASE_PARAMS)
def test_each_case_comes_out_of_a_test_that_names_its_row(row, message, files):
    """A cited file has a test naming ``errors.md row <row>`` whose literal strings include a piece of the row's
    message: the documented text is what that test asserts."""
    shown = " ".join(re.findall(r"`([^`]+)`", message)) or message
    asserted = {}
    for name in (f.strip() for f in files.split(",")):
        strings = _tests_naming(REPO / "tests" / name).get(row)
        if strings is not None:
            asserted[name] = [s for s in strings if s in shown]
    assert asserted, f"no test in {files} names errors.md row {row}"
    assert any(asserted.values()), f"the tests naming row {row} assert no piece of: {shown}"
