"""Sweeps on Hydra's real launchers: a local parallel multirun, an Optuna search, and every job of a sweep
checked before any is launched."""

from __future__ import annotations

import json

import pytest

from rql_lightning.cli.train import sweep_jobs
from rql_lightning.config import compose_config
from tests.runs import TINY, TRACEBACK, explain, rql_train_here


@pytest.mark.slow
def test_optuna_sweep_runs_trials_and_reports_the_best_alpha_and_expectile(cube_single_dataset, tmp_path):
    """A real 2-trial Optuna search: each trial trains, returns its success rate, and the sweeper writes
    the best (alpha, expectile) it found. (The SLURM launcher needs a cluster: it is not tested here.)"""
    import yaml

    proc = rql_train_here(
        [
            "-m",
            "hydra/sweeper=alpha_expectile",
            "hydra.sweeper.n_trials=2",
            "trainer.max_steps=3",
            f"data.dataset_path={cube_single_dataset}",
            f"hydra.sweep.dir={tmp_path}",
            "eval.episodes=1",
            *TINY,
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, explain(proc)
    assert {p.name for p in tmp_path.iterdir() if p.is_dir()} >= {"0", "1"}
    best = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"task.alpha", "task.expectile"}
    trials = []  # (success rate the trial returned, its task.alpha and task.expectile)
    for job in ("0", "1"):
        summary = json.loads((tmp_path / job / "summary.json").read_text())
        params = dict(
            o.split("=", 1) for o in yaml.safe_load((tmp_path / job / ".hydra" / "overrides.yaml").read_text())
        )
        trials.append((summary["success_rate"], params["task.alpha"], params["task.expectile"]))
    top = max(t[0] for t in trials)
    assert best["best_value"] == top  # the reported best is the best trial's ...
    assert (best["best_params"]["task.alpha"], best["best_params"]["task.expectile"]) in {
        (float(a), float(e)) for v, a, e in trials if v == top
    }  # ... with that trial's settings


def test_paper_sizes_stay_the_model_defaults():
    cfg = compose_config(["paths.output_dir=/tmp/unused"])
    assert cfg.model.actor_hidden_dims == [512] * 4 and cfg.model.num_critics == 10 and cfg.model.flow_steps == 10
    assert cfg.data.batch_size == 256


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sweep", "expected"),
    [
        (["task.id=1,7", "seed=0,1"], "error: sweep job task.id=7 seed=0: task.id=7 must be >= 1 and <= 5;"),
        (["model.alpha=0.3,1"], "error: sweep job model.alpha=0.3: model.alpha=0.3 sets apart a value the config "),
        (
            ["hydra/sweeper=alpha_expectile", "task.rho=-1"],
            "error: sweep job task.alpha=0.1 task.expectile=0.5: task.rho=-1 must be >= 0;",
        ),
    ],
)
def test_a_bad_job_of_a_sweep_stops_it_before_any_job_starts(tmp_path, sweep, expected):
    """``rql-train -m`` (in this process) on Hydra's basic launcher (and the Optuna sweeper): the bad combination is one
    line naming it, exit 2, and no job directory, not even the sweep's, was created."""
    sweep_dir = tmp_path / "sweep"
    proc = rql_train_here(["-m", *sweep, f"hydra.sweep.dir={sweep_dir}", *TINY], cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert TRACEBACK not in proc.stderr, explain(proc)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(expected), explain(proc)
    assert not sweep_dir.exists() and not (tmp_path / "multirun").exists()


def test_sweep_jobs_cross_the_command_lines_sweeps_and_the_sweepers_search_space():
    jobs = sweep_jobs(["task.id=1,2", "seed=range(0,2)", "trainer.max_steps=3"])
    assert [swept for swept, _ in jobs] == [
        ["task.id=1", "seed=0"],
        ["task.id=1", "seed=1"],
        ["task.id=2", "seed=0"],
        ["task.id=2", "seed=1"],
    ]
    assert all("trainer.max_steps=3" in job for _, job in jobs)
    optuna = sweep_jobs(["hydra/sweeper=alpha_expectile", "task.expectile=0.7"])  # the command line wins
    assert len(optuna) == 5 and all("task.expectile=0.7" in job for _, job in optuna)
    assert {swept[0] for swept, _ in optuna} == {f"task.alpha={a}" for a in (0.1, 0.3, 1, 3, 10)}
    groups = sweep_jobs(["task=glob([cube-d*,cube-s*])"])
    assert [swept for swept, _ in groups] == [["task=cube-double"], ["task=cube-single"]]


def test_a_paper_column_sweep_is_one_job_per_environment():
    """``-m task=cube-double,scene 'task.ids=[1,2,3,4,5]' 'seeds=[0,1,2,3,4]'``: 2 jobs of 25 replicas each, both
    checked before launch."""
    from rql_lightning.checks import check_config
    from rql_lightning.config import compose_config

    jobs = sweep_jobs(["task=cube-double,scene", "task.ids=[1,2,3,4,5]", "seeds=[0,1,2,3,4]"])
    assert [swept for swept, _ in jobs] == [["task=cube-double"], ["task=scene"]]
    for _, overrides in jobs:
        cfg = compose_config(overrides)
        check_config(cfg)
        assert len(cfg.task.ids) * len(cfg.seeds) == 25 and cfg.data.task_ids == [1, 2, 3, 4, 5]
