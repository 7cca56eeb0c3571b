"""Logger choices write where the README says: TensorBoard and CSV together, wandb offline without network."""

from __future__ import annotations

import csv
import importlib.util

import pytest

from rql_lightning.config import compose_config
from rql_lightning.training import train
from tests.runs import TINY, explain, rql_train_here


@pytest.mark.slow
def test_logger_many_writes_tensorboard_and_csv(cube_single_dataset, tmp_path):
    cfg = compose_config(
        [
            "logger=many",
            f"data.dataset_path={cube_single_dataset}",
            *TINY,
            "trainer.max_steps=10",
            "eval.episodes=0",
            f"paths.output_dir={tmp_path}",
        ]
    )
    summary = train(cfg)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    rows = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").open()))
    assert any(row.get("train/critic_loss") for row in rows)
    assert summary["tensorboard"].rstrip("/") == str(tmp_path / "tensorboard")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="the wandb extra is not installed")
def test_logger_wandb_offline_needs_no_network(cube_single_dataset, tmp_path):
    run_dir = tmp_path / "run"
    proc = rql_train_here(
        [
            "logger=wandb",
            "logger.wandb.offline=true",
            f"data.dataset_path={cube_single_dataset}",
            *TINY,
            "trainer.max_steps=5",
            "eval.episodes=0",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, explain(proc)
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    assert list(offline.glob("*.wandb")), sorted(p.name for p in offline.iterdir())
