"""docs/errors.md stays true: every schema setting is listed, each example message is what the code says,
and every test it cites exists."""

from __future__ import annotations

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
