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
    assert (cfg["data_kind"] == "100m_shards") == row["shards"]
    assert cfg["dataset"].endswith("-100m-v0") == row["shards"]


@pytest.mark.parametrize("env", sorted(spec_table()))
def test_task_evaluates_in_its_ogbench_single_task_env(env: str):
    from rql_lightning.data.ogbench import eval_env_name_of
    from rql_lightning.envs import resolve_env_id

    cfg = yaml.safe_load((TASK_DIR / f"{env}.yaml").read_text())
    name = eval_env_name_of(cfg["singletask_name"].replace("${task.id}", "3"))
    assert name == f"{env}-singletask-task3-v0"
    assert resolve_env_id(name) == (name, False)  # registered with gymnasium by ogbench
