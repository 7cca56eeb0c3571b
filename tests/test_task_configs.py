"""conf/task/ holds exactly the paper's per-task settings (RQL_SPEC.md's table)."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.reference_fixture import FIXTURE, REPO

SPEC = FIXTURE.parents[1] / "RQL_SPEC.md"
TASK_DIR = REPO / "conf" / "task"


def spec_table() -> dict[str, dict]:
    """Rows of the spec's per-environment table, keyed by environment (e.g. 'cube-double')."""
    rows = {}
    for line in SPEC.read_text().splitlines():
        m = re.match(r"^\| ([a-z0-9x-]+)-(play|navigate) \|(.+)\|$", line)
        if not m:
            continue
        alpha, kappa, rho, h, gamma, sparse, data = (c.strip() for c in m[3].split("|"))
        rows[m[1]] = {
            "alpha": float(alpha),
            "expectile": float(kappa),
            "rho": float(rho),
            "chunk_size": int(h),
            "discount": float(gamma),
            "sparse": sparse == "yes",
            "shards": data == "100M shards",
            "kind": m[2],
        }
    return rows


def test_spec_table_has_the_papers_ten_environments():
    assert len(spec_table()) == 10


@pytest.mark.parametrize("env", sorted(spec_table()))
def test_task_config_matches_spec(env: str):
    row = spec_table()[env]
    cfg = yaml.safe_load((TASK_DIR / f"{env}.yaml").read_text())
    for key in ("alpha", "expectile", "rho", "chunk_size", "discount", "sparse"):
        assert cfg[key] == row[key], (env, key)
    assert cfg["name"] == env
    assert cfg["singletask_name"] == f"{env}-{row['kind']}-singletask-task${{task.id}}-v0"
    assert cfg["eval_env"] == f"{env}-singletask-task${{task.id}}-v0"
    assert (cfg["data_kind"] == "100m_shards") == row["shards"]
    assert cfg["dataset"].endswith("-100m-v0") == row["shards"]
