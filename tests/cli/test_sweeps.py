"""Sweeps on Hydra's real launchers: a local parallel multirun, and the cluster/optuna configs compose."""

from __future__ import annotations

import pytest
import torch

from rql_lightning.config import compose_config
from tests.runs import TINY, explain, rql_train


@pytest.mark.slow
def test_joblib_multirun_runs_every_combination_in_parallel(cube_single_dataset, tmp_path):
    proc = rql_train(
        [
            "-m",
            "hydra/launcher=local",
            "hydra.launcher.n_jobs=2",
            "model.alpha=0.3,3",
            "trainer.max_steps=3",
            f"data.dataset_path={cube_single_dataset}",
            f"hydra.sweep.dir={tmp_path}",
            "~callbacks.evaluation",
            *[o for o in TINY if not o.startswith("callbacks.evaluation")],
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, explain(proc)
    assert "joblib" in (proc.stdout + proc.stderr).lower()
    alphas = set()
    for job in ("0", "1"):
        ckpt = torch.load(tmp_path / job / "checkpoints" / "last.ckpt", weights_only=True)
        assert ckpt["global_step"] == 3
        alphas.add(ckpt["hyper_parameters"]["alpha"])
    assert alphas == {0.3, 3.0}


@pytest.mark.slow
def test_optuna_sweep_runs_trials_and_reports_the_best_alpha_and_expectile(cube_single_dataset, tmp_path):
    """A real 2-trial Optuna search: each trial trains, returns its success rate, and the sweeper writes
    the best (alpha, expectile) it found. (The SLURM launcher needs a cluster: it is not tested here.)"""
    import yaml

    proc = rql_train(
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
    assert set(best["best_params"]) == {"model.alpha", "model.expectile"}
    assert 0.0 <= best["best_value"] <= 1.0


def test_paper_sizes_stay_the_model_defaults():
    cfg = compose_config(["paths.output_dir=/tmp/unused"])
    assert cfg.model.actor_hidden_dims == [512] * 4 and cfg.model.num_critics == 10 and cfg.model.flow_steps == 10
    assert cfg.data.batch_size == 256
