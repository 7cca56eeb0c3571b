"""Sweeps on Hydra's real launchers: a local parallel multirun, and the cluster/optuna configs compose."""

from __future__ import annotations

import pytest
import torch

from rql_lightning.config import compose_config
from tests.test_cli import TINY, explain, rql_train


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


def test_slurm_launcher_config_names_partition_gpus_and_time():
    from hydra import compose, initialize_config_dir

    from rql_lightning.config import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=60"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.timeout_min) == ("gpu", 1, 60)


def test_optuna_sweeper_config_searches_alpha_and_expectile():
    from hydra import compose, initialize_config_dir

    from rql_lightning.config import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["hydra/sweeper=alpha_expectile"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.direction == "maximize"
    assert set(sweeper.params) == {"model.alpha", "model.expectile"}


def test_paper_sizes_stay_the_model_defaults():
    cfg = compose_config(["paths.output_dir=/tmp/unused"])
    assert cfg.model.actor_hidden_dims == [512] * 4 and cfg.model.num_critics == 10 and cfg.model.flow_steps == 10
    assert cfg.data.batch_size == 256
