"""eval.success_timing: OGBench 1.2 scores a single-task step on the state before it (``pre``), 1.1 after it
(``post``). The switch reaches the real env, every run records the semantics it was evaluated under, and
``rql-results`` never pools runs evaluated under different ones."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from rql_lightning.checks import check_config
from rql_lightning.cli.results import main as rql_results
from rql_lightning.config import compose_config
from rql_lightning.envs import make_eval_env, success_timing_of
from rql_lightning.errors import UserError
from rql_lightning.results import aggregate, load_runs
from tests.envs.scripted import ENV, T_MAX, scripted_policy
from tests.runs import train_tiny


def first_success_step(success_timing: str | None) -> int:
    """The step (1-based) whose ``info['success']`` is first true when the scripted oracle drives task 1."""
    env = make_eval_env(ENV, success_timing=success_timing)
    try:
        obs, _ = env.reset(seed=0)
        for step in range(1, T_MAX + 1):
            obs, _, terminated, truncated, info = env.step(scripted_policy(np.asarray(obs)[None])[0, 0])
            if info["success"]:
                return step
            assert not (terminated or truncated)
    finally:
        env.close()
    raise AssertionError("the scripted oracle did not reach the goal")


def test_pre_scores_the_state_before_the_step_post_the_state_after_it():
    post, pre = first_success_step("post"), first_success_step("pre")
    assert pre == post + 1  # the same trajectory: pre sees the goal state one step later
    assert first_success_step(None) == pre  # null: the installed OGBench 1.2's single-task default


def test_the_effective_timing_is_the_requested_one_else_ogbench_default():
    assert success_timing_of(ENV) == "pre"
    assert success_timing_of("cube-single-play-singletask-task1-v0", "post") == "post"  # a dataset name
    assert success_timing_of("antmaze-large-navigate-singletask-task1-v0") == "pre"  # navigation has it too


@pytest.mark.parametrize("task", ["cube-single", "antmaze-large"])
def test_the_setting_is_checked_and_navigation_has_it(task):
    check_config(compose_config([f"task={task}", "eval.success_timing=post", "paths.output_dir=/tmp/x"]))
    with pytest.raises(UserError, match="eval.success_timing=after must be one of None, pre, post"):
        check_config(compose_config([f"task={task}", "eval.success_timing=after", "paths.output_dir=/tmp/x"]))


def test_a_minari_env_has_no_switch():
    cfg = compose_config(["data=minari", "data.dataset_id=rql/x-v0", "eval.success_timing=pre", "paths.output_dir=/x"])
    with pytest.raises(UserError, match="eval.success_timing=pre is OGBench's switch; a Minari env has none"):
        check_config(cfg)


@pytest.fixture(scope="module")
def runs_under_both(tmp_path_factory, cube_single_dataset) -> Path:
    """Two tiny runs that differ only in eval.success_timing (null: 1.2's pre, and post)."""
    root = tmp_path_factory.mktemp("timing")
    for name, timing in (("pre", "null"), ("post", "post")):
        train_tiny(root / name, [f"data.dataset_path={cube_single_dataset}", f"eval.success_timing={timing}"])
    return root


@pytest.mark.slow
def test_summary_records_ogbench_version_and_the_effective_timing(runs_under_both):
    for name in ("pre", "post"):
        summary = json.loads((runs_under_both / name / "summary.json").read_text())
        assert summary["ogbench_version"] == version("ogbench")
        assert summary["success_timing"] == name


@pytest.mark.slow
def test_runs_under_different_semantics_are_never_pooled(runs_under_both, tmp_path, capsys):
    runs, notes = load_runs(runs_under_both)
    assert len(runs) == 2 and not notes, notes  # not duplicates of each other
    v = version("ogbench")
    assert sorted(aggregate(runs).methods) == [f"rql [ogbench {v} post]", f"rql [ogbench {v} pre]"]
    assert rql_results([str(runs_under_both), "--out", str(tmp_path / "out"), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert f"rql [ogbench {v} post]" in out and f"rql [ogbench {v} pre]" in out
